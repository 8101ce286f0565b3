#!/usr/bin/env bash
# Podman as a second engine: a rootful `podman system service` on a private socket, with the
# test image imported into it, for the e2e suite (scripts/test.sh) and for trying by hand.
#
#   scripts/podman-service.sh start     # idempotent; prints the socket path on stdout
#   scripts/podman-service.sh stop      # stops the service this script started
#   scripts/podman-service.sh status    # exit 0 when the socket answers /_ping
#
# Then point uwsgi-docker at it:
#   UWSGIDOCKER_DAEMON_SOCKET=/run/uwsgi-docker-podman/podman.sock
#
# What `start` does, each step skipped when already done:
# 1. Installs Debian's podman (4.3 on Debian 12) with netavark (the network backend that
#    publishes ports) and catatonit (the init for `docker-init`), if missing. No recommends:
#    rootless helpers (uidmap, slirp4netns, fuse-overlayfs) and buildah are not needed.
# 2. Starts `podman system service --time=0 unix://$SOCK` in the background (its own
#    session, so it outlives this script; pid in $DIR/podman.pid, log in $DIR/service.log)
#    and waits until `GET /_ping` answers OK.
# 3. Writes `default_ulimits` in the `[containers]` table of /etc/containers/containers.conf.
#    Why: rootful Podman gives every container nofile and nproc limits of 1048576 unless
#    told otherwise, and where the process that runs it has lower hard limits (this sandbox)
#    raising them is refused: every start fails with "error setting rlimit type 7: operation not
#    permitted" (type 6 for nproc). So the key sets nofile and nproc to the hard limits of
#    the process that runs Podman, read from the running service (/proc/PID/limits; not
#    `ulimit -H` of this shell: Podman 4.3 lowers its own nproc to 32768 at start), and the
#    service is restarted once when that changed the file. Here that is
#    nofile=20000:20000, nproc=32768:32768. Only that key (and the comment line above it) is
#    added or replaced; every other setting of an existing file is kept. $CONTAINERS_CONF,
#    when set, names the file, as for Podman itself.
# 4. Imports the test image into Podman's store with scripts/build-test-image.sh
#    (ENGINE=podman: the same rootfs, the same labels, the same smoke test).
#
# Env: UWSGIDOCKER_PODMAN_DIR   where the socket, pid file and log go (default
#                               /run/uwsgi-docker-podman)
#      UWSGIDOCKER_PODMAN_IMAGE=0  skip step 4
set -euo pipefail

cd "$(dirname "$0")/.."

DIR="${UWSGIDOCKER_PODMAN_DIR:-/run/uwsgi-docker-podman}"
SOCK="$DIR/podman.sock"
PIDFILE="$DIR/podman.pid"
LOG="$DIR/service.log"
# Podman reads $CONTAINERS_CONF instead of the system file when it is set; so do we.
CONF="${CONTAINERS_CONF:-/etc/containers/containers.conf}"
MARK="# set by uwsgi-docker's scripts/podman-service.sh: at most the hard limits of the process that runs podman"

SAY_PREFIX="podman-service:"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ping_ok() {
    [[ -S "$SOCK" ]] && [[ "$(curl -fsS --max-time 2 --unix-socket "$SOCK" http://podman/_ping 2>/dev/null)" == OK ]]
}

service_pid() {
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "podman system service" || return 1
    echo "$pid"
}

# A limit for containers.conf: the hard limit of this shell, or a large number when unlimited.
hard_limit() {
    local v
    v="$(ulimit -H "$1")"
    [[ "$v" == unlimited ]] && v=1048576
    echo "$v"
}

# The hard limit "$2" ("Max open files", "Max processes") of process $1, from /proc.
proc_hard_limit() {
    awk -v what="$2" 'index($0, what) == 1 {
        n = split(substr($0, length(what) + 1), f, " "); v = f[2]
        if (v == "unlimited") v = 1048576
        print v; exit }' "/proc/$1/limits"
}

# Prints $CONF (or nothing) with our key as the first entry of [containers], any other
# default_ulimits of that table (one line or a multi-line array) and our old mark dropped.
merged_conf() {
    local line="$1"
    [[ -f "$CONF" ]] || {
        printf '[containers]\n%s\n%s\n' "$MARK" "$line"
        return
    }
    awk -v line="$line" -v mark="$MARK" '
        function header(s) { return s ~ /^[ \t]*\[/ }
        BEGIN { sec = ""; done = 0; skipping = 0 }
        skipping { if ($0 ~ /\]/) skipping = 0; next }
        $0 == mark { next }
        header($0) {
            name = $0; sub(/^[ \t]*\[+[ \t]*/, "", name); sub(/[ \t]*\]+.*$/, "", name)
            sec = name
            print
            if (sec == "containers" && !done) { print mark; print line; done = 1 }
            next
        }
        sec == "containers" && $0 ~ /^[ \t]*default_ulimits[ \t]*=/ {
            v = $0; sub(/^[^=]*=/, "", v); sub(/#.*/, "", v)
            if (v ~ /\[/ && v !~ /\]/) skipping = 1
            next
        }
        { print }
        END { if (!done) { print ""; print "[containers]"; print mark; print line } }
    ' "$CONF"
}

# write_conf NOFILE NPROC: returns 0 when the file changed.
write_conf() {
    local line tmp
    line="default_ulimits = [\"nofile=$1:$1\", \"nproc=$2:$2\"]"
    mkdir -p "$(dirname "$CONF")"
    tmp="$(mktemp "$CONF.XXXXXX")"
    merged_conf "$line" >"$tmp"
    if [[ -f "$CONF" ]] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        return 1
    fi
    chmod 0644 "$tmp"
    mv -f "$tmp" "$CONF"
    say "wrote $CONF: $line"
    return 0
}

stop_service() {
    local pid
    pid="$(service_pid || true)"
    if [[ -n "$pid" ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        say "stopped the service (pid $pid)"
    fi
    rm -f "$PIDFILE" "$SOCK"
}

start_service() {
    mkdir -p "$DIR"
    chmod 0700 "$DIR"
    rm -f "$SOCK"
    # setsid: its own session and process group, so it outlives this script and a ^C here.
    setsid podman system service --time=0 "unix://$SOCK" >>"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
        ping_ok && break
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || die "podman system service exited; its log ($LOG):
$(tail -20 "$LOG")"
        sleep 0.2
    done
    ping_ok || die "podman system service does not answer on $SOCK after 20 s; its log ($LOG):
$(tail -20 "$LOG")"
    say "podman $(podman version -f '{{.Server.Version}}' 2>/dev/null || echo '?') serving on $SOCK (pid $(cat "$PIDFILE"))"
}

case "${1:-}" in
    start)
        install_packages podman netavark catatonit curl
        ping_ok || start_service
        # Containers get their rlimits from the process that runs Podman, and Podman sets
        # some of its own at start (4.3 lowers nproc to 32768 where this shell has more), so
        # the values are read from the running service, and it is restarted once if that
        # changed the file (containers.conf is read at start).
        changed=0
        if pid="$(service_pid)"; then
            nofile="$(proc_hard_limit "$pid" "Max open files")"
            nproc="$(proc_hard_limit "$pid" "Max processes")"
            if write_conf "$nofile" "$nproc"; then
                changed=1
                stop_service
                start_service
            fi
        else
            # Someone else's service answers on our socket: this shell's limits, and say so.
            write_conf "$(hard_limit -n)" "$(hard_limit -u)" &&
                say "warning: $SOCK is not served by this script's podman; restart it to apply $CONF"
        fi
        ((changed)) || say "serving on $SOCK"
        if [[ "${UWSGIDOCKER_PODMAN_IMAGE:-1}" != 0 ]]; then
            ENGINE=podman scripts/build-test-image.sh
        fi
        echo "$SOCK"
        ;;
    stop)
        stop_service
        ;;
    status)
        ping_ok
        ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
