#!/bin/sh
# Greets, reports metrics both ways pilot reads them (METRIC lines on stdout and
# JSON lines in $PILOT_METRICS), and leaves a file for the artifacts glob.
set -eu
who=${1:-world}
echo "$GREETING, $who! (run ${PILOT_RUN_ID:-none}, attempt ${PILOT_ATTEMPT:-1})"
echo "METRIC {\"greeting_length\": ${#who}}"
echo "METRIC steps=1"
if [ -n "${PILOT_METRICS:-}" ]; then
	echo '{"done": 1}' >> "$PILOT_METRICS"
fi
mkdir -p out
echo "$GREETING, $who!" > out/greeting.txt
