#!/usr/bin/python3
"""lab/logcheck.py MAILLOG TEST_JSON ZONE_A ZONE_B: does the service's history
of a test (`mailsec test show -json ID`) show what the Postfix sender's own
log says it did? Prints "agree (...)" or "DISAGREE: ..." (exit 1).

From the log, per session that got past the greeting:
  refused, no STARTTLS   "TLS is required, but was not offered by host H"
  refused, certificate   "Server certificate not verified" (host H from the
                         preceding "... TLS connection established to H";
                         "no matching DANE TLSA records" is one reason)
  answered 4xx           "host H said: 451 ..." / status=deferred (host H said: 451)
  delivered              status=sent, relay=H
The service must have as many connections of each kind: refused without
STARTTLS = plain, no MAIL, no reply; refused certificate = TLS, no MAIL;
4xx = a reply starting 4; delivered = a reply starting 250. No duplicates:
each recipient is delivered (status=sent; a 250 naming it) at most once, on
both sides: a sender the service answered 250 gets no second result. For deliveries
and certificate refusals over TLS with SNI, the persona must be H's (mxN ->
N); without SNI the shared address serves persona 2, so only counts compare.
"""
import collections
import json
import re
import sys

maillog, test_json, zone_a, zone_b = sys.argv[1:5]

PLAIN = re.compile(r"TLS is required, but was not offered by host ([^\[\s]+)\[")
EST = re.compile(r"postfix/smtp\[(\d+)\]: (\w+) TLS connection established to ([^\[\s]+)\[")
NOTVER = re.compile(r"postfix/smtp\[(\d+)\]: \w+: Server certificate not verified$")
SAID4 = re.compile(r"host ([^\[\s]+)\[[^\]]*\] said: (4\d\d)")
STATUS = re.compile(r"postfix/smtp\[(\d+)\]: \w+: to=<([^>]+)>, relay=([^\[\s]+)\[.*status=(\w+) \((.*)\)$")

log = collections.Counter()
sent_to = collections.Counter()  # recipient -> status=sent lines
hosts = collections.defaultdict(list)
last_tls = {}
for line in open(maillog, errors="replace"):
    line = line.rstrip("\n")
    m = EST.search(line)
    if m:
        last_tls[m.group(1)] = m.group(3).lower()
        continue
    m = STATUS.search(line)
    if m:
        pid, rcpt, relay, status, reason = m.groups()
        relay = relay.lower()
        if status == "sent":
            log["delivered"] += 1
            sent_to[rcpt.lower()] += 1
            hosts["delivered"].append(relay)
        elif PLAIN.search(reason):
            log["refused_plain"] += 1
        elif reason.startswith("Server certificate not verified"):
            log["refused_cert"] += 1
            hosts["refused_cert"].append(last_tls.get(pid, relay))
        elif SAID4.search(reason):
            log["said_4xx"] += 1
        continue
    if PLAIN.search(line):
        log["refused_plain"] += 1
        continue
    m = NOTVER.search(line)
    if m:
        log["refused_cert"] += 1
        hosts["refused_cert"].append(last_tls.get(m.group(1), "?"))
        continue
    if SAID4.search(line):
        log["said_4xx"] += 1

try:
    conns = json.load(open(test_json)).get("connections") or []
except Exception as e:  # noqa: BLE001
    print(f"DISAGREE: no test history ({e})")
    sys.exit(1)

svc = collections.Counter()
svc_hosts = collections.defaultdict(list)
svc_sent_to = collections.Counter()  # recipient -> 250 replies naming it


def host_of(c):
    sni = (c.get("SNI") or "").lower()
    if sni:
        return sni
    return f"persona{c.get('Persona')}"


for c in conns:
    reply = c.get("Reply") or ""
    tls = bool(c.get("TLSVersion"))
    mail = bool(c.get("MailFrom")) or c.get("State") in ("Mail", "Acked")
    if reply.startswith("250"):
        for r in c.get("RcptTo") or []:
            svc_sent_to[r.lower()] += 1
        svc["delivered"] += 1
        svc_hosts["delivered"].append(host_of(c))
    elif reply.startswith("4"):
        svc["said_4xx"] += 1
    elif not tls and not mail and c.get("EHLO") and not c.get("STARTTLSOffered"):
        svc["refused_plain"] += 1
    elif tls and not mail:
        svc["refused_cert"] += 1
        svc_hosts["refused_cert"].append(host_of(c))

problems = []
for k in ("delivered", "said_4xx", "refused_plain", "refused_cert"):
    if log[k] != svc[k]:
        problems.append(f"{k}: log {log[k]}, service {svc[k]}")
for k in ("delivered", "refused_cert"):
    # Compare host names only where the service saw an SNI for every one.
    sh = sorted(svc_hosts[k])
    if all(not h.startswith("persona") for h in sh) and sorted(hosts[k]) != sh and log[k] == svc[k]:
        problems.append(f"{k} hosts: log {sorted(hosts[k])}, service {sh}")
for side, counts in (("log", sent_to), ("service", svc_sent_to)):
    for rcpt, n in sorted(counts.items()):
        if n > 1:
            problems.append(f"duplicate: {side} delivered to {rcpt} {n} times")
summary = ", ".join(f"{k} {log[k]}" for k in ("delivered", "said_4xx", "refused_plain", "refused_cert"))
if problems:
    print("DISAGREE: " + "; ".join(problems))
    sys.exit(1)
print(f"agree ({summary})")
