#!/usr/bin/env python3
"""lab/fixtures-https.py: the HTTPS server of the lab's user-domain fixtures.

Serves the MTA-STS policies of the fixture domains (RFC 8461 §3.2) on one
address, like a shared web host: the certificate is chosen by SNI, the
policy by the Host header.

    fixtures-https.py ADDR PORT WWWDIR

WWWDIR holds one directory per host name (e.g. mta-sts.good.fx.example/)
with cert.pem (leaf and chain), key.pem and mta-sts.txt. Only
GET /.well-known/mta-sts.txt is served (Content-Type text/plain, no
redirects); everything else is 404. A client without SNI, or with an
unknown name, gets the first host's certificate (in sorted order), as a
shared host's default site would. Each TLS handshake runs in its
connection's own thread with a time-out, so a stalled client cannot block
the others. Logs one line per request to stderr.
"""

import http.server
import os
import socket
import ssl
import sys

POLICY_PATH = "/.well-known/mta-sts.txt"
TIMEOUT = 10


def load_hosts(wwwdir):
    hosts = {}
    for name in sorted(os.listdir(wwwdir)):
        d = os.path.join(wwwdir, name)
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        if not (os.path.isfile(cert) and os.path.isfile(key)):
            continue
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        policy = None
        p = os.path.join(d, "mta-sts.txt")
        if os.path.isfile(p):
            with open(p, "rb") as f:
                policy = f.read()
        hosts[name.lower()] = (ctx, policy)
    if not hosts:
        sys.exit(f"fixtures-https: no host with cert.pem and key.pem in {wwwdir}")
    return hosts


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "mailsec-lab-fixtures"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return self.server_version

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].rstrip(".").lower()
        entry = self.server.hosts.get(host)
        path = self.path.split("?", 1)[0]
        if entry is None or entry[1] is None or path != POLICY_PATH:
            body = b"not found\n"
            self.send_response(404)
        else:
            body = entry[1]
            self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, fmt, *args):
        host = self.headers.get("Host", "-") if getattr(self, "headers", None) else "-"
        sys.stderr.write("%s sni=%s host=%s %s\n" % (
            self.client_address[0], getattr(self.request, "fx_sni", "-"), host, fmt % args))
        sys.stderr.flush()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, hosts):
        self.hosts = hosts
        self.default_ctx = next(iter(hosts.values()))[0]
        self.default_ctx.sni_callback = self.pick
        super().__init__(addr, Handler)

    def pick(self, sslsock, name, _ctx):
        entry = self.hosts.get((name or "").lower())
        sslsock.fx_sni = name or "-"
        if entry is not None:
            sslsock.context = entry[0]
        return None

    def finish_request(self, request, client_address):
        # The handshake here, in the connection's thread, not in accept().
        request.settimeout(TIMEOUT)
        try:
            tls = self.default_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            sys.stderr.write("%s handshake failed: %s\n" % (client_address[0], e))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            tls.close()


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: fixtures-https.py ADDR PORT WWWDIR")
    addr, port, wwwdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    hosts = load_hosts(wwwdir)
    srv = Server((addr, port), hosts)
    sys.stderr.write("fixtures-https: listening on %s:%d for %s\n" % (addr, port, " ".join(hosts)))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
