# Shared helpers for the e2e scripts: TAP output, a private temp dir cleaned on exit,
# and a private HOME/XDG tree so no test touches the user's config or data.
set -u
: "${PILOT:?PILOT must point at the pilot binary}"
: "${SRCDIR:?SRCDIR must point at the source tree}"

T_NUM=0
T_FAILED=0
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pilot-e2e.XXXXXX")
T_CLEANUPS=()
export HOME="$T_TMP/home" XDG_CONFIG_HOME="$T_TMP/home/.config" XDG_DATA_HOME="$T_TMP/home/.local/share"
mkdir -p "$HOME"
unset PILOT_SERVER PILOT_TOKEN PILOT_PROFILE NO_COLOR
# The scripts fail jobs of one name again and again on purpose: no agent is blocklisted
# for it unless a script asks (t0714 does).
export PILOT_BLOCKLIST_AFTER=${PILOT_BLOCKLIST_AFTER:-0}

t_cleanup() {
	local i
	for ((i = ${#T_CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${T_CLEANUPS[$i]}" || true; done
	rm -rf "$T_TMP"
}
trap t_cleanup EXIT

# at_exit CMD: run CMD (a string) when the script ends, last registered first.
at_exit() { T_CLEANUPS+=("$1"); }

plan() { echo "1..$1"; }

ok() { T_NUM=$((T_NUM + 1)); echo "ok $T_NUM - $1"; }
not_ok() {
	T_NUM=$((T_NUM + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_NUM - $1"
	# Also on stderr, which 'meson test --print-errorlogs' shows (and CI's log keeps).
	echo "not ok $T_NUM - $1" >&2
	shift
	local line
	for line in "$@"; do printf '#   %s\n' "$line"; printf '#   %s\n' "$line" >&2; done
}
skip_all() { echo "1..0 # SKIP $1"; exit 0; }

# check DESC CMD...: ok when CMD exits 0.
check() {
	local desc=$1; shift
	local out
	if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "command: $*" "$out"; fi
}

# expect_status N DESC CMD...: ok when CMD exits with status N; stdout in $OUT, stderr in $ERR.
expect_status() {
	local want=$1 desc=$2; shift 2
	local st=0
	"$@" >"$T_TMP/.out" 2>"$T_TMP/.err" </dev/null || st=$?
	OUT=$(cat "$T_TMP/.out"); ERR=$(cat "$T_TMP/.err")
	if [ "$st" -eq "$want" ]; then ok "$desc"; else not_ok "$desc" "command: $*" "exit $st, wanted $want" "stdout: $OUT" "stderr: $ERR"; fi
}

# contains DESC HAYSTACK NEEDLE
contains() {
	case $2 in *"$3"*) ok "$1" ;; *) not_ok "$1" "expected to find: $3" "in: $2" ;; esac
}
lacks() {
	case $2 in *"$3"*) not_ok "$1" "did not expect: $3" "in: $2" ;; *) ok "$1" ;; esac
}
equals() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "expected: $3" "got: $2"; fi
}

done_testing() { [ "$T_FAILED" -eq 0 ]; exit $?; }
