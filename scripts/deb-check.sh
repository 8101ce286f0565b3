#!/usr/bin/env bash
# Install the Debian package, run one plugin-mode vassal through an Emperor that loads the
# plugin by name (`plugins = docker`), check its answer over HTTP, and remove the package.
#
#   scripts/deb-check.sh DEB
#
# Needs root, a running Docker daemon and the test image (scripts/build-test-image.sh).
# Fails if uwsgi-docker is already installed as a package: it would not be ours to remove.
set -euo pipefail
cd "$(dirname "$0")/.."

deb="${1:?usage: scripts/deb-check.sh path/to/uwsgi-docker_VERSION_ARCH.deb}"
image="${UWSGIDOCKER_TEST_IMAGE:-uwsgi-docker-test:latest}"
greeting="Hello World from Docker"

say() { printf 'deb-check: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

if dpkg-query -W -f='${Status}' uwsgi-docker 2>/dev/null | grep -q 'install ok installed'; then
    die "the uwsgi-docker package is already installed; remove it first"
fi

dir="$(mktemp -d /tmp/uwsgi-docker-deb.XXXXXX)"
vassal="debcheck$$.ini"
emperor_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$emperor_pid" ]] && kill -0 "$emperor_pid" 2>/dev/null; then
        # SIGINT: the Emperor stops its vassals, and each bridge removes its container.
        kill -INT "$emperor_pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$emperor_pid" 2>/dev/null || break; sleep 1; done
        kill -KILL "$emperor_pid" 2>/dev/null || true
    fi
    # Only our own vassal's container, if its bridge could not remove it.
    docker ps -aq --filter "label=io.uwsgi-docker.vassal=$vassal" | xargs -r docker rm -f >/dev/null
    if dpkg-query -W -f='${Status}' uwsgi-docker 2>/dev/null | grep -q 'install ok installed'; then
        apt-get remove -y -qq uwsgi-docker >/dev/null || rc=1
    fi
    ((rc == 0)) || { say "log:"; cat "$dir/emperor.log" >&2 2>/dev/null || true; }
    rm -rf "$dir"
    exit "$rc"
}
trap cleanup EXIT

say "installing $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(realpath "$deb")" >/dev/null
[[ -x /usr/bin/uwsgi-docker ]] || die "/usr/bin/uwsgi-docker is not installed"
[[ -f /usr/lib/uwsgi/plugins/docker_plugin.so ]] || die "docker_plugin.so is not in /usr/lib/uwsgi/plugins"

# A free port on 127.0.0.1, from the kernel.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir "$dir/vassals"
cat >"$dir/emperor.ini" <<EOF
[uwsgi]
plugins = docker
emperor = dir://$dir/vassals
emperor-docker-required = true
EOF
cat >"$dir/vassals/$vassal" <<EOF
[emperor]
docker-image = $image
docker-port = 127.0.0.1:$port:3031

[uwsgi]
master = true
plugin = psgi
psgi = /var/www/app.pl
http-socket = 0.0.0.0:3031
processes = 1
EOF

say "starting an Emperor with plugins = docker (Debian's /usr/bin/uwsgi)"
UWSGIDOCKER_RUNTIME_DIR="$dir/run" /usr/bin/uwsgi --ini "$dir/emperor.ini" >"$dir/emperor.log" 2>&1 &
emperor_pid=$!

body=""
for _ in $(seq 1 60); do
    body="$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null || true)"
    [[ "$body" == "$greeting" ]] && break
    kill -0 "$emperor_pid" 2>/dev/null || die "the Emperor exited"
    sleep 1
done
[[ "$body" == "$greeting" ]] || die "the vassal did not answer \"$greeting\" on port $port (last: \"$body\")"
say "the vassal answered \"$body\" from its container"
docker ps -q --filter "label=io.uwsgi-docker.vassal=$vassal" | grep -q . \
    || die "no running container labelled io.uwsgi-docker.vassal=$vassal"

say "stopping the Emperor: the bridge removes the container"
kill -INT "$emperor_pid"
for _ in $(seq 1 30); do kill -0 "$emperor_pid" 2>/dev/null || break; sleep 1; done
kill -0 "$emperor_pid" 2>/dev/null && die "the Emperor did not stop within 30 s"
emperor_pid=""
[[ -z "$(docker ps -aq --filter "label=io.uwsgi-docker.vassal=$vassal")" ]] \
    || die "the container of $vassal was left behind"

say "removing the package"
apt-get remove -y -qq uwsgi-docker >/dev/null
[[ ! -e /usr/bin/uwsgi-docker && ! -e /usr/lib/uwsgi/plugins/docker_plugin.so ]] \
    || die "apt-get remove left files behind"
say "ok"
