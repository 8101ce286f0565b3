#!/usr/bin/env bash
# THE test command: everything CI runs, in order, failing fast with the step's name.
#
#   scripts/test.sh
#
# Needs a running Docker daemon and root (or sudo-less apt) for the one-time installs.
# The end-to-end tests run a real uWSGI Emperor and real containers; with CI set they fail
# instead of skipping when something they need is missing.
set -euo pipefail

cd "$(dirname "$0")/.."

STEP="start"
step() {
    STEP="$1"
    printf '\n==> %s\n' "$STEP" >&2
}
on_exit() {
    local rc=$?
    if ((rc != 0)); then
        printf '\ntest.sh: FAILED at step "%s" (exit %d)\n' "$STEP" "$rc" >&2
    fi
}
trap on_exit EXIT

step "install host packages"
need=()
# libcap-dev and libpcre3-dev: headers the installed uwsgi.h includes (docker_plugin.so's build).
# nginx: e2e_hostfs runs Debian's nginx (workers as www-data) in front of a docker-socket.
for pkg in uwsgi-core uwsgi-plugin-psgi curl nginx libcap-dev libpcre3-dev libssl-dev uuid-dev zlib1g-dev; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    echo "installed ${need[*]}" >&2
else
    echo "all present" >&2
fi

step "docker daemon"
if ! docker info >/dev/null 2>&1; then
    # Machines whose daemon is not started for us: try the service once.
    (service docker start || systemctl start docker) >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "the Docker daemon does not answer" >&2; exit 1; }
fi
echo "docker $(docker version -f '{{.Server.Version}}') API $(docker version -f '{{.Server.APIVersion}}')" >&2

step "build the test image"
scripts/build-test-image.sh

step "fault matrix: the forkpty test image and the script it drives"
# e2e_faults.rs runs the seed's forkpty router in a variant of the test image with Debian's
# corerouter, forkptyrouter and pty plugins (all in uwsgi-core) and /bin/sh; `script`
# (bsdutils) gives `uwsgi --pty-connect` its terminal. The full-cidfile row mounts a tmpfs
# (root), the daemon-restart row runs its own `podman system service` (skipped without podman).
command -v script >/dev/null || { echo "script (bsdutils) is missing" >&2; exit 1; }
UWSGIDOCKER_TEST_PLUGINS="psgi corerouter forkptyrouter pty" \
    scripts/build-test-image.sh uwsgi-docker-test:forkpty
export UWSGIDOCKER_TEST_FORKPTY_IMAGE=uwsgi-docker-test:forkpty

step "build docker_plugin.so"
# Release plugin + bridge side by side, as users install them; the e2e tests load this one.
UWSGIDOCKER_E2E_PLUGIN="$(scripts/build-plugin.sh target/plugin)"
export UWSGIDOCKER_E2E_PLUGIN

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo doc (no broken links)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -q -p uwsgi-docker-core -p uwsgi-docker-cli

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "the static launcher (docker-socket)"
# Built with its own flags and target (see the script); the e2e tests use it.
LAUNCHER="$(scripts/build-launcher.sh)"
ldd "$LAUNCHER" 2>&1 | grep -Eq 'not a dynamic executable|statically linked' \
    || { echo "$LAUNCHER is not static: $(ldd "$LAUNCHER" 2>&1)" >&2; exit 1; }
cargo clippy -p uwsgi-docker-cli --features launcher --bin uwsgi-docker-launcher -- -D warnings
export UWSGIDOCKER_LAUNCHER="$LAUNCHER"

# Every cargo test run's output is also kept, to total the results at the end.
RESULTS="$(mktemp)"
cargo_test() {
    cargo test "$@" 2>&1 | tee -a "$RESULTS"
}

step "cargo test (unit tests and end to end)"
# Two at a time: each e2e test runs its own Emperor and containers on a 2-core machine.
RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}" cargo_test --workspace

step "end to end again, in plugin mode"
# The same e2e suite against an Emperor that loads docker_plugin.so (no emperor-wrapper).
UWSGIDOCKER_E2E_MODE=plugin RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}" \
    cargo_test -p uwsgi-docker-cli --test e2e

step "core example quickstart_create"
cargo run -q -p uwsgi-docker-core --example quickstart_create >/dev/null

step "fuzz crate tests (committed crash inputs replayed)"
cargo_test --manifest-path fuzz/Cargo.toml

step "fuzz smoke"
scripts/fuzz-smoke.sh

STEP="done"
printf '\ntest.sh: all steps passed\n' >&2
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$RESULTS"
rm -f "$RESULTS"
