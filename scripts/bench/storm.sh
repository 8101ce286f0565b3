# Sections "storm" and "scale" (sourced by scripts/bench.sh).
#
# storm: STORM_N (100) vassal files moved into the Emperor's directory by one `mv`, until
#   every one answers 200 on its published port; then all removed by one `rm`, until no
#   container is left. Baseline: STORM_N `docker run -d` of the same image, app and command
#   at once (one background job each), then `docker stop` + `docker rm` of all at once.
#   Between the two, the Emperor's share: the same STORM_N vassals as STORM_N
#   `uwsgi-docker run` at once (no Emperor), ended by one SIGINT each.
# scale: SCALE_N (300) idle vassals (docker-socket, so no docker-proxy per vassal), added
#   100 at a time; then the bridges' USS and fds, the Emperor's and the bridges' CPU over
#   10 idle seconds, and dockerd's RSS against its RSS before.

STORM_N="${STORM_N:-100}"
SCALE_N="${SCALE_N:-300}"
STORM_PORT=$((${BENCH_BASE_PORT:-19100} + 200))
SCALE_PORT=$((${BENCH_BASE_PORT:-19100} + 400))

# Waits up to LIMIT s until every port given answers 200; fails when some never did.
wait_all_200() { # limit port...
    local deadline=$(($(now_ms) + $1 * 1000)) pending next port
    shift
    pending=("$@")
    while ((${#pending[@]})); do
        next=()
        for port in "${pending[@]}"; do
            curl -fsS --max-time 0.2 -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null || next+=("$port")
        done
        pending=("${next[@]}")
        ((${#pending[@]})) || break
        (($(now_ms) < deadline)) || { say "${#pending[@]} never answered: ${pending[*]:0:10}"; return 1; }
        sleep 0.05
    done
}

# Waits up to LIMIT s until no container of this run matches the regex.
wait_none_left() { # limit regex
    local deadline=$(($(now_ms) + $1 * 1000))
    while (($(count_containers "$2") > 0)); do
        (($(now_ms) < deadline)) || return 1
        sleep 0.1
    done
}

section_storm() {
    start_emperor
    local i ports=() stage="$DIR/storm-stage" t0 up_ours down_ours up_plain down_plain
    mkdir -p "$stage"
    for i in $(seq 1 "$STORM_N"); do
        write_vassal "$PREFIX-storm$i.ini" "$stage" $((STORM_PORT + i))
        ports+=($((STORM_PORT + i)))
    done
    CLEANUPS+=("rm -f $DIR/vassals/$PREFIX-storm*.ini")
    say "storm: $STORM_N vassal files at once"
    t0=$(now_ms)
    mv "$stage"/*.ini "$DIR/vassals/"
    wait_all_200 300 "${ports[@]}" || die "the storm's vassals did not all answer"
    up_ours=$(($(now_ms) - t0))
    t0=$(now_ms)
    rm -f "$DIR/vassals/$PREFIX-storm"*.ini
    wait_none_left 300 "-storm" || die "the storm's containers were not all removed"
    down_ours=$(($(now_ms) - t0))
    unset 'CLEANUPS[-1]'

    say "storm: $STORM_N uwsgi-docker run at once (no Emperor)"
    bridge_env
    local run_pids=() run_ports=() up_run down_run
    mkdir -p "$DIR/storm-run"
    for i in $(seq 1 "$STORM_N"); do
        write_vassal "$PREFIX-runstorm$i.ini" "$DIR/storm-run" $((STORM_PORT + 300 + i))
        run_ports+=($((STORM_PORT + 300 + i)))
    done
    t0=$(now_ms)
    for i in $(seq 1 "$STORM_N"); do
        "${BRIDGE_ENV[@]}" "$BIN" run "$DIR/storm-run/$PREFIX-runstorm$i.ini" >>"$DIR/run.log" 2>&1 &
        run_pids+=($!)
    done
    CLEANUPS+=("kill -INT ${run_pids[*]} 2>/dev/null")
    wait_all_200 300 "${run_ports[@]}" || die "the uwsgi-docker run storm did not all answer"
    up_run=$(($(now_ms) - t0))
    t0=$(now_ms)
    kill -INT "${run_pids[@]}"
    wait "${run_pids[@]}" 2>/dev/null || true
    wait_none_left 300 "-runstorm" || die "the uwsgi-docker run storm's containers were not all removed"
    down_run=$(($(now_ms) - t0))
    unset 'CLEANUPS[-1]'

    say "storm: $STORM_N docker run -d at once"
    CLEANUPS+=("docker ps -aq --filter name=^/?$PREFIX-plainstorm | xargs -r docker rm -f")
    local plain_ports=() jobs=()
    t0=$(now_ms)
    for i in $(seq 1 "$STORM_N"); do
        docker run -d --name "$PREFIX-plainstorm$i" -p "127.0.0.1:$((STORM_PORT + 100 + i)):3031" \
            "${PLAIN_RUN[@]}" "$IMAGE" "${PLAIN_CMD[@]}" >/dev/null &
        jobs+=($!)
        plain_ports+=($((STORM_PORT + 100 + i)))
    done
    wait_all_200 300 "${plain_ports[@]}" || die "the plain storm did not all answer"
    up_plain=$(($(now_ms) - t0))
    wait "${jobs[@]}" || true
    jobs=()
    t0=$(now_ms)
    for i in $(seq 1 "$STORM_N"); do
        { docker stop -t 10 "$PREFIX-plainstorm$i" >/dev/null && docker rm "$PREFIX-plainstorm$i" >/dev/null; } &
        jobs+=($!)
    done
    wait "${jobs[@]}" || true
    wait_none_left 300 "-plainstorm" || die "the plain storm's containers were not all removed"
    down_plain=$(($(now_ms) - t0))
    unset 'CLEANUPS[-1]'
    say "storm: ours up $up_ours ms, down $down_ours ms; uwsgi-docker run up $up_run ms, down $down_run ms; docker run -d up $up_plain ms, down $down_plain ms"
    cat <<EOF

### Storm: $STORM_N at once

| figure | ours | baseline | ratio |
| --- | --- | --- | --- |
$(row "$STORM_N vassal files moved in by one \`mv\` -> all answer 200 (published ports) / $STORM_N \`docker run -d\` at once" "$up_ours ms" "$up_plain ms" "$(ratio "$up_ours" "$up_plain")x")
$(row "all $STORM_N removed: one \`rm\` of the files / \`docker stop\` + \`docker rm\` of each, all at once -> no container left" "$down_ours ms" "$down_plain ms" "$(ratio "$down_ours" "$down_plain")x")
$(row "the Emperor's share: $STORM_N \`uwsgi-docker run\` at once -> all answer 200 / \`docker run -d\`" "$up_run ms" "$up_plain ms" "$(ratio "$up_run" "$up_plain")x")
$(row "the Emperor's share: one SIGINT to each of those bridges -> no container left / \`docker stop\` + \`docker rm\`" "$down_run ms" "$down_plain ms" "$(ratio "$down_run" "$down_plain")x")
EOF
}

# Resident kB of PID.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
uss_kb() { awk '/^Private_(Clean|Dirty):/ { kb += $2 } END { print kb }' "/proc/$1/smaps_rollup"; }

section_scale() {
    start_emperor
    local dockerd containerd rss0 crss0 i batch ports
    dockerd="$(pidof dockerd | awk '{ print $1 }')"
    containerd="$(pidof containerd | awk '{ print $1 }')"
    rss0="$(rss_kb "$dockerd")"
    crss0="$(rss_kb "$containerd")"
    CLEANUPS+=("rm -f $DIR/vassals/$PREFIX-scale*.ini")
    local t0
    t0=$(now_ms)
    for ((batch = 0; batch < SCALE_N; batch += 100)); do
        ports=()
        mkdir -p "$DIR/scale-stage"
        for ((i = batch + 1; i <= batch + 100 && i <= SCALE_N; i++)); do
            write_vassal "$PREFIX-scale$i.ini" "$DIR/scale-stage" "socket=127.0.0.1:$((SCALE_PORT + i))"
            ports+=($((SCALE_PORT + i)))
        done
        mv "$DIR/scale-stage"/*.ini "$DIR/vassals/"
        wait_all_200 600 "${ports[@]}" || die "scale: vassals $((batch + 1))-$i did not all answer"
        say "scale: $((i - 1)) vassals answer"
    done
    local up_ms=$(($(now_ms) - t0))
    sleep 5
    local pids uss=() fds=() pid
    mapfile -t pids < <(bridge_pids)
    ((${#pids[@]} == SCALE_N)) || die "found ${#pids[@]} bridges, expected $SCALE_N"
    for pid in "${pids[@]}"; do
        uss+=("$(uss_kb "$pid")")
        fds+=("$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)")
    done
    local bcpu0=0 bcpu1=0 ecpu0 ecpu1
    for pid in "${pids[@]}"; do bcpu0=$((bcpu0 + $(cpu_ns "$pid"))); done
    ecpu0="$(cpu_ns "$EMPEROR_PID")"
    sleep 10
    for pid in "${pids[@]}"; do bcpu1=$((bcpu1 + $(cpu_ns "$pid"))); done
    ecpu1="$(cpu_ns "$EMPEROR_PID")"
    local rss1 crss1 uss_med uss_max fds_med fds_max
    rss1="$(rss_kb "$dockerd")"
    crss1="$(rss_kb "$containerd")"
    uss_med="$(printf '%s\n' "${uss[@]}" | median)"
    uss_max="$(printf '%s\n' "${uss[@]}" | max_of)"
    fds_med="$(printf '%s\n' "${fds[@]}" | median)"
    fds_max="$(printf '%s\n' "${fds[@]}" | max_of)"
    local e_ms b_ms per_vassal_kb
    e_ms="$(awk -v d=$((ecpu1 - ecpu0)) 'BEGIN { printf "%.1f", d / 1e6 }')"
    b_ms="$(awk -v d=$((bcpu1 - bcpu0)) 'BEGIN { printf "%.1f", d / 1e6 }')"
    per_vassal_kb=$(((rss1 - rss0) / SCALE_N))
    say "scale: USS $uss_med/$uss_max KiB, fds $fds_med/$fds_max, Emperor $e_ms ms, bridges $b_ms ms CPU in 10 s, dockerd $rss0 -> $rss1 kB"
    local k=1000
    cat <<EOF

### Scale: $SCALE_N idle vassals

$SCALE_N vassals with \`docker-socket\` (the bridge holds the listening socket, no docker-proxy), added 100 at a time ($up_ms ms until all $SCALE_N answered), then idle.

| figure | at $SCALE_N | at 1,000 (extrapolated) | how |
| --- | --- | --- | --- |
$(row "bridge USS, median / max" "$uss_med / $uss_max KiB" "$((uss_med * k / 1024)) MiB in all" "1,000 x $uss_med KiB (Private_Clean + Private_Dirty, smaps_rollup)")
$(row "fds per bridge, median / max" "$fds_med / $fds_max" "$((fds_med * k)) in all" "1,000 x $fds_med; each bridge has its own limit")
$(row "Emperor CPU over 10 idle s" "$e_ms ms" "$(awk -v e="$e_ms" -v n="$SCALE_N" 'BEGIN { printf "%.1f", e * 1000 / n }') ms" "linear in the vassal count (it scans its directory every second)")
$(row "all bridges' CPU over 10 idle s" "$b_ms ms" "$(awk -v b="$b_ms" -v n="$SCALE_N" 'BEGIN { printf "%.1f", b * 1000 / n }') ms" "sleeping in poll with no timer")
$(row "dockerd RSS" "$((rss0 / 1024)) -> $((rss1 / 1024)) MiB (+$per_vassal_kb KiB per vassal)" "$(((rss0 + per_vassal_kb * k) / 1024)) MiB" "$((rss0 / 1024)) MiB + 1,000 x $per_vassal_kb KiB")
$(row "containerd RSS" "$((crss0 / 1024)) -> $((crss1 / 1024)) MiB" "$(((crss0 + (crss1 - crss0) * k / SCALE_N) / 1024)) MiB" "the same arithmetic")
EOF
    say "scale: stopping $SCALE_N vassals"
    rm -f "$DIR/vassals/$PREFIX-scale"*.ini
    wait_none_left 600 "-scale" || say "scale: containers still there after 600 s"
    unset 'CLEANUPS[-1]'
}
