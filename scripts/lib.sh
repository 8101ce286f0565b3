# shellcheck shell=bash
# What the scripts share. A script sets the prefix of its lines, then sources this file
# from its own directory, so it runs from any cwd:
#
#   SAY_PREFIX="podman-service:"
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
#   say MESSAGE...               one line on stderr: "$SAY_PREFIX MESSAGE"
#   die MESSAGE...               say "error: MESSAGE", then exit 1
#   install_packages PKG...      the Debian packages named that are missing, quietly,
#                                without recommends (apt-get update once per script);
#                                INSTALLED lists what it installed
#   wait_until SECONDS CMD...    runs CMD every 0.1 s until it succeeds; fails after SECONDS
#   wait_gone PID SECONDS        waits for process PID to end; fails after SECONDS

SAY_PREFIX="${SAY_PREFIX:-$(basename "$0" .sh):}"

say() { printf '%s %s\n' "$SAY_PREFIX" "$*" >&2; }

die() {
    say "error: $*"
    exit 1
}

# shellcheck disable=SC2034 # INSTALLED is for the caller.
INSTALLED=()
APT_UPDATED=0
install_packages() {
    local need=() pkg
    INSTALLED=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
    done
    ((${#need[@]})) || return 0
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ((!APT_UPDATED)); then
        apt-get update -qq
        APT_UPDATED=1
    fi
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # shellcheck disable=SC2034
    INSTALLED=("${need[@]}")
}

wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

wait_gone() {
    local pid="$1" deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}
