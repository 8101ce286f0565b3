# Sections "storm" and "scale" (sourced by scripts/bench.sh).
#
# storm: STORM_RUNS (3) runs; in each, STORM_N (100) containers of the same image, app and
#   command, one variant after the other, each started at once and removed at once:
#   ours      STORM_N vassal files moved into the Emperor's directory by one `mv`, until
#             every one answers 200 on its published port; then one `rm` of the files,
#             until no container is left
#   par8      STORM_N `docker run -d`, 8 in parallel (xargs -P8), until all answer 200; then
#             `docker stop` + `docker rm` of each, all at once
#   all       the same, all STORM_N `docker run -d` at once
#   alone     the same vassals as STORM_N `uwsgi-docker run` at once (no Emperor), ended by
#             a SIGINT each: the bridges' own share
#   plain     the same Emperor running STORM_N plain uWSGI vassals of the same app on the
#             host (no Docker), removed by one `rm` until no vassal process is left: the
#             Emperor's own share of a removal
#   STORM_VARIANTS picks some ("ours par8 all alone plain" by default). Each variant writes
#   the number of containers answering 200 over time to OUT/storm-N-VARIANT-RUN.dat (the
#   plots section draws ours and par8). The storm's Emperor and bridges log with
#   UWSGIDOCKER_DEBUG=1 through a line stamper, and the removal is split by what the logs
#   say when.
# scale: SCALE_N (300) idle vassals (docker-socket, so no docker-proxy per vassal), added
#   100 at a time; then the bridges' USS and fds, the Emperor's and the bridges' CPU over
#   10 idle seconds, and dockerd's RSS against its RSS before.

STORM_N="${STORM_N:-100}"
STORM_RUNS="${STORM_RUNS:-3}"
STORM_VARIANTS="${STORM_VARIANTS:-ours par8 all alone plain}"
SCALE_N="${SCALE_N:-300}"
# Three ranges of up to 100 ports: vassal files (ours, then the plain vassals), `docker run
# -d` (par8, then all), `uwsgi-docker run`.
STORM_PORT=$((${BENCH_BASE_PORT:-19100} + 200))
SCALE_PORT=$((${BENCH_BASE_PORT:-19100} + 400))

# Probes PORTS about every 100 ms until each has answered 200 once (one that did is not
# probed again), appending "seconds-after-T0 number-answered" to OUT per round; fails after
# LIMIT s. The probes of a round go out in parallel (one curl).
serving_timeline() { # out t0_ms limit_s port...
    local out="$1" t0="$2" deadline=$(($2 + $3 * 1000)) up=0 round code url port now
    local config="$DIR/probe.curlrc"
    shift 3
    local -A pending=()
    for port in "$@"; do pending[$port]=1; done
    : >"$out"
    while ((${#pending[@]})); do
        round=$(now_ms)
        ((round < deadline)) || { say "${#pending[@]} never answered: ${!pending[*]}"; return 1; }
        for port in "${!pending[@]}"; do
            printf 'url = "http://127.0.0.1:%s/"\noutput = "/dev/null"\n' "$port"
        done >"$config"
        while read -r code url; do
            [[ "$code" == 200 ]] || continue
            port="${url##*:}"
            unset "pending[${port%/}]"
            up=$((up + 1))
        done < <(curl -sZ --parallel-max 100 --max-time 0.3 -K "$config" -w '%{http_code} %{url_effective}\n' 2>/dev/null)
        now=$(now_ms)
        printf '%s %d\n' "$(awk -v d=$((now - t0)) 'BEGIN { printf "%.2f", d / 1000 }')" "$up" >>"$out"
        ((${#pending[@]})) || break
        sleep "$(awk -v d=$((now - round)) 'BEGIN { printf "%.3f", d < 100 ? (100 - d) / 1000 : 0 }')"
    done
}

# Waits up to LIMIT s until every port given answers 200; fails when some never did.
wait_all_200() { # limit port...
    serving_timeline /dev/null "$(now_ms)" "$@"
}

# Waits up to LIMIT s until no container of this run matches the regex.
wait_none_left() { # limit regex
    local deadline=$(($(now_ms) + $1 * 1000))
    while (($(count_containers "$2") > 0)); do
        (($(now_ms) < deadline)) || return 1
        sleep 0.1
    done
}

# Waits up to LIMIT s until no process has the extended regex in its command line.
wait_no_process() { # limit regex
    local deadline=$(($(now_ms) + $1 * 1000))
    while pgrep -f -- "$2" >/dev/null; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.05
    done
}

# Results: STORM[figure,run] in ms (or a ratio); STEPS[step,run] as step_times prints them,
# the steps in STEP_ORDER.
declare -A STORM=() STEPS=()
STEP_ORDER=()

# "median / last (lines)": ms after T0 of the stamped LOG's lines that match the extended
# regex (one a vassal), over the vassals.
step_times() { # log t0_ms regex
    awk -v t0="$2" -v re="$3" '$1 >= t0 && $0 ~ re { printf "%.0f\n", $1 - t0 }' "$1" | sort -n |
        awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else printf "%s / %s (%d)\n", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2), a[NR], NR }'
}

# The daemon's container events from now on, as "epoch-ms action name" lines in FILE,
# until storm_events_end: when it saw each container die and destroyed it.
storm_events_begin() { # file
    docker events --filter type=container --format '{{.TimeNano}} {{.Action}} {{.Actor.Attributes.name}}' \
        > >(awk '{ printf "%.1f %s %s\n", $1 / 1e6, $2, $3; fflush() }' >"$1") &
    EVENTS_PID=$!
    BG_PIDS+=("$EVENTS_PID")
    sleep 0.2
}
storm_events_end() {
    sleep 0.5
    kill "$EVENTS_PID" 2>/dev/null || true
    wait "$EVENTS_PID" 2>/dev/null || true
}

# Busy CPU ticks of the whole machine (/proc/stat: user, nice, system, irq, softirq), and
# of one process (utime + stime).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# The pid of the first process named NAME (dockerd, containerd).
first_pid() { pidof "$1" | awk '{ print $1 }'; }

# Waits (up to 60 s) until the machine has been nearly idle for a second: the kernel tears
# down a removed container's network namespace after the removal is answered, and that work
# is not the next variant's to pay.
storm_settle() {
    local deadline=$(($(now_ms) + 60000)) hz busy0 busy1 cores
    hz="$(getconf CLK_TCK)"
    cores="$(nproc)"
    while (($(now_ms) < deadline)); do
        busy0="$(busy_ticks)"
        sleep 1
        busy1="$(busy_ticks)"
        # Under a tenth of the machine busy over that second.
        (((busy1 - busy0) * 10 < hz * cores)) && return 0
    done
    say "the machine did not settle in 60 s; going on"
}

# Around a start: the daemon's events (when it created the first container) and the CPU the
# machine and dockerd used until every container answered.
storm_up_begin() { # variant run
    storm_events_begin "$DIR/storm-up-events-$1-$2"
    UP_CPU=("$(busy_ticks)" "$(proc_ticks "$(first_pid dockerd)")")
}
storm_up_end() { # variant run t0
    local variant="$1" run="$2" t0="$3" busy dockerd first hz
    busy="$(busy_ticks)"
    dockerd="$(proc_ticks "$(first_pid dockerd)")"
    hz="$(getconf CLK_TCK)"
    STORM["cpu $variant,$run"]="$(awk -v d=$((busy - UP_CPU[0])) -v hz="$hz" 'BEGIN { printf "%.1f", d / hz }')"
    STORM["dockerd $variant,$run"]="$(awk -v d=$((dockerd - UP_CPU[1])) -v hz="$hz" 'BEGIN { printf "%.1f", d / hz }')"
    storm_events_end
    first="$(awk -v t0="$t0" '$2 == "create" { printf "%.0f", $1 - t0; exit }' "$DIR/storm-up-events-$variant-$run")"
    [[ -n "$first" ]] || return 0
    STORM["first create $variant,$run"]="$first"
    STORM["up from create $variant,$run"]=$((STORM["up $variant,$run"] - first))
}

# The daemon's steps of RUN's removal of the containers named like REGEX, from the events.
storm_daemon_steps() { # run events t0 variant regex
    local action
    for action in kill die destroy; do
        storm_step "$1" "$2" "$3" "$4: the daemon's '$action' event" "^[0-9.]+ $action $5\$"
    done
}

# One step of RUN's removal: the lines of LOG after T0 that match REGEX.
storm_step() { # run log t0 label regex
    STEPS["$4,$1"]="$(step_times "$2" "$3" "$5")"
    [[ " ${STEP_ORDER[*]} " == *" ${4// /_} "* ]] || STEP_ORDER+=("${4// /_}")
}

# Ours: the files moved in by one `mv`, removed by one `rm`.
storm_ours() { # run
    local run="$1" i ports=() stage="$DIR/storm-stage" t0 log="$DIR/emperor.log"
    local name="$PREFIX-storm" names
    mkdir -p "$stage"
    for i in $(seq 1 "$STORM_N"); do
        write_vassal "$name$i.ini" "$stage" $((STORM_PORT + i))
        ports+=($((STORM_PORT + i)))
    done
    CLEANUPS+=("rm -f $DIR/vassals/$name*.ini")
    say "storm $run: ours, $STORM_N vassal files at once"
    storm_up_begin ours "$run"
    t0=$(now_ms)
    mv "$stage"/*.ini "$DIR/vassals/"
    serving_timeline "$OUT/storm-$STORM_N-ours-$run.dat" "$t0" 300 "${ports[@]}" ||
        die "the storm's vassals did not all answer"
    STORM["up ours,$run"]=$(($(now_ms) - t0))
    storm_up_end ours "$run" "$t0"
    storm_events_begin "$DIR/storm-events-ours-$run"
    t0=$(now_ms)
    rm -f "$DIR/vassals/$name"*.ini
    wait_none_left 300 "-storm[0-9]" || die "the storm's containers were not all removed"
    STORM["down ours,$run"]=$(($(now_ms) - t0))
    unset 'CLEANUPS[-1]'
    storm_events_end
    # The last bridges may still be exiting; their lines are wanted.
    wait_no_process 30 "\\] ${name}[0-9]+\\.ini" || say "storm $run: some bridges are still there"
    sleep 0.5
    names="${name}[0-9]+\\.ini"
    storm_step "$run" "$log" "$t0" "ours: the Emperor's scan sends the stop byte" "\\[emperor\\] stop the uwsgi instance $names"
    storm_step "$run" "$log" "$t0" "ours: the byte reaches the bridge" "vassal $names: the Emperor asks the vassal to stop"
    storm_step "$run" "$log" "$t0" "ours: the bridge sends the stop request" "vassal $names: cleanup: Stop sent"
    storm_step "$run" "$log" "$t0" "ours: uWSGI in the container is done (its last line)" "\\[$names\\] goodbye to uWSGI"
    storm_daemon_steps "$run" "$DIR/storm-events-ours-$run" "$t0" ours "$names"
    storm_step "$run" "$log" "$t0" "ours: the wait reports the exit" "vassal $names: the container exited"
    storm_step "$run" "$log" "$t0" "ours: the stop request is answered" "vassal $names: cleanup: Stop answered"
    storm_step "$run" "$log" "$t0" "ours: the removal is answered" "vassal $names: cleanup: Remove answered"
    storm_step "$run" "$log" "$t0" "ours: the Emperor reaped the bridge" "\\[emperor\\] removed uwsgi instance $names"
}

# `docker run -d` of each container, JOBS at a time, until all answer 200; then `docker stop`
# + `docker rm` of each, all at once.
storm_plain() { # run variant jobs
    local run="$1" variant="$2" jobs="$3" i ports=() t0 name="$PREFIX-$2storm" pids=()
    for i in $(seq 1 "$STORM_N"); do ports+=($((STORM_PORT + 100 + i))); done
    CLEANUPS+=("docker ps -aq --filter name=^/?$name | xargs -r docker rm -f")
    say "storm $run: $STORM_N docker run -d, $jobs at a time"
    storm_up_begin "$variant" "$run"
    t0=$(now_ms)
    printf '%s\n' "${ports[@]}" |
        xargs -P "$jobs" -I{} docker run -d --name "$name{}" -p "127.0.0.1:{}:3031" \
            "${PLAIN_RUN[@]}" "$IMAGE" "${PLAIN_CMD[@]}" >/dev/null &
    pids+=($!)
    serving_timeline "$OUT/storm-$STORM_N-$variant-$run.dat" "$t0" 300 "${ports[@]}" ||
        die "the plain storm did not all answer"
    STORM["up $variant,$run"]=$(($(now_ms) - t0))
    storm_up_end "$variant" "$run" "$t0"
    wait "${pids[@]}" || true
    pids=()
    storm_events_begin "$DIR/storm-events-$variant-$run"
    t0=$(now_ms)
    for i in "${ports[@]}"; do
        { docker stop -t 10 "$name$i" >/dev/null && docker rm "$name$i" >/dev/null; } &
        pids+=($!)
    done
    wait "${pids[@]}" || true
    wait_none_left 300 "-${variant}storm" || die "the plain storm's containers were not all removed"
    STORM["down $variant,$run"]=$(($(now_ms) - t0))
    unset 'CLEANUPS[-1]'
    storm_events_end
    storm_daemon_steps "$run" "$DIR/storm-events-$variant-$run" "$t0" "$variant" "${name}[0-9]+"
}
storm_par8() { storm_plain "$1" par8 8; }
storm_all() { storm_plain "$1" all "$STORM_N"; }

# Writes N vassal files NAME1.ini..NAMEN.ini into DIR for `uwsgi-docker run`, publishing
# the third port range; their ports go to RUN_PORTS.
write_run_vassals() { # name dir n
    local i
    RUN_PORTS=()
    mkdir -p "$2"
    for i in $(seq 1 "$3"); do
        write_vassal "$1$i.ini" "$2" $((STORM_PORT + 300 + i))
        RUN_PORTS+=($((STORM_PORT + 300 + i)))
    done
}

# The same vassals as `uwsgi-docker run` at once, ended by a SIGINT each.
storm_alone() { # run
    local run="$1" i pids=() ports=() t0 name="$PREFIX-runstorm" names log="$DIR/storm-alone-$1.log" sink
    write_run_vassals "$name" "$DIR/storm-run" "$STORM_N"
    ports=("${RUN_PORTS[@]}")
    say "storm $run: $STORM_N uwsgi-docker run at once (no Emperor)"
    bridge_env
    exec {sink}> >(stamp_lines >"$log")
    storm_up_begin alone "$run"
    t0=$(now_ms)
    for i in $(seq 1 "$STORM_N"); do
        "${BRIDGE_ENV[@]}" UWSGIDOCKER_DEBUG=1 "$BIN" run "$DIR/storm-run/$name$i.ini" >&"$sink" 2>&1 &
        pids+=($!)
    done
    exec {sink}>&-
    CLEANUPS+=("kill -INT ${pids[*]} 2>/dev/null")
    serving_timeline "$OUT/storm-$STORM_N-alone-$run.dat" "$t0" 300 "${ports[@]}" ||
        die "the uwsgi-docker run storm did not all answer"
    STORM["up alone,$run"]=$(($(now_ms) - t0))
    storm_up_end alone "$run" "$t0"
    storm_events_begin "$DIR/storm-events-alone-$run"
    t0=$(now_ms)
    kill -INT "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    wait_none_left 300 "-runstorm" || die "the uwsgi-docker run storm's containers were not all removed"
    STORM["down alone,$run"]=$(($(now_ms) - t0))
    unset 'CLEANUPS[-1]'
    storm_events_end
    sleep 0.5
    names="${name}[0-9]+\\.ini"
    storm_step "$run" "$log" "$t0" "alone: the bridge sends the stop request" "vassal $names: cleanup: Stop sent"
    storm_step "$run" "$log" "$t0" "alone: uWSGI in the container is done (its last line)" "\\[$names\\] goodbye to uWSGI"
    storm_daemon_steps "$run" "$DIR/storm-events-alone-$run" "$t0" alone "$names"
    storm_step "$run" "$log" "$t0" "alone: the wait reports the exit" "vassal $names: the container exited"
    storm_step "$run" "$log" "$t0" "alone: the stop request is answered" "vassal $names: cleanup: Stop answered"
    storm_step "$run" "$log" "$t0" "alone: the removal is answered" "vassal $names: cleanup: Remove answered"
}

# The same Emperor with plain uWSGI vassals (no Docker) of the same app and options.
storm_plain_vassals() { # run
    local run="$1" i ports=() stage="$DIR/storm-stage" t0 name="$PREFIX-plainv" log="$DIR/emperor.log"
    mkdir -p "$stage"
    for i in $(seq 1 "$STORM_N"); do
        printf '[uwsgi]\nmaster = true\nplugin = psgi\npsgi = %s/app/app.pl\nhttp-socket = 127.0.0.1:%s\nenv = GREETING=plain\n' \
            "$DIR" $((STORM_PORT + i)) >"$stage/$name$i.ini"
        ports+=($((STORM_PORT + i)))
    done
    CLEANUPS+=("rm -f $DIR/vassals/$name*.ini")
    say "storm $run: $STORM_N plain uWSGI vassals at once"
    t0=$(now_ms)
    mv "$stage"/*.ini "$DIR/vassals/"
    serving_timeline "$OUT/storm-$STORM_N-plain-$run.dat" "$t0" 300 "${ports[@]}" ||
        die "the plain vassals did not all answer"
    STORM["up plain,$run"]=$(($(now_ms) - t0))
    t0=$(now_ms)
    rm -f "$DIR/vassals/$name"*.ini
    wait_no_process 300 "${name}[0-9]+\\.ini" || die "the plain vassals did not all stop"
    STORM["down plain,$run"]=$(($(now_ms) - t0))
    unset 'CLEANUPS[-1]'
    sleep 0.5
    storm_step "$run" "$log" "$t0" "plain: the Emperor's scan sends the stop byte" "\\[emperor\\] stop the uwsgi instance ${name}[0-9]+\\.ini"
    storm_step "$run" "$log" "$t0" "plain: uWSGI is done (its last line)" "^[0-9.]+ goodbye to uWSGI"
    storm_step "$run" "$log" "$t0" "plain: the Emperor reaped the vassal" "\\[emperor\\] removed uwsgi instance ${name}[0-9]+\\.ini"
}

# FIGURE's cell per run, then their median, one a line, each with SUFFIX.
storm_cells() { # figure suffix
    local run
    for run in $(seq 1 "$STORM_RUNS"); do echo "${STORM[$1,$run]:-n/a}$2"; done
    echo "$(for run in $(seq 1 "$STORM_RUNS"); do echo "${STORM[$1,$run]:-}"; done | grep -v '^$' | median)$2"
}

# A row of FIGURE per run and its median, if it was measured, in UNIT (ms unless given).
storm_row() { # label figure [unit]
    [[ -n "${STORM[$2,1]:-}" ]] || return 0
    local cells
    mapfile -t cells < <(storm_cells "$2" " ${3:-ms}")
    row "$1" "${cells[@]}"
}

# A row of A / B per run, and the median of those ratios, if both were measured.
storm_ratio_row() { # label figure_a figure_b
    [[ -n "${STORM[$2,1]:-}" && -n "${STORM[$3,1]:-}" ]] || return 0
    local run cells
    for run in $(seq 1 "$STORM_RUNS"); do STORM["$2/$3,$run"]="$(ratio "${STORM[$2,$run]}" "${STORM[$3,$run]}")"; done
    mapfile -t cells < <(storm_cells "$2/$3" "x")
    row "$1" "${cells[@]}"
}

# A table's head: the label column, then run 1..STORM_RUNS and EXTRA more columns.
storm_table_head() { # label extra...
    local label="$1" cols=()
    shift
    mapfile -t cols < <(seq 1 "$STORM_RUNS" | sed 's/^/run /')
    row "$label" "${cols[@]}" "$@"
    local rule=()
    mapfile -t rule < <(seq 0 $((STORM_RUNS + $#)) | sed 's/.*/---/')
    row "${rule[@]}"
}

section_storm() {
    # Its own Emperor: debug lines, stamped, so that the removal can be split.
    stop_emperor
    EMPEROR_STAMPED=1 start_emperor
    local run variant
    for run in $(seq 1 "$STORM_RUNS"); do
        for variant in $STORM_VARIANTS; do
            storm_settle
            case "$variant" in
                ours | par8 | all | alone) "storm_$variant" "$run" ;;
                plain) storm_plain_vassals "$run" ;;
                *) die "unknown storm variant $variant (known: ours par8 all alone plain)" ;;
            esac
        done
        if [[ -n "${STORM[down ours,$run]:-}" && -n "${STORM[down plain,$run]:-}" ]]; then
            local ours="${STORM[down ours,$run]}" plain="${STORM[down plain,$run]}"
            STORM["down share,$run"]=$((ours - plain))
        fi
        say "storm $run done: $(for k in "${!STORM[@]}"; do [[ "$k" == *",$run" ]] && printf '%s=%s; ' "${k%,*}" "${STORM[$k]}"; done)"
    done
    stop_emperor
    cat <<EOF

### Storm: $STORM_N at once, $STORM_RUNS runs

The start limit: UWSGIDOCKER_MAX_STARTS=${UWSGIDOCKER_MAX_STARTS:-8 (the default)}. In each run the variants ran one after the other ($STORM_VARIANTS), each once the machine had been nearly idle for a second (under a tenth of its CPU); each ratio is of two figures of the same run, its median the median of the runs' ratios. Start: from the \`mv\` (or the first \`docker run\`) until every container answered 200 on its published port (probed about every 100 ms); removal: until no container (for plain vassals: no vassal process) was left. The daemon's events split the start: what comes before its first 'create' (for ours the Emperor's scan, which runs once a second, so 0 to 1 s after the \`mv\`; for \`docker run\` the CLI's start-up), and the rest; the CPU rows are of the same span (the machine's busy time from /proc/stat, dockerd's from its /proc/PID/stat).

EOF
    storm_table_head figure median
    storm_row "start: ours, $STORM_N vassal files moved in by one \`mv\`" "up ours"
    storm_row "start: $STORM_N \`docker run -d\`, 8 in parallel" "up par8"
    storm_ratio_row "ours / 8 in parallel" "up ours" "up par8"
    storm_row "start: $STORM_N \`docker run -d\` all at once" "up all"
    storm_ratio_row "ours / all at once" "up ours" "up all"
    storm_row "start: $STORM_N \`uwsgi-docker run\` at once (no Emperor)" "up alone"
    storm_row "start: $STORM_N plain uWSGI vassals (no Docker), one \`mv\`" "up plain"
    storm_row "ours: the daemon's first 'create' event after the \`mv\` (the Emperor's scan, its fork, the bridge's first request)" "first create ours"
    storm_row "8 in parallel: the first 'create' after the first \`docker run\` (the CLI's start-up)" "first create par8"
    storm_row "start from the first 'create': ours" "up from create ours"
    storm_row "start from the first 'create': 8 in parallel" "up from create par8"
    storm_ratio_row "from the first 'create': ours / 8 in parallel" "up from create ours" "up from create par8"
    storm_row "start from the first 'create': bridges alone" "up from create alone"
    storm_ratio_row "from the first 'create': bridges alone / 8 in parallel" "up from create alone" "up from create par8"
    storm_row "the machine's busy CPU during the start: ours" "cpu ours" "core-s"
    storm_row "the machine's busy CPU during the start: 8 in parallel" "cpu par8" "core-s"
    storm_row "dockerd's CPU during the start: ours" "dockerd ours" "s"
    storm_row "dockerd's CPU during the start: 8 in parallel" "dockerd par8" "s"
    storm_row "removal: ours, one \`rm\` of the files" "down ours"
    storm_row "removal: \`docker stop\` + \`docker rm\` of each, all at once (the 8-in-parallel set)" "down par8"
    storm_ratio_row "ours / \`docker stop\` + \`docker rm\`" "down ours" "down par8"
    storm_row "removal: the same, of the all-at-once set" "down all"
    storm_ratio_row "ours / \`docker stop\` + \`docker rm\` (all-at-once set)" "down ours" "down all"
    storm_row "removal: plain uWSGI vassals, one \`rm\` (the Emperor's own share)" "down plain"
    storm_row "removal: the bridges' share (ours minus plain vassals)" "down share"
    storm_row "removal: bridges alone, a SIGINT each" "down alone"
    storm_ratio_row "the bridges' share / bridges alone" "down share" "down alone"
    ((${#STEP_ORDER[@]})) || return 0
    local step cells
    cat <<EOF

Where a removal's time goes, from the stamped logs (\`UWSGIDOCKER_DEBUG=1\`): ms after the \`rm\` (alone: after the SIGINTs) at which the median vassal and the last one got there, and how many lines said so.

$(storm_table_head "step: median / last ms (lines)")
EOF
    for step in "${STEP_ORDER[@]}"; do
        cells=()
        for run in $(seq 1 "$STORM_RUNS"); do cells+=("${STEPS[${step//_/ },$run]:--}"); done
        row "${step//_/ }" "${cells[@]}"
    done
}

# The start limit at a size where it matters: STARTLIMIT_N (150) `uwsgi-docker run` at once,
# with no limit (UWSGIDOCKER_MAX_STARTS=0) and then with 8 slots: how many served within
# STARTLIMIT_WAIT (300) s, and how many bridges saw their start go unanswered (the request
# deadline, 30 s).
startlimit_storm() { # limit
    local limit="$1" i pids=() ports=() t0 name="$PREFIX-limit$1-" log="$DIR/startlimit-$1.log" sink served
    local n="${STARTLIMIT_N:-150}" wait="${STARTLIMIT_WAIT:-300}" dat="$OUT/startlimit-$1.dat"
    write_run_vassals "$name" "$DIR/startlimit" "$n"
    ports=("${RUN_PORTS[@]}")
    say "start limit: $n uwsgi-docker run at once, UWSGIDOCKER_MAX_STARTS=$limit"
    bridge_env
    exec {sink}>"$log"
    t0=$(now_ms)
    for i in $(seq 1 "$n"); do
        "${BRIDGE_ENV[@]}" UWSGIDOCKER_MAX_STARTS="$limit" "$BIN" run "$DIR/startlimit/$name$i.ini" >&"$sink" 2>&1 &
        pids+=($!)
    done
    exec {sink}>&-
    CLEANUPS+=("kill -INT ${pids[*]} 2>/dev/null")
    if serving_timeline "$dat" "$t0" "$wait" "${ports[@]}"; then
        STORM["limit up,$limit"]="$(($(now_ms) - t0)) ms"
    else
        STORM["limit up,$limit"]="not all within $wait s"
    fi
    served="$(awk 'END { print $2 + 0 }' "$dat")"
    STORM["limit served,$limit"]="$served of $n"
    kill -INT "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    wait_none_left 300 "-limit$limit-" || say "start limit: containers of limit $limit still there"
    unset 'CLEANUPS[-1]'
    STORM["limit unanswered,$limit"]="$(grep -c 'did not answer POST /containers/[0-9a-f]*/start' "$log" || true)"
}

section_startlimit() {
    local limit
    for limit in 0 8; do
        storm_settle
        startlimit_storm "$limit"
    done
    cat <<EOF

### The start limit: ${STARTLIMIT_N:-150} \`uwsgi-docker run\` at once

The bench's vassal (published port), all bridges started at once, no Emperor; first with no start limit, then with 8 slots, each once the machine had settled.

| UWSGIDOCKER_MAX_STARTS | served within ${STARTLIMIT_WAIT:-300} s | every one answering 200 after | bridges whose start went unanswered for 30 s |
| --- | --- | --- | --- |
$(for limit in 0 8; do row "$limit" "${STORM[limit served,$limit]}" "${STORM[limit up,$limit]}" "${STORM[limit unanswered,$limit]}"; done)
EOF
}

# Resident kB of PID.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
uss_kb() { awk '/^Private_(Clean|Dirty):/ { kb += $2 } END { print kb }' "/proc/$1/smaps_rollup"; }

section_scale() {
    start_emperor
    local dockerd containerd rss0 crss0 i batch ports
    dockerd="$(first_pid dockerd)"
    containerd="$(first_pid containerd)"
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
