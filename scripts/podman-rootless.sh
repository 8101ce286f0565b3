#!/usr/bin/env bash
# Rootless Podman for the e2e suites: `podman system service` run by an unprivileged user
# on that user's socket, with the test image loaded into that user's store.
#
#   scripts/podman-rootless.sh start   # idempotent; prints the socket path on stdout
#   scripts/podman-rootless.sh stop    # stops the service and that user's containers
#   scripts/podman-rootless.sh status  # exit 0 when the socket answers /_ping
#
# What `start` does, each step skipped when already done:
# 1. Installs Debian's podman and uidmap (newuidmap/newgidmap: the user namespace's ranges).
# 2. Creates the user $UWSGIDOCKER_ROOTLESS_USER (default uwsgi-rootless; `useradd -m`
#    gives it /etc/subuid and /etc/subgid ranges) and its runtime directory
#    /run/user/UID (0700, its own), as a login would.
# 3. Starts `podman system service --time=0` as that user on /run/user/UID/podman/podman.sock
#    (pid and log beside it) and waits until `GET /_ping` answers OK.
# 4. Loads the test image from the main daemon (`docker save | podman load`).
#
# Root reaches the socket; the bridges run as root and talk to it with
# UWSGIDOCKER_DAEMON_SOCKET. The containers run in the user's namespace: see the README's
# "Rootless engines" for what that changes (the proxy socket's directory and mode).
set -euo pipefail

cd "$(dirname "$0")/.."

USER_NAME="${UWSGIDOCKER_ROOTLESS_USER:-uwsgi-rootless}"
IMAGES="${UWSGIDOCKER_ROOTLESS_IMAGES:-uwsgi-docker-test:latest}"

SAY_PREFIX="podman-rootless:"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_user() {
    id -u "$USER_NAME" >/dev/null 2>&1 || useradd -m -s /usr/sbin/nologin "$USER_NAME"
    grep -q "^$USER_NAME:" /etc/subuid || die "$USER_NAME has no /etc/subuid range"
    grep -q "^$USER_NAME:" /etc/subgid || die "$USER_NAME has no /etc/subgid range"
}

uid() { id -u "$USER_NAME"; }
runtime_dir() { echo "/run/user/$(uid)"; }
dir() { echo "$(runtime_dir)/podman"; }
sock() { echo "$(dir)/podman.sock"; }

# The command prefix that runs a command as the user, with the environment a login gives it.
as_user_prefix() {
    local home
    home="$(getent passwd "$USER_NAME" | cut -d: -f6)"
    AS_USER=(setpriv --reuid="$(uid)" --regid="$(id -g "$USER_NAME")" --init-groups
        env -i HOME="$home" USER="$USER_NAME" LOGNAME="$USER_NAME" PATH=/usr/sbin:/usr/bin:/sbin:/bin
        XDG_RUNTIME_DIR="$(runtime_dir)")
}

as_user() {
    as_user_prefix
    (cd / && "${AS_USER[@]}" "$@")
}

ping_ok() {
    local s
    s="$(sock)" 2>/dev/null || return 1
    [[ -S "$s" ]] && [[ "$(curl -fsS --max-time 2 --unix-socket "$s" http://podman/_ping 2>/dev/null)" == OK ]]
}

start_service() {
    local rd
    rd="$(runtime_dir)"
    install -d -m 0700 -o "$USER_NAME" -g "$(id -g "$USER_NAME")" "$rd" "$(dir)"
    rm -f "$(sock)"
    # Its own session and process group (setsid), whose id the shell inside writes before
    # it becomes the service: rootless podman re-executes itself in the user namespace as a
    # child of that process, and stop ends the whole group.
    as_user_prefix
    # Every fd of the subshell is redirected before it execs: nothing the service holds
    # keeps a caller's `$(…)` open.
    (cd / && exec setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$(dir)/podman.pid" \
        "${AS_USER[@]}" podman system service --time=0 "unix://$(sock)") \
        >>"$(dir)/service.log" 2>&1 </dev/null &
    for _ in $(seq 1 100); do
        ping_ok && break
        [[ -s "$(dir)/podman.pid" ]] || { sleep 0.1; continue; }
        kill -0 "$(cat "$(dir)/podman.pid")" 2>/dev/null || die "the service exited; its log:
$(tail -20 "$(dir)/service.log")"
        sleep 0.2
    done
    ping_ok || die "no answer on $(sock) after 20 s; its log:
$(tail -20 "$(dir)/service.log")"
    say "rootless podman $(as_user podman version -f '{{.Server.Version}}' 2>/dev/null || echo '?') as $USER_NAME serving on $(sock)"
}

load_images() {
    local image
    for image in $IMAGES; do
        as_user podman image exists "$image" && continue
        docker image inspect "$image" >/dev/null 2>&1 || die "$image is not on the main daemon (scripts/build-test-image.sh)"
        docker save "$image" | as_user podman load -q >&2
    done
}

stop_service() {
    id -u "$USER_NAME" >/dev/null 2>&1 || return 0
    local pidfile pid
    pidfile="$(dir)/podman.pid"
    # The user's containers outlive the service (conmon): stop them first.
    as_user podman rm -f -a -t 0 >/dev/null 2>&1 || true
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "podman system service"; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile" "$(sock)"
    # The pause process that holds the user namespace.
    as_user podman system migrate >/dev/null 2>&1 || true
}

case "${1:-}" in
    start)
        install_packages podman uidmap catatonit curl
        ensure_user
        ping_ok || start_service
        load_images
        sock
        ;;
    stop)
        stop_service
        say "stopped"
        ;;
    status) ping_ok ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
