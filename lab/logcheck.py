#!/usr/bin/python3
"""lab/logcheck.py FAMILY TEST_JSON LOG...: does the service's history of a
test (`mailsec test show -json ID`) show what the sender's own log says it
did? With TEST_JSON "-" it prints what the log says as JSON ({"log":
counts, "hosts": hosts per kind}) for lab/tlsrpt-report.py. FAMILY is postfix (LOG = its maillog), chasquid (LOG = mail.log and
chasquid.log, run with -v=1) or haraka (LOG = its log, level protocol).
Prints "agree (...)" or "DISAGREE: ..." (exit 1).

From the log, per session that got past the greeting:
  refused, no STARTTLS   Postfix "TLS is required, but was not offered by
                         host H"; chasquid "Insecure - NOT using TLS" then
                         an error naming the security level (MTA-STS or its
                         per-domain memory); Haraka "No TLS available but
                         required by configuration"
  refused, certificate   Postfix "Server certificate not verified" (host H
                         from the preceding "... TLS connection established
                         to H"; "no matching DANE TLSA records" is one
                         reason); chasquid "using TLS" then a security-level
                         error; Haraka "Ongoing connection failed ... :
                         Error: <certificate error>" (host: the MX its
                         "deliver:" line took from the MX list)
  answered 4xx           Postfix "host H said: 451"; chasquid "returned
                         transient error: ... 451"; Haraka "Upstream error: 4xx"
  4xx greeting           Postfix "host H refused to talk to me: 421",
                         chasquid "returned transient error: Error creating
                         client: 421": the broken host (docs/smtp.md "Broken
                         host"), which only a sender whose resolver does not
                         validate DNSSEC reaches, and the IPv6-only host
                         ("IPv6-only host"), which only a sender with IPv6
                         reaches
  delivered              Postfix status=sent, relay=H; chasquid "done" (host:
                         the MX after the last one that failed or was
                         skipped); Haraka "delivered ... host=H"
The service must have as many connections of each kind: refused without
STARTTLS = plain, no MAIL, no reply; refused certificate = TLS, no MAIL;
4xx = a reply starting 4 after EHLO; 4xx greeting = a reply starting 4
without EHLO; delivered = a reply starting 250. No duplicates:
each recipient is delivered (status=sent; a 250 naming it) at most once, on
both sides: a sender the service answered 250 gets no second result. For deliveries
and certificate refusals over TLS with SNI, the persona must be H's (mxN ->
N); without SNI the shared address serves persona 2, so only counts compare.
"""
import collections
import json
import os
import re
import sys

family, test_json = sys.argv[1:3]
logs = sys.argv[3:]

log = collections.Counter()
# proof: the log's own words that the sender demanded a verified
# certificate (beyond refusing one, which refused_cert counts).
proof = []
sent_to = collections.Counter()  # recipient -> deliveries in the log
hosts = collections.defaultdict(list)


def host(h):
    return h.lower().rstrip(".")


def parse_postfix(maillog):
    plain = re.compile(r"TLS is required, but was not offered by host ([^\[\s]+)\[")
    est = re.compile(r"postfix/smtp\[(\d+)\]: (\w+) TLS connection established to ([^\[\s]+)\[")
    notver = re.compile(r"postfix/smtp\[(\d+)\]: \w+: Server certificate not verified$")
    said4 = re.compile(r"host ([^\[\s]+)\[[^\]]*\] said: (4\d\d)")
    greet4 = re.compile(r"host ([^\[\s]+)\[[^\]]*\] refused to talk to me: (4\d\d)")
    status = re.compile(r"postfix/smtp\[(\d+)\]: \w+: to=<([^>]+)>, relay=([^\[\s]+)\[.*status=(\w+) \((.*)\)$")
    last_tls = {}
    for line in open(maillog, errors="replace"):
        line = line.rstrip("\n")
        m = est.search(line)
        if m:
            last_tls[m.group(1)] = m.group(3).lower()
            # "Verified": the level (verify, secure, dane) demanded the
            # check and it passed; at level may Postfix says Trusted or
            # Untrusted.
            if m.group(2) == "Verified":
                proof.append(f"Postfix: Verified TLS connection established to {m.group(3).lower()}")
            continue
        m = status.search(line)
        if m:
            pid, rcpt, relay, st, reason = m.groups()
            relay = relay.lower()
            if st == "sent":
                log["delivered"] += 1
                sent_to[rcpt.lower()] += 1
                hosts["delivered"].append(relay)
            elif plain.search(reason):
                log["refused_plain"] += 1
            elif reason.startswith("Server certificate not verified"):
                log["refused_cert"] += 1
                hosts["refused_cert"].append(last_tls.get(pid, relay))
            elif said4.search(reason):
                log["said_4xx"] += 1
            elif greet4.search(reason):
                log["greeting_4xx"] += 1
            continue
        if plain.search(line):
            log["refused_plain"] += 1
            continue
        m = notver.search(line)
        if m:
            log["refused_cert"] += 1
            hosts["refused_cert"].append(last_tls.get(m.group(1), "?"))
            continue
        if said4.search(line):
            log["said_4xx"] += 1
            continue
        if greet4.search(line):
            log["greeting_4xx"] += 1


def parse_chasquid(_maillog, chasquid_log):
    # chasquid.log (-v=1): per recipient, in order: "MXs: [...]", then per
    # MX tried a TLS line ("Insecure - NOT using TLS", "... using TLS ...")
    # and either an error naming the MX ("\"H.\" returned transient
    # error: REASON") or "done"; MXs outside an MTA-STS policy are "skipped".
    line_re = re.compile(r"Courier\.SMTP (\S+): (.*)$")
    mxs, tls, pending = {}, {}, {}
    for line in open(chasquid_log, errors="replace"):
        m = line_re.search(line.rstrip("\n"))
        if not m:
            continue
        rcpt, msg = m.group(1).lower(), m.group(2)
        if msg.startswith("MXs: ["):
            mxs[rcpt] = [host(h) for h in msg[len("MXs: ["):].rstrip("]").split()]
            tls[rcpt] = None
            continue
        if msg.startswith("Insecure - NOT using TLS"):
            tls[rcpt] = False
            continue
        if "using TLS" in msg:
            tls[rcpt] = True
            continue
        m2 = re.match(r'(?:error: )?\\?"([^"\\]+)\\?" (skipped|returned transient error: (.*)|returned permanent error: (.*))', msg)
        if m2:
            h = host(m2.group(1))
            lst = mxs.get(rcpt, [])
            if h in lst:
                del lst[: lst.index(h) + 1]
            if m2.group(2) == "skipped":
                continue
            reason = m2.group(3) or m2.group(4) or ""
            if re.search(r"security level|level check|outgoing denied", reason, re.I):
                if tls.get(rcpt):
                    log["refused_cert"] += 1
                    hosts["refused_cert"].append(h)
                else:
                    log["refused_plain"] += 1
            elif re.match(r"Error creating client: 4\d\d\b", reason):
                # The greeting itself was 4xx (the IPv6-only host, or the
                # broken host: answered 421 before any EHLO).
                log["greeting_4xx"] += 1
            elif re.search(r"\b4\d\d\b", reason):
                log["said_4xx"] += 1
            tls[rcpt] = None
            continue
        if msg.startswith("STS policy: connection is using valid TLS"):
            proof.append(f"chasquid: MTA-STS policy demanded and got valid TLS for {rcpt.split('@')[-1]}")
            continue
        if msg == "done":
            lst = mxs.get(rcpt) or ["?"]
            log["delivered"] += 1
            sent_to[rcpt] += 1
            hosts["delivered"].append(lst[0])
            tls[rcpt] = None


# BROKEN: the first label of the broken MX host and its dot (lab/state/env
# BROKEN_HOST).
BROKEN = os.environ.get("BROKEN_HOST", "broken") + "."


def parse_haraka(haraka_log):
    # Per outbound session id ("[UUID.1.N]"): "MX from Plugin: D => 0
    # [json]" lists the MXs, each "deliver: ... -> IP" takes the next one.
    sid_re = re.compile(r"\[([0-9A-F-]{36}\.\d+\.\d+)\] \[outbound\] (.*)$")
    mxs, cur, forced, group = {}, {}, set(), {}
    several_addresses = os.environ.get("LAB_CLUSTER") == "1"

    def persona_digit(a):
        # In the cluster lab node k's addresses are 198.18.0.(10k + p): p
        # is 0 for the shared address, 3..7 for persona mxP in the per-host
        # layout.
        return int(a.rsplit(".", 1)[1]) % 10 if a.count(".") == 3 else -1

    def next_host_at(cur_group, ip):
        # A new host begins where the address repeats one of the current
        # host's, or names another persona.
        return not cur_group or ip in cur_group or persona_digit(ip) != persona_digit(cur_group[0])
    for line in open(haraka_log, errors="replace"):
        m = sid_re.search(line.rstrip("\n"))
        if not m:
            continue
        sid, msg = m.groups()
        if msg.startswith("MX from Plugin:"):
            group.pop(sid, None)
            # Haraka drops, without a log line, an MX host whose address
            # look-up fails: the broken host (docs/dns.md "Broken host")
            # for every validating resolver, which all lab Haraka
            # senders use. The IPv6-only host ("IPv6-only host") it keeps:
            # a "deliver: ... -> <its IPv6 address>" takes it, and fails
            # (bound to an IPv4 source address) without another line.
            mxs[sid] = [host(h) for h in re.findall(r'"exchange":"([^"]+)"', msg) if not host(h).startswith(BROKEN)]
            continue
        if msg.startswith("deliver:"):
            lst = mxs.get(sid) or ["?"]
            ip = re.search(r"-> (\S+)", msg)
            ip = ip.group(1) if ip else "?"
            if not several_addresses:
                cur[sid] = lst.pop(0) if lst else "?"
            elif next_host_at(group.get(sid), ip):
                # Haraka tries every address of an MX host before the next
                # host (net_utils.resolve_mx_hosts): in the cluster lab
                # (lab/cluster.sh) a host has one address per node serving
                # it, so a "deliver:" line moves to the next MX host only
                # where the address shows that it is another host.
                cur[sid] = lst.pop(0) if lst else "?"
                group[sid] = [ip]
            else:
                group.setdefault(sid, []).append(ip)
            continue
        if msg.startswith("Forcing TLS for domain"):
            forced.add(sid)
            continue
        if sid in forced and msg.startswith("secured verified=true"):
            proof.append(f"Haraka: forced TLS (verification required) verified {cur.get(sid, '?')}")
            continue
        if msg.startswith("Temp fail for: No TLS available but required"):
            log["refused_plain"] += 1
            continue
        if re.match(r"Temp fail for: Upstream error: 4\d\d", msg):
            log["said_4xx"] += 1
            continue
        if msg.startswith("Ongoing connection failed") and re.search(r"certificate|CERT|altname|self.signed", msg, re.I):
            log["refused_cert"] += 1
            hosts["refused_cert"].append(cur.get(sid, "?"))
            continue
        m2 = re.match(r"\s*delivered file=\S+ domain=(\S+) host=(\S+)", msg)
        if m2:
            log["delivered"] += 1
            sent_to[f"{sid}@{m2.group(1)}"] += 1
            hosts["delivered"].append(host(m2.group(2)))


if family == "postfix":
    parse_postfix(logs[0])
elif family == "chasquid":
    parse_chasquid(logs[0], logs[1])
elif family == "haraka":
    parse_haraka(logs[0])
else:
    print(f"DISAGREE: unknown family {family}")
    sys.exit(1)

if test_json == "-":
    # What the log says, for lab/tlsrpt-report.py (the lab's TLS-RPT
    # reporter builds its report from the sender's own log).
    print(json.dumps({"log": dict(log), "hosts": dict(hosts)}))
    sys.exit(0)

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
    if (c.get("Error") or "").startswith("interrupted:") and not (c.get("MailFrom") or c.get("State") in ("Mail", "Acked")):
        # The service's node died during the session (the cluster lab's
        # kill -9): the sender refused nothing there, and its log shows a
        # lost connection, no refusal (verdict.classify skips it too).
        continue
    tls = bool(c.get("TLSVersion"))
    mail = bool(c.get("MailFrom")) or c.get("State") in ("Mail", "Acked")
    if reply.startswith("250"):
        for r in c.get("RcptTo") or []:
            svc_sent_to[r.lower()] += 1
        svc["delivered"] += 1
        svc_hosts["delivered"].append(host_of(c))
    elif reply.startswith("4") and not c.get("EHLO"):
        svc["greeting_4xx"] += 1
    elif reply.startswith("4"):
        svc["said_4xx"] += 1
    elif not tls and not mail and c.get("EHLO") and not c.get("STARTTLSOffered"):
        svc["refused_plain"] += 1
    elif (tls or c.get("State") in ("SniSeen", "TlsStarted")) and not mail:
        # TLS, or a handshake the sender broke off (Node's TLS refuses an
        # unverified certificate inside the handshake; Postfix finishes it
        # and quits).
        svc["refused_cert"] += 1
        svc_hosts["refused_cert"].append(host_of(c))

problems = []
for k in ("delivered", "said_4xx", "greeting_4xx", "refused_plain", "refused_cert"):
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
# "verifies yes": the log proves the sender demands a verified certificate
# (it refused one, or says it demanded and got one); lab/run flags a
# verify/dane/dane-only/mta-sts verdict without it (false_secure).
verifies = "yes" if log["refused_cert"] or proof else "no"
print(f"agree ({summary}, verifies {verifies})")
