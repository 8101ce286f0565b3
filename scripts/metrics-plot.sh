#!/usr/bin/env bash
# A picture of the metrics over a real churn: an Emperor with three vassals (the test
# image's PSGI app), `uwsgi-docker metrics` scraped every second, a container killed every
# 20 s (the Emperor respawns it) and a fourth vassal added at 30 s; memory and starts per
# vassal, plotted with gnuplot.
#
#   scripts/metrics-plot.sh [SECONDS] [OUT.png]     (default 90, docs/metrics.png)
#
# It makes containers: run it under the e2e lock. It removes everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${1:-90}"
PNG="${2:-docs/metrics.png}"
IMAGE="${UWSGIDOCKER_TEST_IMAGE:-uwsgi-docker-test:latest}"
ID="plot$$"
DIR="$(mktemp -d /tmp/uwsgi-docker-plot.XXXXXX)"
PORT_BASE="${PLOT_BASE_PORT:-19960}"
METRICS_PORT=$((PORT_BASE + 9))
EMPEROR=""
SERVER=""

SAY_PREFIX="metrics-plot:"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

cleanup() {
    rm -f "$DIR"/vassals/*.ini
    [[ -n "$EMPEROR" ]] && kill -INT "$EMPEROR" 2>/dev/null && wait "$EMPEROR" 2>/dev/null
    [[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    docker ps -aq --filter "label=io.uwsgi-docker.emperor=$ID" | xargs -r docker rm -f >/dev/null
    # The Emperor's private runtime directory, empty once its vassals are gone.
    rmdir "${UWSGIDOCKER_RUNTIME_DIR:-/run/uwsgi-docker}/$ID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

command -v gnuplot >/dev/null || install_packages gnuplot-nox
cargo build --release -q -p uwsgi-docker-cli
BIN="$PWD/${CARGO_TARGET_DIR:-target}/release/uwsgi-docker"
mkdir -p "$DIR/vassals"

vassal() { # NAME PORT
    cat >"$DIR/vassals/$ID-$1.ini" <<EOF
[emperor]
docker-image = $IMAGE
docker-port = 127.0.0.1:$2:3031
docker-memory = 128m

[uwsgi]
master = true
plugin = psgi
psgi = /var/www/app.pl
http-socket = 0.0.0.0:3031
processes = 2
EOF
}

vassal web1 "$PORT_BASE"
vassal web2 $((PORT_BASE + 1))
vassal api $((PORT_BASE + 2))
UWSGIDOCKER_EMPEROR_ID="$ID" uwsgi --emperor "dir://$DIR/vassals" --emperor-wrapper "$BIN" \
    --emperor-freq 1 --logto "$DIR/emperor.log" &
EMPEROR=$!
"$BIN" metrics --listen "127.0.0.1:$METRICS_PORT" --emperor "$ID" 2>/dev/null &
SERVER=$!

# t vassal memory_MiB starts
: >"$DIR/samples.dat"
victims=(web1 api web2)
for t in $(seq 0 "$SECS"); do
    if ((t == 30)); then vassal worker $((PORT_BASE + 3)); fi
    if ((t > 0 && t % 20 == 0)); then
        victim="${victims[$(((t / 20 - 1) % 3))]}"
        docker kill "$ID-$victim.ini" >/dev/null 2>&1 && say "t=$t killed $victim"
    fi
    # A little traffic, so the workers do something.
    for p in 0 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$((PORT_BASE + p))/" || true; done
    curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null | awk -v t="$t" '
        /^uwsgi_docker_container_memory_bytes\{/ { match($0, /vassal="[^"]*"/); v = substr($0, RSTART + 8, RLENGTH - 9); mem[v] = $NF }
        /^uwsgi_docker_vassal_starts_total\{/ { match($0, /vassal="[^"]*"/); v = substr($0, RSTART + 8, RLENGTH - 9); starts[v] = $NF }
        END { for (v in starts) printf "%s %s %.1f %s\n", t, v, (v in mem ? mem[v] : 0) / 1048576, starts[v] }' >>"$DIR/samples.dat"
    sleep 1
done

mkdir -p "$(dirname "$PNG")"
names="$(awk '{ print $2 }' "$DIR/samples.dat" | sort -u)"
mem_plot=""
starts_plot=""
for v in $names; do
    awk -v v="$v" '$2 == v { print $1, $3, $4 }' "$DIR/samples.dat" >"$DIR/$v.dat"
    label="${v%.ini}"
    label="${label#"$ID"-}"
    mem_plot+="'$DIR/$v.dat' using 1:2 with lines lw 2 title '$label', "
    starts_plot+="'$DIR/$v.dat' using 1:3 with steps lw 2 title '$label', "
done
gnuplot <<EOF
set terminal pngcairo size 900,560 font 'sans,9'
set output '$PNG'
set multiplot layout 2,1 title 'uwsgi-docker metrics over a churn: a container killed every 20 s (respawned by the Emperor), a vassal added at 30 s'
set ylabel 'container memory (MiB)'
set key outside right
set grid
plot ${mem_plot%, }
set xlabel 'seconds'
set ylabel 'starts (counter)'
set yrange [0:*]
plot ${starts_plot%, }
unset multiplot
EOF
say "wrote $PNG"
