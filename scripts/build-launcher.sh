#!/usr/bin/env bash
# Build the static uwsgi-docker-launcher (bind-mounted into launcher-mode containers, so it
# must run in any image, glibc or musl) and print its path.
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

RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --profile "$PROFILE" \
    --target "$TARGET" -p uwsgi-docker-cli --features launcher --bin uwsgi-docker-launcher >&2

OUT="${CARGO_TARGET_DIR:-$PWD/target}/$TARGET/$DIR_PROFILE/uwsgi-docker-launcher"
[[ -x "$OUT" ]] || { echo "build-launcher.sh: the build did not produce $OUT" >&2; exit 1; }
# Static means no program interpreter: `file` says "statically linked" or "static-pie linked".
if command -v file >/dev/null && ! file -L "$OUT" | grep -Eq 'static(ally|-pie) linked'; then
    echo "build-launcher.sh: $OUT is not statically linked: $(file -L "$OUT")" >&2
    exit 1
fi
echo "$OUT"
