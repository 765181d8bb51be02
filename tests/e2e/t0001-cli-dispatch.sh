#!/usr/bin/env bash
# The dispatcher: help, unknown commands with suggestions, plugins, usage errors, version.
. "$SRCDIR/tests/e2e/lib.sh"
plan 21

expect_status 0 "pilot --help exits 0" "$PILOT" --help
contains "help lists commands with summaries" "$OUT" "version      print pilot's version"
contains "and the ps alias of list" "$OUT" "list         list runs, newest first (alias: ps)"
expect_status 0 "bare pilot prints the command list" "$PILOT"
contains "bare pilot shows usage" "$OUT" "usage: pilot"

expect_status 2 "an unknown command is a usage error (exit 2)" "$PILOT" sumbit
contains "unknown command message" "$ERR" "pilot: 'sumbit' is not a pilot command. See 'pilot --help'."
expect_status 2 "a near miss is suggested" "$PILOT" confg
contains "suggestion names the command" "$ERR" "config"
expect_status 2 "--server and --local together are a usage error" "$PILOT" --local --server http://127.0.0.1:1 list
contains "saying so" "$ERR" "--server and --local together"

# The local identity (run submitter, whoami) without USER: the password database's name.
expect_status 0 "whoami with USER unset" env -u USER "$PILOT" whoami
equals "names the user by uid" "$OUT" "$(id -un)@$(hostname | cut -d. -f1) (local, no server configured)"

mkdir -p "$T_TMP/bin"
cat > "$T_TMP/bin/pilot-hello" <<'SH'
#!/bin/sh
echo "hello plugin: $*"
exit 7
SH
chmod +x "$T_TMP/bin/pilot-hello"
PATH="$T_TMP/bin:$PATH" expect_status 7 "a pilot-NAME plugin runs with its exit status" "$PILOT" hello a b
equals "plugin gets its arguments" "$OUT" "hello plugin: a b"

expect_status 0 "pilot help version works" "$PILOT" help version
contains "help shows the synopsis" "$OUT" "usage: pilot version [--verbose]"
expect_status 2 "an unknown option is a usage error" "$PILOT" version --bogus
contains "usage error prints one usage line" "$ERR" "usage: pilot version"

expect_status 0 "pilot version -v lists libraries" "$PILOT" version -v
contains "library versions include sqlite" "$OUT" "sqlite "
done_testing
