#!/usr/bin/env bash
# The dashboard in headless Chromium (driven over the DevTools protocol by
# dashboard-check.py) against a real server and agent with real runs: the runs list
# shows them and takes a new one live; the token leaves the address; a log holding
# markup is shown as text; a running job's log line appears live; cancel from the page
# cancels the run; no script error. Screenshots go to BUILDDIR/test-artifacts/t0720
# (or the test's temp dir). Also the files' security headers, with curl, and the link
# pilot dashboard prints.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-cli.sh"

CHROMIUM=${PILOT_CHROMIUM:-/usr/lib/chromium/chromium}
[ -x "$CHROMIUM" ] || skip_all "no chromium ($CHROMIUM; Debian package chromium)"
[ -x /usr/bin/python3 ] || skip_all "no /usr/bin/python3"

CLI_TRANSPORT=http
CLI_DIR=$T_TMP/http
mkdir -p "$CLI_DIR"
export XDG_CONFIG_HOME=$CLI_DIR/config XDG_DATA_HOME=$CLI_DIR/data
unset PILOT_SERVER PILOT_TOKEN PILOT_DATA_DIR
start_server
start_agent -c 4

OUTDIR=${BUILDDIR:+$BUILDDIR/test-artifacts/t0720}
OUTDIR=${OUTDIR:-$T_TMP/artifacts}
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR"

# The page and its files: no token needed, a strict policy, nothing sniffed.
headers=$(curl -sS -D - -o "$T_TMP/index.html" "$SRV_URL/")
contains "GET / serves the dashboard" "$(cat "$T_TMP/index.html")" '<script src="/ui/app.js" defer></script>'
contains "with a content security policy" "$headers" "Content-Security-Policy: default-src 'none'; script-src 'self';"
contains "and nosniff" "$headers" "X-Content-Type-Options: nosniff"
contains "its script is JavaScript" "$(curl -sS -D - -o /dev/null "$SRV_URL/ui/app.js")" "Content-Type: text/javascript"
equals "an unknown file is 404" "$(curl -s -o /dev/null -w '%{http_code}' "$SRV_URL/ui/nope.js")" 404

project "$CLI_DIR/hello" 'name: hello
runtime: host
params: {scale: 1, seed: 7}
command: sh steps.sh ${scale}'
# Five points of two metrics, on its standard output, and a coloured line and an error.
cat >"$CLI_DIR/hello/steps.sh" <<'STEPS'
echo hello
printf '\033[31mred text\033[0m plain\n'
echo 'ERROR: something broke'
for i in 1 2 3 4 5; do echo "METRIC {\"step\": $((i * 10)), \"loss\": $((100 * $1 / i)), \"acc\": $((i * 2))}"; done
STEPS
project "$CLI_DIR/xss" "name: xss
runtime: host
command: printf '%s\n' '<img src=x onerror=\"document.title=1\"><script>document.title=2</script>'"
project "$CLI_DIR/long" "name: long
runtime: host
command: echo started; while :; do if [ -e '$CLI_DIR/trigger' ]; then cat '$CLI_DIR/trigger'; echo; rm -f '$CLI_DIR/trigger'; fi; sleep 0.05; done"

# A pipeline (a diamond: a, then b and c, then d) and an array of 6.
project "$CLI_DIR/diamond" 'name: diamond
runtime: host
command: echo job
jobs:
  a: {}
  b: {needs: a}
  c: {needs: a}
  d: {needs: [b, c]}'
project "$CLI_DIR/quick" 'name: quick
runtime: host
command: echo quick'
all_succeeded_in() { # --array X or --pipeline P, and how many runs
	"$PILOT" list "$1" "$2" --all -o json | python3 -c 'import json,sys
rs = json.load(sys.stdin)["runs"]
sys.exit(0 if len(rs) == int(sys.argv[1]) and all(r["state"] == "succeeded" for r in rs) else 1)' "$3"
}
pipe=$("$PILOT" submit "$CLI_DIR/diamond")
arr=$("$PILOT" submit --array 0-5 "$CLI_DIR/quick")
wait_for all_succeeded_in --pipeline "$pipe" 4
check "the pipeline's four jobs succeeded" all_succeeded_in --pipeline "$pipe" 4
wait_for all_succeeded_in --array "$arr" 6
check "the array's six runs succeeded" all_succeeded_in --array "$arr" 6

hello=$("$PILOT" submit "$CLI_DIR/hello")
hello2=$("$PILOT" submit --param scale=3 "$CLI_DIR/hello")
xss=$("$PILOT" submit "$CLI_DIR/xss")
wait_state "$hello" succeeded
wait_state "$hello2" succeeded
wait_state "$xss" succeeded
long=$("$PILOT" submit "$CLI_DIR/long")
wait_state "$long" running
log_started() { "$PILOT" logs "$long" 2>/dev/null | grep -q started; }
wait_for log_started

# pilot dashboard makes the page's token (read, cancel) and, without a display, prints
# the link that carries it.
expect_status 0 "pilot dashboard --no-open" env -u DISPLAY -u WAYLAND_DISPLAY "$PILOT" dashboard --no-open --expires 1h
link=$OUT
case $link in "$SRV_URL/#token=pilot_"*) ok "prints the server's link with a token" ;;
*) not_ok "prints the server's link with a token" "$link" ;; esac
contains "says which token and until when" "$ERR" "the link carries token 'dashboard-"
printf '%s\n' "${link#*#token=}" >"$CLI_DIR/dash.token"
contains "a read and cancel token" "$("$PILOT" token list | grep dashboard-)" "read cancel"
while IFS=$'\t' read -r verdict what why; do
	case $verdict in
	PASS) ok "$what" ;;
	FAIL) not_ok "$what" "$why" ;;
	EXIT) [ "$what" = "dashboard-check.py exited 0" ] || not_ok "$what" "$why" ;;
	*) not_ok "dashboard-check.py said: $verdict $what $why" ;;
	esac
done < <(timeout -k 5 120 /usr/bin/python3 "$SRCDIR/tests/e2e/dashboard-check.py" "$SRV_URL" \
	"$(cat "$CLI_DIR/dash.token")" "$OUTDIR" "$PILOT" "$CLI_DIR/hello" "$hello" "$hello2" "$xss" "$long" "$CLI_DIR/trigger" \
	"$pipe" "$arr" \
	2>"$T_TMP/check.err"; echo "EXIT	dashboard-check.py exited $?	$(tail -n 5 "$T_TMP/check.err" | tr '\n' ' ')")
check "screenshots of the runs list and a run page" test -s "$OUTDIR/runs.png" -a -s "$OUTDIR/run.png"

stop_agent
stop_server
finish
