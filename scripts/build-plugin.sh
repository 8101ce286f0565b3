#!/usr/bin/env bash
# Builds docker_plugin.so (release) against the installed uWSGI and puts it, with a copy of
# the uwsgi-docker bridge it execs, where `plugin = DEST_DIR/docker_plugin.so` can load it.
#
#   scripts/build-plugin.sh [DEST_DIR]     # default: target/plugin
#
# UWSGI_BIN names the uwsgi binary to build against (default: uwsgi on PATH); CARGO_TARGET_DIR
# is honoured. Prints the plugin's path on stdout.
set -euo pipefail

cd "$(dirname "$0")/.."
dest="${1:-target/plugin}"
target_dir="${CARGO_TARGET_DIR:-target}"

cargo build --release -p uwsgi-docker-plugin -p uwsgi-docker-cli >&2
mkdir -p "$dest"
# Copy, then rename over: a running Emperor that has the old file mapped keeps it intact.
install -m 0755 "$target_dir/release/libuwsgi_docker_plugin.so" "$dest/.docker_plugin.so.new"
mv -f "$dest/.docker_plugin.so.new" "$dest/docker_plugin.so"
install -m 0755 "$target_dir/release/uwsgi-docker" "$dest/.uwsgi-docker.new"
mv -f "$dest/.uwsgi-docker.new" "$dest/uwsgi-docker"
echo "$(cd "$dest" && pwd)/docker_plugin.so"
