#!/usr/bin/env bash
# A new user's first session, over both transports: pilot init, edit the spec, submit -f,
# list, show, logs, retry, cancel a long job, status, artifacts --download, and the exit
# statuses pilot(1) documents for submit --wait and watch --exit-status.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

newuser() {
	local dir=$CLI_DIR/demo
	expect_status 0 "$(t 'pilot init writes a project')" "$PILOT" init --name demo "$dir"
	# The user replaces the example command with real work: output, metrics, a file.
	python3 - "$dir/pilot.yaml" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r'(?m)^command:.*$', 'command: echo "hello from $PILOT_RUN_ID"; for i in 1 2 3; do echo "METRIC loss=0.$((4 - i))"; done; mkdir -p out; echo result > out/result.txt', s, count=1)
s += "\nartifacts: [out/]\n"
open(p, "w").write(s)
EOF
	expect_status 0 "$(t 'the edited spec is valid')" "$PILOT" validate "$dir"
	cd "$dir" || return

	expect_status 0 "$(t 'submit -f runs it and exits 0')" "$PILOT" submit -f
	local id
	id=$(sed -n 's/^pilot: run \(r[0-9a-z]*\).*/\1/p' <<<"$ERR" | head -n 1)
	if [[ $id =~ ^r[0-9a-z]{14}$ ]]; then ok "$(t 'submit -f names the run on stderr')"; else
		not_ok "$(t 'submit -f names the run on stderr')" "$ERR"; fi
	equals "$(t 'stdout carries exactly the job output')" "$OUT" "$(printf 'hello from %s\nMETRIC loss=0.3\nMETRIC loss=0.2\nMETRIC loss=0.1' "$id")"

	expect_status 0 "$(t 'pilot list')" "$PILOT" list
	contains "$(t 'list shows the run')" "$OUT" "$id  demo  succeeded"
	expect_status 0 "$(t 'pilot show by a prefix')" "$PILOT" show "${id:0:12}"
	contains "$(t 'show: the image')" "$OUT" "image      busybox"
	contains "$(t 'show: the command')" "$OUT" 'command    echo "hello from $PILOT_RUN_ID"'
	contains "$(t 'show: the state')" "$OUT" "state      succeeded"
	contains "$(t 'show: the last metric value')" "$OUT" "metrics    loss 0.1"
	contains "$(t 'show: the artifacts')" "$OUT" "out/result.txt"
	contains "$(t 'show: the attempt')" "$OUT" "agent-$CLI_TRANSPORT"
	expect_status 0 "$(t 'pilot logs')" "$PILOT" logs "$id"
	equals "$(t 'logs: the same bytes')" "$OUT" "$(printf 'hello from %s\nMETRIC loss=0.3\nMETRIC loss=0.2\nMETRIC loss=0.1' "$id")"

	expect_status 0 "$(t 'pilot retry')" "$PILOT" retry "$id"
	local again=$OUT
	if [[ $again =~ ^r[0-9a-z]{14}$ ]] && [ "$again" != "$id" ]; then ok "$(t 'retry prints only the new id')"; else
		not_ok "$(t 'retry prints only the new id')" "$OUT"; fi
	if wait_state "$again" succeeded; then ok "$(t 'the retry ran')"; else not_ok "$(t 'the retry ran')" "$("$PILOT" show "$again")"; fi
	contains "$(t 'show names the run it retries')" "$("$PILOT" show "$again")" "retry of   $id"
	equals "$(t 'the retry ran the same bundle')" "$(run_field "$again" 'j["bundle_sha256"]')" "$(run_field "$id" 'j["bundle_sha256"]')"

	project "$CLI_DIR/long" 'name: long
command: echo started; sleep 300'
	expect_status 0 "$(t 'submit a long job')" "$PILOT" submit "$CLI_DIR/long"
	local long=$OUT
	if wait_for sh -c "'$PILOT' logs '$long' | grep -q started"; then ok "$(t 'it started')"; else not_ok "$(t 'it started')"; fi
	expect_status 0 "$(t 'pilot cancel')" "$PILOT" cancel "$long"
	contains "$(t 'cancel says the agent is stopping it')" "$OUT" "$long  canceling"
	expect_status 130 "$(t 'watch --exit-status of a canceled run exits 130')" "$PILOT" watch --exit-status "$long"
	contains "$(t 'watch printed the events')" "$OUT" "cancel_requested"
	expect_status 0 "$(t 'cancel again: already finished')" "$PILOT" cancel "$long"
	contains "$(t 'and says so')" "$OUT" "already finished: canceled"

	expect_status 0 "$(t 'pilot status')" "$PILOT" status
	contains "$(t 'status counts the runs')" "$OUT" "2 succeeded, 0 failed, 1 canceled"
	if [ "$CLI_TRANSPORT" = http ]; then
		contains "$(t 'status names the server')" "$OUT" "server    $SRV_URL (pilot "
	else
		contains "$(t 'status says local')" "$OUT" "local store in $XDG_DATA_HOME/pilot"
	fi
	contains "$(t 'status counts the agent')" "$OUT" "agents    1 idle"

	expect_status 0 "$(t 'artifacts --download')" "$PILOT" artifacts "$id" --download "$CLI_DIR/got"
	equals "$(t 'prints the file written')" "$OUT" "$CLI_DIR/got/out/result.txt"
	equals "$(t 'with the bytes the job wrote')" "$(cat "$CLI_DIR/got/out/result.txt" 2>&1)" "result"

	# Exit statuses of submit --wait (pilot(1)).
	project "$CLI_DIR/fails" 'name: fails
command: echo failing; exit 7'
	expect_status 7 "$(t 'submit --wait exits with the job code')" "$PILOT" submit --wait "$CLI_DIR/fails"
	contains "$(t 'and says how it ended')" "$ERR" "failed: exit code 7"
	project "$CLI_DIR/slow" 'name: slow
command: sleep 30
timeout: 1s'
	expect_status 124 "$(t 'a timeout exits 124')" "$PILOT" submit --wait "$CLI_DIR/slow"
	project "$CLI_DIR/killed" 'name: killed
command: kill -USR1 $$$$'
	expect_status 138 "$(t 'killed by signal 10: 128+10')" "$PILOT" submit --wait "$CLI_DIR/killed"
	project "$CLI_DIR/bad" 'name: bad
command: true
imag: typo'
	expect_status 125 "$(t 'a bad spec with --wait exits 125')" "$PILOT" submit --wait "$CLI_DIR/bad"
	expect_status 1 "$(t 'and 1 without')" "$PILOT" submit "$CLI_DIR/bad"
	contains "$(t 'naming the mistake')" "$ERR" "did you mean 'image'"
	cd "$T_TMP" || return
}

for_transports newuser
finish
