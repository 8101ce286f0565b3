#!/usr/bin/env bash
# Build the Debian package uwsgi-docker_VERSION_ARCH.deb and print its path:
#   /usr/bin/uwsgi-docker                    the bridge, with its static launcher built in
#   /usr/lib/uwsgi/plugins/docker_plugin.so  `uwsgi-core --build-plugin`, so that an
#                                            Emperor's `plugins = docker` loads it by name
#   /usr/share/uwsgi-docker/uwsgi-emperor.ini what the uwsgi-emperor service's emperor.ini
#                                            includes (one line) to run Docker vassals
#   /usr/share/man/man1/uwsgi-docker.1.gz    help2man, from the help text
#   /usr/share/bash-completion/completions/uwsgi-docker
#
#   scripts/build-deb.sh [OUT_DIR]     # default: target/deb
#
# Needs Debian's uwsgi-core and the headers its uwsgi.h includes (see README), python3,
# dpkg-deb and help2man.
# The package depends on the uWSGI ABI it was built against (uwsgi-core's uwsgi-abi-*), as
# Debian's own plugin packages do. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-target/deb}"
uwsgi=/usr/bin/uwsgi-core
[[ -x "$uwsgi" ]] || { echo "build-deb.sh: $uwsgi is missing: apt-get install uwsgi-core" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb is missing" >&2; exit 1; }
command -v help2man >/dev/null || { echo "build-deb.sh: help2man is missing: apt-get install help2man" >&2; exit 1; }

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
arch="$(dpkg --print-architecture)"
abi="$(dpkg-query -W -f='${Provides}' uwsgi-core | tr ',' '\n' | grep -o 'uwsgi-abi-[0-9a-f]*' | head -n1)"
[[ -n "$version" && -n "$abi" ]] || { echo "build-deb.sh: cannot read the version ($version) or uwsgi-core's ABI ($abi)" >&2; exit 1; }

root="$(mktemp -d)"
chmod 0755 "$root" # the package's ./ entry: mktemp makes it 0700
trap 'rm -rf "$root"' EXIT
# `uwsgi-core --build-plugin` (through build-plugin.sh), and the release bridge beside it.
UWSGI_BIN="$uwsgi" scripts/build-plugin.sh "$root/plugin" >/dev/null
install -D -m 0755 "$root/plugin/uwsgi-docker" "$root/usr/bin/uwsgi-docker"
# Stripped, as dh_strip would: uWSGI's cflags build the glue with -g.
install -D -m 0644 -s --strip-program=strip "$root/plugin/docker_plugin.so" \
    "$root/usr/lib/uwsgi/plugins/docker_plugin.so"
rm -rf "$root/plugin"
install -D -m 0644 README.md "$root/usr/share/doc/uwsgi-docker/README.md"
install -D -m 0644 packaging/uwsgi-emperor.ini "$root/usr/share/uwsgi-docker/uwsgi-emperor.ini"
install -D -m 0644 packaging/uwsgi-docker.bash-completion \
    "$root/usr/share/bash-completion/completions/uwsgi-docker"
# The man page is the help text (`--help`, each subcommand's `help`, `--version`).
bin="$root/usr/bin/uwsgi-docker"
{
    echo "[SUBCOMMANDS]"
    # Every subcommand the help lists, so a new one gets its section.
    for sub in $("$bin" --help | sed -n 's/^  uwsgi-docker \([a-z][a-z]*\)\b.*/\1/p' | grep -vx help); do
        echo ".SS $sub"
        echo ".nf"
        "$bin" help "$sub" | sed 's/\\/\\e/g; s/^[.'"'"']/\\\&&/'
        echo ".fi"
    done
    echo "[SEE ALSO]"
    echo "uwsgi-core(1), /usr/share/doc/uwsgi-docker/README.md, /usr/share/uwsgi-docker/uwsgi-emperor.ini"
} >"$root/help2man.include"
mkdir -p "$root/usr/share/man/man1"
help2man --no-info --section=1 --name="run uWSGI Emperor vassals in Docker containers" \
    --include="$root/help2man.include" "$bin" | gzip -9n >"$root/usr/share/man/man1/uwsgi-docker.1.gz"
rm "$root/help2man.include"
install -D -m 0644 /dev/stdin "$root/usr/share/doc/uwsgi-docker/copyright" <<EOF
uwsgi-docker $version
License: MIT
EOF
mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<EOF
Package: uwsgi-docker
Version: $version
Architecture: $arch
Maintainer: uwsgi-docker developers <uwsgi-docker@example.invalid>
Depends: libc6, libgcc-s1, uwsgi-core (>= 2.0.7), $abi
Section: httpd
Priority: optional
Installed-Size: $(du -sk "$root/usr" | cut -f1)
Description: run uWSGI Emperor vassals in Docker containers
 A vassal whose [emperor] section names a docker-image runs in its own
 container, started, reloaded and stopped by the Emperor like a local one.
 Wrapper mode: emperor-wrapper = /usr/bin/uwsgi-docker. Plugin mode:
 plugins = docker, with the original uwsgi-docker plugin's options.
 For the uwsgi-emperor service: ini = /usr/share/uwsgi-docker/uwsgi-emperor.ini
 at the end of /etc/uwsgi-emperor/emperor.ini.
EOF

mkdir -p "$out"
deb="$out/uwsgi-docker_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group "$root" "$deb" >&2
echo "$(cd "$out" && pwd)/$(basename "$deb")"
