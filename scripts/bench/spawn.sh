# Section "spawn": the first 200 after a spawn, the bridge's CPU to the handoff, and the
# daemon round trips on its critical path (sourced by scripts/bench.sh).
#
# SPAWN_ROUNDS rounds (default 20) of `uwsgi-docker run FILE` and `docker run -d` of the
# same image, app and command, probed on the container's own address (no docker-proxy);
# the first SPAWN_PORT_ROUNDS (5) rounds also spawn through the Emperor, and both again
# through a published port. Every probe starts at t0 and retries every 20 ms.
# Bridge CPU: the `run` process's on-CPU time (/proc/PID/task/*/schedstat, ns) when the
# first 200 comes: exec -> handoff, plus relaying uWSGI's start-up lines (an upper bound).

SPAWN_ROUNDS="${SPAWN_ROUNDS:-20}"
SPAWN_PORT_ROUNDS="${SPAWN_PORT_ROUNDS:-5}"
SPAWN_PORT="${BENCH_BASE_PORT:-19100}"

# Environment of a bridge started by hand, as the Emperor's would be (a command prefix, not
# a function: `"${BRIDGE_ENV[@]}" cmd &` makes $! the command's own pid).
bridge_env() {
    BRIDGE_ENV=(env UWSGIDOCKER_LAUNCHER="$LAUNCHER" UWSGIDOCKER_RUNTIME_DIR="$DIR/run" UWSGIDOCKER_EMPEROR_ID="$PREFIX")
}

# `uwsgi-docker run` of a new vassal NAME (WHERE as for vassal_text) until PROBE... says
# 200. Appends the ms to array OUT and the bridge's CPU µs to array CPU.
time_bridge_run() { # out cpu name where probe...
    local -n out_ms="$1" out_cpu="$2"
    local name="$3" where="$4" t0 pid ns
    shift 4
    write_vassal "$name" "$DIR" "$where"
    t0=$(now_ms)
    "${BRIDGE_ENV[@]}" "$BIN" run "$DIR/$name" >>"$DIR/run.log" 2>&1 &
    pid=$!
    "$@" || { tail -n 30 "$DIR/run.log" >&2; kill -INT "$pid"; die "uwsgi-docker run $name did not answer"; }
    out_ms+=($(($(now_ms) - t0)))
    ns="$(cpu_ns "$pid")"
    out_cpu+=($((ns / 1000)))
    kill -INT "$pid"
    wait "$pid" || true
}

# `docker run -d` of container NAME (extra docker arguments in the array named by EXTRA)
# until PROBE... says 200; appends the ms to array OUT. The probe runs while `docker run`
# is still starting, as for the bridge.
time_docker_run() { # out name extra probe...
    local -n out_ms="$1" docker_extra="$3"
    local name="$2" t0 pid
    shift 3
    t0=$(now_ms)
    docker run -d --name "$name" "${docker_extra[@]}" "${PLAIN_RUN[@]}" "$IMAGE" "${PLAIN_CMD[@]}" >/dev/null &
    pid=$!
    "$@" || die "docker run $name did not answer"
    out_ms+=($(($(now_ms) - t0)))
    wait "$pid"
    docker rm -f "$name" >/dev/null
}

# One `uwsgi-docker run` under strace: prints the bridge's timeline (ms after its exec)
# of daemon requests and their replies, the proxy accept and the handoff, and the first 200.
trace_spawn() {
    local name="$PREFIX-trace.ini" t0 pid bridge
    write_vassal "$name" "$DIR" none
    t0=$(now_us)
    "${BRIDGE_ENV[@]}" strace -f -ttt -s 120 -o "$DIR/spawn.strace" \
        -e trace=execve,connect,accept4,write,writev,sendto,sendmsg,read,recvfrom "$BIN" run "$DIR/$name" \
        >>"$DIR/run.log" 2>&1 &
    pid=$!
    wait_200_in "$name" || die "the traced spawn did not answer"
    local first_200=$(($(now_us) - t0))
    # The bridge, not strace (which would detach and leave it running).
    bridge="$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)"
    kill -INT ${bridge:-$pid}
    wait "$pid" || true
    # fd -> request; a reply is the first read on that fd that starts with HTTP/1.1.
    awk -v first_200_us="$first_200" '
        function ms(t) { return sprintf("%7.1f", (t - t0) * 1000) }
        /execve\(/ && t0 == "" { t0 = $2 }
        {
            t = $2
            if ($0 ~ /(write|sendto)\([0-9]+, "(GET|POST|DELETE|HEAD) /) {
                fd = $0; sub(/^[^(]*\(/, "", fd); sub(/,.*/, "", fd)
                req = $0; sub(/^[^"]*"/, "", req); sub(/ HTTP\/1.1.*/, "", req); sub(/\?.*/, "", req)
                gsub(/\/v1\.[0-9]+/, "", req)
                gsub(/[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]+/, "ID", req)
                open[fd] = req; sent[fd] = t
                printf "%s ms  -> %s\n", ms(t), req
            } else if ($0 ~ /(read|recvfrom)\([0-9]+, "HTTP\/1.1 [0-9]+/) {
                fd = $0; sub(/^[^(]*\(/, "", fd); sub(/,.*/, "", fd)
                if (fd in open) {
                    status = $0; sub(/^[^"]*"HTTP\/1.1 /, "", status); status = substr(status, 1, 3)
                    printf "%s ms  <- %s %s (%.1f ms)\n", ms(t), status, open[fd], (t - sent[fd]) * 1000
                    delete open[fd]
                }
            } else if ($0 ~ /accept4\(/ && $0 ~ /= [0-9]+$/ && !accepted) {
                accepted = 1; printf "%s ms  proxy socket: the container connects\n", ms(t)
            } else if ($0 ~ /sendmsg\(/ && $0 ~ /SCM_RIGHTS/) {
                printf "%s ms  handoff (SCM_RIGHTS)\n", ms(t)
            }
        }
        END { printf "%7.1f ms  first 200 on the container address (probe, from just before exec)\n", first_200_us / 1000 }
    ' "$DIR/spawn.strace"
}

section_spawn() {
    start_emperor
    bridge_env
    local wrapped=() direct=() plain=() direct_in=() plain_in=() cpu=() cpu_port=() round port name
    local no_publish=()
    for round in $(seq 1 "$SPAWN_ROUNDS"); do
        if ((round <= SPAWN_PORT_ROUNDS)); then
            port=$((SPAWN_PORT + 20 + round))
            name="$PREFIX-spawn$round.ini"
            local t0
            t0=$(now_ms)
            write_vassal "$name" "$DIR/vassals" "$port"
            wait_200 "$port" || { tail -n 30 "$DIR/emperor.log" >&2; die "vassal $name did not answer"; }
            wrapped+=($(($(now_ms) - t0)))
            remove_vassal "$DIR/vassals/$name"
            port=$((SPAWN_PORT + 40 + round))
            time_bridge_run direct cpu_port "$PREFIX-run$round.ini" "$port" wait_200 "$port"
            port=$((SPAWN_PORT + 60 + round))
            local publish=(-p "127.0.0.1:$port:3031")
            time_docker_run plain "$PREFIX-plain$round" publish wait_200 "$port"
        fi
        name="$PREFIX-runin$round.ini"
        time_bridge_run direct_in cpu "$name" none wait_200_in "$name"
        time_docker_run plain_in "$PREFIX-plainin$round" no_publish wait_200_in "$PREFIX-plainin$round"
        say "spawn round $round: run ${direct_in[-1]} ms (CPU ${cpu[-1]} µs), docker run ${plain_in[-1]} ms on the container address"
    done
    local i
    : >"$OUT/spawn.dat"
    for i in "${!direct_in[@]}"; do printf '%s %s\n' "${direct_in[i]}" "${plain_in[i]}" >>"$OUT/spawn.dat"; done
    local m_wrapped m_direct m_plain m_direct_in m_plain_in m_cpu max_cpu
    m_wrapped="$(printf '%s\n' "${wrapped[@]}" | median)"
    m_direct="$(printf '%s\n' "${direct[@]}" | median)"
    m_plain="$(printf '%s\n' "${plain[@]}" | median)"
    m_direct_in="$(printf '%s\n' "${direct_in[@]}" | median)"
    m_plain_in="$(printf '%s\n' "${plain_in[@]}" | median)"
    m_cpu="$(printf '%s\n' "${cpu[@]}" | median)"
    max_cpu="$(printf '%s\n' "${cpu[@]}" | max_of)"
    say "tracing one spawn"
    local trace
    trace="$(trace_spawn)"
    cat <<EOF

### Spawn: first 200, and the bridge's own cost

Container address: ${SPAWN_ROUNDS} rounds; Emperor and published port: the first ${SPAWN_PORT_ROUNDS}. Each probe starts at t0 and retries every 20 ms (\`curl --max-time 0.25\`).

| figure | ours | \`docker run -d\` | ratio |
| --- | --- | --- | --- |
$(row "first 200 on the container's address, \`uwsgi-docker run\` (median of ${SPAWN_ROUNDS})" "$m_direct_in ms" "$m_plain_in ms" "$(ratio "$m_direct_in" "$m_plain_in")x")
$(row "first 200 through a published port, \`uwsgi-docker run\` (median of ${SPAWN_PORT_ROUNDS})" "$m_direct ms" "$m_plain ms" "$(ratio "$m_direct" "$m_plain")x")
$(row "first 200 through a published port, file dropped into the Emperor's directory (median of ${SPAWN_PORT_ROUNDS}; includes its 1 s scan)" "$m_wrapped ms" "$m_plain ms" "$(ratio "$m_wrapped" "$m_plain")x")
$(row "bridge CPU, exec to first 200 (handoff + start-up log relay), median / max of ${SPAWN_ROUNDS}" "$(awk -v u="$m_cpu" 'BEGIN { printf "%.1f", u / 1000 }') / $(awk -v u="$max_cpu" 'BEGIN { printf "%.1f", u / 1000 }') ms" "-" "target 5 ms")

Per round, container address (ms, ours / \`docker run -d\`): $(for i in "${!direct_in[@]}"; do printf '%s/%s ' "${direct_in[i]}" "${plain_in[i]}"; done)

One traced spawn (\`strace -f -ttt\` of \`uwsgi-docker run\`; ms after its exec; strace slows every syscall, so read the order and the gaps, not the sum):

\`\`\`
$trace
\`\`\`
EOF
}
