#!/usr/bin/env bash
# The time of one `uwsgi-docker metrics` scrape at N vassals (default 300), printed as
# Markdown for BENCHMARKS.md.
#
#   scripts/bench/metrics.sh [N] [ROUNDS]
#
# What is measured: N running containers of the test image (an idle `uwsgi --http-socket`
# each, labelled as ours for one Emperor id) and N state files in a private runtime
# directory, as the bridges would have written them. No bridge runs: a scrape never talks
# to bridges, only to the state files, one container list, and each container's cgroup
# files (or its stats, where the cgroup cannot be read). Each round is one HTTP GET
# /metrics to a running `uwsgi-docker metrics --listen` (curl's total time), and one
# `uwsgi-docker metrics --once` (the process's wall time, start-up and API version
# negotiation included). Run it under the e2e lock (it makes containers):
#   flock /tmp/uwsgi-docker-e2e.lock scripts/bench/metrics.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

N="${1:-300}"
ROUNDS="${2:-20}"
IMAGE="${UWSGIDOCKER_TEST_IMAGE:-uwsgi-docker-test:latest}"
EMPEROR="benchmetrics$$"
DIR="$(mktemp -d /tmp/uwsgi-docker-bench-metrics.XXXXXX)"
RUNTIME="$DIR/run"
PORT="${BENCH_METRICS_PORT:-19930}"
SERVER=""

SAY_PREFIX="bench-metrics:"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

cleanup() {
    [[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    docker ps -aq --filter "label=io.uwsgi-docker.emperor=$EMPEROR" | xargs -r docker rm -f >/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT

cargo build --release -q -p uwsgi-docker-cli
BIN="${CARGO_TARGET_DIR:-target}/release/uwsgi-docker"

say "starting $N containers"
mkdir -m 700 -p "$RUNTIME/$EMPEROR"
seq 1 "$N" | xargs -P 4 -I{} docker run -d --name "$EMPEROR-{}" \
    --label io.uwsgi-docker.managed=1 --label "io.uwsgi-docker.vassal=v{}.ini" \
    --label "io.uwsgi-docker.emperor=$EMPEROR" "$IMAGE" \
    uwsgi --http-socket :3031 --processes 1 >/dev/null
now="$(date +%s)"
while read -r id name; do
    i="${name##*-}"
    printf '{"vassal":"v%s.ini","emperor":"%s","bridge":"bench:1:1","container":"%s","up":true,"starts":3,"rollovers":0,"failures":{"exited":2},"log_bytes":12345,"spawn":{"buckets":[0,1,0,0,0,0,0,0,0],"sum":0.8,"count":1},"started_at":%s,"updated_at":%s}' \
        "$i" "$EMPEROR" "$id" "$now" "$now" >"$RUNTIME/$EMPEROR/v$i.ini.state"
done < <(docker ps --no-trunc --filter "label=io.uwsgi-docker.emperor=$EMPEROR" --format '{{.ID}} {{.Names}}')
running="$(docker ps -q --filter "label=io.uwsgi-docker.emperor=$EMPEROR" | wc -l)"
say "$running containers running, $(ls "$RUNTIME/$EMPEROR" | wc -l) state files"

export UWSGIDOCKER_RUNTIME_DIR="$RUNTIME"
samples="$("$BIN" metrics --once --emperor "$EMPEROR" | grep -c '^uwsgi_docker_container_memory_bytes{' || true)"
"$BIN" metrics --listen "127.0.0.1:$PORT" --emperor "$EMPEROR" 2>/dev/null &
SERVER=$!
for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/metrics" && break; sleep 0.1; done

http=()
once=()
for _ in $(seq "$ROUNDS"); do
    http+=("$(curl -fs -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/metrics" | awk '{ printf "%.1f", $1 * 1000 }')")
    start="$(date +%s%N)"
    "$BIN" metrics --once --emperor "$EMPEROR" >/dev/null
    once+=("$(( ($(date +%s%N) - start) / 100000 ))")
done
once_ms=()
for t in "${once[@]}"; do once_ms+=("$(awk -v t="$t" 'BEGIN { printf "%.1f", t / 10 }')"); done
list_ms="$(curl -s -o /dev/null -w '%{time_total}' --unix-socket "${UWSGIDOCKER_DAEMON_SOCKET:-/var/run/docker.sock}" \
    "http://docker/containers/json?all=1&filters=%7B%22label%22%3A%5B%22io.uwsgi-docker.managed%3D1%22%5D%7D" | awk '{ printf "%.1f", $1 * 1000 }')"

cat <<EOF
### Scrape time at $N vassals

$running running containers labelled as ours (an idle \`uwsgi --http-socket\` each) and $N
state files; memory from the cgroup for $samples of them; $ROUNDS rounds, $(nproc) cores.

| what | median | max |
| --- | --- | --- |
| \`GET /metrics\` on \`uwsgi-docker metrics --listen\` | $(printf '%s\n' "${http[@]}" | median) ms | $(printf '%s\n' "${http[@]}" | sort -n | tail -1) ms |
| \`uwsgi-docker metrics --once\` (a new process: version request, list, files) | $(printf '%s\n' "${once_ms[@]}" | median) ms | $(printf '%s\n' "${once_ms[@]}" | sort -n | tail -1) ms |
| of which the daemon's container list alone (curl, once) | $list_ms ms | |
EOF
