#!/usr/bin/env bash
# pilot server over HTTPS (--tls-cert/--tls-key) with a self-signed certificate: the
# client verifies it with the cacert setting and refuses it without.
. "$SRCDIR/tests/e2e/lib.sh"
command -v openssl >/dev/null || skip_all "openssl is not installed"

DATA="$T_TMP/data"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T_TMP/key.pem" -out "$T_TMP/cert.pem" -days 2 \
	-subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1 || skip_all "openssl cannot make a certificate"
TOKEN=$("$PILOT" server init --data "$DATA" 2>/dev/null)
"$PILOT" server --data "$DATA" --listen 127.0.0.1:0 --tls-cert "$T_TMP/cert.pem" --tls-key "$T_TMP/key.pem" \
	>"$T_TMP/url" 2>"$T_TMP/server.log" &
SRV_PID=$!
at_exit "kill -9 $SRV_PID 2>/dev/null"
for i in $(seq 200); do [ -s "$T_TMP/url" ] && break; kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.05; done
URL=$(head -1 "$T_TMP/url")
if grep -q 'built without TLS' "$T_TMP/server.log" 2>/dev/null; then
	skip_all "libmicrohttpd without TLS"
fi
plan 6
case $URL in https://127.0.0.1:*) ok "the server speaks HTTPS ($URL)" ;; *) not_ok "the server speaks HTTPS" "$(cat "$T_TMP/server.log")" ;; esac

export PILOT_TOKEN="$TOKEN" PILOT_HTTP_RETRIES=0
expect_status 1 "without the CA the client refuses the certificate" "$PILOT" --server "$URL" whoami
contains "saying why" "$ERR" "certificate"
expect_status 0 "with cacert it verifies it" env PILOT_CACERT="$T_TMP/cert.pem" "$PILOT" --server "$URL" whoami
equals "and talks to the server" "$OUT" "admin"
kill -TERM "$SRV_PID"
st=0
wait "$SRV_PID" || st=$?
equals "a clean stop" "$st" "0"
done_testing
