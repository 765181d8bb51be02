#!/usr/bin/env bash
# README.md's quick tour, run as written: every command of its code blocks, in order,
# read from the README itself (so the README cannot break again unnoticed), against a
# private dockerd with the tour's image (busybox imported under that name), a real
# server and a real one-shot agent, as a new user with an empty HOME and umask 022.
# Only what a shell cannot take literally is adapted: HOST and the server's address
# become a loopback address on a free port, an example run id (r01k) becomes the
# newest run's, the token that 'pilot login' asks for comes with --token-stdin, and the
# agent, which waits for work, is started in the background.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"

start_dockerd
export DOCKER_HOST=$DOCKER_ENDPOINT
umask 022
unset PILOT_DATA_DIR
cd "$HOME" || exit 1

# The tour's commands, one a line: the README's indented code lines under "A quick
# tour", comments cut, "a · b" split into a and b.
python3 - "$SRCDIR/README.md" >"$T_TMP/tour" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r'(?ms)^## A quick tour\n(.*?)(?=^## )', text)
for line in (m.group(1) if m else '').splitlines():
    if not line.startswith('    ') or not line.strip():
        continue
    line = re.sub(r'\s+#\s.*$', '', line.strip())
    for cmd in line.split(' · '):
        print(cmd.strip())
EOF
ncmds=$(grep -c . "$T_TMP/tour")
[ "$ncmds" -ge 10 ] || { echo "Bail out! the README's tour has only $ncmds commands: $(cat "$T_TMP/tour")"; exit 1; }
grep -q '^pilot init ' "$T_TMP/tour" && grep -q '^pilot server' "$T_TMP/tour" && grep -q '^pilot submit' "$T_TMP/tour" ||
	{ echo "Bail out! the tour no longer has init, server and submit: $(cat "$T_TMP/tour")"; exit 1; }

image=$(sed -n 's/^pilot init .*--image \([^ ]*\).*/\1/p' "$T_TMP/tour" | head -n 1)
image=${image:-busybox}
import_busybox "$DOCKER_SOCK" tour
engine_api "$DOCKER_SOCK" POST "/images/tour:latest/tag?repo=${image%:*}&tag=${image##*:}" >/dev/null ||
	bail "cannot tag the image $image"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

BG=()
tour_cleanup() { local p; for p in "${BG[@]}"; do kill -9 "$p" 2>/dev/null; done; return 0; }
at_exit tour_cleanup

# What each step must show beyond exit 0, by the command's first words.
check_step() { # CMD
	case $1 in
	"pilot init "*)
		contains "  the spec declares the tour's param" "$(cat my-job/pilot.yaml)" "lr: 0.01" ;;
	"pilot run "*"lr=0.1"*)
		contains "  the job ran with the param" "$OUT" "lr=0.1"
		LOCAL_RUN=$("$PILOT" list -q --limit 1) ;;
	"pilot list"*)
		contains "  the local run is listed" "$OUT" "$LOCAL_RUN" ;;
	"pilot server init"*)
		ADMIN=$(tail -n 1 <<<"$OUT") ;;
	"pilot token create "*"-o agent.token"*)
		equals "  agent.token has mode 600" "$(stat -c %a agent.token)" "600" ;;
	"pilot submit -f "*)
		contains "  the job's output followed" "$OUT" "hello from run r"
		wait "$AGENT_PID"
		equals "  the one-shot agent ran it and exited 0" "$?" "0" ;;
	"pilot status"*)
		contains "  it names the server" "$OUT" "127.0.0.1:$PORT" ;;
	esac
}

while IFS= read -r cmd; do
	[ -n "$cmd" ] || continue
	run=$cmd
	run=${run//HOST:8421/127.0.0.1:$PORT}
	run=${run//0.0.0.0:8421/127.0.0.1:$PORT}
	if [[ $run == *r01k* ]]; then
		last=$("$PILOT" list -q --limit 1)
		run=${run//r01k/${last:0:8}}
	fi
	run=${run/#pilot /\"\$PILOT\" }
	case $cmd in
	*' &')
		eval "${run% &} >'$T_TMP/bg.out' 2>'$T_TMP/bg.err' &"
		BG+=($!)
		SRV_PID=$!
		# A server prints its URL on stdout once it listens.
		for i in $(seq 100); do [ -s "$T_TMP/bg.out" ] && break; sleep 0.1; done
		contains "$cmd" "$(cat "$T_TMP/bg.out")" "127.0.0.1:$PORT"
		contains "  it says only this machine can reach a loopback address, and how to serve others" \
			"$(cat "$T_TMP/bg.err")" "only this machine can reach it; to serve agents and users elsewhere: pilot server --listen 0.0.0.0:8421" ;;
	"pilot agent "*)
		eval "$run >'$T_TMP/agent.out' 2>'$T_TMP/agent.err' &"
		AGENT_PID=$!
		BG+=($!)
		for i in $(seq 100); do grep -q claiming "$T_TMP/agent.err" && break; sleep 0.1; done
		check "$cmd (in the background)" grep -q claiming "$T_TMP/agent.err" ;;
	"pilot login "*)
		# It asks on a terminal; a script passes --token-stdin.
		printf '%s\n' "$ADMIN" >"$T_TMP/admin"
		expect_status 0 "$cmd" eval "$run --token-stdin <'$T_TMP/admin'" ;;
	*)
		# A deadline: a broken step fails the test rather than hang it.
		expect_status 0 "$cmd" eval "timeout 120 $run" ;;
	esac
	check_step "$cmd"
done <"$T_TMP/tour"

# Logged in, the commands ask the server: a local run is not found there, and the error
# says where it looked and how to reach the local store (as the README says).
expect_status 1 "pilot show LOCAL-RUN while logged in" "$PILOT" show "$LOCAL_RUN"
contains "  names the server it asked" "$ERR" "this asked the server 'http://127.0.0.1:$PORT'"
contains "  and how to reach this machine's runs" "$ERR" "pilot --local show $LOCAL_RUN"
expect_status 0 "pilot --local list" "$PILOT" --local list
contains "  this machine's run is there" "$OUT" "$LOCAL_RUN"
# And back: logout returns to this machine's store.
expect_status 0 "pilot logout" "$PILOT" logout
expect_status 0 "pilot list after logout" "$PILOT" list
contains "  shows this machine's runs again" "$OUT" "$LOCAL_RUN"
# pilot run's own agent left with its run: offline, not idle (and lost a lease later).
expect_status 0 "pilot agents --all -o json" "$PILOT" agents --all -o json
equals "  pilot run's agent is offline" \
	"$(python3 -c 'import json,sys; print(" ".join(a["state"] for a in json.load(sys.stdin)["agents"] if a["name"].startswith("run@")))' <<<"$OUT")" \
	"offline"
kill -TERM "$SRV_PID" 2>/dev/null
wait "$SRV_PID"
equals "the server stops cleanly" "$?" "0"
plan "$T_NUM"
done_testing
