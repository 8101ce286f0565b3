#!/usr/bin/env bash
# Build a standalone static uwsgi-docker-launcher and print its path. Not needed to run
# uwsgi-docker, which carries one (uwsgi-docker-cli/build.rs builds it the same way); this
# copy is for UWSGIDOCKER_LAUNCHER, and for CI's clippy and ldd checks of the launcher.
#
#   scripts/build-launcher.sh            release build
#   LAUNCHER_PROFILE=dev scripts/build-launcher.sh
#
# The explicit --target keeps RUSTFLAGS off build scripts and proc-macros (host code), and
# the feature keeps a plain `cargo build` from producing a dynamic launcher.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${LAUNCHER_TARGET:-x86_64-unknown-linux-gnu}"
PROFILE="${LAUNCHER_PROFILE:-release}"
DIR_PROFILE="$PROFILE"
[[ "$PROFILE" == dev ]] && DIR_PROFILE=debug

# The inner-build marker: build.rs then embeds nothing, so this builds the launcher once.
UWSGIDOCKER_INNER_LAUNCHER_BUILD=1 RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --profile "$PROFILE" \
    --target "$TARGET" -p uwsgi-docker-cli --features launcher --bin uwsgi-docker-launcher >&2

OUT="${CARGO_TARGET_DIR:-$PWD/target}/$TARGET/$DIR_PROFILE/uwsgi-docker-launcher"
[[ -x "$OUT" ]] || { echo "build-launcher.sh: the build did not produce $OUT" >&2; exit 1; }
# Static means no program interpreter: `file` says "statically linked" or "static-pie linked".
if command -v file >/dev/null && ! file -L "$OUT" | grep -Eq 'static(ally|-pie) linked'; then
    echo "build-launcher.sh: $OUT is not statically linked: $(file -L "$OUT")" >&2
    exit 1
fi
echo "$OUT"
