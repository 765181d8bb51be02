#!/usr/bin/env bash
# kill -9 of pilot server during 1000 http submits (every tenth with a fresh bundle
# upload): every submit that got a 2xx answer is there after a restart, the database
# passes integrity_check, and no temp blob or upload file is left behind.
. "$SRCDIR/tests/e2e/lib.sh"
command -v curl >/dev/null || skip_all "curl is not installed"
plan 9

DATA="$T_TMP/data"
SRV_PID=
URL=

srv_start() {
	: >"$T_TMP/url"
	"$PILOT" server --data "$DATA" --listen "$1" >"$T_TMP/url" 2>>"$T_TMP/server.log" &
	SRV_PID=$!
	at_exit "kill -9 $SRV_PID 2>/dev/null"
	local i
	for i in $(seq 200); do
		[ -s "$T_TMP/url" ] && break
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	URL=$(head -1 "$T_TMP/url")
}

TOKEN=$("$PILOT" server init --data "$DATA" 2>/dev/null)
srv_start 127.0.0.1:0
LISTEN=${URL#http://}
ok "server on $URL"

N=1000
submitter() {
	local i sha code bundle
	for ((i = 1; i <= N; i++)); do
		bundle=null
		if ((i % 10 == 0)); then
			{ echo "bundle $i"; head -c 65536 /dev/urandom; } >"$T_TMP/bundle"
			sha=$(sha256sum "$T_TMP/bundle" | cut -d' ' -f1)
			code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
				--data-binary "@$T_TMP/bundle" "http://$LISTEN/v1/bundles/$sha") || true
			case $code in 2??) bundle="\"$sha\"" ;; esac
		fi
		code=$(curl -s -o "$T_TMP/sub.out" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
			-H "Idempotency-Key: kill9-$i" -H 'Content-Type: application/json' \
			-d "{\"name\":\"k9\",\"spec_json\":\"{\\\"name\\\":\\\"k9\\\",\\\"command\\\":[\\\"true\\\"]}\",\"bundle_sha256\":$bundle}" "http://$LISTEN/v1/runs") || true
		case $code in
		2??) grep -o '"id":"r[0-9a-z]*"' "$T_TMP/sub.out" | head -1 | cut -d'"' -f4 >>"$T_TMP/acked" ;;
		*) echo "$i $code" >>"$T_TMP/refused" ;;
		esac
	done
}

: >"$T_TMP/acked"
submitter &
SUB_PID=$!
# Kill once a third of the submits went through, while they keep coming.
for i in $(seq 600); do
	[ "$(wc -l <"$T_TMP/acked")" -ge 300 ] && break
	sleep 0.05
done
kill -9 "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
KILLED_AT=$(wc -l <"$T_TMP/acked")
sleep 0.5
for try in 1 2 3 4 5; do
	srv_start "$LISTEN"
	[ -n "$URL" ] && break
	sleep 1
done
if [ -n "$URL" ]; then ok "killed with -9 after $KILLED_AT acknowledged submits, restarted on $LISTEN"; else not_ok "restart" "$(tail -5 "$T_TMP/server.log")"; fi
wait "$SUB_PID"
ACKED=$(wc -l <"$T_TMP/acked")
REFUSED=$(wc -l <"$T_TMP/refused" 2>/dev/null || echo 0)
echo "# $ACKED submits acknowledged, $REFUSED not (server down)"
if [ "$ACKED" -gt "$KILLED_AT" ]; then ok "submits went on after the restart"; else not_ok "submits went on after the restart" "acked $ACKED"; fi

# Every acknowledged run is there.
: >"$T_TMP/stored"
after=
while :; do
	curl -s -H "Authorization: Bearer $TOKEN" "$URL/v1/runs?name=k9&limit=1000${after:+&after=$after}" >"$T_TMP/page"
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('\n'.join(r['id'] for r in d['runs']))" "$T_TMP/page" >>"$T_TMP/stored"
	after=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['next_after'] or '')" "$T_TMP/page")
	[ -n "$after" ] || break
done
missing=$(sort -u "$T_TMP/acked" | comm -23 - <(sort -u "$T_TMP/stored") | head -5)
equals "every acknowledged submit survived the kill" "$missing" ""
dups=$(sort "$T_TMP/stored" | uniq -d | head -3)
equals "no run is stored twice" "$dups" ""
STORED=$(grep -c . "$T_TMP/stored")
if [ "$STORED" -le $N ]; then ok "at most one run per idempotency key ($STORED)"; else not_ok "at most one run per key" "$STORED"; fi

kill -TERM "$SRV_PID"
st=0
wait "$SRV_PID" || st=$?
equals "the restarted server stops cleanly" "$st" "0"
expect_status 0 "integrity_check ok and no temp blobs left" "$PILOT" server check --data "$DATA"
equals "no upload file left" "$(find "$DATA/uploads" -type f | wc -l)" "0"
done_testing
