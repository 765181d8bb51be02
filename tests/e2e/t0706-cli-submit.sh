#!/usr/bin/env bash
# pilot submit over both transports: what goes to stdout (only the id without a
# terminal; a friendly line on one), --param/--env/--name/--priority/--requires, the
# spec's ignore list, secrets from the environment (and redacted from the log), the
# bundle uploaded once, --idempotency-key, max_bundle_size, --follow and --wait of a
# queued run (which say why it is still queued), and the mistakes: unknown params, bad names and values, a missing project.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

submits() {
	local p=$CLI_DIR/proj
	project "$p" 'name: demo
params: {lr: "0.1"}
command: echo "lr=${lr} color=$COLOR"; ls data 2>&1 | head -n 1
ignore: [data/]'
	mkdir -p "$p/data" && echo raw >"$p/data/raw.csv"

	expect_status 0 "$(t 'submit')" "$PILOT" submit "$p"
	local id=$OUT
	if [[ $id =~ ^r[0-9a-z]{14}$ ]]; then ok "$(t 'stdout is only the id')"; else not_ok "$(t 'stdout is only the id')" "$OUT"; fi
	equals "$(t 'and stderr is quiet')" "$ERR" ""
	wait_state "$id" succeeded
	equals "$(t 'the spec s ignore list kept data/ out of the bundle')" "$("$PILOT" logs "$id")" "$(printf 'lr=0.1 color=\nls: cannot access '"'"'data'"'"': No such file or directory')"

	expect_status 0 "$(t '--param, --env, --name, --priority')" "$PILOT" submit --wait -p lr=0.5 -e COLOR=blue --name custom --priority 90 "$p"
	local id2=$OUT
	contains "$(t 'the job sees them')" "$("$PILOT" logs "$id2")" "lr=0.5 color=blue"
	local shown
	shown=$("$PILOT" show "$id2")
	contains "$(t 'show: the name')" "$shown" "name       custom"
	contains "$(t 'show: the params')" "$shown" "params     lr=0.5"
	contains "$(t 'show: the env')" "$shown" "env        COLOR=blue"
	contains "$(t 'show: the priority')" "$shown" "priority   90"
	expect_status 0 "$(t 'list --name custom')" "$PILOT" list -q --name custom
	equals "$(t 'finds it')" "$OUT" "$id2"

	expect_status 1 "$(t 'an unknown param')" "$PILOT" submit -p nope=1 "$p"
	contains "$(t 'is named')" "$ERR" "nope"
	expect_status 1 "$(t 'a bad --env name')" "$PILOT" submit -e 1X=y "$p"
	contains "$(t 'is named')" "$ERR" "invalid variable name '1X'"
	expect_status 1 "$(t '--env without =')" "$PILOT" submit -e COLOR "$p"
	contains "$(t 'says so')" "$ERR" "is not KEY=VALUE"
	expect_status 2 "$(t 'a bad --name')" "$PILOT" submit --name 'Bad Name' "$p"
	expect_status 2 "$(t '--priority out of range')" "$PILOT" submit --priority 101 "$p"
	expect_status 2 "$(t 'a bad --requires')" "$PILOT" submit --requires gpu "$p"
	expect_status 1 "$(t 'no project there')" "$PILOT" submit "$CLI_DIR/nowhere"
	expect_status 125 "$(t 'no project there, with --wait')" "$PILOT" submit --wait "$CLI_DIR/nowhere"

	# --requires adds to the spec's requires; no agent has the label, so it waits.
	project "$CLI_DIR/gpu" 'name: gpu
command: true
requires: {zone: eu}'
	expect_status 0 "$(t '--requires')" "$PILOT" submit --requires gpu=a100 "$CLI_DIR/gpu"
	local gpu=$OUT
	contains "$(t 'the run needs both labels')" "$("$PILOT" show "$gpu")" "requires   gpu=a100 zone=eu"
	sleep 0.5
	equals "$(t 'no agent takes it')" "$(run_field "$gpu" 'j["state"]')" "queued"
	"$PILOT" cancel "$gpu" >/dev/null

	# The bundle goes up once: params are not part of it, files are.
	expect_status 0 "$(t 'the same files with other params')" "$PILOT" -v submit "$p" -p lr=0.2
	contains "$(t 'upload nothing')" "$ERR" "is there already: nothing to upload"
	echo change >"$p/new.txt"
	expect_status 0 "$(t 'a changed project')" "$PILOT" -v submit "$p"
	contains "$(t 'is uploaded')" "$ERR" "uploaded bundle"
	expect_status 0 "$(t 'and then not again')" "$PILOT" -v submit "$p"
	contains "$(t 'says so')" "$ERR" "nothing to upload"

	expect_status 0 "$(t '--idempotency-key')" "$PILOT" submit --idempotency-key "ci-$CLI_TRANSPORT-1" "$p"
	local k1=$OUT
	expect_status 0 "$(t 'the same key again')" "$PILOT" submit --idempotency-key "ci-$CLI_TRANSPORT-1" "$p"
	equals "$(t 'gives the same run')" "$OUT" "$k1"
	contains "$(t 'and says so')" "$ERR" "submitted before with this idempotency key"
	expect_status 1 "$(t 'the same key with another request')" "$PILOT" submit --idempotency-key "ci-$CLI_TRANSPORT-1" -p lr=9 "$p"
	contains "$(t 'is refused')" "$ERR" "idempotency"

	# Secrets come from the environment and never show in the log.
	project "$CLI_DIR/secret" 'name: secret
secrets: [API_KEY]
command: echo "key=$API_KEY"'
	expect_status 1 "$(t 'a secret missing from the environment')" "$PILOT" submit "$CLI_DIR/secret"
	contains "$(t 'is named')" "$ERR" "secret 'API_KEY' is not set in the environment"
	API_KEY=hunter2-sesame expect_status 0 "$(t 'with the secret set')" "$PILOT" submit --wait "$CLI_DIR/secret"
	local sec=$OUT
	lacks "$(t 'the value is redacted from the log')" "$("$PILOT" logs "$sec")" "hunter2-sesame"
	contains "$(t 'show names the secret, not its value')" "$("$PILOT" show "$sec")" "secrets    API_KEY"

	# max_bundle_size from the config (flag > env > profile).
	head -c 20000 /dev/urandom >"$p/blob.bin"
	PILOT_MAX_BUNDLE_SIZE=4KiB expect_status 1 "$(t 'a bundle over max_bundle_size')" "$PILOT" submit "$p"
	contains "$(t 'is refused before upload')" "$ERR" "cannot pack"
	rm -f "$p/blob.bin"

	# retry.backoff: 0 retries at once, as pilot.yaml(5) says (the run holds backoff 0).
	project "$CLI_DIR/flaky" 'name: flaky
command: exit 3
retry: {max_attempts: 3, on: [exit_code], backoff: 0}'
	expect_status 3 "$(t 'backoff: 0: submit --wait ends with the job s code')" "$PILOT" submit --wait "$CLI_DIR/flaky"
	local fl
	fl=$("$PILOT" list -q --limit 1 --name flaky)
	equals "$(t 'three attempts, the run holds backoff 0')" \
		"$(run_field "$fl" 'str(len(j["attempts"])) + " " + str(j["retry"]["backoff_ms"])')" "3 0"
	local gaps
	gaps=$(run_field "$fl" 'sum(j["attempts"][i + 1]["started_ms"] - j["attempts"][i]["finished_ms"] for i in range(2))')
	echo "# [$CLI_TRANSPORT] backoff 0: $gaps ms between the attempts in all"
	if [ "$gaps" -lt 5000 ]; then ok "$(t "the retries came at once ($gaps ms in all)")"; else
		not_ok "$(t 'the retries came at once')" "$gaps ms"; fi

	# --follow of a run that waits for an agent: after a while (PILOT_QUEUED_NOTE) it
	# says why the run is still queued.
	stop_agent
	PILOT_QUEUED_NOTE=1s timeout 120 "$PILOT" submit -f -p lr=7 "$p" >"$CLI_DIR/f.out" 2>"$CLI_DIR/f.err" &
	local fpid=$! st=0
	wait_for grep -q "is queued" "$CLI_DIR/f.err"
	contains "$(t 'submit -f says no agent is connected')" "$(cat "$CLI_DIR/f.err")" \
		"is queued: no agent is connected to take it (start one with 'pilot agent')"
	start_agent
	wait "$fpid" || st=$?
	equals "$(t 'submit -f waits for the agent, then exits 0')" "$st" 0
	contains "$(t 'with the log on stdout')" "$(cat "$CLI_DIR/f.out")" "lr=7"

	# An agent is there, but its labels do not match the run's requires.
	PILOT_QUEUED_NOTE=1s timeout 120 "$PILOT" submit --wait --requires gpu=a100 "$p" >"$CLI_DIR/w.out" \
		2>"$CLI_DIR/w.err" &
	fpid=$!
	wait_for grep -q "is queued" "$CLI_DIR/w.err"
	contains "$(t 'submit --wait names the requires no agent matches')" "$(cat "$CLI_DIR/w.err")" \
		"is queued: no connected agent matches requires gpu=a100 (1 agent: agent-$CLI_TRANSPORT (runtime=host))"
	"$PILOT" cancel --all --state queued --yes >/dev/null
	st=0
	wait "$fpid" || st=$?
	equals "$(t 'and exits 130 once canceled')" "$st" 130
}

for_transports submits

# On a terminal: the id on stdout and a line on stderr saying how to follow it.
if command -v tmux >/dev/null; then
	CLI_TRANSPORT=local CLI_DIR=$T_TMP/tty
	mkdir -p "$CLI_DIR"
	export XDG_CONFIG_HOME=$CLI_DIR/config XDG_DATA_HOME=$CLI_DIR/data
	project "$CLI_DIR/p" 'name: hello
command: true'
	sock=pilot-e2e-submit-$$
	at_exit "tmux -L $sock kill-server 2>/dev/null"
	tmux -L "$sock" new-session -d -x 150 -y 20 "env XDG_CONFIG_HOME=$XDG_CONFIG_HOME XDG_DATA_HOME=$XDG_DATA_HOME bash --norc --noprofile"
	tmux -L "$sock" send-keys "'$PILOT' submit '$CLI_DIR/p'; echo st\"\"atus=\$?" Enter
	wait_for sh -c "tmux -L $sock capture-pane -p | grep -q status="
	screen=$(tmux -L "$sock" capture-pane -p)
	id=$("$PILOT" list -q | head -n 1)
	contains "a terminal gets the id" "$screen" "$id"
	contains "and how to follow it" "$screen" "pilot: submitted $id (hello); follow it with 'pilot logs -f $id'"
	"$PILOT" cancel "$id" >/dev/null
fi
finish
