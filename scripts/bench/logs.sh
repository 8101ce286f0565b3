# Section "logs": log throughput (sourced by scripts/bench.sh).
#
# The app writes LOG_MB MB of 100-byte lines (scripts/bench/app.pl, /flood), 640 lines per
# write, in two containers of the same image, command and Tty:
#   ours:  a vassal; the bridge relays the attach stream into the Emperor's log (a file);
#   limit: `docker run -d`, its attach stream copied raw by curl to /dev/null.
# Each is timed from the request to the last byte at its sink: the last line in the
# Emperor's log, or curl's writes to /dev/null (wchar of /proc/PID/io) reaching the stream's size.
# The Emperor's log is then checked: every line there, once, in order, whole.

LOG_MB="${LOG_MB:-100}"
LOG_PORT="${BENCH_BASE_PORT:-19100}"

# Waits up to 600 s until FILE's last 4 KiB hold TEXT.
wait_log_tail() { # file text
    local deadline=$(($(now_ms) + 600000))
    until tail -c 4096 "$1" | grep -aqF "$2"; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.01
    done
}

# Waits up to 600 s until process PID has written at least BYTES more than FROM (to
# /dev/null: wchar counts it, while a socket's recv is not in rchar).
wait_wchar() { # pid from bytes
    local deadline=$(($(now_ms) + 600000)) now
    while :; do
        now="$(awk '/^wchar:/ { print $2 }' "/proc/$1/io" 2>/dev/null)" || return 1
        [[ -n "$now" ]] || return 1
        ((now - $2 >= $3)) && return 0
        (($(now_ms) < deadline)) || return 1
        sleep 0.01
    done
}

# Checks the relayed flood: LINES lines tagged TAG in the log, each "[VASSAL] flood TAG
# <9-digit n> x..." of 100 bytes plus the prefix, with n = 1..LINES in order. Prints
# "lines bad missing".
check_flood_lines() { # log vassal tag lines
    grep -aF "flood $3 " "$1" | awk -v prefix="[$2] " -v tag="$3" -v want="$4" '
        BEGIN { plen = length(prefix); next_n = 1; bad = 0 }
        {
            body = substr($0, plen + 1)
            if (substr($0, 1, plen) != prefix || length(body) != 99 || $2 != "flood" || $3 != tag) { bad++; next }
            n = $4 + 0
            if (n != next_n) bad++
            next_n = n + 1
            seen++
        }
        END { print seen + 0, bad, want - seen }'
}

section_logs() {
    start_emperor
    local lines=$((LOG_MB * 10000)) tag="t$RANDOM" name="$PREFIX-logs.ini" port=$((LOG_PORT + 11))
    local bridge t0 t1 t2 cpu0 cpu1
    write_vassal "$name" "$DIR/vassals" "$port"
    CLEANUPS+=("remove_vassal $DIR/vassals/$name")
    wait_200 "$port" || die "the log vassal did not answer"
    sleep 1
    bridge="$(bridge_pids | head -1)"
    [[ -n "$bridge" ]] || die "no bridge for $name"
    cpu0="$(cpu_ns "$bridge")"
    say "logs: $LOG_MB MB through the bridge"
    t0=$(now_ms)
    curl -fsS --max-time 600 -o /dev/null "http://127.0.0.1:$port/flood?n=$lines&tag=$tag" || die "the flood request failed"
    t1=$(now_ms)
    wait_log_tail "$DIR/emperor.log" "flood $tag $(printf '%09d' "$lines") " || die "the last line never reached the Emperor's log"
    t2=$(now_ms)
    cpu1="$(cpu_ns "$bridge")"
    local seen bad missing
    read -r seen bad missing < <(check_flood_lines "$DIR/emperor.log" "$name" "$tag" "$lines")
    remove_vassal "$DIR/vassals/$name"
    unset 'CLEANUPS[-1]'

    # The limit: the same container by `docker run -d`, attach stream to /dev/null.
    local plain="$PREFIX-logs-raw" curl_pid r0 r1 r2 raw_bytes
    docker run -d --name "$plain" -p "127.0.0.1:$((port + 1)):3031" "${PLAIN_RUN[@]}" "$IMAGE" "${PLAIN_CMD[@]}" >/dev/null
    CLEANUPS+=("docker rm -f $plain")
    wait_200 $((port + 1)) || die "the raw log container did not answer"
    curl -sS --unix-socket /var/run/docker.sock -X POST -o /dev/null \
        "http://docker/v1.41/containers/$plain/attach?stream=1&stdout=1&stderr=1" &
    curl_pid=$!
    BG_PIDS+=("$curl_pid")
    sleep 1
    # Tty: each line arrives with CRLF, 101 bytes. The last few KiB can sit in the pty or
    # the shim until more output comes, so the raw copy counts as done 64 KiB short.
    raw_bytes=$((lines * 101 - 65536))
    say "logs: $LOG_MB MB raw"
    r0="$(awk '/^wchar:/ { print $2 }' "/proc/$curl_pid/io")"
    r1=$(now_ms)
    curl -fsS --max-time 600 -o /dev/null "http://127.0.0.1:$((port + 1))/flood?n=$lines&tag=$tag" || die "the raw flood request failed"
    wait_wchar "$curl_pid" "$r0" "$raw_bytes" || die "curl did not read the whole attach stream"
    r2=$(now_ms)
    docker rm -f "$plain" >/dev/null
    unset 'CLEANUPS[-1]'
    wait "$curl_pid" 2>/dev/null || true

    local ours_ms=$((t2 - t0)) raw_ms=$((r2 - r1)) ours_bytes=$((lines * (100 + ${#name} + 3)))
    local ours_mbs raw_mbs cpu_per_100
    ours_mbs="$(awk -v mb="$LOG_MB" -v ms="$ours_ms" 'BEGIN { printf "%.1f", mb * 1000 / ms }')"
    raw_mbs="$(awk -v mb="$LOG_MB" -v ms="$raw_ms" 'BEGIN { printf "%.1f", mb * 1000 / ms }')"
    cpu_per_100="$(awk -v ns=$((cpu1 - cpu0)) -v mb="$LOG_MB" 'BEGIN { printf "%.2f", ns / 1e9 * 100 / mb }')"
    say "logs: ours $ours_ms ms (app done after $((t1 - t0)) ms), raw $raw_ms ms; $seen lines, $bad bad, $missing missing"
    cat <<EOF

### Log throughput

$LOG_MB MB ($lines lines of 100 bytes, 640 per write) from the same app, image, command and Tty, timed from the request to the last byte at the sink. Both containers have the daemon's default log driver ($(docker info -f '{{.LoggingDriver}}'); neither sets one). The sinks differ: ours writes every line, with its \`[vassal] \` prefix and without the CR, to a file ($((ours_bytes / 1000000)) MB); the raw copy writes the stream as it comes (CRLF) to /dev/null, and counts as done 64 KiB short.

| path | time | MB/s | vs raw copy | bridge CPU per 100 MB | lines relayed / split or malformed / lost |
| --- | --- | --- | --- | --- | --- |
$(row "bridge -> Emperor's log (a file)" "$ours_ms ms (app done at $((t1 - t0)) ms)" "$ours_mbs" "$(ratio "$ours_mbs" "$raw_mbs")x" "$cpu_per_100 s" "$seen / $bad / $missing")
$(row "raw copy: \`curl --unix-socket\` on /attach to /dev/null" "$raw_ms ms" "$raw_mbs" "1.00x" "-" "-")
EOF
}
