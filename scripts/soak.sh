#!/usr/bin/env bash
# A soak: 50 vassals churning under one Emperor (wrapper mode, release build) for MINUTES,
# and the figures that must not grow, compared at the start and at the end. Not a CI test:
# it loads the machine for as long as it runs. RELIABILITY.md holds the figures of a run.
#
#   scripts/soak.sh [MINUTES]          (default 10; a fraction is fine: 0.5)
#
# It runs the e2e test soak::churn_leaves_nothing (uwsgi-docker-cli/tests/e2e/soak.rs, an
# ignored test) on the harness's World: one action about every SOAK_PAUSE seconds (default
# 0.4) on a random slot, spawn (write an absent slot's vassal file), touch (rewrite it with a
# new GREETING, mtime forward: a reload), kill (`docker kill` its container: the Emperor
# respawns it) or delete (remove the file). With every vassal serving its last greeting, the
# Emperor's open fds, the bridges, our containers and our processes must be what they were
# at the start; once all are deleted, no container, socket file or process may be left. The
# figures and the bridges' USS are printed.
#
# Env: SOAK_SLOTS (default 50), SOAK_PAUSE (default 0.4), SOAK_SEED (the actions' seed).
set -euo pipefail

cd "$(dirname "$0")/.."
SAY_PREFIX="soak:"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

MINUTES="${1:-10}"
seconds="$(awk -v m="$MINUTES" 'BEGIN { if (m + 0 == m && m > 0) printf "%d", m * 60 + 0.5; else exit 1 }')" \
    || die "MINUTES must be a positive number, not $MINUTES"
pause_ms="$(awk -v p="${SOAK_PAUSE:-0.4}" 'BEGIN { if (p + 0 == p && p >= 0) printf "%d", p * 1000 + 0.5; else exit 1 }')" \
    || die "SOAK_PAUSE must be a number of seconds, not $SOAK_PAUSE"

scripts/build-test-image.sh >/dev/null
say "$seconds s of churn on ${SOAK_SLOTS:-50} vassals (release build)"
UWSGIDOCKER_SOAK_SECONDS="$seconds" UWSGIDOCKER_SOAK_SLOTS="${SOAK_SLOTS:-50}" \
    UWSGIDOCKER_SOAK_PAUSE_MS="$pause_ms" UWSGIDOCKER_SOAK_SEED="${SOAK_SEED:-}" \
    cargo test --release -q -p uwsgi-docker-cli --test e2e -- --ignored --exact \
    soak::churn_leaves_nothing
