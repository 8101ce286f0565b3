#!/usr/bin/env bash
# Measure what operators feel, each figure side by side with its baseline in the same run,
# and print Markdown for BENCHMARKS.md (also kept in OUT/results.md, with the plots).
#
#   scripts/bench.sh [SECTION...]      (default: all of them, in this order)
#
#   spawn      first 200 after a spawn: Emperor, `uwsgi-docker run`, `docker run -d`; the
#              bridge's CPU from exec to the handoff; its daemon round trips (strace)
#   reload     reloads under wrk load: touch-reload (published port, docker-socket), an
#              [emperor] change (recreate), vs `docker restart`
#   logs       100 MB of 100-byte log lines into the Emperor's log vs a raw copy of the
#              attach stream (curl) to /dev/null
#   storm      STORM_N vassal files moved in at once vs STORM_N `docker run -d` (8 in
#              parallel, and all at once), STORM_RUNS times; removal, split by step, against
#              `docker stop` + `docker rm`, plain uWSGI vassals and bridges alone
#   scale      300 idle vassals: bridge USS, fds, Emperor CPU, daemon RSS; 1,000 extrapolated
#   startlimit (not in the default set) 150 `uwsgi-docker run` at once with no start limit,
#              then with 8 slots: how many serve, how many starts go unanswered
#   callgrind  instruction counts of the core's hot paths
#   plots      (after reload and spawn) the PNGs, with gnuplot
#   rollover   an image change under wrk load: rollover (docker-socket) vs recreate
#              (published port) vs `docker restart` (scripts/bench/rollover.sh, which
#              also runs on its own)
#   registry   first 200 for a vassal whose image is only in a local registry vs `docker
#              run -d` of the same image after `docker rmi` (both pull)
#
# Env: BENCH_OUT (default target/bench: results.md, *.dat, *.png), SPAWN_ROUNDS (20),
#      RELOAD_SECS (30), LOG_MB (100), STORM_N (100), STORM_RUNS (3), STORM_VARIANTS (see
#      scripts/bench/storm.sh), SCALE_N (300), EMPEROR_NOFILE (4096, the Emperor's fd
#      limit), BENCH_BASE_PORT (19100; it uses up to BASE + 1000), BENCH_KEEP=1 keeps the
#      scratch directory; UWSGIDOCKER_MAX_STARTS, when set, reaches the Emperor and the
#      bridges (the storm prints the start limit in force).
# It installs what it needs from Debian's packages (wrk, gnuplot, valgrind, strace, uWSGI),
# builds the release binary, the launcher and the test image, runs everything on
# 127.0.0.1 and removes everything it started, also when interrupted.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
# shellcheck source=bench/lib.sh
source scripts/bench/lib.sh
for part in spawn reload logs storm report registry; do
    # shellcheck source=/dev/null
    source "scripts/bench/$part.sh"
done

# Make-before-break runs its own set-up and clean-up; RELOAD_SECS is its window too.
section_rollover() {
    bash scripts/bench/rollover.sh "${RELOAD_SECS:-20}"
}

ALL=(spawn reload logs storm scale callgrind plots rollover registry)
SECTIONS=("$@")
((${#SECTIONS[@]})) || SECTIONS=("${ALL[@]}")
for s in "${SECTIONS[@]}"; do
    declare -F "section_$s" >/dev/null || die "unknown section $s (known: ${ALL[*]})"
done

bench_setup
started=$SECONDS
# Everything printed goes to the terminal and to results.md; the sections run in this
# shell (not a pipeline's subshell), so the cleanup trap sees what they started.
exec > >(tee "$OUT/results.md")
echo "## Results"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with local changes)'), \`scripts/bench.sh${*:+ $*}\`."
echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, Linux $(uname -r), Docker Engine $(docker version -f '{{.Server.Version}}'), uWSGI $(uwsgi --version); load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
for s in "${SECTIONS[@]}"; do
    say "section $s"
    "section_$s"
done
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); the run took $((SECONDS - started)) s."
say "results and plots are in $OUT"
