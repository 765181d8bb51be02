#!/usr/bin/env bash
# With only .gitignore files, pilot packs exactly the files git lists for a fresh
# repository of the same tree (git ls-files --others --exclude-standard), over 250
# random, seeded trees and pattern sets; one in five uses .pilotignore files instead,
# checked against git's --exclude-per-directory=.pilotignore. See bundle/gitignore-agree.py.
. "$SRCDIR/tests/e2e/lib.sh"
command -v git >/dev/null || skip_all "git is not installed"
N=250
plan $N
mkdir -p "$T_TMP/trees"
python3 "$SRCDIR/tests/e2e/bundle/gitignore-agree.py" "$PILOT" "$T_TMP/trees" "${PILOT_TEST_SEED:-1}" $N || T_FAILED=1
done_testing
