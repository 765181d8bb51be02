#!/usr/bin/env bash
# From a fresh Debian 12 machine to a running example job: install what pilot needs,
# build it, and run examples/hello.
set -eu
cd "$(dirname "$0")/.."
. tools/deps.sh
pilot_install_deps
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
./build/cmd/pilot validate examples/hello
# docker when its engine answers, else podman, else the host (with a notice).
./build/cmd/pilot run examples/hello
