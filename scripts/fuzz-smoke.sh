#!/usr/bin/env bash
# Runs each cargo-fuzz target for a short while and fails if any of them finds a crash.
#
#   scripts/fuzz-smoke.sh                 # every target `cargo fuzz list` shows
#   scripts/fuzz-smoke.sh attach_demux    # only these
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh
#
# Each target starts from fuzz/regressions/<target>/ (read-only seeds) and grows
# fuzz/corpus/<target>/ (ignored by git). A crash is left in fuzz/artifacts/<target>/;
# once fixed, copy it into fuzz/regressions/<target>/ so `cargo test --test regressions`
# keeps replaying it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-10}

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz-smoke: cargo fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz-smoke: no fuzz targets found" >&2
    exit 2
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
summary=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    seeds="fuzz/regressions/$target"
    mkdir -p "$corpus"
    dirs=("$corpus")
    [ -d "$seeds" ] && dirs+=("$seeds")
    log="$logs/$target.log"
    echo "fuzz-smoke: $target for ${seconds}s" >&2
    if cargo +nightly fuzz run "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 >"$log" 2>&1; then
        runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -n 1 | grep -o '[0-9]*' || true)
        summary+=("ok      $target: ${runs:-?} runs in ${seconds}s")
    else
        failed=1
        artifact=$(grep -o 'fuzz/artifacts/[^ ]*' "$log" | tail -n 1 || true)
        summary+=("FAILED  $target: ${artifact:-see the log above}")
        echo "---- $target (last 40 lines) ----" >&2
        tail -n 40 "$log" >&2
    fi
done

printf '%s\n' "${summary[@]}"
exit "$failed"
