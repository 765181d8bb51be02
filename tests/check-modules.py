#!/usr/bin/env python3
"""Fails when lib/'s modules include each other in a cycle, or when a module reaches
past the layers docs/architecture.md draws.

A module is a folder lib/NAME with its public header include/pilot/NAME.h (version.h
belongs to util). Its dependencies are the modules whose headers its sources and its
public header include (#include "pilot/X.h" or "../X/..."). Usage:
  check-modules.py SOURCE_ROOT     check the tree, print the graph
  check-modules.py --self-test     check that a planted cycle and a layer breach are found
"""
import os
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+[<"](?:pilot/([a-z_-]+)\.h|\.\./([a-z_-]+)/[^">]+)[">]')
HEADER_OWNER = {'version': 'util'}

# What each module may use (besides itself). Anything not listed is an error, so a new
# edge is a deliberate change to this table and to docs/architecture.md.
ALLOWED = {
    'util': set(),
    'sched': {'util'},
    'config': {'util'},
    'spec': {'util'},
    'bundle': {'util'},
    'blob': {'util'},
    'term': {'util'},
    'runtime': {'util'},
    'model': {'util'},
    'store': {'model', 'blob', 'sched', 'util'},
    'api': {'model', 'store', 'spec', 'config', 'util'},
    'server': {'api', 'model', 'store', 'util'},
    'agent': {'api', 'model', 'runtime', 'bundle', 'spec', 'util'},
}


def module_of_header(name):
    return HEADER_OWNER.get(name, name)


def graph(root):
    edges = {}
    lib = os.path.join(root, 'lib')
    for mod in sorted(os.listdir(lib)):
        d = os.path.join(lib, mod)
        if not os.path.isdir(d):
            continue
        files = [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(('.c', '.h'))]
        for name in [mod] + [h for h, owner in HEADER_OWNER.items() if owner == mod]:
            hdr = os.path.join(root, 'include', 'pilot', name + '.h')
            if os.path.exists(hdr):
                files.append(hdr)
        deps = edges.setdefault(mod, {})
        for path in files:
            with open(path, encoding='utf-8') as f:
                for n, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    dep = module_of_header(m.group(1) or m.group(2))
                    if dep != mod:
                        deps.setdefault(dep, '%s:%d' % (os.path.relpath(path, root), n))
    return edges


def find_cycle(edges):
    """A list of modules forming a cycle (first == last), or None."""
    state = {}
    stack = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, {})):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            c = visit(m)
            if c:
                return c
    return None


def check(root, quiet=False):
    edges = graph(root)
    problems = []
    cycle = find_cycle(edges)
    if cycle:
        where = ['  %s -> %s (%s)' % (a, b, edges[a][b]) for a, b in zip(cycle, cycle[1:])]
        problems.append('include cycle: %s\n%s' % (' -> '.join(cycle), '\n'.join(where)))
    for mod in sorted(edges):
        if mod not in ALLOWED:
            problems.append('module %s is not in the layer table of tests/check-modules.py' % mod)
            continue
        for dep, where in sorted(edges[mod].items()):
            if dep not in ALLOWED[mod]:
                problems.append('%s uses %s (%s), which its layer does not allow' % (mod, dep, where))
    if not quiet:
        for mod in sorted(edges):
            print('%-8s -> %s' % (mod, ' '.join(sorted(edges[mod])) or '(nothing)'))
    return problems


def self_test():
    with tempfile.TemporaryDirectory() as root:
        def write(path, text):
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            with open(os.path.join(root, path), 'w', encoding='utf-8') as f:
                f.write(text)
        write('include/pilot/model.h', '#include "pilot/util.h"\n')
        write('include/pilot/store.h', '#include "pilot/model.h"\n')
        write('lib/util/a.c', '#include "pilot/util.h"\n')
        write('lib/model/a.c', '#include "pilot/model.h"\n')
        write('lib/store/a.c', '#include "pilot/store.h"\n')
        if check(root, quiet=True):
            return 'a clean tree was refused'
        write('lib/model/b.c', '#include "../store/internal.h"\n')
        p = check(root, quiet=True)
        if not any('include cycle: model -> store -> model' in x for x in p):
            return 'a planted cycle was not found: %s' % p
        if not any('model uses store (lib/model/b.c:1)' in x for x in p):
            return 'a layer breach was not named: %s' % p
    return None


def main():
    if sys.argv[1:] == ['--self-test']:
        err = self_test()
        print(err or 'self-test: a planted cycle and a layer breach are found')
        return 1 if err else 0
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(sys.argv[1])
    for p in problems:
        print(p)
    if not problems:
        print('no include cycle between modules; every edge within its layer')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
