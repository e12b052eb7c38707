#!/usr/bin/env python3
"""lab/fixtures-starttls.py: the SMTP side of a fixture MX whose TLS is
spoken by another program.

Debian's OpenSSL 3 (Postfix, openssl s_server, stunnel, Python) no longer
has RC4 or 3DES at all, not even at @SECLEVEL=0; GnuTLS (gnutls-serv)
still does. gnutls-serv speaks no SMTP, so this script speaks the
plaintext part of the session and then joins the client to it:

    fixtures-starttls.py ADDR PORT TLS_ADDR TLS_PORT HOSTNAME

On ADDR:PORT it greets with 220 HOSTNAME, answers EHLO with STARTTLS
(RFC 3207 §4), HELO, NOOP, RSET and QUIT, and 502 to everything else;
after STARTTLS and its 220 it relays the raw bytes both ways to
TLS_ADDR:TLS_PORT (gnutls-serv --echo), where the TLS handshake happens.
Lines are read one octet at a time, so no byte of the ClientHello is
swallowed by a buffer. Each connection has its own thread and a time-out;
logs one line per session to stderr.
"""

import socket
import sys
import threading

TIMEOUT = 30
MAX_LINE = 1024
MAX_COMMANDS = 20


def read_line(conn):
    line = bytearray()
    while len(line) < MAX_LINE:
        b = conn.recv(1)
        if not b:
            return None
        line += b
        if b == b"\n":
            return bytes(line)
    return bytes(line)


def relay(src, dst):
    try:
        while True:
            data = src.recv(16384)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def session(conn, peer, tls_addr, hostname):
    conn.settimeout(TIMEOUT)
    said = "closed"
    try:
        conn.sendall(b"220 %s ESMTP fixture\r\n" % hostname)
        for _ in range(MAX_COMMANDS):
            line = read_line(conn)
            if line is None:
                break
            verb = line.strip().split(b" ", 1)[0].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-%s\r\n250-PIPELINING\r\n250 STARTTLS\r\n" % hostname)
            elif verb == b"HELO":
                conn.sendall(b"250 %s\r\n" % hostname)
            elif verb in (b"NOOP", b"RSET"):
                conn.sendall(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 2.0.0 bye\r\n")
                said = "quit"
                break
            elif verb == b"STARTTLS":
                backend = socket.create_connection(tls_addr, timeout=TIMEOUT)
                conn.sendall(b"220 2.0.0 ready to start TLS\r\n")
                said = "starttls"
                conn.settimeout(TIMEOUT)
                t = threading.Thread(target=relay, args=(backend, conn), daemon=True)
                t.start()
                relay(conn, backend)
                t.join(TIMEOUT)
                backend.close()
                break
            else:
                conn.sendall(b"502 5.5.2 not here\r\n")
    except OSError as e:
        said = "error: %s" % e
    finally:
        conn.close()
    print("%s:%d %s" % (peer[0], peer[1], said), file=sys.stderr, flush=True)


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    addr, port, tls_host, tls_port, hostname = sys.argv[1:]
    ln = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ln.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ln.bind((addr, int(port)))
    ln.listen(64)
    print("listening on %s:%s, TLS by %s:%s" % (addr, port, tls_host, tls_port), file=sys.stderr, flush=True)
    while True:
        conn, peer = ln.accept()
        threading.Thread(target=session, args=(conn, peer, (tls_host, int(tls_port)), hostname.encode()), daemon=True).start()


if __name__ == "__main__":
    main()
