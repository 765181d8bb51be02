#!/usr/bin/env python3
"""Write one crafted tar.gz per extraction attack, for t0204-bundle-unpack-attacks.

Usage: craft.py OUTDIR SENTINEL_ABS

The tar headers are written by hand (not with tarfile, which sanitises), so any name,
type, size or link can be expressed. Writes OUTDIR/NAME.tar.gz for each attack and
OUTDIR/manifest with lines "NAME<TAB>text the error must contain". The archives assume
they are extracted into WORK/out with the sentinel at WORK/sentinel (SENTINEL_ABS).
"""
import gzip
import os
import sys
import zlib


def field(value, width):
    if isinstance(value, int):
        return b"%0*o\0" % (width - 1, value)
    return value + b"\0" * (width - len(value))


def raw_header(name, typ, size=0, link=b"", mode=0o644, posix=False):
    h = bytearray(512)
    h[0:100] = field(name[:100], 100)
    h[100:108] = field(mode, 8)
    h[108:116] = field(0, 8)
    h[116:124] = field(0, 8)
    h[124:136] = field(size, 12)
    h[136:148] = field(0, 12)
    h[148:156] = b" " * 8
    h[156:157] = typ
    h[157:257] = field(link[:100], 100)
    h[257:265] = b"ustar\x0000" if posix else b"ustar  \0"
    s = sum(h)
    h[148:156] = b"%06o\0 " % s
    return bytes(h)


def pad(data):
    return data + b"\0" * (-len(data) % 512)


def entry(name, typ=b"0", data=b"", link="", mode=0o644, size=None):
    """GNU long name/link headers first when needed, then the header and the data."""
    nb = name.encode("utf-8", "surrogateescape")
    lb = link.encode("utf-8", "surrogateescape")
    out = b""
    if len(nb) > 100:
        out += raw_header(b"././@LongLink", b"L", len(nb) + 1) + pad(nb + b"\0")
    if len(lb) > 100:
        out += raw_header(b"././@LongLink", b"K", len(lb) + 1) + pad(lb + b"\0")
    out += raw_header(nb, typ, len(data) if size is None else size, lb, mode) + pad(data)
    return out


def f(name, data=b"x", mode=0o644):
    return entry(name, b"0", data, mode=mode)


def d(name, mode=0o755):
    return entry(name.rstrip("/") + "/", b"5", mode=mode)


def sym(name, target):
    return entry(name, b"2", link=target, mode=0o777)


def hard(name, target, data=b""):
    return entry(name, b"1", data, link=target)


def pax_hard_with_data(name, target, data):
    """pax allows a hardlink entry to carry data, and libarchive then keeps it."""
    rec = b"17 comment=data\n"
    return (raw_header(b"PaxHeader", b"x", len(rec), posix=True) + pad(rec) +
            raw_header(name.encode(), b"1", len(data), target.encode(), posix=True) + pad(data))


END = b"\0" * 1024


def main():
    out, sentinel = sys.argv[1], sys.argv[2]
    attacks = [
        ("abs-path", [f(sentinel + "/pwned")], "absolute path"),
        ("dotdot", [f("../sentinel/pwned")], "'..'"),
        ("dotdot-deep", [d("a"), f("a/../../sentinel/pwned")], "'..'"),
        ("dotdot-dir", [d("../sentinel/newdir")], "'..'"),
        ("symlink-abs", [sym("l", sentinel)], "points outside"),
        ("symlink-abs-file", [sym("l", sentinel + "/file")], "points outside"),
        ("symlink-dotdot", [sym("l", "../sentinel")], "points outside"),
        ("symlink-dotdot-deep", [d("a"), sym("a/l", "../../sentinel/file")], "points outside"),
        ("symlink-then-write", [sym("l", "../sentinel"), f("l/pwned")], "points outside"),
        ("write-through-inside-symlink", [d("sub"), sym("d", "sub"), f("d/pwned")],
         "is a symlink: nothing is extracted through one"),
        ("dir-through-inside-symlink", [d("sub"), sym("d", "sub"), d("d/newdir")],
         "is a symlink: nothing is extracted through one"),
        ("symlink-physical-escape", [d("a"), sym("a/b", "."), sym("a/c", "b/../..")], "points outside"),
        ("symlink-physical-escape-sentinel", [d("a"), sym("a/b", "."), sym("a/c", "b/../../sentinel")],
         "points outside"),
        ("symlink-escape-set-up-later", [d("a"), sym("a/c", "b/../.."), sym("a/b", ".")], "points outside"),
        ("symlink-chain", [sym("x", "y/.."), sym("y", "."), sym("z", "x/..")], "points outside"),
        ("hardlink-abs", [hard("h", sentinel + "/file")], "absolute path"),
        ("hardlink-dotdot", [hard("h", "../sentinel/file")], "'..'"),
        ("hardlink-missing", [hard("h", "nothing")], "not a regular file extracted before it"),
        ("hardlink-to-dir", [d("dir"), hard("h", "dir")], "not a regular file extracted before it"),
        ("hardlink-to-symlink", [sym("s", "f"), hard("h", "s")], "not a regular file extracted before it"),
        ("hardlink-through-symlink", [d("sub"), f("sub/f"), sym("l", "sub"), hard("h", "l/f")],
         "hardlink target 'l/f' is not a regular file extracted before it"),
        ("hardlink-with-data", [f("t"), pax_hard_with_data("h", "t", b"payload")], "hardlink carrying data"),
        ("hardlink-with-data-gnu", [f("t"), hard("h", "t", b"payload")], "cannot read the bundle"),
        ("chardev", [entry("dev", b"3")], "character devices are not allowed"),
        ("blockdev", [entry("dev", b"4")], "block devices are not allowed"),
        ("fifo", [entry("fifo", b"6")], "fifos are not allowed"),
        ("dup-file-then-dir", [f("x"), d("x")], "appears twice, as a file and as a dir"),
        ("dup-dir-then-file", [d("x"), f("x")], "appears twice, as a dir and as a file"),
        ("dup-dir-then-symlink", [d("x"), sym("x", "y")], "appears twice, as a dir and as a symlink"),
        ("dup-file-then-symlink", [f("x"), sym("x", "y")], "appears twice, as a file and as a symlink"),
        ("dup-implicit-dir-then-file", [f("x/y"), f("x")], "appears twice, as a dir and as a file"),
        ("below-a-file", [f("x"), f("x/y")], "is not a directory"),
        ("empty-name", [f(".")], "the path is empty"),
        ("damaged-header", [f("a"), b"\x01" * 512], "cannot read the bundle"),
        ("limit-path", [f("p" * 5000)], "max_path"),
        ("limit-symlink-target", [sym("l", "t" * 5000)], "max_path"),
        ("limit-depth", [f("a/" * 300 + "f")], "max_depth"),
        ("not-a-tar", None, "not a bundle"),
        ("truncated", "truncated", "truncated gzip input"),
    ]
    with open(os.path.join(out, "manifest"), "w") as m:
        for name, entries, why in attacks:
            if entries is None:
                data = gzip.compress(b"this is not a tar archive\n" * 100, 9, mtime=0)
            elif entries == "truncated":
                data = gzip.compress(f("a", os.urandom(100000)) + END, 9, mtime=0)[:20000]
            else:
                data = gzip.compress(b"".join(entries) + END, 9, mtime=0)
            with open(os.path.join(out, name + ".tar.gz"), "wb") as fo:
                fo.write(data)
            m.write("%s\t%s\n" % (name, why))

    # A gzip bomb: 600 MiB of zeros in one entry, about 1030:1.
    size = 600 << 20
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(os.path.join(out, "bomb.tar.gz"), "wb") as fo:
        fo.write(z.compress(raw_header(b"zeros", b"0", size)))
        chunk = b"\0" * (1 << 20)
        for _ in range(size >> 20):
            fo.write(z.compress(chunk))
        fo.write(z.compress(END))
        fo.write(z.flush())

    # Not attacks: what must work. setuid/setgid/sticky bits go, modes are normalised,
    # a relative symlink that stays inside is fine, a file given twice is replaced.
    ok = [d("dir", 0o7777), f("dir/suid", b"#!/bin/sh\n", 0o4755), f("dir/sgid", b"g", 0o2644),
          f("plain", b"p", 0o600), sym("dir/up", "../plain"), f("twice", b"one"), f("twice", b"two"),
          hard("hl", "plain"), f("./dot/./slash//name", b"n")]
    with open(os.path.join(out, "ok.tar.gz"), "wb") as fo:
        fo.write(gzip.compress(b"".join(ok) + END, 9, mtime=0))
    with open(os.path.join(out, "big.tar.gz"), "wb") as fo:
        fo.write(gzip.compress(f("big", os.urandom(2 << 20)) + END, 1, mtime=0))


if __name__ == "__main__":
    main()
