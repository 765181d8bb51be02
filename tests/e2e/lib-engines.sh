# Container engines for the e2e tests (design §10): a private dockerd and a private
# podman service, each on its own socket and data directories under $T_TMP, with a
# busybox image imported from the busybox-static binary (no registry is reachable).
# Source it after lib.sh. Everything started here is stopped and removed at exit.
#
#   start_dockerd      sets DOCKER_SOCK and DOCKER_ENDPOINT (unix://...)
#   start_podman       sets PODMAN_SOCK and PODMAN_ENDPOINT
#   import_busybox SOCK [REPO]   imports the rootfs as REPO:latest (default busybox)
#   engine_api SOCK METHOD PATH [curl args...]   one API call, body on stdout
#   engine_managed SOCK   ids of the containers labelled pilot.managed=1, one a line
#   json_get EXPR         reads JSON on stdin, prints the Python expression on it (j = the value)
#
# The tests skip (not fail) only when a binary is missing or they are not root; an
# engine that is installed but does not start is a failure.

# Exec-root and run-root paths end up in unix socket paths (108 bytes at most): keep
# them short, outside $T_TMP.
engines_short_dir() {
	local d
	d=$(mktemp -d /tmp/pe.XXXXXX) || return 1
	at_exit "rm -rf '$d'"
	echo "$d"
}

engines_need() {
	local b
	for b in "$@"; do
		command -v "$b" >/dev/null 2>&1 || skip_all "$b is not installed"
	done
	[ "$(id -u)" -eq 0 ] || skip_all "starting a private container engine needs root"
	command -v curl >/dev/null 2>&1 || skip_all "curl is not installed"
	command -v python3 >/dev/null 2>&1 || skip_all "python3 is not installed"
}

bail() { echo "Bail out! $*"; exit 1; }

engine_api() {
	local sock=$1 method=$2 path=$3; shift 3
	curl -sS --max-time 120 --unix-socket "$sock" -X "$method" "$@" "http://localhost$path"
}

engine_wait_ping() {
	local sock=$1 log=$2 i
	for ((i = 0; i < 300; i++)); do
		[ "$(curl -s --max-time 2 --unix-socket "$sock" http://localhost/_ping 2>/dev/null)" = OK ] && return 0
		sleep 0.1
	done
	echo "# engine log:"; tail -n 30 "$log" | sed 's/^/#   /'
	return 1
}

json_get() {
	python3 -c 'import json,sys
j = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if not isinstance(v, (dict, list, bool)) and v is not None else json.dumps(v))' "$1"
}

# Processes (shims, conmon, containers) still holding one of our paths, killed by id.
engines_kill_holders() {
	local pat=$1 p
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = "$$" ] && continue
		if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$pat"; then
			kill -9 "${p#/proc/}" 2>/dev/null || true
		fi
	done
}

engines_unmount_under() {
	local dir m
	for dir in "$@"; do
		# Deepest first.
		awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
	done
}

engines_stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# A rootfs tar from /bin/busybox with every applet linked, built once per script.
busybox_rootfs_tar() {
	local tar=$T_TMP/busybox-rootfs.tar root=$T_TMP/busybox-rootfs a
	if [ ! -f "$tar" ]; then
		local bb=/bin/busybox
		[ -x "$bb" ] || bb=$(command -v busybox) || skip_all "busybox is not installed (package busybox-static)"
		mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/proc" "$root/sys" "$root/dev"
		chmod 1777 "$root/tmp"
		cp "$bb" "$root/bin/busybox"
		for a in $("$root/bin/busybox" --list); do
			[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
		done
		printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
		printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
		tar -C "$root" -cf "$tar" . || bail "cannot build the busybox rootfs"
	fi
	echo "$tar"
}

# import_busybox SOCK [REPO [CHANGE]]: CHANGE is a Dockerfile instruction applied on import.
import_busybox() {
	local sock=$1 repo=${2:-busybox} change=${3:-} tar out q
	tar=$(busybox_rootfs_tar)
	q="fromSrc=-&repo=$repo&tag=latest"
	[ -n "$change" ] && q="$q&changes=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$change")"
	out=$(engine_api "$sock" POST "/images/create?$q" -H 'Content-Type: application/x-tar' --data-binary "@$tar") ||
		bail "cannot import the busybox image: $out"
	case $out in *'"error'*) bail "cannot import the busybox image: $out" ;; esac
	[ "$(engine_api "$sock" GET "/images/$repo:latest/json" -o /dev/null -w '%{http_code}')" = 200 ] ||
		bail "the imported image $repo:latest is not there: $out"
}

start_dockerd() {
	engines_need dockerd containerd runc
	local ex data
	ex=$(engines_short_dir) || bail "cannot make a short temp dir"
	data=$T_TMP/docker-data
	DOCKER_SOCK=$T_TMP/docker.sock
	DOCKER_ENDPOINT=unix://$DOCKER_SOCK
	echo '{}' >"$T_TMP/docker-daemon.json"
	# --bridge=none: no docker0 and no iptables, nothing outside our own dirs is touched.
	dockerd --config-file "$T_TMP/docker-daemon.json" --iptables=false --ip6tables=false --bridge=none \
		--storage-driver=vfs --host "unix://$DOCKER_SOCK" --data-root "$data" --exec-root "$ex" \
		--pidfile "$T_TMP/docker.pid" >"$T_TMP/dockerd.log" 2>&1 &
	DOCKERD_PID=$!
	at_exit "stop_dockerd '$ex' '$data'"
	engine_wait_ping "$DOCKER_SOCK" "$T_TMP/dockerd.log" || bail "dockerd did not start (log above)"
	export DOCKER_SOCK DOCKER_ENDPOINT
}

stop_dockerd() {
	local ex=$1 data=$2 id
	# Containers first, while the engine still answers (they hold mounts).
	for id in $(engine_api "$DOCKER_SOCK" GET '/containers/json?all=1' 2>/dev/null | json_get '" ".join(c["Id"] for c in j)' 2>/dev/null); do
		engine_api "$DOCKER_SOCK" DELETE "/containers/$id?force=1" >/dev/null 2>&1
	done
	engines_stop_pid "$DOCKERD_PID"
	engines_kill_holders "$ex"
	engines_unmount_under "$ex" "$data"
	rm -rf "$data" "$ex"
}

start_podman() {
	engines_need podman runc
	local short
	short=$(engines_short_dir) || bail "cannot make a short temp dir"
	PODMAN_SOCK=$T_TMP/podman.sock
	PODMAN_ENDPOINT=unix://$PODMAN_SOCK
	PODMAN_ARGS=(--root "$T_TMP/podman-root" --runroot "$short/run" --tmpdir "$short/tmp" --storage-driver vfs
		--runtime runc --cgroup-manager cgroupfs --events-backend file)
	# crun fails on this kernel's cgroups; runc works (design §10).
	podman "${PODMAN_ARGS[@]}" system service --time=0 "unix://$PODMAN_SOCK" >"$T_TMP/podman.log" 2>&1 &
	PODMAN_PID=$!
	at_exit "stop_podman '$short'"
	engine_wait_ping "$PODMAN_SOCK" "$T_TMP/podman.log" || bail "podman system service did not start (log above)"
	export PODMAN_SOCK PODMAN_ENDPOINT
}

stop_podman() {
	local short=$1 id
	for id in $(engine_api "$PODMAN_SOCK" GET '/containers/json?all=1' 2>/dev/null | json_get '" ".join(c["Id"] for c in j)' 2>/dev/null); do
		engine_api "$PODMAN_SOCK" DELETE "/containers/$id?force=1" >/dev/null 2>&1
	done
	engines_stop_pid "$PODMAN_PID"
	engines_kill_holders "$short"
	engines_kill_holders "$T_TMP/podman-root"
	engines_unmount_under "$short" "$T_TMP/podman-root"
	rm -rf "$T_TMP/podman-root" "$short" 2>/dev/null || true
}

# Ids of the containers this engine has with label pilot.managed=1 (running or not).
engine_managed() {
	engine_api "$1" GET '/containers/json?all=1&filters=%7B%22label%22%3A%5B%22pilot.managed%3D1%22%5D%7D' |
		json_get '"\n".join(c["Id"] for c in j)'
}

# wait_for_managed SOCK [PID]: waits (up to 60 s, or until process PID is gone) until a
# pilot container runs; prints its id.
wait_for_managed() {
	local i id
	for ((i = 0; i < 300; i++)); do
		id=$(engine_api "$1" GET '/containers/json?filters=%7B%22label%22%3A%5B%22pilot.managed%3D1%22%5D%7D' |
			json_get '"\n".join(c["Id"] for c in j)' 2>/dev/null | head -n 1)
		[ -n "$id" ] && { echo "$id"; return 0; }
		[ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && return 1
		sleep 0.2
	done
	return 1
}

# skip_one REASON: one test point skipped (TAP "# SKIP").
skip_one() { T_NUM=$((T_NUM + 1)); echo "ok $T_NUM # SKIP $1"; }
