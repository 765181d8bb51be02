#!/usr/bin/env bash
# From a fresh Debian 12 machine to a passing test suite: install the build and test
# dependencies, build, run every test, and end with the line "N passed, N failed".
#   PILOT_BUILD_DIR   build directory (default build-test)
#   PILOT_MESON_OPTS  extra meson setup options (CI adds -Werror and the sanitizers)
set -u
cd "$(dirname "$0")/.."
. tools/deps.sh
pilot_install_deps "$PILOT_TEST_PACKAGES" || { echo "0 passed, 1 failed"; exit 1; }
dir=${PILOT_BUILD_DIR:-build-test}
if [ ! -d "$dir" ]; then
	# shellcheck disable=SC2086
	meson setup "$dir" ${PILOT_MESON_OPTS:-} || { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C "$dir" || { echo "0 passed, 1 failed"; exit 1; }
meson test -C "$dir" --print-errorlogs --num-processes "${PILOT_TEST_JOBS:-2}" ${PILOT_TEST_ARGS:-}
status=$?
python3 tools/test-summary.py "$dir/meson-logs/testlog.json"
exit $status
