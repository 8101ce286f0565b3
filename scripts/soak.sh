#!/usr/bin/env bash
# A soak: 50 vassals churning under one Emperor (wrapper mode) for MINUTES, and the figures
# that must not grow, recorded at the start and at the end. Not a CI test: it loads the
# machine for as long as it runs. RELIABILITY.md holds the figures of a run.
#
#   scripts/soak.sh [MINUTES]          (default 10)
#
# The churn, one action about every SOAK_PAUSE seconds (default 0.4) on a random slot of 50:
#   spawn   write the slot's vassal file (if it is absent);
#   touch   rewrite it with a new GREETING and move its mtime forward (a reload);
#   kill    `docker kill` the slot's container (the bridge fails, the Emperor respawns it);
#   delete  remove the vassal file.
# At the start (all 50 serving) and at the end (all 50 respawned, each serving its last
# greeting) it records: the Emperor's open fds, the number of bridges and their USS
# (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup), our containers, the socket
# files in the Emperor's private runtime directory, and our processes. After all vassals are
# deleted it checks that no container, socket file or bridge is left.
#
# Env: SOAK_BASE_PORT (default 19400), SOAK_PAUSE (default 0.4).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
MINUTES="${1:-10}"
SLOTS=50
BASE_PORT="${SOAK_BASE_PORT:-19400}"
PAUSE="${SOAK_PAUSE:-0.4}"
IMAGE="uwsgi-docker-test:latest"
ID="soak$$"
RUNTIME="/run/uwsgi-docker/$ID"

say() { printf 'soak %s: %s\n' "$(date +%T)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

say "building"
cargo build --release -q -p uwsgi-docker-cli
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/uwsgi-docker"
[[ -x "$BIN" ]] || die "the build did not produce $BIN"
scripts/build-test-image.sh >/dev/null

DIR="$(mktemp -d /tmp/uwsgi-docker-soak.XXXXXX)"
mkdir "$DIR/vassals"
EMPEROR_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$EMPEROR_PID" ]] && kill -0 "$EMPEROR_PID" 2>/dev/null; then
        kill -INT "$EMPEROR_PID" 2>/dev/null || true
        for _ in $(seq 1 600); do kill -0 "$EMPEROR_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$EMPEROR_PID" 2>/dev/null || true
        wait "$EMPEROR_PID" 2>/dev/null || true
    fi
    local left
    left="$(docker ps -aq --filter "label=io.uwsgi-docker.emperor=$ID")"
    [[ -n "$left" ]] && { say "removing leftover containers"; docker rm -f $left >/dev/null 2>&1 || true; }
    if ((rc == 0)); then rm -rf "$DIR"; else say "kept $DIR"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

declare -A GREETING # slot -> the greeting its current file says
generation=0

write_vassal() { # slot
    local slot="$1" name="$ID-$1.ini"
    generation=$((generation + 1))
    GREETING[$slot]="soak $slot gen $generation"
    cat >"$DIR/.$name" <<EOF
[emperor]
docker-image = $IMAGE
docker-port = 127.0.0.1:$((BASE_PORT + slot)):3031

[uwsgi]
master = true
plugin = psgi
psgi = /var/www/app.pl
http-socket = 0.0.0.0:3031
env = GREETING=${GREETING[$slot]}
EOF
    local path="$DIR/vassals/$name" old
    old=0
    [[ -e "$path" ]] && old="$(stat -c %Y "$path")"
    mv "$DIR/.$name" "$path"
    # The Emperor compares whole-second mtimes: always move forward.
    local now
    now="$(date +%s)"
    ((old >= now)) && touch -d "@$((old + 1))" "$path"
    return 0
}

# Waits up to $2 s until every present slot answers its current greeting.
wait_all_serving() { # timeout
    local deadline=$(($(date +%s) + $1)) slot pending
    while :; do
        pending=0
        for slot in $(seq 1 "$SLOTS"); do
            [[ -e "$DIR/vassals/$ID-$slot.ini" ]] || continue
            body="$(curl -fsS --max-time 1 "http://127.0.0.1:$((BASE_PORT + slot))/" 2>/dev/null || true)"
            [[ "$body" == "${GREETING[$slot]}" ]] || pending=$((pending + 1))
        done
        ((pending == 0)) && return 0
        (($(date +%s) < deadline)) || { say "$pending slots still not serving their last config"; return 1; }
        sleep 1
    done
}

bridge_pids() {
    local p
    for p in /proc/[0-9]*; do
        { tr "\0" " " <"$p/cmdline"; } 2>/dev/null | grep -q "^\[uwsgi-docker-bridge\] $ID-" && echo "${p#/proc/}"
    done
    return 0
}

# Pids whose command line names this soak's id, but the Emperor's: the bridges and the
# container processes (uWSGI inside them is visible from the host's pid namespace).
our_processes() {
    local p cmd
    for p in /proc/[0-9]*; do
        [[ "${p#/proc/}" == "$EMPEROR_PID" ]] && continue
        cmd="$({ tr "\0" " " <"$p/cmdline"; } 2>/dev/null)" || continue
        [[ "$cmd" == *"$ID"* ]] && echo "${p#/proc/}"
    done
    return 0
}

# One line of figures, labelled $1; also appended to $DIR/figures.
record() { # label
    local fds bridges uss_list median max containers sockets procs
    fds="$(ls "/proc/$EMPEROR_PID/fd" | wc -l)"
    mapfile -t pids < <(bridge_pids)
    bridges="${#pids[@]}"
    uss_list="$(for p in "${pids[@]}"; do
        awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s }' "/proc/$p/smaps_rollup" 2>/dev/null
    done | sort -n)"
    median="$(awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "n/a" }' <<<"$uss_list")"
    max="$(tail -1 <<<"$uss_list")"
    containers="$(docker ps -aq --filter "label=io.uwsgi-docker.emperor=$ID" | wc -l)"
    sockets="$(find "$RUNTIME" -mindepth 1 2>/dev/null | wc -l)"
    # Our processes: everything naming this soak's id except the Emperor (bridges and the
    # uWSGI helpers they may start).
    procs="$(our_processes | wc -l)"
    local line="$1: emperor fds $fds, bridges $bridges, bridge USS median/max ${median:-n/a}/${max:-n/a} KiB, containers $containers, socket files $sockets, processes $procs"
    say "$line"
    echo "$line" >>"$DIR/figures"
}

say "starting the Emperor ($ID)"
UWSGIDOCKER_EMPEROR_ID="$ID" uwsgi --emperor "dir://$DIR/vassals" --emperor-wrapper "$BIN" \
    --emperor-freq 1 --emperor-throttle 200 --emperor-max-throttle 2000 \
    --logto "$DIR/emperor.log" </dev/null >"$DIR/emperor.out" 2>&1 &
EMPEROR_PID=$!
sleep 2
kill -0 "$EMPEROR_PID" || die "the Emperor did not start: $(tail -5 "$DIR/emperor.out")"

for slot in $(seq 1 "$SLOTS"); do write_vassal "$slot"; done
wait_all_serving 300 || die "the first 50 vassals did not all serve"
sleep 3
record start

declare -A COUNT=([spawn]=0 [touch]=0 [kill]=0 [delete]=0)
end=$(($(date +%s) + MINUTES * 60))
say "churning for $MINUTES minutes"
while (($(date +%s) < end)); do
    slot=$((RANDOM % SLOTS + 1))
    path="$DIR/vassals/$ID-$slot.ini"
    if [[ ! -e "$path" ]]; then
        write_vassal "$slot"
        COUNT[spawn]=$((COUNT[spawn] + 1))
    else
        case $((RANDOM % 10)) in
            0 | 1 | 2 | 3 | 4)
                write_vassal "$slot"
                COUNT[touch]=$((COUNT[touch] + 1))
                ;;
            5 | 6 | 7)
                docker kill "$ID-$slot.ini" >/dev/null 2>&1 || true
                COUNT[kill]=$((COUNT[kill] + 1))
                ;;
            *)
                rm -f "$path"
                COUNT[delete]=$((COUNT[delete] + 1))
                ;;
        esac
    fi
    sleep "$PAUSE"
done
say "churn done: ${COUNT[spawn]} spawns, ${COUNT[touch]} touches, ${COUNT[kill]} kills, ${COUNT[delete]} deletes"
echo "actions: ${COUNT[spawn]} spawns, ${COUNT[touch]} touches, ${COUNT[kill]} container kills, ${COUNT[delete]} deletes" >>"$DIR/figures"

# Back to the start's shape: all 50 present, each serving its last config.
for slot in $(seq 1 "$SLOTS"); do
    [[ -e "$DIR/vassals/$ID-$slot.ini" ]] || write_vassal "$slot"
done
wait_all_serving 300 || die "after the churn, not every vassal serves its last config"
sleep 3
record end

say "removing all vassals"
rm -f "$DIR"/vassals/*.ini
deadline=$(($(date +%s) + 120))
while :; do
    c="$(docker ps -aq --filter "label=io.uwsgi-docker.emperor=$ID" | wc -l)"
    s="$(find "$RUNTIME" -mindepth 1 2>/dev/null | wc -l)"
    b="$(bridge_pids | wc -l)"
    ((c + s + b == 0)) && break
    (($(date +%s) < deadline)) || die "left after removing all vassals: $c containers, $s socket files, $b bridges"
    sleep 1
done
sleep 2
record "after removal"
respawns="$(grep -c 'respawned\|is ready to' "$DIR/emperor.log" || true)"
echo "emperor log lines about vassals starting or respawning: $respawns" >>"$DIR/figures"
say "figures:"
cat "$DIR/figures"
