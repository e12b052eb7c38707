#!/usr/bin/python3
"""lab/sts-bind.py: run postfix-mta-sts-resolver's daemon (mta-sts-daemon)
with its outgoing HTTPS connections (the MTA-STS policy fetches) bound to the
source address in $MTA_STS_BIND.

Why: the service credits a policy fetch to a sender only if it comes from the
sender's client prefix (smtp.client_prefix_v4 = 32 in the lab). Left alone,
the kernel picks 127.0.0.1 for every daemon. A real deployment runs the
resolver on the MTA's host, so its fetches come from the MTA's address; this
wrapper gives each lab instance's resolver its instance's address. Only the
source address changes: the daemon's code, DNS look-ups and TLS checks are
the packaged ones. Arguments are mta-sts-daemon's.
"""
import os
import sys

import aiohttp

BIND = os.environ["MTA_STS_BIND"]
_init = aiohttp.TCPConnector.__init__


def _bound_init(self, *args, **kwargs):
    kwargs.setdefault("local_addr", (BIND, 0))
    _init(self, *args, **kwargs)


aiohttp.TCPConnector.__init__ = _bound_init

from postfix_mta_sts_resolver.daemon import main  # noqa: E402

sys.argv[0] = "mta-sts-daemon"
sys.exit(main())
