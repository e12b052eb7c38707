#!/usr/bin/python3
"""lab/resultcheck.py EML RECIPIENT POLICY [EXPECT...]: does a result mail that landed in
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
"""
import email
import email.policy
import email.utils
import re
import subprocess
import sys

eml, rcpt, policy = sys.argv[1:4]
expect = sys.argv[4:]
raw = open(eml, "rb").read()
msg = email.message_from_bytes(raw, policy=email.policy.default)
problems = []

subject = str(msg.get("Subject", ""))
if not subject.endswith(": " + policy):
    problems.append(f"subject {subject!r} does not end in ': {policy}'")

texts = []
for part in msg.walk():
    if part.get_content_maintype() == "text":
        texts.append(part.get_content())
if not texts:
    problems.append("no text part")
plain = "\n".join(texts)
if policy not in plain:
    problems.append(f"the text does not name the verdict {policy!r}")

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
# ok"; its DNS look-up of the key goes through the netns' resolv.conf.
proc = subprocess.run(["dkimverify"], input=raw, capture_output=True, timeout=30)
out = (proc.stdout + proc.stderr).decode(errors="replace").strip()
if proc.returncode != 0 or "signature ok" not in out:
    problems.append(f"dkimverify: exit {proc.returncode}: {out[:200]}")

if problems:
    print("BAD: " + "; ".join(problems))
    sys.exit(1)
said = "".join(f", says {w!r}" for w in expect)
print(f"ok (names {policy}{said}, no third-party address, dkimverify: signature ok)")
