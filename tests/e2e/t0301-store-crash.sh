#!/usr/bin/env bash
# kill -9 in the middle of 1,000 submits, several times: every run whose submit had
# returned (the writer logs its id only then) is in the store, and SQLite's
# integrity_check is ok. Then the store keeps working.
. "$SRCDIR/tests/e2e/lib.sh"
: "${API_TOOL:?API_TOOL must point at the api-tool test program}"
plan 7

ids="$T_TMP/ids"
: > "$ids"
for round in 1 2 3 4 5; do
	"$API_TOOL" submit-loop 1000 "$ids" &
	pid=$!
	# Let it get somewhere, then kill it without warning.
	target=$(( $(wc -l < "$ids") + 50 + RANDOM % 150 ))
	while [ "$(wc -l < "$ids")" -lt "$target" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done
n=$(wc -l < "$ids")
[ "$n" -gt 200 ] && ok "at least 200 submits were acknowledged ($n)" || not_ok "acknowledged submits" "only $n"
expect_status 0 "every acknowledged run is present, integrity ok" "$API_TOOL" check "$ids"
contains "says so" "$OUT" "0 missing, integrity ok"
# Every page: a killed writer may have stored (without acknowledging) more runs than it
# logged, and more than one page of them. Each acknowledged id must be listed.
expect_status 0 "the store still lists" "$PILOT" list -q --all --name crash
unlisted=$(sort <<< "$OUT" | comm -13 - <(sort "$ids") | wc -l)
equals "list shows every acknowledged run ($(wc -l <<< "$OUT") listed)" "$unlisted" "0"
expect_status 0 "and takes new submits" "$API_TOOL" submit crash
leftover=$(find "$XDG_DATA_HOME/pilot/blobs/tmp" -type f | wc -l)
equals "no stray blob temp files" "$leftover" "0"
done_testing
