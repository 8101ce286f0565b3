# Section "reload": reloads under load (sourced by scripts/bench.sh).
#
# wrk keeps RELOAD_CONNS connections busy on one app for RELOAD_SECS while the bench
# triggers RELOADS reloads, RELOAD_EVERY s apart; each variant gets its own run, side by
# side with the baseline, `docker restart`.
#
# A variant is one function, reload_<variant> ACTION [N]:
#   setup      start the app; set RELOAD_URL (where wrk and the probe go) and RELOAD_EXPECT
#              (the body that proves it is served)
#   trigger N  make reload N happen, and set RELOAD_EXPECT to the body that proves reload N
#              is served (for `docker restart`, the same body: a restart changes nothing)
#   teardown   stop and remove the app
# Add one by writing the function and naming it in RELOAD_VARIANTS (with a label in
# RELOAD_LABELS).

read -ra RELOAD_VARIANTS <<<"${RELOAD_ONLY:-touch_port touch_socket recreate docker_restart}"
declare -A RELOAD_LABELS=(
    [touch_port]="touch-reload, published port"
    [touch_socket]="touch-reload, docker-socket"
    [recreate]="[emperor] change (recreate)"
    [docker_restart]="baseline: \`docker restart\`"
)
RELOAD_SECS="${RELOAD_SECS:-30}"
RELOADS="${RELOADS:-5}"
RELOAD_EVERY="${RELOAD_EVERY:-5}"
RELOAD_CONNS="${RELOAD_CONNS:-8}"
RELOAD_PORT="${BENCH_BASE_PORT:-19100}"

reload_vassal_file() { echo "$DIR/vassals/$PREFIX-reload-$1.ini"; }

# Removes vassal file FILE and waits for its container to go.
remove_vassal() { # file
    local name
    name="$(basename "$1")"
    rm -f "$1"
    for _ in $(seq 1 300); do
        [[ -z "$(docker ps -aq --filter "name=^/?$name\$")" ]] && return 0
        sleep 0.1
    done
    say "container $name is still there 30 s after its vassal file went"
}

# A touch-reload with a config change: the [uwsgi] section's GREETING changes, the
# [emperor] section does not, so uWSGI reloads inside the same container.
reload_touch() { # where action [n]
    local where="$1" file
    file="$(reload_vassal_file "${where%%=*}")"
    case "$2" in
        setup)
            write_vassal "$(basename "$file")" "$DIR/vassals" "$where" "reload-0"
            RELOAD_EXPECT="reload-0"
            ;;
        trigger)
            write_vassal "$(basename "$file")" "$DIR/vassals" "$where" "reload-$3"
            RELOAD_EXPECT="reload-$3"
            ;;
        teardown) remove_vassal "$file" ;;
    esac
}

reload_touch_port() {
    RELOAD_URL="http://127.0.0.1:$((RELOAD_PORT + 1))/"
    reload_touch "$((RELOAD_PORT + 1))" "$@"
}

reload_touch_socket() {
    RELOAD_URL="http://127.0.0.1:$((RELOAD_PORT + 2))/"
    reload_touch "socket=127.0.0.1:$((RELOAD_PORT + 2))" "$@"
}

# An [emperor] change: the bridge removes the container and exits, and the Emperor starts
# the vassal again in a new one.
reload_recreate() {
    local port=$((RELOAD_PORT + 3)) file
    file="$(reload_vassal_file recreate)"
    RELOAD_URL="http://127.0.0.1:$port/"
    case "$1" in
        setup | trigger)
            local n="${2:-0}"
            EMPEROR_EXTRA="docker-label = bench.revision=$n" \
                write_vassal "$(basename "$file")" "$DIR/vassals" "$port" "reload-$n"
            RELOAD_EXPECT="reload-$n"
            ;;
        teardown) remove_vassal "$file" ;;
    esac
}

# The baseline: the same app and uWSGI command in a plain `docker run -d` container,
# restarted by `docker restart`.
reload_docker_restart() {
    local port=$((RELOAD_PORT + 4)) name="$PREFIX-reload-restart"
    RELOAD_URL="http://127.0.0.1:$port/"
    RELOAD_EXPECT="reload-0"
    case "$1" in
        setup)
            docker run -d --name "$name" -p "127.0.0.1:$port:3031" -e GREETING=reload-0 "${PLAIN_RUN[@]}" \
                "$IMAGE" "${PLAIN_CMD[@]}" >/dev/null
            ;;
        trigger) docker restart "$name" >/dev/null ;;
        teardown) docker rm -f "$name" >/dev/null ;;
    esac
}

# Runs one variant under wrk; appends its row fields to RELOAD_ROWS and keeps its timeline
# (OUT/reload-VARIANT.dat) and reload marks (OUT/reload-VARIANT.marks: seconds, served ms).
run_reload_variant() { # variant
    local v="$1" fn="reload_$1" t0 wrk_pid at t served=() i summary
    "$fn" setup
    CLEANUPS+=("$fn teardown")
    wait_body "$RELOAD_URL" "$RELOAD_EXPECT" || die "$v: $RELOAD_URL did not serve $RELOAD_EXPECT"
    : >"$OUT/reload-$v.marks"
    t0=$(now_ms)
    BENCH_TIMELINE="$OUT/reload-$v.dat" BENCH_T0_MS="$t0" \
        wrk -t2 -c"$RELOAD_CONNS" -d"${RELOAD_SECS}s" --latency -s scripts/bench/timeline.lua "$RELOAD_URL" \
        >"$DIR/wrk-$v.out" 2>&1 &
    wrk_pid=$!
    BG_PIDS+=("$wrk_pid")
    for i in $(seq 1 "$RELOADS"); do
        at=$((t0 + 3000 + (i - 1) * RELOAD_EVERY * 1000))
        while (($(now_ms) < at)); do sleep 0.05; done
        t=$(now_ms)
        "$fn" trigger "$i"
        wait_body "$RELOAD_URL" "$RELOAD_EXPECT" || die "$v: reload $i was not served within 60 s"
        served+=($(($(now_ms) - t)))
        printf '%s %s\n' "$(awk -v a="$t" -v b="$t0" 'BEGIN { printf "%.2f", (a - b) / 1000 }')" "${served[-1]}" \
            >>"$OUT/reload-$v.marks"
    done
    wait "$wrk_pid" || true
    summary="$(grep '^timeline:' "$DIR/wrk-$v.out" || true)"
    [[ -n "$summary" ]] || { cat "$DIR/wrk-$v.out" >&2; die "$v: wrk printed no summary"; }
    "$fn" teardown
    unset 'CLEANUPS[-1]'
    # timeline: requests N non2xx N errors N p50_ms X p99_ms Y
    read -r _ _ requests _ non2xx _ errors _ p50 _ p99 <<<"$summary"
    RELOAD_RESULT["$v"]="$requests $non2xx $errors $p50 $p99 $(printf '%s\n' "${served[@]}" | median) $(printf '%s\n' "${served[@]}" | max_of)"
    say "reload $v: $requests requests, $non2xx non-2xx, $errors socket errors, p50 $p50 ms, p99 $p99 ms, served after ${served[*]} ms"
}

section_reload() {
    declare -gA RELOAD_RESULT=()
    start_emperor
    local v
    for v in "${RELOAD_VARIANTS[@]}"; do run_reload_variant "$v"; done
    local base_failed base_served
    read -r _ n e _ _ base_served _ <<<"${RELOAD_RESULT[docker_restart]:-0 0 0 0 0 0 0}"
    base_failed=$((n + e))
    cat <<EOF

### Reload under load

wrk, ${RELOAD_CONNS} connections (2 threads, a new connection per request: the app answers \`Connection: close\`) on one app for ${RELOAD_SECS} s; ${RELOADS} reloads ${RELOAD_EVERY} s apart, from t = 3 s. Failed = socket errors + non-2xx, as wrk counts them. "Served after": from the trigger to the first answer with the new config (GREETING changes); the touch variants include the Emperor's scan (every 1 s, whole-second mtimes); for \`docker restart\`, which cannot change the config, from the command to the first 200 after it returned.

| variant | requests | failed (socket errors + non-2xx) | failed vs \`docker restart\` | p50 / p99 latency | served after, median / max of ${RELOADS} | vs \`docker restart\` |
| --- | --- | --- | --- | --- | --- | --- |
EOF
    local requests non2xx errors p50 p99 served_med served_max
    for v in "${RELOAD_VARIANTS[@]}"; do
        read -r requests non2xx errors p50 p99 served_med served_max <<<"${RELOAD_RESULT[$v]}"
        row "${RELOAD_LABELS[$v]}" "$requests" "$((non2xx + errors)) ($errors + $non2xx)" \
            "$(ratio $((non2xx + errors)) "$base_failed")x" "$p50 / $p99 ms" \
            "$served_med / $served_max ms" "$(ratio "$served_med" "$base_served")x"
    done
}
