#!/usr/bin/env python3
"""Compare what `pilot pack --list` packs with what git lists, over random trees.

Usage: gitignore-agree.py PILOT WORKDIR SEED COUNT

Each tree (seeded: tree i uses random.Random(SEED * 100003 + i)) gets random files,
directories, symlinks and nested .gitignore files full of gitignore features: negations,
anchors, '**', brackets with ranges and negation, classes, dir-only patterns, escaped '#'
'!' and spaces, trailing spaces, names with spaces. The oracle is git itself, in a fresh
`git init` of the tree with nothing committed, global and system config kept out:
  gitignore mode:   git ls-files --others --exclude-standard [--exclude=P]...
  pilotignore mode: the .gitignore files renamed .pilotignore (and a root one made),
                    git ls-files --others --exclude-per-directory=.pilotignore
Only non-directories are compared (git does not list directories).
Prints one TAP line per tree ("ok N - ..." / "not ok N - ..." with a diagnosis).
"""
import json
import os
import random
import shutil
import subprocess
import sys

NAMES = [
    "a", "b", "c", "ab", "abc", "abd", "a1", "a2", "b1", "foo", "bar", "baz", "foo.txt",
    "bar.log", "x.o", "y.o", "main.c", "main.h", "build", "out", "node_modules", "doc",
    "Doc", "README", "lib", "src", "tmp", "cache", "data", "keep", "x.y.z", "foo-bar",
    "a b", "sp ace.txt", "#hash", "!bang", "[br]", "q?", "st*r", "trail ", "dot.",
    ".hidden", ".cfg", "n9", "Z", "\u00fcn\u00ef",
]
# Names that pilot treats specially on purpose (documented), so the trees avoid them.
FORBIDDEN = {".git", ".pilot", ".env", ".gitignore", ".pilotignore"}


def glob_escape(name):
    out = []
    for ch in name:
        if ch in "*?[\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    s = "".join(out)
    if s.startswith("#") or s.startswith("!"):
        s = "\\" + s
    if s.endswith(" "):
        s = s[:-1] + "\\ "
    return s


def segment(rng):
    """One path component of a pattern: a name, or a glob made from one."""
    name = rng.choice(NAMES)
    k = rng.random()
    if k < 0.35:
        return glob_escape(name)
    if k < 0.45:
        return "*"
    if k < 0.55:
        return "*" + glob_escape(name[-1:])
    if k < 0.65:
        return glob_escape(name[:1]) + "*"
    if k < 0.72:
        i = rng.randrange(len(name))
        return glob_escape(name[:i]) + "?" + glob_escape(name[i + 1:])
    if k < 0.80:
        c = name[0]
        neg = rng.choice(["", "!", "^"])
        inner = rng.choice([c + "x", "a-c", "x-z" + c, "0-9", "[:alpha:]", "[:digit:]", "]" + c, "-" + c])
        return "[" + neg + inner + "]" + glob_escape(name[1:])
    if k < 0.84:
        return glob_escape(name[:1]) + "**"
    if k < 0.88:
        return "**"
    return glob_escape(name)


def pattern(rng):
    k = rng.random()
    if k < 0.04:
        return "# a comment"
    if k < 0.06:
        return ""
    if k < 0.08:
        return "\\#hash"
    if k < 0.10:
        return "\\!bang"
    nseg = rng.choice([1, 1, 1, 2, 2, 3])
    segs = [segment(rng) for _ in range(nseg)]
    p = "/".join(segs)
    if rng.random() < 0.15:
        p = "/" + p
    elif rng.random() < 0.12:
        p = "**/" + p
    if rng.random() < 0.08:
        # The literal-prefix quirk: '**' right after literal characters.
        p = glob_escape(rng.choice(NAMES)[:2]) + "**/" + glob_escape(rng.choice(NAMES))
    if rng.random() < 0.2:
        p += "/"
    if rng.random() < 0.25:
        p = "!" + p
    if rng.random() < 0.08:
        p += rng.choice([" ", "  ", "\t"])
    return p


def make_tree(rng, root, depth=0):
    """Random files, dirs and symlinks; returns the directories made (relative)."""
    dirs = [""]
    todo = [("", 0)]
    while todo:
        rel, d = todo.pop()
        here = os.path.join(root, rel)
        for name in rng.sample(NAMES, rng.randint(2, 9)):
            if name in FORBIDDEN:
                continue
            path = os.path.join(here, name)
            if os.path.lexists(path):
                continue
            k = rng.random()
            if k < 0.35 and d < 3:
                os.mkdir(path)
                sub = os.path.join(rel, name) if rel else name
                dirs.append(sub)
                todo.append((sub, d + 1))
            elif k < 0.40:
                # Relative symlinks that stay inside (dangling is fine).
                os.symlink(rng.choice(NAMES), path)
            else:
                with open(path, "w") as f:
                    f.write(name)
    return dirs


def write_ignores(rng, root, dirs, fname):
    for rel in dirs:
        if rng.random() < (0.9 if rel == "" else 0.35):
            lines = [pattern(rng) for _ in range(rng.randint(1, 10))]
            text = "\n".join(lines)
            if rng.random() < 0.8:
                text += "\n"
            if rng.random() < 0.1:
                text = text.replace("\n", "\r\n")
            with open(os.path.join(root, rel, fname), "w") as f:
                f.write(text)


def git_list(root, args):
    env = dict(os.environ)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["HOME"] = os.path.join(root, "..", "home")
    env["XDG_CONFIG_HOME"] = os.path.join(root, "..", "home", ".config")
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    os.makedirs(env["HOME"], exist_ok=True)
    subprocess.run(["git", "init", "-q", "--template=", root], check=True, env=env)
    out = subprocess.run(["git", "-C", root, "-c", "core.quotepath=off", "ls-files", "-z", "--others"] + args,
                         check=True, env=env, capture_output=True).stdout
    shutil.rmtree(os.path.join(root, ".git"))
    return set(p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p)


def pilot_list(pilot, root, extra):
    cmd = [pilot, "pack", "--list", "--output", "json", root]
    for p in extra:
        cmd += ["--ignore", p]
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("pilot failed: " + r.stderr.decode(errors="replace"))
    j = json.loads(r.stdout)
    return set(e["path"] for e in j["entries"] if e["type"] != "dir")


def describe(root, fname):
    lines = []
    for dp, dn, fn in os.walk(root):
        if fname in fn:
            rel = os.path.relpath(os.path.join(dp, fname), root)
            with open(os.path.join(dp, fname)) as f:
                lines.append("%s: %r" % (rel, f.read()))
    return lines


def main():
    pilot, work, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    failed = 0
    for i in range(count):
        rng = random.Random(seed * 100003 + i)
        root = os.path.join(work, "t%d" % i, "tree")
        os.makedirs(root)
        dirs = make_tree(rng, root)
        mode = "pilotignore" if i % 5 == 4 else "gitignore"
        fname = ".pilotignore" if mode == "pilotignore" else ".gitignore"
        write_ignores(rng, root, dirs, fname)
        extra = []
        if mode == "gitignore" and rng.random() < 0.3:
            extra = [p for p in (pattern(rng) for _ in range(rng.randint(1, 3)))
                     if p and not p.startswith("#") and p == p.rstrip()]
        if mode == "pilotignore":
            if not os.path.exists(os.path.join(root, ".pilotignore")):
                open(os.path.join(root, ".pilotignore"), "w").close()
            want = git_list(root, ["--exclude-per-directory=.pilotignore"])
        else:
            want = git_list(root, ["--exclude-standard"] + ["--exclude=" + p for p in extra])
        got = pilot_list(pilot, root, extra)
        desc = "tree %d (%s, %d files git lists%s)" % (i, mode, len(want), ", --ignore" if extra else "")
        if got == want:
            print("ok %d - %s" % (i + 1, desc))
            shutil.rmtree(os.path.join(work, "t%d" % i))
        else:
            failed += 1
            print("not ok %d - %s" % (i + 1, desc))
            for p in sorted(want - got):
                print("#   git lists, pilot leaves out: %r" % p)
            for p in sorted(got - want):
                print("#   pilot packs, git leaves out: %r" % p)
            for l in describe(root, fname):
                print("#   " + l)
            if extra:
                print("#   --ignore %r" % extra)
            print("#   tree kept in %s" % root)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
