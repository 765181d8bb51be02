#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 proxy on loopback, for the agent's fault tests.

It sits between a client (the agent) and a server, request by request, and for a
given fraction of the requests resets the client's connection (TCP RST):

  before  the request never reaches the server;
  after   the server handles it but its answer is lost (the interesting case: the
          client must retry without the server doing the work twice);
  both    either, half and half (the default).

Optionally it delays requests, and it logs "TIME_NS FATE METHOD PATH" per request
(the agent startup benchmark reads the time of the first claim from it).

  faultproxy.py --upstream 127.0.0.1:8080 [--listen 127.0.0.1:0] [--reset 0.2]
                [--mode both] [--match /v1/] [--delay-ms 0] [--seed N]
                [--port-file FILE] [--log FILE]

Only loopback addresses are accepted. SIGTERM prints the counts on stderr and exits.
"""
import argparse
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

MAX_HEAD = 64 * 1024


class Closed(Exception):
    pass


class Reader:
    """Buffered reads from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buf += data

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise Closed()
            self.fill()
        i = self.buf.index(b"\r\n\r\n") + 4
        h, self.buf = self.buf[:i], self.buf[i:]
        return h

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        i = self.buf.index(b"\r\n") + 2
        d, self.buf = self.buf[:i], self.buf[i:]
        return d

    def rest(self):
        d, self.buf = self.buf, b""
        return d


def parse_head(h):
    lines = h.decode("latin-1").split("\r\n")
    first = lines[0]
    headers = []
    for l in lines[1:]:
        if not l:
            continue
        k, _, v = l.partition(":")
        headers.append((k.strip(), v.strip()))
    return first, headers


def header(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def build_head(first, headers):
    return ("\r\n".join([first] + ["%s: %s" % kv for kv in headers]) + "\r\n\r\n").encode("latin-1")


def body_chunks(r, headers, until_close):
    """Yields the raw bytes of a message body as they arrive."""
    te = (header(headers, "transfer-encoding") or "").lower()
    cl = header(headers, "content-length")
    if "chunked" in te:
        while True:
            size_line = r.line()
            yield size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                # trailers up to the empty line
                while True:
                    l = r.line()
                    yield l
                    if l == b"\r\n":
                        return
            left = size + 2
            while left:
                if not r.buf:
                    r.fill()
                d = r.buf[:left]
                r.buf = r.buf[left:]
                left -= len(d)
                yield d
    elif cl is not None:
        left = int(cl)
        while left:
            if not r.buf:
                r.fill()
            d = r.buf[:left]
            r.buf = r.buf[left:]
            left -= len(d)
            yield d
    elif until_close:
        if r.buf:
            yield r.rest()
        while True:
            try:
                r.fill()
            except Closed:
                return
            yield r.rest()


def reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Proxy:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.counts = {"ok": 0, "before": 0, "after": 0}
        self.log = open(args.log, "a", buffering=1) if args.log else None
        host, _, port = args.upstream.rpartition(":")
        self.upstream = (host or "127.0.0.1", int(port))

    def fate(self, path):
        with self.lock:
            if self.args.match and not path.startswith(self.args.match):
                f = "ok"
            elif self.rng.random() < self.args.reset:
                f = self.args.mode if self.args.mode != "both" else self.rng.choice(["before", "after"])
            else:
                f = "ok"
            self.counts[f] += 1
            delay = self.rng.uniform(0, self.args.delay_ms) / 1000.0 if self.args.delay_ms else 0
        return f, delay

    def note(self, f, method, path):
        if self.log:
            with self.lock:
                self.log.write("%d %s %s %s\n" % (time.time_ns(), f, method, path))

    def serve(self, client):
        up = None
        try:
            cr = Reader(client)
            ur = None
            while True:
                try:
                    h = cr.head()
                except Closed:
                    return
                first, headers = parse_head(h)
                method, path = (first.split(" ") + ["", ""])[:2]
                f, delay = self.fate(path)
                self.note(f, method, path)
                if delay:
                    time.sleep(delay)
                if f == "before":
                    reset(client)
                    return
                # Answer 100-continue ourselves: the body is read before forwarding.
                if (header(headers, "expect") or "").lower() == "100-continue":
                    headers = [kv for kv in headers if kv[0].lower() != "expect"]
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = b"".join(body_chunks(cr, headers, False))
                if up is None:
                    up = socket.create_connection(self.upstream)
                    up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    ur = Reader(up)
                up.sendall(build_head(first, headers) + body)
                # The response (skipping interim 1xx ones).
                while True:
                    rh = ur.head()
                    rfirst, rheaders = parse_head(rh)
                    code = int(rfirst.split(" ")[1])
                    if code >= 200 or code == 101:
                        break
                no_body = method == "HEAD" or code in (204, 304) or 100 <= code < 200
                close = (header(rheaders, "connection") or "").lower() == "close" or (
                    not no_body and header(rheaders, "content-length") is None
                    and "chunked" not in (header(rheaders, "transfer-encoding") or "").lower())
                if f == "after":
                    if not no_body:
                        for _ in body_chunks(ur, rheaders, True):
                            pass
                    reset(client)
                    return
                client.sendall(rh)
                if not no_body:
                    for d in body_chunks(ur, rheaders, True):
                        client.sendall(d)
                if close:
                    return
        except (Closed, OSError, ValueError, IndexError):
            return
        finally:
            for s in (client, up):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def run(self):
        host, _, port = self.args.listen.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            sys.exit("faultproxy: listen on loopback only")
        if self.upstream[0] not in ("127.0.0.1", "localhost", "::1"):
            sys.exit("faultproxy: the upstream must be on loopback")
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(port)))
        srv.listen(128)
        p = srv.getsockname()[1]
        if self.args.port_file:
            tmp = self.args.port_file + ".tmp"
            with open(tmp, "w") as fh:
                fh.write("%d\n" % p)
            os.rename(tmp, self.args.port_file)
        print(p, flush=True)
        while True:
            c, _ = srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description="fault-injecting HTTP proxy on loopback")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--reset", type=float, default=0.0, help="fraction of requests reset")
    ap.add_argument("--mode", choices=["before", "after", "both"], default="both")
    ap.add_argument("--match", default="", help="only requests whose path starts with this")
    ap.add_argument("--delay-ms", type=float, default=0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    args = ap.parse_args()
    proxy = Proxy(args)

    def bye(sig, frame):
        sys.stderr.write("faultproxy: %s\n" % " ".join("%s=%d" % kv for kv in sorted(proxy.counts.items())))
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    proxy.run()


if __name__ == "__main__":
    main()
