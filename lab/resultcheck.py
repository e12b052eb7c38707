#!/usr/bin/python3
"""lab/resultcheck.py [--lang en|de] EML RECIPIENT POLICY [EXPECT...]: does a result mail that landed in
the lab mailbox say what the service's summary says, reveal no third-party
address, and carry a DKIM signature that verifies (through the netns
resolver: run it inside the lab's namespace)? Prints "ok (...)" or
"BAD: ..." (exit 1).

  POLICY     the verdict summary.json holds: the Subject must end in it
             ("Email security test ID: POLICY") and the text must name it
  RECIPIENT  the envelope recipient: the one full address allowed besides
             the sender (From); every other address must be redacted
             (x***@domain, docs/report.md)
  EXPECT     texts the mail's text must contain as well (lab/run's DKIM
             senders: "DKIM: pass (d=...", "DMARC (...): pass")
  --lang     the language the test was created in (default en): the
             Subject, and the verdict line of the text part ("Outbound
             verdict: POLICY" / "Ergebnis für ausgehende Mail: POLICY"),
             must be in it and name POLICY, and the other language's
             headings must not appear (docs/i18n.md)
"""
import email
import email.policy
import email.utils
import re
import subprocess
import time
import sys

args = sys.argv[1:]
lang = "en"
if args[:1] == ["--lang"]:
    lang, args = args[1], args[2:]
eml, rcpt, policy = args[0:3]
expect = args[3:]
# The words of each language that lab/run checks: the subject's start, the
# verdict line's label (internal/i18n: mail.subject, report.h.verdict), and
# headings that only that language has.
WORDS = {
    "en": ("Email security test ", "Outbound verdict: ", ["Connection history"]),
    "de": ("E-Mail-Sicherheitstest ", "Ergebnis für ausgehende Mail: ", ["Verbindungsverlauf"]),
}
if lang not in WORDS:
    print(f"BAD: unknown language {lang!r}")
    sys.exit(1)
raw = open(eml, "rb").read()
msg = email.message_from_bytes(raw, policy=email.policy.default)
problems = []

subject = str(msg.get("Subject", ""))
if not subject.endswith(": " + policy):
    problems.append(f"subject {subject!r} does not end in ': {policy}'")
if not subject.startswith(WORDS[lang][0]):
    problems.append(f"subject {subject!r} is not in {lang!r} (want {WORDS[lang][0]!r}...)")

texts = []
for part in msg.walk():
    if part.get_content_maintype() == "text":
        texts.append(part.get_content())
if not texts:
    problems.append("no text part")
plain = "\n".join(texts)
if policy not in plain:
    problems.append(f"the text does not name the verdict {policy!r}")
# The verdict line of the text part names the verdict, in the language.
label = WORDS[lang][1]
lines = [l for l in texts[0].splitlines() if l.startswith(label)] if texts else []
named = lines[0][len(label):].split(" ")[0] if lines else None
if named != policy:
    problems.append(f"verdict line {lines[:1]!r}: says {named!r}, want {label}{policy}")
for other, words in WORDS.items():
    if other == lang:
        continue
    for w in words[2] + [words[1]]:
        if w in plain:
            problems.append(f"a {lang!r} mail says {w!r} ({other!r})")
for w in WORDS[lang][2]:
    if w not in plain:
        problems.append(f"a {lang!r} mail lacks {w!r}")

for want in expect:
    if want not in plain:
        problems.append(f"the text does not say {want!r}")

sender = email.utils.parseaddr(str(msg.get("From", "")))[1].lower()
allowed = {rcpt.lower(), sender}
ADDR = re.compile(r"[A-Za-z0-9._%+*-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
visible = plain + "\n" + "\n".join(str(msg.get(h, "")) for h in ("From", "To", "Cc", "Reply-To", "Subject"))
leaks = sorted({a for a in ADDR.findall(visible) if a.lower() not in allowed and "***@" not in a})
if leaks:
    problems.append("unredacted addresses: " + ", ".join(leaks))

# dkimverify (python3-dkim) as a user would run it: exit 0 and "signature
# ok"; its DNS look-up of the key goes through the netns' resolv.conf and
# gives up after 5 s ("signature verification failed", as for a bad
# signature; the time it took tells the two apart). The cluster lab once
# met that after a node's death: the NS answer had no addresses and
# Unbound asked the dead node first (docs/cluster.md "Name servers").
t_verify = time.monotonic()
proc = subprocess.run(["dkimverify"], input=raw, capture_output=True, timeout=30)
out = (proc.stdout + proc.stderr).decode(errors="replace").strip()
if proc.returncode != 0 or "signature ok" not in out:
    problems.append(f"dkimverify: exit {proc.returncode} after {time.monotonic() - t_verify:.1f} s: {out[:200]}")

if problems:
    print("BAD: " + "; ".join(problems))
    sys.exit(1)
said = "".join(f", says {w!r}" for w in expect)
print(f"ok ({lang}, names {policy}{said}, no third-party address, dkimverify: signature ok)")
