#!/usr/bin/env bash
# Install the Debian package and check what it ships: the man page, the bash completion,
# `--version`; one plugin-mode vassal through an Emperor that loads the plugin by name
# (`plugins = docker`), answering over HTTP; then Debian's uwsgi-emperor service, turned on
# by the one line the README documents, serving a vassal from /etc/uwsgi-emperor/vassals/
# and leaving no container, socket file or process once `sh /etc/init.d/uwsgi-emperor stop`
# returns. Removes the package (and uwsgi-emperor, when it installed it) at the end.
#
#   scripts/deb-check.sh DEB
#
# Needs root, a running Docker daemon and the test image (scripts/build-test-image.sh).
# Fails if uwsgi-docker is already installed as a package (it would not be ours to remove),
# or if the uwsgi-emperor service is already running.
set -euo pipefail
cd "$(dirname "$0")/.."

deb="${1:?usage: scripts/deb-check.sh path/to/uwsgi-docker_VERSION_ARCH.deb}"
image="${UWSGIDOCKER_TEST_IMAGE:-uwsgi-docker-test:latest}"
greeting="Hello World from Docker"

# Running, not a zombie (an init that is not a real one may be slow to reap them).
alive() { local state; state="$(ps -o stat= -p "$1" 2>/dev/null)"; [[ -n "$state" && "$state" != Z* ]]; }
SAY_PREFIX="deb-check:"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

if dpkg-query -W -f='${Status}' uwsgi-docker 2>/dev/null | grep -q 'install ok installed'; then
    die "the uwsgi-docker package is already installed; remove it first"
fi

dir="$(mktemp -d /tmp/uwsgi-docker-deb.XXXXXX)"
vassal="debcheck$$.ini"
service_vassal="debcheck$$-service.ini"
emperor_pid=""
emperor_installed=0 # 1: this run installed uwsgi-emperor, and removes it again
emperor_ini=/etc/uwsgi-emperor/emperor.ini
service_master="" # the uwsgi-emperor service's master, while this run has it started
service_emperors=""
cleanup() {
    local rc=$?
    if [[ -n "$service_master" ]] && alive "$service_master"; then
        # Not the init script's stop (see below): just this service, as --die-on-term stops it.
        kill -TERM "$service_master" 2>/dev/null || true
        for _ in $(seq 1 30); do alive "$service_master" || break; sleep 1; done
        kill -KILL "$service_master" 2>/dev/null || true
        rm -f /run/uwsgi-emperor.pid
    fi
    # The service's Emperor's private runtime directory, if its bridges left it empty.
    for pid in $service_emperors; do
        find /run/uwsgi-docker -maxdepth 1 -type d -empty -name "*_$pid-*" -delete 2>/dev/null || true
    done
    if [[ -n "$emperor_pid" ]] && kill -0 "$emperor_pid" 2>/dev/null; then
        # SIGINT: the Emperor stops its vassals, and each bridge removes its container.
        kill -INT "$emperor_pid" 2>/dev/null || true
        wait_gone "$emperor_pid" 30 || kill -KILL "$emperor_pid" 2>/dev/null || true
    fi
    # Only our own vassals' containers, if their bridges could not remove them.
    for v in "$vassal" "$service_vassal"; do
        docker ps -aq --filter "label=io.uwsgi-docker.vassal=$v" | xargs -r docker rm -f >/dev/null
    done
    rm -f "/etc/uwsgi-emperor/vassals/$service_vassal"
    [[ -f "$dir/emperor.ini.orig" ]] && cp "$dir/emperor.ini.orig" "$emperor_ini"
    if ((emperor_installed)); then
        apt-get purge -y -qq uwsgi-emperor >/dev/null || rc=1
        rm -f /run/uwsgi-emperor.pid
    fi
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
man -w uwsgi-docker >/dev/null || die "man -w uwsgi-docker finds no page"
man_text="$(MANWIDTH=200 man uwsgi-docker 2>/dev/null)"
for word in UWSGIDOCKER_NAME_PREFIX "uwsgi-docker gc"; do
    grep -qF -- "$word" <<<"$man_text" || die "the man page does not mention $word"
done
[[ -f /usr/share/bash-completion/completions/uwsgi-docker ]] || die "no bash completion"
bash -c 'source /usr/share/bash-completion/completions/uwsgi-docker && complete -p uwsgi-docker' >/dev/null \
    || die "the bash completion does not register for uwsgi-docker"
version="$(/usr/bin/uwsgi-docker --version)"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
[[ "$version" == "uwsgi-docker "*" (git $commit)" ]] || die "--version says \"$version\", not the commit $commit"
say "man page, bash completion and \"$version\" are there"

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
wait_gone "$emperor_pid" 30 || die "the Emperor did not stop within 30 s"
emperor_pid=""
[[ -z "$(docker ps -aq --filter "label=io.uwsgi-docker.vassal=$vassal")" ]] \
    || die "the container of $vassal was left behind"

# Debian's uwsgi-emperor service, with the one line the README documents.
say "Debian's uwsgi-emperor service"
install_packages uwsgi-emperor
if ((${#INSTALLED[@]})); then emperor_installed=1; fi
service_pid() { [[ -s /run/uwsgi-emperor.pid ]] && alive "$(cat /run/uwsgi-emperor.pid)"; }
if service_pid; then
    # Started by the install (no policy-rc.d), with Debian's own emperor.ini: its pidfile is
    # world-writable (see packaging/uwsgi-emperor.ini), so the init script cannot stop it.
    ((emperor_installed)) || die "the uwsgi-emperor service is running; stop it first"
    kill -TERM "$(cat /run/uwsgi-emperor.pid)"
    for _ in $(seq 1 30); do service_pid || break; sleep 1; done
    service_pid && die "the uwsgi-emperor service that its install started did not stop"
    rm -f /run/uwsgi-emperor.pid
fi
cp "$emperor_ini" "$dir/emperor.ini.orig"
echo "ini = /usr/share/uwsgi-docker/uwsgi-emperor.ini" >>"$emperor_ini"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
sed "s/^docker-port = .*/docker-port = 127.0.0.1:$port:3031/" "$dir/vassals/$vassal" \
    >"/etc/uwsgi-emperor/vassals/$service_vassal"
# The runtime directories that were there before: the service's new one must be empty at the end.
runtime_before="$(ls -A /run/uwsgi-docker 2>/dev/null || true)"

service_log() { say "the service's log:"; tail -n 60 /var/log/uwsgi/emperor.log >&2 2>/dev/null || true; }
# `sh`: executed itself (or by `service`), Debian 12's script does nothing and exits 0: its
# kFreeBSD block re-sources /lib/init/init-d-script as the script's name, which exits.
sh /etc/init.d/uwsgi-emperor start >&2 || die "/etc/init.d/uwsgi-emperor start failed"
wait_until 10 service_pid || { service_log; die "the uwsgi-emperor service did not start"; }
service_master="$(cat /run/uwsgi-emperor.pid)"
# The master's children: the Emperor, whose default id, HOST:PID, names its runtime directory.
service_emperors="$(ps -o pid= --ppid "$service_master" | tr -d ' ')"
body=""
for _ in $(seq 1 60); do
    body="$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null || true)"
    [[ "$body" == "$greeting" ]] && break
    sleep 1
done
[[ "$body" == "$greeting" ]] || { service_log; die "the service's vassal did not answer on port $port (last: \"$body\")"; }
say "the service's vassal answered \"$body\" from its container"
container="$(docker ps -q --filter "label=io.uwsgi-docker.vassal=$service_vassal")"
[[ -n "$container" ]] || die "no running container labelled io.uwsgi-docker.vassal=$service_vassal"

# The init script's stop ends with `start-stop-daemon --stop --retry=0/30/KILL/5
# --exec /usr/bin/uwsgi` and no pidfile: it waits for every process on the host whose
# executable is /usr/bin/uwsgi-core (any other Emperor, any other test's) and kills it
# after 30 s. Run it only when every such process is this service's or its container's.
ours="$(
    echo "$service_master"
    ps -e -o pid=,ppid= | awk -v root="$service_master" '
        { parent[$1] = $2 }
        END { for (p in parent) { q = p; while (q > 1) { if (parent[q] == root) { print p; break } q = parent[q] } } }'
    docker top "$container" -eo pid | tail -n +2
)"
for pid in $(start-stop-daemon --stop --test --quiet --exec /usr/bin/uwsgi 2>/dev/null | grep -o '[0-9]\+' || true); do
    grep -qx "$pid" <<<"$ours" || {
        service_log
        die "refusing to run the init script's stop: it would also kill pid $pid ($(ps -o args= -p "$pid"))"
    }
done
sh /etc/init.d/uwsgi-emperor stop >&2 || die "/etc/init.d/uwsgi-emperor stop failed"
alive "$service_master" && { service_log; die "the service's master $service_master outlived its stop"; }
service_master=""
# stop returns once no process runs /usr/bin/uwsgi-core; the bridges are gone with the Emperor.
left="$(for pid in $ours; do alive "$pid" && ps -o pid=,args= -p "$pid"; done || true)"
[[ -z "$left" ]] || { service_log; die "processes left after the service's stop: $left"; }
[[ -z "$(docker ps -aq --filter "label=io.uwsgi-docker.vassal=$service_vassal")" ]] \
    || { service_log; die "the container of $service_vassal was left behind after the service's stop"; }
runtime_found=""
for entry in $(ls -A /run/uwsgi-docker 2>/dev/null || true); do
    grep -qxF "$entry" <<<"$runtime_before" && continue
    [[ -d "/run/uwsgi-docker/$entry" ]] || continue
    # Only the service's Emperor's (`v<host>_<pid>-<hash>`): others may run meanwhile.
    [[ "$entry" =~ _([0-9]+)-[0-9a-f]+$ ]] && grep -qx "${BASH_REMATCH[1]}" <<<"$service_emperors" || continue
    [[ -z "$(ls -A "/run/uwsgi-docker/$entry")" ]] \
        || die "/run/uwsgi-docker/$entry is not empty after stop: $(ls -A "/run/uwsgi-docker/$entry")"
    # The service's private runtime directory, empty: by design the bridges leave it.
    rmdir "/run/uwsgi-docker/$entry"
    runtime_found="$entry"
done
[[ -n "$runtime_found" ]] || die "no runtime directory of the service's Emperor ($service_emperors) in /run/uwsgi-docker"
say "the service served its vassal, and stop left no container, socket or process"

say "removing the package"
apt-get remove -y -qq uwsgi-docker >/dev/null
[[ ! -e /usr/bin/uwsgi-docker && ! -e /usr/lib/uwsgi/plugins/docker_plugin.so ]] \
    || die "apt-get remove left files behind"
say "ok"
