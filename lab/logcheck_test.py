#!/usr/bin/python3
"""lab/logcheck_test.py: lab/logcheck.py on real sender logs of lab/run
(lab/testdata/logcheck/CASE: the sender's log(s) and the service's
`mailsec test show -json` of the same test, cut to what the check reads).
Each case must agree with the counts and the proof of verification it had
in the lab; with one connection taken out of the service's history it must
disagree. lab/run runs it before it starts anything; by hand:
`python3 lab/logcheck_test.py`.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "testdata", "logcheck")

# CASE: (family, log files, the answer that must start it).
CASES = {
    # MTA-STS: plain text and mx4's self-signed certificate refused.
    "chasquid-ca": ("chasquid", ["mail.log", "chasquid.log"],
                    "agree (delivered 2, said_4xx 2, refused_plain 3, refused_cert 1, verifies yes)"),
    # No lab root, round 1: plain text in the window, then unverified TLS.
    "chasquid-noca": ("chasquid", ["mail.log", "chasquid.log"],
                      "agree (delivered 2, said_4xx 5, refused_plain 0, refused_cert 0, verifies no)"),
    # force_tls_hosts: "No TLS available" refused; no certificate refused
    # in this test, but forced TLS verified mx5 (the proof without one).
    "haraka-forced": ("haraka", ["haraka.log"],
                      "agree (delivered 2, said_4xx 1, refused_plain 1, refused_cert 0, verifies yes)"),
    # rejectUnauthorized (per host): two self-signed certificates refused
    # inside the handshake (the service records SniSeen, TLS unfinished).
    "haraka-verify": ("haraka", ["haraka.log"],
                      "agree (delivered 2, said_4xx 2, refused_plain 0, refused_cert 2, verifies yes)"),
    # MTA-STS with IPv6: the IPv6-only host answered 421 in place of the
    # greeting in both attempts ("Error creating client: 421").
    "chasquid-ipv6": ("chasquid", ["mail.log", "chasquid.log"],
                      "agree (delivered 2, said_4xx 1, refused_plain 2, refused_cert 1, verifies yes)"),
    "haraka-may": ("haraka", ["haraka.log"],
                   "agree (delivered 2, said_4xx 2, refused_plain 0, refused_cert 0, verifies no)"),
}


def logcheck(family, test_json, logs):
    out = subprocess.run([sys.executable, os.path.join(HERE, "logcheck.py"), family, test_json, *logs],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip()


class LogCheck(unittest.TestCase):
    def test_cases(self):
        for case, (family, logs, want) in CASES.items():
            with self.subTest(case=case):
                d = os.path.join(DATA, case)
                got = logcheck(family, os.path.join(d, "test.json"), [os.path.join(d, f) for f in logs])
                self.assertEqual(got, want)

    def test_missing_connection_disagrees(self):
        for case, (family, logs, _) in CASES.items():
            with self.subTest(case=case):
                d = os.path.join(DATA, case)
                with open(os.path.join(d, "test.json")) as f:
                    test = json.load(f)
                test["connections"] = test["connections"][1:]
                with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                    json.dump(test, f)
                try:
                    got = logcheck(family, f.name, [os.path.join(d, x) for x in logs])
                finally:
                    os.unlink(f.name)
                self.assertTrue(got.startswith("DISAGREE: "), got)


if __name__ == "__main__":
    unittest.main()
