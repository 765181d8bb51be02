#!/usr/bin/env bash
# What comes out of a docker job: 50 MB arriving byte for byte on both streams at once,
# arbitrary binary, secrets redacted even when written in pieces, METRIC lines and the
# $PILOT_METRICS file, and the artifacts collected afterwards (symlinks skipped).
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
: "${RUNTIME_DRIVER:?RUNTIME_DRIVER must point at tests/runtime-driver}"

start_dockerd
import_busybox "$DOCKER_SOCK"

plan 18

WS=$T_TMP/ws
mkdir -p "$WS"
drv() { "$RUNTIME_DRIVER" --runtime docker --endpoint "$DOCKER_ENDPOINT" --image busybox --workspace "$WS" "$@"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- volume ----
# 50 MiB on stdout while 5 MiB go to stderr: the frames interleave, nothing is lost.
st=0
drv --shell '(yes "stderr line with some text" | head -c 5242880 >&2) & yes "0123456789 the quick brown fox jumps over the lazy dog" | head -c 52428800; wait' \
	>"$T_TMP/big.out" 2>"$T_TMP/big.err" || st=$?
equals "50 MiB job: exit 0" "$st" 0
equals "stdout: 50 MiB exactly" "$(stat -c %s "$T_TMP/big.out")" 52428800
equals "stdout: identical bytes" "$(sha "$T_TMP/big.out")" \
	"$(yes "0123456789 the quick brown fox jumps over the lazy dog" | head -c 52428800 | sha256sum | cut -d' ' -f1)"
equals "stderr: identical bytes" "$(sha "$T_TMP/big.err")" \
	"$(yes "stderr line with some text" | head -c 5242880 | sha256sum | cut -d' ' -f1)"

# Arbitrary bytes, no newlines anywhere, invalid UTF-8 included.
head -c 3000000 /dev/urandom >"$WS/random.bin"
st=0
drv cat random.bin >"$T_TMP/random.out" || st=$?
equals "binary job: exit 0" "$st" 0
equals "random bytes arrive unchanged" "$(sha "$T_TMP/random.out")" "$(sha "$WS/random.bin")"

# The last bytes before the exit are never lost (no trailing newline, right before exit).
equals "the last bytes before exit" "$(drv --shell 'printf "no newline at the end"; exit 4'; echo " rc=$?")" \
	"no newline at the end rc=4"

# ---- secrets ----
expect_status 0 "a job printing its secret" drv --env "HF_TOKEN=hf_s3cr3tT0ken" --secret hf_s3cr3tT0ken \
	--shell 'echo "token=$HF_TOKEN"; echo "on stderr $HF_TOKEN" >&2; printf "hf_s3c"; sleep 0.3; printf "r3tT0ken split\n"; echo hf_s3cr3tT0ke'
equals "stdout redacted, also when written in pieces" "$OUT" "$(printf 'token=***\n*** split\nhf_s3cr3tT0ke')"
equals "stderr redacted" "$ERR" "on stderr ***"

# ---- metrics ----
mkdir -p "$WS/.pilot"
rm -f "$WS/.pilot/metrics.jsonl"
expect_status 0 "a job reporting metrics" drv --metrics-out "$T_TMP/metrics" --metrics-file "$WS/.pilot/metrics.jsonl" \
	--env PILOT_METRICS=/workspace/.pilot/metrics.jsonl --shell '
	echo "METRIC {\"loss\": 0.5, \"epoch\": 1}"
	echo "METRIC loss=0.25 epoch=2 phase=train"
	echo "METRIC {broken"
	echo "not a METRIC line"
	echo "{\"acc\": 0.75}" >>"$PILOT_METRICS"
	sleep 1.5
	printf "{\"acc\": 0.875}\n{\"final\": true}" >>"$PILOT_METRICS"'
contains "METRIC lines stay in the output" "$OUT" "METRIC loss=0.25 epoch=2 phase=train"
equals "metrics parsed, numbers as numbers" "$(cat "$T_TMP/metrics")" "$(printf '%s\n' \
	'{"loss":0.5,"epoch":1}' '{"loss":0.25,"epoch":2,"phase":"train"}' '{"acc":0.75}' '{"acc":0.875}' '{"final":true}')"

# ---- artifacts ----
expect_status 0 "a job writing outputs" drv --artifact 'outputs/**' --artifact '*.pt' --artifact '!outputs/tmp/' \
	--artifacts-out "$T_TMP/artifacts" --log "$T_TMP/log" --shell '
	mkdir -p outputs/sub outputs/tmp ckpt
	echo hello >outputs/a.txt
	head -c 1000 /dev/zero >outputs/sub/b.bin
	echo scratch >outputs/tmp/x
	echo model >ckpt/epoch1.pt
	echo notes >notes.txt
	ln -s /etc/passwd outputs/passwd
	ln -s / outputs/root'
equals "artifacts: the selected files with sizes" "$(cat "$T_TMP/artifacts")" "$(printf '%s\n' \
	'ckpt/epoch1.pt 6' 'outputs/a.txt 6' 'outputs/sub/b.bin 1000')"
contains "a symlink is skipped with a notice" "$(cat "$T_TMP/log")" "artifact 'outputs/passwd' is a symbolic link: skipped"
contains "a symlink to a directory too" "$(cat "$T_TMP/log")" "artifact 'outputs/root' is a symbolic link: skipped"

equals "no container left behind" "$(engine_managed "$DOCKER_SOCK")" ""

done_testing
