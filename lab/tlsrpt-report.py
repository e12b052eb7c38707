#!/usr/bin/python3
"""lab/tlsrpt-report.py TYPE DOMAIN SOURCE REPORT_ID [--mail FROM TO]: the
TLS-RPT aggregate report (RFC 8460 §4) a lab sender would have sent for
its test, built from what its own log says it did (lab/logcheck.py
postfix - MAILLOG, JSON on stdin). No lab MTA emits TLS-RPT (Debian 12's
Postfix is 3.7; TLSRPT came in 3.10): the lab plays the sender's reporter
with the sender's real outcomes, so that the service's intake, ties and
evidence see a report about a real delivery (docs/lab.md "TLS-RPT").

TYPE is the policy the sender applied to zone A: "sts" (an MTA-STS
sender) or "tlsa" (a DANE sender). Only what the log names toward DOMAIN
(the test's address domain in A) counts:
  delivered to a host of DOMAIN        a successful session
  refused a certificate of such a host a failure: certificate-not-trusted
                                       (sts: the CA check of RFC 8461
                                       §4.2) or validation-failure (tlsa:
                                       no TLSA record matched, RFC 7672)
  refused plain text (TLS required)    a failure: starttls-not-supported
Each failure names SOURCE as its sending-mta-ip. The date range is the
UTC day (as Google and Microsoft report). Prints the JSON; with --mail,
a report mail as §5.3 describes it (multipart/report, the gzip report
as an application/tlsrpt+gzip attachment named as §5.1 asks).
"""
import collections
import datetime
import email.utils
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
import gzip
import json
import sys

typ, domain, source, report_id = sys.argv[1:5]
counts = json.load(sys.stdin)
hosts = counts.get("hosts", {})
domain = domain.lower().rstrip(".")


def ours(h):
    return h.lower().rstrip(".").endswith("." + domain)


ok = sum(1 for h in hosts.get("delivered", []) if ours(h))
failures = collections.Counter()
for h in hosts.get("refused_cert", []):
    if ours(h):
        failures[("certificate-not-trusted" if typ == "sts" else "validation-failure", h.lower().rstrip("."))] += 1
if counts.get("log", {}).get("refused_plain", 0):
    failures[("starttls-not-supported", "")] += counts["log"]["refused_plain"]

day = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
details = []
for (result, mx), n in sorted(failures.items()):
    d = {"result-type": result, "sending-mta-ip": source, "failed-session-count": n}
    if mx:
        d["receiving-mx-hostname"] = mx
    details.append(d)
report = {
    "organization-name": "mailsec lab reporter",
    "date-range": {"start-datetime": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "end-datetime": (day + datetime.timedelta(days=1, seconds=-1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
    "contact-info": "tlsrpt@reporter.lab.internal",
    "report-id": report_id,
    "policies": [{
        "policy": {"policy-type": typ, "policy-domain": domain},
        "summary": {"total-successful-session-count": ok, "total-failure-session-count": sum(failures.values())},
        "failure-details": details,
    }],
}
body = json.dumps(report, indent=2).encode()
if len(sys.argv) > 5 and sys.argv[5] == "--mail":
    sender, to = sys.argv[6:8]
    m = MIMEMultipart("report", report_type="tlsrpt")
    m["From"] = sender
    m["To"] = to
    m["Date"] = email.utils.formatdate()
    m["Subject"] = f"Report Domain: {domain} Submitter: reporter.lab.internal Report-ID: <{report_id}>"
    m["TLS-Report-Domain"] = domain
    m["TLS-Report-Submitter"] = "reporter.lab.internal"
    m.attach(MIMEText(f"This is an aggregate TLS report from reporter.lab.internal for {domain}.\n"))
    start = int(day.timestamp())
    name = f"reporter.lab.internal!{domain}!{start}!{start + 86399}.json.gz"
    part = MIMEApplication(gzip.compress(body), "tlsrpt+gzip", name=name)
    part.add_header("Content-Disposition", "attachment", filename=name)
    m.attach(part)
    sys.stdout.buffer.write(bytes(m))
else:
    sys.stdout.buffer.write(body)
