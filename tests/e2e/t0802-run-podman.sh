#!/usr/bin/env bash
# pilot run against a private podman service: the cases every runtime passes.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/lib-engines.sh"
. "$SRCDIR/tests/e2e/run-cases.sh"
start_podman
import_busybox "$PODMAN_SOCK"
export CONTAINER_HOST=$PODMAN_ENDPOINT
RT=podman
# Without an init process the job's shell is PID 1, which SIGKILL from inside cannot end.
RT_SELF_KILL="sh -c 'kill -9 \$\$\$\$'; exit \$\$?"
RT_IMAGE="image: busybox"
rt_gone() { [ -z "$(engine_managed "$PODMAN_SOCK")" ]; }
plan $run_cases_plan
run_cases
done_testing
