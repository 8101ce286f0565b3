#!/usr/bin/env bash
# Build the Docker image the end-to-end tests and the demo run their vassals in (into
# Docker, or with ENGINE=podman into Podman's store: the same rootfs, labels and smoke test).
#
# There is no registry here, so the image is made from this host's own files: Debian's
# uWSGI 2.0 (uwsgi-core + uwsgi-plugin-psgi), the ldd closure of the binary and its
# plugins, the perl-base runtime the psgi plugin needs, a minimal /etc, and a one-line
# PSGI app. The rootfs tarball is built deterministically and its sha256 is stored as a
# label, so a second run with the same host files does nothing.
#
# Usage: scripts/build-test-image.sh [TAG]        (default uwsgi-docker-test:latest)
# Env:   ENGINE                    the engine's CLI: docker (default) or podman
#        UWSGIDOCKER_TEST_PLUGINS  space-separated uWSGI plugins to include (default "psgi")
#                                  (with forkptyrouter, /bin/sh is included: the shell it runs)
#        UWSGIDOCKER_TEST_UWSGI    the uWSGI binary to put in the image as /usr/bin/uwsgi
#                                  (default Debian's; e.g. a local build of uWSGI master, with
#                                  psgi built in: Debian's plugins only fit Debian's uWSGI)
#        FORCE=1                   rebuild even when the hash matches
set -euo pipefail

TAG="${1:-uwsgi-docker-test:latest}"
PLUGINS="${UWSGIDOCKER_TEST_PLUGINS:-psgi}"
HASH_LABEL="io.uwsgi-docker.test-image-hash"
PLUGIN_DIR=/usr/lib/uwsgi/plugins
ENGINE="${ENGINE:-docker}"
case "$ENGINE" in docker | podman) ;; *) printf 'build-test-image: error: ENGINE=%s: docker or podman\n' "$ENGINE" >&2; exit 1 ;; esac

SAY_PREFIX="build-test-image:"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v "$ENGINE" >/dev/null || die "$ENGINE is not installed"
"$ENGINE" info >/dev/null 2>&1 || die "$ENGINE info fails (is the engine running? are you allowed to use it?)"

# --- host packages -----------------------------------------------------------------------
install_packages uwsgi-core uwsgi-plugin-psgi

UWSGI_BIN="$(readlink -f "${UWSGIDOCKER_TEST_UWSGI:-/usr/bin/uwsgi}")"
[[ -x "$UWSGI_BIN" ]] || die "${UWSGIDOCKER_TEST_UWSGI:-/usr/bin/uwsgi} does not resolve to an executable"

# --- stage the rootfs --------------------------------------------------------------------
STAGE="$(mktemp -d /tmp/uwsgi-docker-image.XXXXXX)"
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/rootfs"
mkdir -p "$ROOT"/{usr/bin,usr/lib,usr/lib64,etc,var/www,tmp}
# Debian 12 is merged-/usr: keep the same layout so ELF interpreters and rpaths resolve.
ln -s usr/bin "$ROOT/bin"
ln -s usr/bin "$ROOT/sbin"
ln -s usr/lib "$ROOT/lib"
ln -s usr/lib64 "$ROOT/lib64"
chmod 1777 "$ROOT/tmp"

# Copy one host file (following symlinks) into the rootfs at its /usr-merged path.
stage_file() {
    local src="$1" dst="$1"
    case "$dst" in
        /lib/* | /lib64/* | /bin/* | /sbin/*) dst="/usr$dst" ;;
    esac
    [[ -e "$ROOT$dst" ]] && return 0
    mkdir -p "$ROOT$(dirname "$dst")"
    cp -L --preserve=mode "$src" "$ROOT$dst"
}

# Every shared object an ELF file needs, with the dynamic loader.
elf_deps() {
    ldd "$1" 2>/dev/null | awk '
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }'
}

elves=("$UWSGI_BIN")
if [[ -n "${UWSGIDOCKER_TEST_UWSGI:-}" ]]; then
    # A binary from anywhere goes in as /usr/bin/uwsgi itself.
    mkdir -p "$ROOT/usr/bin"
    cp -L --preserve=mode "$UWSGI_BIN" "$ROOT/usr/bin/uwsgi"
else
    stage_file "$UWSGI_BIN"
fi
if [[ -z "${UWSGIDOCKER_TEST_UWSGI:-}" && "$UWSGI_BIN" != /usr/bin/uwsgi ]]; then
    ln -s "$(basename "$UWSGI_BIN")" "$ROOT/usr/bin/uwsgi"
fi
for plugin in $PLUGINS; do
    so="$PLUGIN_DIR/${plugin}_plugin.so"
    [[ -f "$so" ]] || die "plugin $plugin not found at $so; install its Debian package (uwsgi-plugin-$plugin)"
    stage_file "$so"
    elves+=("$so")
done

# The psgi plugin embeds libperl, which loads pure-perl and XS modules at run time.
# perl-base is Debian's minimal perl runtime (strict, warnings, IO::Handle, ...); libperl's
# compiled-in @INC does not name its directory, so the image sets PERL5LIB to it.
PERL_BASE_DIR=""
if [[ " $PLUGINS " == *" psgi "* ]]; then
    while IFS= read -r f; do
        case "$f" in /usr/share/doc/* | /usr/share/man/* | /usr/share/lintian/* | /usr/bin/*) continue ;; esac
        if [[ -L "$f" && -d "$f" ]]; then
            mkdir -p "$ROOT$(dirname "$f")"
            cp -P "$f" "$ROOT$f"
        elif [[ -f "$f" ]]; then
            stage_file "$f"
            [[ "$f" == *.so ]] && elves+=("$f")
        fi
    done < <(dpkg -L perl-base)
    PERL_BASE_DIR="$(dpkg -L perl-base | grep -m1 -E '/perl-base$' || true)"
    [[ -n "$PERL_BASE_DIR" ]] || die "cannot find perl-base's module directory"
fi

# The forkpty router runs /bin/sh in its pty by default: Debian's dash.
if [[ " $PLUGINS " == *" forkptyrouter "* ]]; then
    stage_file "$(readlink -f /bin/sh)"
    elves+=("$(readlink -f /bin/sh)")
    [[ -e "$ROOT/usr/bin/sh" ]] || ln -s "$(basename "$(readlink -f /bin/sh)")" "$ROOT/usr/bin/sh"
fi

for elf in "${elves[@]}"; do
    while IFS= read -r lib; do
        stage_file "$lib"
    done < <(elf_deps "$elf")
done

cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
www-data:x:33:
nogroup:x:65534:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$ROOT/etc/nsswitch.conf"

# The app: the greeting comes from the vassal's `env = GREETING=...` so a reload can change
# it, and each request logs one line to stderr so the log relay can be checked.
cat >"$ROOT/var/www/app.pl" <<'EOF'
my $app = sub {
    my $env = shift;
    my $path = $env->{PATH_INFO} // '/';
    print STDERR "app-log: request $path\n";
    my $greeting = $ENV{GREETING} // 'Hello World from Docker';
    return [200, ['Content-Type' => 'text/plain'], [$greeting]];
};
EOF

# --- hash and import ---------------------------------------------------------------------
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$ROOT" -cf "$STAGE/rootfs.tar" .
HASH="$(sha256sum "$STAGE/rootfs.tar" | cut -c1-64)"

current="$("$ENGINE" image inspect -f "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$TAG" 2>/dev/null || true)"
if [[ "$current" == "$HASH" && "${FORCE:-0}" != 1 ]]; then
    say "$TAG is up to date in $ENGINE (${HASH:0:12})"
    exit 0
fi

old_id="$("$ENGINE" image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)"
say "importing $TAG into $ENGINE ($(du -h "$STAGE/rootfs.tar" | cut -f1), ${HASH:0:12})"
"$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL $HASH_LABEL=$HASH" \
    ${PERL_BASE_DIR:+--change "ENV PERL5LIB=$PERL_BASE_DIR"} \
    --change 'WORKDIR /' \
    --change 'CMD ["uwsgi", "--version"]' \
    "$STAGE/rootfs.tar" "$TAG" >/dev/null

# Smoke test: the image runs uWSGI with the psgi plugin and serves the app over HTTP.
if [[ " $PLUGINS " == *" psgi "* ]]; then
    # Created, then started: a start that fails (an engine that cannot run containers here)
    # still leaves an id to remove, and the untested image is dropped, so the next run retries.
    failed() {
        "$ENGINE" rmi "$TAG" >/dev/null 2>&1 || true
        die "smoke test failed: $*"
    }
    cid="$("$ENGINE" create -p 127.0.0.1::3031 "$TAG" \
        uwsgi --plugin psgi --psgi /var/www/app.pl --http-socket 0.0.0.0:3031 2>&1)" ||
        failed "$ENGINE create: $cid"
    if ! started="$("$ENGINE" start "$cid" 2>&1)"; then
        "$ENGINE" rm -f "$cid" >/dev/null 2>&1 || true
        failed "$ENGINE start: $started"
    fi
    port="$("$ENGINE" port "$cid" 3031/tcp 2>/dev/null | head -1 | sed 's/.*://' || true)"
    body=""
    for _ in $(seq 1 50); do
        [[ -n "$port" ]] || break
        body="$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null || true)"
        [[ -n "$body" ]] && break
        sleep 0.2
    done
    logs="$("$ENGINE" logs "$cid" 2>&1 | tail -20 || true)"
    "$ENGINE" rm -f "$cid" >/dev/null 2>&1 || true
    if [[ "$body" != "Hello World from Docker" ]]; then
        failed "got '$body' from the app in $TAG; container log:
$logs"
    fi
fi
# The previous build is now untagged; drop it unless something still uses it.
if [[ -n "$old_id" ]]; then
    "$ENGINE" rmi "$old_id" >/dev/null 2>&1 || true
fi
say "built $TAG in $ENGINE"
