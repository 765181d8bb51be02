#!/usr/bin/env bash
# pilot run against a private dockerd: the cases every runtime passes (run-cases.sh),
# the container's HostConfig, and no container left behind.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
. "$SRCDIR/tests/e2e/run-cases.sh"
start_dockerd
import_busybox "$DOCKER_SOCK"
export DOCKER_HOST=$DOCKER_ENDPOINT
RT=docker
RT_IMAGE="image: busybox"
rt_gone() { [ -z "$(engine_managed "$DOCKER_SOCK")" ]; }
plan $((run_cases_plan + 6))
run_cases

p=$(proj limits <<<'command: "echo started; sleep 300"
resources: {memory: 64MiB, cpus: 0.5}')
"$PILOT" run "$p" >"$T_TMP/lim.out" 2>&1 &
pid=$!
cid=$(wait_for_managed "$DOCKER_SOCK" "$pid")
hc=$(engine_api "$DOCKER_SOCK" GET "/containers/$cid/json")
equals "CapDrop is ALL" "$(json_get 'j["HostConfig"]["CapDrop"]' <<<"$hc")" '["ALL"]'
contains "no-new-privileges is set" "$(json_get 'j["HostConfig"]["SecurityOpt"]' <<<"$hc")" "no-new-privileges"
equals "PidsLimit defaults to 4096" "$(json_get 'j["HostConfig"]["PidsLimit"]' <<<"$hc")" "4096"
equals "Memory is the spec's" "$(json_get 'j["HostConfig"]["Memory"]' <<<"$hc")" "67108864"
equals "NanoCpus is the spec's" "$(json_get 'j["HostConfig"]["NanoCpus"]' <<<"$hc")" "500000000"
kill -INT "$pid"
wait "$pid"
if rt_gone; then ok "the container is removed"; else not_ok "the container is removed"; fi
done_testing
