# `uwsgi --build-plugin uwsgi-docker-plugin` reads this file (uWSGI's uwsgiconfig.py execs
# it) and builds docker_plugin.so in the current directory: cargo builds the Rust part as a
# static library, then uWSGI's own build compiles the C glue against that uWSGI's uwsgi.h
# and cflags and links the two. Works from any directory, with uWSGI 2.0.x and master.
#
# CARGO names the cargo binary (default: cargo on PATH); CARGO_TARGET_DIR is honoured.
import json
import os
import subprocess
import sys


def plugin_dir():
    # uwsgiconfig.py execs this file without __file__; the directory is the argument after
    # --extra-plugin (`uwsgi --build-plugin DIR`) or --plugin (`python uwsgiconfig.py
    # --plugin DIR` in a uWSGI source tree), relative to the current directory.
    for flag in ('--extra-plugin', '-x', '--plugin', '-p'):
        if flag in sys.argv[:-1]:
            return os.path.abspath(sys.argv[sys.argv.index(flag) + 1])
    sys.exit('uwsgiplugin.py: cannot tell the plugin directory from %r' % sys.argv)


def fail(message):
    sys.stderr.write('*** docker plugin: %s ***\n' % message)
    sys.exit(1)


def build_static_lib(here):
    # The path of the staticlib cargo built, read from its JSON messages: right wherever the
    # target directory is (CARGO_TARGET_DIR, .cargo/config.toml).
    cargo = os.environ.get('CARGO', 'cargo')
    command = [cargo, 'build', '--release', '--locked',
               '--manifest-path', os.path.join(here, 'Cargo.toml'),
               '--message-format=json-render-diagnostics']
    print('[cargo] %s' % ' '.join(command))
    sys.stdout.flush()
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    except OSError as e:
        fail('cannot run %s (%s): docker_plugin.so has a Rust part; install Rust 1.85 or '
             'later (https://rustup.rs) or set CARGO to the cargo binary' % (cargo, e))
    out, _ = proc.communicate()
    if proc.returncode != 0:
        fail('%s build failed (exit %d); its errors are above' % (cargo, proc.returncode))
    for line in out.decode('utf-8', 'replace').splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get('reason') != 'compiler-artifact':
            continue
        if message.get('target', {}).get('name') != 'uwsgi_docker_plugin':
            continue
        for path in message.get('filenames', []):
            if path.endswith('.a'):
                return path
    fail('%s built no libuwsgi_docker_plugin.a' % cargo)


here = plugin_dir()

NAME = 'docker'
# The C glue (path relative to this directory), then the Rust library: uwsgiconfig.py adds
# a `.a` entry to the link line as it is, hence the absolute path.
GCC_LIST = ['glue/docker_plugin.c', build_static_lib(here)]
# Export only `docker_plugin` (what uWSGI dlsym()s): the Rust standard library inside the
# static library stays private to this plugin.
LDFLAGS = ['-Wl,--version-script=%s' % os.path.join(here, 'glue', 'exports.map'),
           '-Wl,--gc-sections']
# What Rust's standard library needs from the system (`rustc --print native-static-libs`).
LIBS = ['-lgcc_s', '-lutil', '-lrt', '-lpthread', '-lm', '-ldl', '-lc']
