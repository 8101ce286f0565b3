#!/usr/bin/env bash
# Docker 28.5 as a private engine beside the main daemon, for the e2e suites (scripts/test.sh)
# and for trying by hand.
#
#   scripts/docker-28.sh fetch   # Debian unstable's dockerd + containerd into $UWSGIDOCKER_D28_OPT
#   scripts/docker-28.sh start   # fetch, start the engine, load the test images; prints the socket
#   scripts/docker-28.sh stop    # stops it and removes its interface, mounts and directories
#   scripts/docker-28.sh check   # exit 0 when nothing of it is left (process, interface, mount, dir)
#   scripts/docker-28.sh status  # exit 0 when its socket answers /_ping
#
# Then point uwsgi-docker at it:
#   UWSGIDOCKER_DAEMON_SOCKET=/run/uwsgi-docker-d28/docker.sock
#
# fetch: apt-get's own download from Debian's unstable suite, on the mirror host the system's
# sources already use, with a private sources list, lists and cache directory (the system's
# sources and package state are never touched), then `dpkg -x`. Kept: `dockerd`,
# `docker-proxy`, `containerd`, `containerd-shim-runc-v2`, in $UWSGIDOCKER_D28_OPT/bin (default
# /opt/docker-28), so a re-run is quick. Their `runc` needs glibc 2.38; the host's runc runs
# the containers, and the host's `tini-static` is `docker-init`.
#
# start: its own containerd (config version 3: root, state, grpc and ttrpc sockets in its own
# directories, the CRI plugin off), then dockerd with its own socket, data root, exec root and
# pidfile, on a bridge interface made for it ($BRIDGE, $BRIDGE_CIDR; never docker0, and never
# `--bridge=none`, which deletes the host's docker0), with no iptables, no masquerading and no
# ip_forward change: published ports go through its docker-proxy on the host, and nothing
# leaves the machine. The test images are copied from the main daemon (`docker save | load`).
#
# stop: dockerd (SIGTERM, it stops its containers), then containerd and any shim left, then
# unmounts whatever is still mounted under its directories, deletes the interface and removes
# the directories. Safe to call when nothing runs, and from a trap after a failed test.
#
# Env: UWSGIDOCKER_D28_OPT     where the binaries are cached (default /opt/docker-28)
#      UWSGIDOCKER_D28_IMAGES  images to copy from the main daemon (default the two test images)
set -euo pipefail

cd "$(dirname "$0")/.."

OPT="${UWSGIDOCKER_D28_OPT:-/opt/docker-28}"
RUN=/run/uwsgi-docker-d28
DATA=/var/lib/uwsgi-docker-d28
SOCK="$RUN/docker.sock"
CTRD_SOCK="$RUN/containerd/containerd.sock"
BRIDGE=uwsgid28br0
BRIDGE_CIDR=10.231.0.1/24
IMAGES="${UWSGIDOCKER_D28_IMAGES:-uwsgi-docker-test:latest uwsgi-docker-test:forkpty}"
BINARIES=(dockerd docker-proxy containerd containerd-shim-runc-v2)

SAY_PREFIX="docker-28:"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ping_ok() {
    [[ -S "$SOCK" ]] && [[ "$(curl -fsS --max-time 2 --unix-socket "$SOCK" http://d28/_ping 2>/dev/null)" == OK ]]
}

# The mirror host of the system's Debian sources (one-line or deb822 format).
mirror() {
    local files=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] && files+=("$f")
    done
    ((${#files[@]})) || return 1
    # The URI of an entry whose suite is the release's main one (not -security, not -updates).
    awk '
        /^[ \t]*deb[ \t]/ {
            for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) break
            uri = $i; suite = $(i + 1)
            if (suite !~ /-/ && uri ~ /\/debian\/?$/) { print uri; exit }
        }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { if (uri ~ /\/debian\/?$/) { print uri; exit } }
    ' "${files[@]}" | head -1
}

fetch() {
    local b have=1
    for b in "${BINARIES[@]}"; do [[ -x "$OPT/bin/$b" ]] || have=0; done
    if ((have)); then
        return 0
    fi
    local uri work
    uri="$(mirror)" || true
    [[ -n "$uri" ]] || die "no Debian mirror in /etc/apt/sources.list(.d)"
    work="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" RETURN
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/x"
    echo "deb $uri unstable main" >"$work/sources.list"
    local apt=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=-
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
        -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
        -o APT::Sandbox::User=root)
    say "fetching docker.io and containerd from $uri unstable"
    apt-get "${apt[@]}" -qq update
    (cd "$work" && apt-get "${apt[@]}" -qq download docker.io containerd)
    local deb
    for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/x"; done
    mkdir -p "$OPT/bin"
    for b in "${BINARIES[@]}"; do
        local found
        found="$(find "$work/x/usr/bin" "$work/x/usr/sbin" -name "$b" -type f 2>/dev/null | head -1)"
        [[ -n "$found" ]] || die "$b is not in the packages"
        install -m 0755 "$found" "$OPT/bin/$b"
    done
    ls "$work"/*.deb | xargs -n1 basename >"$OPT/packages"
    say "cached in $OPT/bin: ${BINARIES[*]} ($(tr '\n' ' ' <"$OPT/packages"))"
}

write_configs() {
    mkdir -p "$RUN/containerd" "$DATA/containerd"
    chmod 0700 "$RUN" "$DATA"
    cat >"$RUN/containerd.toml" <<EOF
version = 3
root = "$DATA/containerd"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$CTRD_SOCK"

[ttrpc]
  address = "$CTRD_SOCK.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
EOF
    # No daemon.json of the host's: our own, empty but for the init.
    cat >"$RUN/daemon.json" <<EOF
{ "init-path": "$(command -v tini-static)" }
EOF
}

pid_of() {
    local pid
    pid="$(cat "$1" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Processes whose executable is one of ours, or that run in one of its containers' cgroups.
our_processes() {
    local ids=() dir pid exe id
    for dir in "$DATA"/docker/containers/*/; do
        [[ -d "$dir" ]] && ids+=("$(basename "$dir")")
    done
    for pid in /proc/[0-9]*; do
        pid="${pid#/proc/}"
        exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
        if [[ "$exe" == "$OPT/bin/"* ]]; then
            echo "$pid"
            continue
        fi
        for id in "${ids[@]}"; do
            if grep -qF "$id" "/proc/$pid/cgroup" 2>/dev/null; then
                echo "$pid"
                break
            fi
        done
    done
}

our_mounts() {
    awk -v run="$RUN" -v data="$DATA" '
        index($5, run) == 1 || index($5, data) == 1 { print $5 }' /proc/self/mountinfo
}

start() {
    command -v runc >/dev/null || die "runc is missing (Debian's runc package)"
    command -v tini-static >/dev/null || die "tini-static is missing (Debian's tini package)"
    fetch
    if ping_ok; then
        say "already serving on $SOCK"
    else
        stop_quietly
        write_configs
        ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
        ip addr replace "$BRIDGE_CIDR" dev "$BRIDGE"
        ip link set "$BRIDGE" up
        # PATH: our shim and docker-proxy first (the host has containerd 1.6's shim), then
        # the host's runc.
        local path="$OPT/bin:$PATH"
        PATH="$path" setsid "$OPT/bin/containerd" --config "$RUN/containerd.toml" \
            >>"$RUN/containerd.log" 2>&1 </dev/null &
        echo $! >"$RUN/containerd.pid"
        for _ in $(seq 1 100); do
            [[ -S "$CTRD_SOCK" ]] && break
            kill -0 "$(cat "$RUN/containerd.pid")" 2>/dev/null ||
                die "containerd exited: $(tail -20 "$RUN/containerd.log")"
            sleep 0.1
        done
        [[ -S "$CTRD_SOCK" ]] || die "containerd does not listen after 10 s: $(tail -20 "$RUN/containerd.log")"
        PATH="$path" setsid "$OPT/bin/dockerd" --config-file "$RUN/daemon.json" \
            -H "unix://$SOCK" --containerd "$CTRD_SOCK" \
            --data-root "$DATA/docker" --exec-root "$RUN/exec" --pidfile "$RUN/dockerd.pid" \
            --bridge "$BRIDGE" --iptables=false --ip6tables=false --ip-masq=false \
            --ip-forward=false --userland-proxy-path "$OPT/bin/docker-proxy" \
            >>"$RUN/dockerd.log" 2>&1 </dev/null &
        for _ in $(seq 1 300); do
            ping_ok && break
            sleep 0.1
        done
        ping_ok || die "dockerd does not answer on $SOCK after 30 s: $(tail -20 "$RUN/dockerd.log")"
        say "docker $(docker -H "unix://$SOCK" version -f '{{.Server.Version}} (API {{.Server.APIVersion}}, minimum {{.Server.MinAPIVersion}})') serving on $SOCK"
    fi
    local image
    for image in $IMAGES; do
        docker -H "unix://$SOCK" image inspect "$image" >/dev/null 2>&1 && continue
        docker image inspect "$image" >/dev/null 2>&1 || die "$image is not on the main daemon (scripts/build-test-image.sh)"
        docker save "$image" | docker -H "unix://$SOCK" load -q >&2
    done
    echo "$SOCK"
}

stop_quietly() {
    local pid ids
    if pid="$(pid_of "$RUN/dockerd.pid")"; then
        # Killed first: dockerd would give each its stop timeout.
        ids="$(docker -H "unix://$SOCK" ps -q 2>/dev/null || true)"
        [[ -z "$ids" ]] || docker -H "unix://$SOCK" kill $ids >/dev/null 2>&1 || true
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 30 || kill -KILL "$pid" 2>/dev/null || true
    fi
    if pid="$(pid_of "$RUN/containerd.pid")"; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    fi
    # Shims (and their containers) outlive containerd by design: any left are ours.
    for pid in $(our_processes); do kill -KILL "$pid" 2>/dev/null || true; done
    local m
    # Deepest first.
    for m in $(our_mounts | sort -r); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
    # --one-file-system: never into a mount that could not be removed.
    [[ -d "$DATA" ]] && rm -rf --one-file-system "$DATA"
    [[ -d "$RUN" ]] && rm -rf --one-file-system "$RUN"
    return 0
}

# Exit 0 when nothing is left; else names what is.
check() {
    local left=()
    local procs mounts
    procs="$(our_processes | tr '\n' ' ')"
    [[ -z "${procs// /}" ]] || left+=("processes: $procs")
    mounts="$(our_mounts | tr '\n' ' ')"
    [[ -z "${mounts// /}" ]] || left+=("mounts: $mounts")
    ip link show "$BRIDGE" >/dev/null 2>&1 && left+=("interface $BRIDGE")
    ip -o link show | grep -q "master $BRIDGE" && left+=("veths on $BRIDGE")
    [[ -e "$DATA" ]] && left+=("directory $DATA")
    [[ -e "$RUN" ]] && left+=("directory $RUN")
    if ((${#left[@]})); then
        say "left behind: ${left[*]}"
        return 1
    fi
    say "nothing left behind"
}

case "${1:-}" in
    fetch) fetch ;;
    start) start ;;
    stop)
        stop_quietly
        say "stopped"
        ;;
    check) check ;;
    status) ping_ok ;;
    *)
        echo "usage: $0 fetch|start|stop|check|status" >&2
        exit 2
        ;;
esac
