#!/usr/bin/env bash
# From a fresh Debian 12 machine to a running example job: install what pilot needs,
# build it (without the tests, which need more packages), and run examples/hello.
# Every step shows its own output; a failure names the step.
set -u
cd "$(dirname "$0")/.."

fail() { echo "try.sh: $1 failed (see the output above)" >&2; exit 1; }

. tools/deps.sh
pilot_install_deps || fail "installing the build packages"
if [ ! -f build/meson-info/intro-buildoptions.json ]; then
	rm -rf build
	meson setup build -Dtests=false || fail "meson setup"
elif ! meson configure build | grep -Eq '^ *tests +false'; then
	# A build folder from tools/test.sh or by hand: the tests need packages try.sh
	# does not install.
	meson configure build -Dtests=false || fail "meson configure"
fi
ninja -C build || fail "the build (ninja -C build)"
./build/cmd/pilot validate examples/hello || fail "pilot validate examples/hello"
# docker when its engine answers, else podman, else the host (with a notice).
status=0
./build/cmd/pilot run examples/hello || status=$?
echo "try.sh: built $(pwd)/build/cmd/pilot; 'pilot run examples/hello' exited $status"
exit "$status"
