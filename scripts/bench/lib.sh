# Shared by scripts/bench.sh and its sections (sourced, not run): set-up, the Emperor,
# vassal files, probes, statistics and the cleanup trap.
# Globals set by bench_setup: REPO BIN LAUNCHER DIR OUT PREFIX EMPEROR_PID IMAGE.

IMAGE="uwsgi-docker-test"
PREFIX="bench$$"
EMPEROR_PID=""
BG_PIDS=()
# Commands the cleanup runs first (a section's own teardown), newest last.
CLEANUPS=()

SAY_PREFIX="bench:"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
now_ms() { echo $(($(date +%s%N) / 1000000)); }
now_us() { echo $(($(date +%s%N) / 1000)); }

# Median of the numbers on stdin ("n/a" for none).
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
max_of() { sort -n | tail -1; }
# A / B with two decimals, "n/a" when B is 0 or either is not a number.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == a && b + 0 == b && b != 0) printf "%.2f", a / b; else print "n/a" }'; }

# Builds the release binary, the static launcher and the test image; makes the run's
# scratch directory and the output directory.
bench_setup() {
    install_packages curl wrk gnuplot-nox valgrind strace uwsgi-core uwsgi-plugin-psgi
    say "building (release)"
    cargo build --release -q -p uwsgi-docker-cli
    # BENCH_BIN: another build to measure (say, the one before a change), same harness.
    BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/uwsgi-docker}"
    [[ -x "$BIN" ]] || die "the build did not produce $BIN"
    LAUNCHER="$(scripts/build-launcher.sh)"
    scripts/build-test-image.sh >&2
    DIR="$(mktemp -d /tmp/uwsgi-docker-bench.XXXXXX)"
    mkdir -p "$DIR/vassals" "$DIR/run" "$DIR/app"
    cp scripts/bench/app.pl "$DIR/app/app.pl"
    plain_run_args
    OUT="${BENCH_OUT:-$REPO/target/bench}"
    mkdir -p "$OUT"
    # 300+ vassals: the Emperor holds two fds per vassal, each bridge a handful.
    ulimit -n "$(ulimit -Hn)"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Stops what this run started: section teardowns, background jobs, the Emperor (which
# stops its vassals), then any container of this run that is left. Keeps DIR on failure.
bench_cleanup() {
    local rc=$? i pid left
    trap - EXIT INT TERM
    for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[i]}" >/dev/null 2>&1 || true; done
    for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    stop_emperor
    left="$(docker ps -aq --filter "name=^/?$PREFIX")"
    if [[ -n "$left" ]]; then
        say "removing leftover containers"
        # shellcheck disable=SC2086 # one id per word
        docker rm -f $left >/dev/null 2>&1 || true
    fi
    if [[ -n "${DIR:-}" ]]; then
        if ((rc == 0)) && [[ "${BENCH_KEEP:-0}" != 1 ]]; then rm -rf "$DIR"; else say "kept $DIR"; fi
    fi
    exit "$rc"
}

# Starts a stock Emperor on DIR/vassals with uwsgi-docker as its wrapper, the launcher
# installed, and its proxy sockets in DIR/run. With EMPEROR_STAMPED=1 its bridges log
# debug lines and everything it and its vassals log goes to DIR/emperor.log through
# stamp_lines (each line after the epoch ms it came at), for splitting what takes the time;
# else the Emperor writes the file itself.
# Its fd limit is EMPEROR_NOFILE (4096: two fds a vassal, room for 2,000), not the hard
# limit the bench raises its own to: every vassal's fork closes each fd up to the Emperor's
# limit before it execs (core/emperor.c), so a higher one costs every spawn.
start_emperor() {
    [[ -z "$EMPEROR_PID" ]] || return 0
    local env=(UWSGIDOCKER_LAUNCHER="$LAUNCHER" UWSGIDOCKER_RUNTIME_DIR="$DIR/run" UWSGIDOCKER_EMPEROR_ID="$PREFIX")
    local emperor=(uwsgi --emperor "dir://$DIR/vassals" --emperor-wrapper "$BIN" --emperor-freq 1)
    if [[ "${EMPEROR_STAMPED:-0}" == 1 ]]; then
        (ulimit -n "${EMPEROR_NOFILE:-4096}" && exec env "${env[@]}" UWSGIDOCKER_DEBUG=1 "${emperor[@]}" </dev/null) \
            > >(stamp_lines >"$DIR/emperor.log") 2>&1 &
    else
        (ulimit -n "${EMPEROR_NOFILE:-4096}" && exec env "${env[@]}" "${emperor[@]}" --logto "$DIR/emperor.log" </dev/null) \
            >"$DIR/emperor.out" 2>&1 &
    fi
    EMPEROR_PID=$!
    sleep 1
    kill -0 "$EMPEROR_PID" 2>/dev/null || { cat "$DIR/emperor.out" "$DIR/emperor.log" >&2 2>/dev/null; die "the Emperor did not start"; }
}

# Each line of stdin, prefixed with the epoch millisecond it arrived at.
stamp_lines() {
    perl -MTime::HiRes=time -ne 'BEGIN { $| = 1 } printf "%.1f %s", time * 1000, $_'
}

# SIGINT stops the Emperor and its vassals (each bridge removes its container).
stop_emperor() {
    [[ -n "$EMPEROR_PID" ]] || return 0
    if kill -0 "$EMPEROR_PID" 2>/dev/null; then
        kill -INT "$EMPEROR_PID" 2>/dev/null || true
        for _ in $(seq 1 600); do kill -0 "$EMPEROR_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$EMPEROR_PID" 2>/dev/null || true
    fi
    wait "$EMPEROR_PID" 2>/dev/null || true
    EMPEROR_PID=""
}

# Prints a vassal file whose container publishes 127.0.0.1:PORT (or, for "socket=ADDR",
# the bridge listens on ADDR and hands it over; for "none", nothing), serving the bench's
# app (scripts/bench/app.pl, mounted at /bench) with GREETING. More [emperor] or [uwsgi]
# lines come from EMPEROR_EXTRA and UWSGI_EXTRA.
vassal_text() { # port_or_socket greeting
    local where="$1" greeting="${2:-Hello World from Docker}"
    printf '[emperor]\ndocker-image = %s\n' "$IMAGE"
    case "$where" in
        socket=*) printf 'docker-socket = %s\n' "${where#socket=}" ;;
        none) ;;
        *) printf 'docker-port = 127.0.0.1:%s:3031\n' "$where" ;;
    esac
    printf 'docker-mount = %s/app:/bench:ro\n' "$DIR"
    [[ -n "${EMPEROR_EXTRA:-}" ]] && printf '%s\n' "$EMPEROR_EXTRA"
    printf '\n[uwsgi]\nmaster = true\nplugin = psgi\npsgi = /bench/app.pl\n'
    case "$where" in
        socket=*) printf 'protocol = http\n' ;;
        *) printf 'http-socket = 0.0.0.0:3031\n' ;;
    esac
    printf 'env = GREETING=%s\n' "$greeting"
    [[ -n "${UWSGI_EXTRA:-}" ]] && printf '%s\n' "$UWSGI_EXTRA"
    return 0
}

# The same app in a plain container: `docker run -d "${PLAIN_RUN[@]}" ... "$IMAGE"
# "${PLAIN_CMD[@]}"` (the bridge's Tty, stop signal and timeout).
plain_run_args() {
    PLAIN_RUN=(-t --stop-signal SIGINT --stop-timeout 10 -v "$DIR/app:/bench:ro")
    PLAIN_CMD=(uwsgi --master --plugin psgi --psgi /bench/app.pl --http-socket 0.0.0.0:3031)
}

# Writes vassal NAME into DEST (default the Emperor's directory) whole, so the Emperor
# never sees half a file; the rest of the arguments go to vassal_text.
write_vassal() { # name dest where [greeting]
    local name="$1" dest="${2:-$DIR/vassals}"
    shift 2
    vassal_text "$@" >"$DIR/.$name.tmp"
    mv "$DIR/.$name.tmp" "$dest/$name"
}

# Waits up to TIMEOUT s (default 60) for a 200 from URL.
wait_200_url() { # url [timeout_s]
    local url="$1" deadline=$(($(now_ms) + ${2:-60} * 1000))
    until curl -fsS --max-time 0.25 -o /dev/null "$url" 2>/dev/null; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.02
    done
}
wait_200() { wait_200_url "http://127.0.0.1:$1/" "${2:-60}"; }

# Waits up to 60 s for URL to answer 200 with exactly BODY.
wait_body() { # url body
    local url="$1" body="$2" got deadline=$(($(now_ms) + 60000))
    while :; do
        got="$(curl -fsS --max-time 0.25 "$url" 2>/dev/null || true)"
        [[ "$got" == "$body" ]] && return 0
        (($(now_ms) < deadline)) || return 1
        sleep 0.02
    done
}

# Container NAME's own address (empty until it has one).
container_ip() { docker inspect -f '{{.NetworkSettings.IPAddress}}' "$1" 2>/dev/null || true; }

# Waits up to 60 s for a 200 from container NAME's own address (port 3031), bypassing
# published ports and docker-proxy: when uWSGI itself is ready.
wait_200_in() {
    local name="$1" ip="" deadline=$(($(now_ms) + 60000))
    until [[ -n "$ip" ]] && curl -fsS --max-time 0.25 -o /dev/null "http://$ip:3031/" 2>/dev/null; do
        (($(now_ms) < deadline)) || return 1
        [[ -n "$ip" ]] || ip="$(container_ip "$name")"
        sleep 0.02
    done
}

# Pids of this run's bridges (their title names the vassal).
bridge_pids() {
    local p
    for p in /proc/[0-9]*; do
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "^\[uwsgi-docker-bridge\] $PREFIX" && echo "${p#/proc/}"
    done
    return 0
}

# Nanoseconds PID has run on a CPU, all its threads (the scheduler's own account, finer
# than the 10 ms ticks of /proc/PID/stat).
cpu_ns() {
    local t sum=0 ns
    for t in /proc/"$1"/task/*/schedstat; do
        read -r ns _ <"$t" 2>/dev/null || continue
        sum=$((sum + ns))
    done
    echo "$sum"
}

# Containers of this run whose name matches the extended regex.
count_containers() { docker ps -aq --filter "name=^/?$PREFIX$1" | wc -l; }

# Markdown table row from the arguments.
row() {
    local out="|" cell
    for cell in "$@"; do out+=" $cell |"; done
    printf '%s\n' "$out"
}
