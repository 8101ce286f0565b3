#!/usr/bin/env bash
# The quickstart, for real: a stock uWSGI Emperor wrapped by uwsgi-docker runs one PSGI
# vassal in a container and serves it on http://127.0.0.1:9001/.
#
#   scripts/demo.sh          run until Ctrl-C, then stop everything
#   scripts/demo.sh --once   stop as soon as the vassal answers (for CI and checks)
#
# Env: DEMO_PORT (default 9001).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"

ONCE=0
case "${1:-}" in
    --once) ONCE=1 ;;
    "") ;;
    *) echo "usage: $0 [--once]" >&2; exit 2 ;;
esac
PORT="${DEMO_PORT:-9001}"
VASSAL="demo-hello.ini"
IMAGE="uwsgi-docker-test"

SAY_PREFIX=$'\033[1mdemo:\033[0m'
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "something already listens on 127.0.0.1:$PORT; set DEMO_PORT"
fi

say "building uwsgi-docker (release; the static launcher is built into it)"
cargo build --release -q -p uwsgi-docker-cli
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/uwsgi-docker"
[[ -x "$BIN" ]] || die "the build did not produce $BIN"

say "building the test image"
scripts/build-test-image.sh # installs uwsgi-core and uwsgi-plugin-psgi when missing
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

DIR="$(mktemp -d /tmp/uwsgi-docker-demo.XXXXXX)"
mkdir "$DIR/vassals"
cat >"$DIR/vassals/$VASSAL" <<EOF
; the [emperor] section is read only by the Emperor (here: by uwsgi-docker)
[emperor]
docker-image = $IMAGE
; publish container port 3031 on the host's loopback
docker-port = 127.0.0.1:$PORT:3031
docker-memory = 128m

; the rest is plain uWSGI, run inside the container
[uwsgi]
master = true
plugin = psgi
psgi = /var/www/app.pl
http-socket = 0.0.0.0:3031
processes = 2
EOF

EMPEROR_PID=""
TAIL_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$TAIL_PID" ]] && kill "$TAIL_PID" 2>/dev/null || true
    if [[ -n "$EMPEROR_PID" ]] && kill -0 "$EMPEROR_PID" 2>/dev/null; then
        say "stopping the Emperor (it stops its vassals)"
        kill -INT "$EMPEROR_PID" 2>/dev/null || true
        if ! wait_gone "$EMPEROR_PID" 40; then
            say "the Emperor did not stop in 40 s; killing it"
            kill -KILL "$EMPEROR_PID" 2>/dev/null || true
        fi
        wait "$EMPEROR_PID" 2>/dev/null || true
    fi
    local left=""
    for _ in $(seq 1 100); do
        left="$(docker ps -aq --filter "label=io.uwsgi-docker.vassal=$VASSAL")"
        [[ -z "$left" ]] && break
        sleep 0.2
    done
    if [[ -n "$left" ]]; then
        say "error: containers left behind: $left (removing them)"
        docker rm -f $left >/dev/null 2>&1 || true
        rc=1
    else
        say "no container left behind"
    fi
    if ((rc != 0)); then
        say "kept $DIR (Emperor log: $DIR/emperor.log)"
    else
        rm -rf "$DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
# Ctrl-C is how the demo is meant to end: a clean stop is a success.
trap 'exit 0' INT
trap 'exit 0' TERM

say "starting the Emperor on $DIR/vassals (wrapper: $BIN)"
uwsgi --emperor "dir://$DIR/vassals" \
    --emperor-wrapper "$BIN" \
    --emperor-freq 1 \
    --logto "$DIR/emperor.log" \
    </dev/null >"$DIR/emperor.out" 2>&1 &
EMPEROR_PID=$!
if ((ONCE == 0)); then
    touch "$DIR/emperor.log"
    tail -n +1 -f "$DIR/emperor.log" &
    TAIL_PID=$!
fi

say "waiting for http://127.0.0.1:$PORT/"
body=""
for _ in $(seq 1 120); do
    kill -0 "$EMPEROR_PID" 2>/dev/null || { cat "$DIR/emperor.out" >&2; die "the Emperor exited"; }
    if body="$(curl -fsS --max-time 2 "http://127.0.0.1:$PORT/" 2>/dev/null)"; then
        break
    fi
    body=""
    sleep 0.5
done
if [[ -z "$body" ]]; then
    tail -n 40 "$DIR/emperor.log" >&2 || true
    die "the vassal did not answer within 60 s"
fi

printf '\n$ curl http://127.0.0.1:%s/\n%s\n\n' "$PORT" "$body"
docker ps --filter "label=io.uwsgi-docker.vassal=$VASSAL" --format 'container {{.Names}} ({{.ID}}): {{.Status}}, {{.Ports}}' >&2

if ((ONCE == 1)); then
    [[ "$body" == "Hello World from Docker" ]] || die "unexpected answer: $body"
    exit 0
fi
say "running; edit $DIR/vassals/$VASSAL to reload it, Ctrl-C to stop"
wait "$EMPEROR_PID" || true
say "the Emperor exited on its own"
