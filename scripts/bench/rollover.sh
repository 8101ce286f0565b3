#!/usr/bin/env bash
# Make-before-break, measured: an image change under wrk load, three ways, side by side.
#
#   scripts/bench/rollover.sh [SECONDS]     (default 20 s of load per scenario)
#
# (a) rollover: a docker-socket vassal under a stock Emperor wrapped by uwsgi-docker has its
#     docker-image changed from one tag to another; the bridge rolls over to a new container.
# (b) recreate: the same change for a vassal with a published port (docker-port): the bridge
#     removes the container and exits, and the Emperor starts the vassal again.
# (c) docker restart: a plain `docker run -d` container of the same image and uWSGI, restarted.
#
# For each: wrk (2 threads, 8 connections) for the whole window, the change 3 s in. Printed:
# wrk's answered requests and its failed ones: connect, write and timeout errors, non-2xx
# answers, and the read errors beyond one per answer (uWSGI closes every connection after
# its answer, which wrk counts as a read error, so a read error more than the answers is a
# connection that got none). And the gap in service: a probe (curl every 20 ms, 1 s
# timeout) beside wrk, the longest time between two answered probes after the change, next
# to the same before it (the probe's own jitter under load), and its failed probes. Both
# tags are the test image, told apart by the app's greeting. Everything it starts is
# removed on exit.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO="$PWD"
SECONDS_OF_LOAD="${1:-20}"
CHANGE_AFTER=3
BASE_PORT="${BENCH_BASE_PORT:-19300}"
IMAGE="uwsgi-docker-test"
PREFIX="broll$$"

SAY_PREFIX="bench/rollover:"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
now_ms() { echo $(($(date +%s%N) / 1000000)); }

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
command -v uwsgi >/dev/null || die "uwsgi is not installed (apt-get install uwsgi-core)"

say "building"
cargo build --release -q -p uwsgi-docker-cli
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/uwsgi-docker"
[[ -x "$BIN" ]] || die "the build did not produce $BIN"
scripts/build-test-image.sh
docker tag "$IMAGE:latest" "$IMAGE:roll-a"
docker tag "$IMAGE:latest" "$IMAGE:roll-b"

DIR="$(mktemp -d /tmp/uwsgi-docker-bench-rollover.XXXXXX)"
mkdir "$DIR/vassals"
EMPEROR_PID=""
LOAD_PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${LOAD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ -n "$EMPEROR_PID" ]] && kill -0 "$EMPEROR_PID" 2>/dev/null; then
        kill -INT "$EMPEROR_PID" 2>/dev/null || true
        for _ in $(seq 1 400); do kill -0 "$EMPEROR_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$EMPEROR_PID" 2>/dev/null || true
        wait "$EMPEROR_PID" 2>/dev/null || true
    fi
    local left
    docker rm -f "$PREFIX-restart" >/dev/null 2>&1 || true
    left="$(docker ps -aq --filter "name=^/?$PREFIX")"
    [[ -n "$left" ]] && { say "removing leftover containers"; docker rm -f $left >/dev/null 2>&1 || true; }
    rmdir "/run/uwsgi-docker/$PREFIX" 2>/dev/null || true
    if ((rc == 0)); then rm -rf "$DIR"; else say "kept $DIR"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits up to 60 s for a 200 whose body is $2 on port $1.
wait_body() {
    local deadline=$(($(now_ms) + 60000))
    until [[ "$(curl -fsS --max-time 0.5 "http://127.0.0.1:$1/" 2>/dev/null)" == "$2" ]]; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.05
    done
}

# Writes vassal file NAME whole, with its mtime moved forward so the Emperor sees a rewrite
# within the same second.
write_vassal() { # name text
    printf '%s' "$2" >"$DIR/.$1"
    touch -d "+2 seconds" "$DIR/.$1"
    mv "$DIR/.$1" "$DIR/vassals/$1"
}

socket_vassal() { # port tag greeting
    cat <<EOF
[emperor]
docker-image = $IMAGE:$2
docker-socket = 127.0.0.1:$1

[uwsgi]
master = true
plugin = psgi
psgi = /var/www/app.pl
protocol = http
processes = 2
env = GREETING=$3
EOF
}

port_vassal() { # port tag greeting
    cat <<EOF
[emperor]
docker-image = $IMAGE:$2
docker-port = 127.0.0.1:$1:3031

[uwsgi]
master = true
plugin = psgi
psgi = /var/www/app.pl
http-socket = 0.0.0.0:3031
processes = 2
env = GREETING=$3
EOF
}

# Probes port $1 every 20 ms until $2 (ms), one "ms ok|fail" line each, into file $3.
probe() {
    local port="$1" until="$2" out="$3"
    while (($(now_ms) < until)); do
        if curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
            echo "$(now_ms) ok"
        else
            echo "$(now_ms) fail"
        fi >>"$out"
        sleep 0.02
    done
}

# Runs load on port $1 for the window, calls "$2" (a function) after CHANGE_AFTER s, and
# prints one Markdown row for label $3.
measure() { # port change label
    local port="$1" change="$2" label="$3" start until changed
    local wrk_out="$DIR/wrk-$port.txt" probe_out="$DIR/probe-$port.txt"
    : >"$probe_out"
    start=$(now_ms)
    until=$((start + SECONDS_OF_LOAD * 1000))
    wrk -t2 -c8 -d"${SECONDS_OF_LOAD}s" --timeout 2s "http://127.0.0.1:$port/" >"$wrk_out" 2>&1 &
    LOAD_PIDS+=($!)
    local wrk_pid=$!
    probe "$port" "$until" "$probe_out" &
    LOAD_PIDS+=($!)
    local probe_pid=$!
    sleep "$CHANGE_AFTER"
    changed=$(now_ms)
    "$change"
    wait "$wrk_pid" || true
    wait "$probe_pid" || true
    local requests failed gap gap_before probes_failed
    requests="$(awk '/requests in/ { print $1 }' "$wrk_out")"
    failed="$(awk -v answered="${requests:-0}" '
        /Socket errors/ { gsub(",", ""); connect = $4; read = $6; write = $8; timeout = $10 }
        /Non-2xx/ { non2xx = $NF }
        END { extra = read - answered; if (extra < 0) extra = 0; print connect + write + timeout + non2xx + extra }' "$wrk_out")"
    gap="$(awk -v after="$changed" '$2 == "ok" { if (last && $1 > after && $1 - last > gap) gap = $1 - last; last = $1 } END { print gap + 0 }' "$probe_out")"
    gap_before="$(awk -v after="$changed" '$2 == "ok" && $1 <= after { if (last && $1 - last > gap) gap = $1 - last; last = $1 } END { print gap + 0 }' "$probe_out")"
    probes_failed="$(grep -c ' fail$' "$probe_out" || true)"
    printf '| %s | %s | %s | %s ms (%s ms before) | %s |\n' "$label" "${requests:-0}" \
        "$failed" "$gap" "$gap_before" "$probes_failed"
    say "$label: wrk said: $(tr '\n' ' ' <"$wrk_out" | sed 's/  */ /g')"
}

say "starting an Emperor wrapped by uwsgi-docker"
UWSGIDOCKER_NAME_PREFIX="$PREFIX-" UWSGIDOCKER_EMPEROR_ID="$PREFIX" \
    uwsgi --emperor "dir://$DIR/vassals" --emperor-wrapper "$BIN" --emperor-freq 1 \
    --logto "$DIR/emperor.log" &
EMPEROR_PID=$!

ROLL_PORT=$BASE_PORT
RECREATE_PORT=$((BASE_PORT + 1))
RESTART_PORT=$((BASE_PORT + 2))

write_vassal roll.ini "$(socket_vassal "$ROLL_PORT" roll-a a)"
write_vassal recreate.ini "$(port_vassal "$RECREATE_PORT" roll-a a)"
docker run -d --name "$PREFIX-restart" -p "127.0.0.1:$RESTART_PORT:3031" -e GREETING=a \
    --stop-signal SIGINT --stop-timeout 10 "$IMAGE:roll-a" \
    uwsgi --master --plugin psgi --psgi /var/www/app.pl --http-socket 0.0.0.0:3031 --processes 2 >/dev/null
for port in "$ROLL_PORT" "$RECREATE_PORT" "$RESTART_PORT"; do
    wait_body "$port" a || { tail -n 40 "$DIR/emperor.log" >&2; die "port $port never answered"; }
done

roll_change() { write_vassal roll.ini "$(socket_vassal "$ROLL_PORT" roll-b b)"; }
recreate_change() { write_vassal recreate.ini "$(port_vassal "$RECREATE_PORT" roll-b b)"; }
restart_change() { docker restart -t 10 "$PREFIX-restart" >/dev/null; }

say "measuring, ${SECONDS_OF_LOAD} s of load each, the change ${CHANGE_AFTER} s in"
echo "| image change under load | answered requests | failed requests | longest gap between answered probes after the change | failed probes |"
echo "| --- | --- | --- | --- | --- |"
measure "$ROLL_PORT" roll_change "rollover (docker-socket)"
wait_body "$ROLL_PORT" b || die "the rolled-over vassal does not answer with the new tag"
measure "$RECREATE_PORT" recreate_change "recreate (docker-port, today's behaviour)"
wait_body "$RECREATE_PORT" b || die "the recreated vassal does not answer with the new tag"
measure "$RESTART_PORT" restart_change "\`docker restart\`"
grep -c "the rollover is complete" "$DIR/emperor.log" >/dev/null || die "no rollover in the log"
say "machine: $(nproc) cores, $(uname -sr), Docker $(docker version -f '{{.Server.Version}}' 2>/dev/null), $(uwsgi --version)"
