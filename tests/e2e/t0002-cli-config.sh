#!/usr/bin/env bash
# pilot config and the precedence rule: flag > env > profile > default; 0600 files;
# a token in a group/other-readable file is refused with the chmod hint.
. "$SRCDIR/tests/e2e/lib.sh"
plan 17
cfg="$XDG_CONFIG_HOME/pilot/config.yaml"

expect_status 0 "set server in the default profile" "$PILOT" config set server http://127.0.0.1:1
equals "file created with mode 0600" "$(stat -c %a "$cfg")" "600"
expect_status 0 "get reads it back" "$PILOT" config get server
equals "value from the profile" "$OUT" "http://127.0.0.1:1"
PILOT_SERVER=http://127.0.0.1:2 expect_status 0 "env overrides profile" "$PILOT" config get server
equals "env value wins" "$OUT" "http://127.0.0.1:2"
PILOT_SERVER=http://127.0.0.1:2 expect_status 0 "flag overrides env" "$PILOT" --server http://127.0.0.1:3 config get server
equals "flag value wins" "$OUT" "http://127.0.0.1:3"

expect_status 0 "set in a named profile" "$PILOT" config set --profile prod server http://127.0.0.1:4
PILOT_PROFILE=prod expect_status 0 "PILOT_PROFILE selects it" "$PILOT" config get server
equals "prod value" "$OUT" "http://127.0.0.1:4"
expect_status 0 "default is untouched" "$PILOT" config get pull
equals "built-in default applies" "$OUT" "missing"

expect_status 1 "an unknown key is refused with a suggestion" "$PILOT" config set sever x
contains "did you mean" "$ERR" "did you mean 'server'"

"$PILOT" config set token ptk_secret >/dev/null 2>&1
chmod 644 "$cfg"
expect_status 1 "a token in a 0644 file is refused" "$PILOT" config get server
contains "message names file, mode and fix" "$ERR" "'$cfg' holds a token but has mode 0644, readable by others; run 'chmod 600 $cfg'"
done_testing
