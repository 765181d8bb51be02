#!/usr/bin/env bash
# pilot unpack on good bundles: modes normalised (setuid/setgid/sticky dropped), a file
# given twice replaced, hardlinks, odd but harmless paths, stdin, the target rules
# (absent or empty; its parent must exist), and usage errors.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/bundle/lib.sh"
plan 22

A="$T_TMP/a"
mkdir -p "$A"
python3 "$SRCDIR/tests/e2e/bundle/craft.py" "$A" "$T_TMP/unused" || { echo "Bail out! craft.py failed"; exit 1; }
umask 022

expect_status 0 "a good bundle unpacks" "$PILOT" unpack "$A/ok.tar.gz" "$T_TMP/o"
equals "setuid is dropped, the execute bit kept" "$(stat -c %a "$T_TMP/o/dir/suid")" "755"
equals "setgid is dropped" "$(stat -c %a "$T_TMP/o/dir/sgid")" "644"
equals "a 0600 file becomes 0644" "$(stat -c %a "$T_TMP/o/plain")" "644"
equals "a 07777 directory becomes 0755" "$(stat -c %a "$T_TMP/o/dir")" "755"
equals "a relative symlink inside stays" "$(readlink "$T_TMP/o/dir/up")" "../plain"
equals "a file given twice: the later one wins" "$(cat "$T_TMP/o/twice")" "two"
equals "hardlinks are links" "$(stat -c %h "$T_TMP/o/hl")" "2"
equals "'./' and '//' are harmless" "$(cat "$T_TMP/o/dot/slash/name")" "n"
equals "the owner is the user's" "$(stat -c %u "$T_TMP/o/plain")" "$(id -u)"

expect_status 0 "from stdin" sh -c "\"\$0\" unpack - \"\$1\" < \"\$2\"" "$PILOT" "$T_TMP/s" "$A/ok.tar.gz"
equals "the same tree" "$(tree_hash "$T_TMP/s")" "$(tree_hash "$T_TMP/o")"

expect_status 1 "a target that is not empty" "$PILOT" unpack "$A/ok.tar.gz" "$T_TMP/o"
contains "is refused" "$ERR" "exists and is not empty"
expect_status 1 "a target that is a file" "$PILOT" unpack "$A/ok.tar.gz" "$T_TMP/o/plain"
expect_status 1 "a target whose parent is missing" "$PILOT" unpack "$A/ok.tar.gz" "$T_TMP/no/such"
expect_status 1 "a missing bundle" "$PILOT" unpack "$T_TMP/none.tar.gz" "$T_TMP/x"
contains "names it" "$ERR" "none.tar.gz"
expect_status 2 "one argument" "$PILOT" unpack "$A/ok.tar.gz"
expect_status 0 "-v says what was unpacked" "$PILOT" -v unpack "$A/ok.tar.gz" "$T_TMP/v"
contains "with the bundle's sha256" "$ERR" "$(sha256sum "$A/ok.tar.gz" | cut -d' ' -f1)"

"$PILOT" pack -o "$T_TMP/p.tar.gz" "$T_TMP/o" >/dev/null
"$PILOT" unpack "$T_TMP/p.tar.gz" "$T_TMP/again"
equals "pack and unpack round trip" "$(tree_hash "$T_TMP/again")" "$(tree_hash "$T_TMP/o")"
done_testing
