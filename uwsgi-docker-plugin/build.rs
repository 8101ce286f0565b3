//! Compiles the C glue against the installed uWSGI, exactly as `uwsgi --build-plugin` does:
//! the header from `uwsgi --dot-h`, the flags from `uwsgi --cflags` (which also define the
//! `UWSGI_VERSION_*` macros the glue checks). The uWSGI binary is `$UWSGI_BIN`, else `uwsgi`
//! on PATH.
//!
//! The glue object goes into the cdylib only (`rustc-cdylib-link-arg`): it refers to symbols
//! the uwsgi binary exports, which exist when uWSGI dlopens the plugin but not in a test
//! executable.
use std::path::PathBuf;
use std::process::Command;

const GLUE: &str = "glue/docker_plugin.c";
const INSTALL_HINT: &str = "install uWSGI and the headers its uwsgi.h includes \
     (Debian: apt-get install uwsgi-core libcap-dev libpcre3-dev libssl-dev uuid-dev zlib1g-dev), \
     or set UWSGI_BIN to the uwsgi binary to build against";

fn main() {
    println!("cargo:rerun-if-changed={GLUE}");
    println!("cargo:rerun-if-env-changed=UWSGI_BIN");
    let uwsgi = std::env::var("UWSGI_BIN").unwrap_or_else(|_| "uwsgi".to_owned());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let header = run(&uwsgi, &["--dot-h"]);
    std::fs::write(out_dir.join("uwsgi.h"), header).expect("write uwsgi.h into OUT_DIR");
    let cflags = shell_words(&String::from_utf8_lossy(&run(&uwsgi, &["--cflags"])));

    let mut build = cc::Build::new();
    build
        .file(GLUE)
        .include(&out_dir)
        .cargo_metadata(false)
        .warnings(false);
    for flag in cflags.iter().filter(|f| f.as_str() != "-I.") {
        build.flag(flag);
    }
    let objects = build.compile_intermediates();
    for object in objects {
        println!("cargo:rustc-cdylib-link-arg={}", object.display());
    }
    // uWSGI looks the plugin up with dlsym(handle, "docker_plugin"): export that C symbol,
    // which rustc's version script for a cdylib would otherwise hide.
    let script = out_dir.join("exports.ld");
    std::fs::write(&script, "{ global: docker_plugin; };\n").expect("write exports.ld");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
}

/// Runs `uwsgi ARGS` and returns its stdout, or stops the build saying what to install.
fn run(uwsgi: &str, args: &[&str]) -> Vec<u8> {
    match Command::new(uwsgi).args(args).output() {
        Ok(out) if out.status.success() => out.stdout,
        Ok(out) => panic!(
            "`{uwsgi} {}` failed ({}): {}\n{INSTALL_HINT}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "docker_plugin.so is built against an installed uWSGI, but `{uwsgi}` cannot be run: {e}\n{INSTALL_HINT}"
        ),
    }
}

/// The words of `uwsgi --cflags` as a POSIX shell splits them (it prints them for a shell:
/// `-DUWSGI_VERSION="\"2.0.21\""` is the word `-DUWSGI_VERSION="2.0.21"`).
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => word.push('\\'),
                        },
                        other => word.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    word.push(e);
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}
