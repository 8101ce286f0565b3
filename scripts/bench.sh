#!/usr/bin/env bash
# Measure the figures in BENCHMARKS.md and print them as Markdown table rows.
#
#   scripts/bench.sh [ROUNDS]     (default 5 rounds for the spawn figures)
#
# 1. Spawn time to the first HTTP 200: a vassal file written into the directory of a stock
#    Emperor wrapped by uwsgi-docker (includes the Emperor's directory scan); the same vassal
#    by `uwsgi-docker run FILE` (the bridge alone); `docker run -d` of the same image and
#    uWSGI command (the baseline).
# 2. Idle bridge memory: USS (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) of
#    each bridge with 20 vassals running.
# 3. Idle bridge CPU: utime + stime ticks of all 20 bridges over 10 idle seconds.
#
# Everything runs on 127.0.0.1 and is removed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
ROUNDS="${1:-5}"
VASSALS=20
IDLE_SECS=10
BASE_PORT="${BENCH_BASE_PORT:-19100}"
IMAGE="uwsgi-docker-test"
PREFIX="bench$$"

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# Waits up to 60 s for a 200 on the port; prints nothing, fails on timeout.
wait_200() {
    local port="$1" deadline=$(($(now_ms) + 60000))
    until curl -fsS --max-time 0.25 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.02
    done
}

# Waits up to 60 s for a 200 from container NAME's own address (port 3031), bypassing the
# published port and its userland proxy: when uWSGI itself is ready.
wait_200_in() {
    local name="$1" ip="" deadline=$(($(now_ms) + 60000))
    until [[ -n "$ip" ]] && curl -fsS --max-time 0.25 -o /dev/null "http://$ip:3031/" 2>/dev/null; do
        (($(now_ms) < deadline)) || return 1
        [[ -n "$ip" ]] || ip="$(docker inspect -f '{{.NetworkSettings.IPAddress}}' "$name" 2>/dev/null || true)"
        sleep 0.02
    done
}

# Pids of the bridges of this run.
bridge_pids() {
    local p
    for p in /proc/[0-9]*; do
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "^\[uwsgi-docker-bridge\] $PREFIX" && echo "${p#/proc/}"
    done
    return 0
}

say "building"
cargo build --release -q -p uwsgi-docker-cli
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/uwsgi-docker"
[[ -x "$BIN" ]] || die "the build did not produce $BIN"
scripts/build-test-image.sh

DIR="$(mktemp -d /tmp/uwsgi-docker-bench.XXXXXX)"
mkdir "$DIR/vassals"
EMPEROR_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$EMPEROR_PID" ]] && kill -0 "$EMPEROR_PID" 2>/dev/null; then
        kill -INT "$EMPEROR_PID" 2>/dev/null || true
        for _ in $(seq 1 400); do kill -0 "$EMPEROR_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$EMPEROR_PID" 2>/dev/null || true
        wait "$EMPEROR_PID" 2>/dev/null || true
    fi
    local left
    left="$(docker ps -aq --filter "name=^/?$PREFIX")"
    [[ -n "$left" ]] && { say "removing leftover containers"; docker rm -f $left >/dev/null 2>&1 || true; }
    if ((rc == 0)); then rm -rf "$DIR"; else say "kept $DIR"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Writes vassal NAME, published on PORT, into DEST_DIR (default: the Emperor's directory),
# whole at once so the Emperor never sees half a file.
vassal() { # name port [dest_dir]
    local dest="${3:-$DIR/vassals}"
    cat >"$DIR/.$1" <<EOF
[emperor]
docker-image = $IMAGE
docker-port = 127.0.0.1:$2:3031

[uwsgi]
master = true
plugin = psgi
psgi = /var/www/app.pl
http-socket = 0.0.0.0:3031
EOF
    mv "$DIR/.$1" "$dest/$1"
}

UWSGI_CMD=(uwsgi --master --plugin psgi --psgi /var/www/app.pl --http-socket 0.0.0.0:3031)

# Appends to array OUT the ms from `uwsgi-docker run` of a new vassal NAME (published on
# PORT) to the first 200 that the rest of the arguments (a probe command) reports.
time_bridge_run() { # out name port probe...
    local -n out="$1"
    local name="$2" port="$3" t0 pid
    shift 3
    vassal "$name" "$port" "$DIR"
    t0=$(now_ms)
    "$BIN" run "$DIR/$name" >>"$DIR/run.log" 2>&1 &
    pid=$!
    "$@" || { tail -n 30 "$DIR/run.log" >&2; kill -INT "$pid"; die "uwsgi-docker run $name did not answer"; }
    out+=($(($(now_ms) - t0)))
    kill -INT "$pid"
    wait "$pid" || true
}

# Appends to array OUT the ms from `docker run -d` of container NAME (with the extra docker
# arguments in the array named by DOCKER_ARGS) to the first 200 of the probe command.
# The probe runs while `docker run -d` is still starting, exactly as for the bridge: a probe
# that reaches a published port before the container's network is up costs the same
# (docker-proxy's first connect to the container waits for a retransmit) either way.
time_docker_run() { # out name docker_args probe...
    local -n out="$1"
    local -n extra="$3"
    local name="$2" t0 pid
    shift 3
    t0=$(now_ms)
    docker run -d --name "$name" "${extra[@]}" "$IMAGE" "${UWSGI_CMD[@]}" >/dev/null &
    pid=$!
    "$@" || die "plain docker run $name did not answer"
    out+=($(($(now_ms) - t0)))
    wait "$pid"
    docker rm -f "$name" >/dev/null
}

say "starting the Emperor"
uwsgi --emperor "dir://$DIR/vassals" --emperor-wrapper "$BIN" --emperor-freq 1 \
    --logto "$DIR/emperor.log" </dev/null >"$DIR/emperor.out" 2>&1 &
EMPEROR_PID=$!
sleep 1

# --- 1. spawn time -----------------------------------------------------------------------
# The Emperor scans its directory every second (--emperor-freq 1), so up to 1 s of each
# wrapped figure is the scan; the table reports it as measured.
wrapped=()
direct=()
plain=()
direct_in=()
plain_in=()
for round in $(seq 1 "$ROUNDS"); do
    port=$((BASE_PORT + round))
    name="$PREFIX-spawn$round.ini"
    t0=$(now_ms)
    vassal "$name" "$port"
    wait_200 "$port" || { tail -n 30 "$DIR/emperor.log" >&2; die "wrapped vassal $name did not answer"; }
    wrapped+=($(($(now_ms) - t0)))
    rm "$DIR/vassals/$name"
    for _ in $(seq 1 150); do [[ -z "$(docker ps -aq --filter "name=^/?$name\$")" ]] && break; sleep 0.2; done

    port=$((BASE_PORT + 25 + round))
    time_bridge_run direct "$PREFIX-run$round.ini" "$port" wait_200 "$port"

    port=$((BASE_PORT + 50 + round))
    publish=(-p "127.0.0.1:$port:3031")
    time_docker_run plain "$PREFIX-plain$round" publish wait_200 "$port"

    # The same two again, probed on the container's own address.
    name="$PREFIX-runin$round.ini"
    time_bridge_run direct_in "$name" "$port" wait_200_in "$name"
    no_publish=()
    time_docker_run plain_in "$PREFIX-plainin$round" no_publish wait_200_in "$PREFIX-plainin$round"

    say "round $round: Emperor ${wrapped[-1]} ms, uwsgi-docker run ${direct[-1]} ms, docker run ${plain[-1]} ms; on the container's address: uwsgi-docker run ${direct_in[-1]} ms, docker run ${plain_in[-1]} ms"
done
wrapped_median="$(printf '%s\n' "${wrapped[@]}" | median)"
direct_median="$(printf '%s\n' "${direct[@]}" | median)"
plain_median="$(printf '%s\n' "${plain[@]}" | median)"
direct_in_median="$(printf '%s\n' "${direct_in[@]}" | median)"
plain_in_median="$(printf '%s\n' "${plain_in[@]}" | median)"

# --- 2 and 3. idle bridges ---------------------------------------------------------------
say "starting $VASSALS vassals"
for i in $(seq 1 "$VASSALS"); do
    vassal "$PREFIX-idle$i.ini" $((BASE_PORT + 100 + i))
done
for i in $(seq 1 "$VASSALS"); do
    wait_200 $((BASE_PORT + 100 + i)) || die "idle vassal $i did not answer"
done
sleep 2
mapfile -t pids < <(bridge_pids)
((${#pids[@]} == VASSALS)) || die "found ${#pids[@]} bridges, expected $VASSALS"

uss=()
for pid in "${pids[@]}"; do
    uss+=("$(awk '/^Private_(Clean|Dirty):/ { kb += $2 } END { print kb }' "/proc/$pid/smaps_rollup")")
done
uss_median="$(printf '%s\n' "${uss[@]}" | median)"
uss_max="$(printf '%s\n' "${uss[@]}" | sort -n | tail -1)"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
before=0
for pid in "${pids[@]}"; do before=$((before + $(ticks "$pid"))); done
sleep "$IDLE_SECS"
after=0
for pid in "${pids[@]}"; do after=$((after + $(ticks "$pid"))); done
cpu_ticks=$((after - before))
hz="$(getconf CLK_TCK)"

cat <<EOF

| figure | value | how |
| --- | --- | --- |
| spawn to first 200, Emperor + uwsgi-docker (median of $ROUNDS) | ${wrapped_median} ms | vassal file written -> 200, includes the Emperor's scan (every 1 s) |
| spawn to first 200, \`uwsgi-docker run FILE\` (median of $ROUNDS) | ${direct_median} ms | the bridge alone, no Emperor |
| spawn to first 200, \`docker run -d\` (median of $ROUNDS) | ${plain_median} ms | same image and uWSGI command |
| spawn to first 200 on the container's address, \`uwsgi-docker run FILE\` (median of $ROUNDS) | ${direct_in_median} ms | no published port: when uWSGI itself answers |
| spawn to first 200 on the container's address, \`docker run -d\` (median of $ROUNDS) | ${plain_in_median} ms | the same for the baseline |
| idle bridge USS (median / max of $VASSALS) | ${uss_median} / ${uss_max} KiB | Private_Clean + Private_Dirty, /proc/PID/smaps_rollup |
| idle CPU, all $VASSALS bridges over ${IDLE_SECS} s | ${cpu_ticks} ticks (${hz} Hz) | utime + stime, /proc/PID/stat |

machine: $(nproc) cores, $(uname -r), Docker $(docker version -f '{{.Server.Version}}'), $(uwsgi --version)
EOF
