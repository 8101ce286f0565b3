#!/usr/bin/env bash
# Build a stock uWSGI 2.0.31 (the newest 2.0.x release) into a private prefix, outside the
# repo, and print the binary's path. CI runs the Emperor side of the e2e suite with it.
#
#   scripts/uwsgi-2.0.31.sh            # prints e.g. /opt/uwsgi-2.0.31/bin/uwsgi
#
# How: Debian's python3 makes a venv at $UWSGI_2031_PREFIX (default /opt/uwsgi-2.0.31), and
# `pip install uwsgi==2.0.31` there compiles uWSGI from its PyPI source package (the stock
# build profile, plus the python plugin pip embeds). Nothing else is installed: this uWSGI
# has no psgi plugin, so only Docker vassals (which run the image's own uWSGI) use it.
# Cached: when the binary is there and says 2.0.31, nothing is done. The build needs a C
# compiler and Debian's python3-dev, python3-venv, libpcre3-dev, libssl-dev, zlib1g-dev,
# libcap-dev and uuid-dev; they are installed when missing.
set -euo pipefail

VERSION=2.0.31
PREFIX="${UWSGI_2031_PREFIX:-/opt/uwsgi-$VERSION}"
BIN="$PREFIX/bin/uwsgi"

SAY_PREFIX="uwsgi-$VERSION:"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -x "$BIN" && "$("$BIN" --version 2>/dev/null)" == "$VERSION" ]]; then
    say "$BIN is there"
    echo "$BIN"
    exit 0
fi

install_packages python3-dev python3-venv gcc libpcre3-dev libssl-dev zlib1g-dev libcap-dev uuid-dev

say "building into $PREFIX (pip install uwsgi==$VERSION; a few minutes)"
rm -rf "$PREFIX"
# Debian's python, not whatever python3 is first on PATH: its headers are the -dev package's.
/usr/bin/python3 -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --no-cache-dir --disable-pip-version-check "uwsgi==$VERSION" >&2
got="$("$BIN" --version 2>/dev/null || true)"
[[ "$got" == "$VERSION" ]] || { say "error: $BIN says '$got', not $VERSION"; exit 1; }
say "built $BIN"
echo "$BIN"
