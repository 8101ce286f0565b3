#!/usr/bin/env bash
# Builds docker_plugin.so the way uWSGI builds every third-party plugin,
# `uwsgi --build-plugin uwsgi-docker-plugin` (see uwsgi-docker-plugin/uwsgiplugin.py), and
# puts it, with a release build of the uwsgi-docker bridge it execs, where
# `plugin = DEST_DIR/docker_plugin.so` can load it.
#
#   scripts/build-plugin.sh [DEST_DIR]     # default: target/plugin
#
# UWSGI_BIN names the uwsgi binary to build against (default: uwsgi on PATH); CARGO_TARGET_DIR
# is honoured; PYTHON is the python that runs uWSGI's build script (default python3: upstream
# uWSGI runs `python`, which Debian does not have). Prints the plugin's path on stdout.
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$PWD"
dest="${1:-target/plugin}"
# Absolute: uwsgi --build-plugin runs cargo from another directory.
export CARGO_TARGET_DIR="$(realpath -m "${CARGO_TARGET_DIR:-$repo/target}")"
target_dir="$CARGO_TARGET_DIR"
uwsgi="${UWSGI_BIN:-uwsgi}"

# uwsgi --build-plugin writes docker_plugin.so and its .uwsgi_plugins_builder/ into the cwd.
work="$(mktemp -d /tmp/uwsgi-docker-plugin-build.XXXXXX)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && PYTHON="${PYTHON:-python3}" "$uwsgi" --build-plugin "$repo/uwsgi-docker-plugin") >&2
cargo build --release -p uwsgi-docker-cli >&2

mkdir -p "$dest"
# Copy, then rename over: a running Emperor that has the old file mapped keeps it intact.
install -m 0755 "$work/docker_plugin.so" "$dest/.docker_plugin.so.new"
mv -f "$dest/.docker_plugin.so.new" "$dest/docker_plugin.so"
install -m 0755 "$target_dir/release/uwsgi-docker" "$dest/.uwsgi-docker.new"
mv -f "$dest/.uwsgi-docker.new" "$dest/uwsgi-docker"
echo "$(cd "$dest" && pwd)/docker_plugin.so"
