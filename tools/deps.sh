# The Debian 12 packages pilot needs to build, test and run its e2e suite, installed in
# one place for tools/try.sh, tools/test.sh and .ci/run. Sourced, not run.
PILOT_BUILD_PACKAGES="meson ninja-build pkg-config gcc libc6-dev libsqlite3-dev libyaml-dev
 libcurl4-openssl-dev libarchive-dev zlib1g-dev libmicrohttpd-dev libjansson-dev libssl-dev scdoc"
PILOT_TEST_PACKAGES="libcmocka-dev clang libclang-rt-14-dev bash-completion sqlite3 python3 git
 tmux docker.io busybox-static runc podman uidmap prometheus curl iproute2 procps psmisc tzdata
 chromium"

pilot_install_deps() {
	local want="$PILOT_BUILD_PACKAGES ${1:-}" missing="" p
	for p in $want; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing:$missing" >&2
	$sudo apt-get update -qq >&2 || return 1
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
}
