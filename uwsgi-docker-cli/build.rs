//! Builds the static launcher and hands it to the `uwsgi-docker` binary, which embeds it
//! (`include_bytes!`): so `cargo build` or `cargo install --path uwsgi-docker-cli` alone
//! gives a complete tool, `docker-socket` included.
//!
//! The launcher is bind-mounted into containers whose libc we know nothing about, so it
//! is linked statically (`+crt-static`). That flag cannot go on the whole `uwsgi-docker`
//! build: without an explicit `--target` it reaches proc-macros too, which then do not
//! build. So this runs a second cargo for the launcher alone, with `--target` set to the
//! target being built and a target directory of its own under `OUT_DIR`.
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "src/host/elf.rs"]
mod elf;

/// Set for the inner cargo, whose run of this script must not start a third.
const INNER: &str = "UWSGIDOCKER_INNER_LAUNCHER_BUILD";

fn main() {
    git_commit();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let embedded = out_dir.join("uwsgi-docker-launcher");
    println!("cargo:rerun-if-env-changed={INNER}");
    if std::env::var_os(INNER).is_some() {
        // The inner build compiles only the launcher, which embeds nothing.
        std::fs::write(&embedded, b"").expect("write the placeholder");
        launcher_name(b"");
        return;
    }
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set"));
    println!("cargo:rerun-if-changed=src/launcher.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=../uwsgi-docker-core/src");
    println!("cargo:rerun-if-changed=../uwsgi-docker-core/Cargo.toml");

    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    // The launcher is always optimised: it runs in every launcher-mode container.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let inner_target_dir = out_dir.join("launcher-build");
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "uwsgi-docker-launcher"])
        .args(["--features", "launcher", "--target", &target])
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&inner_target_dir)
        .env(INNER, "1")
        // The outer build's flags are for the outer build.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the static launcher: {e}"));
    assert!(
        status.success(),
        "building the static launcher failed ({status}); see the output above"
    );
    let built = inner_target_dir
        .join(&target)
        .join("release")
        .join("uwsgi-docker-launcher");
    let bytes = std::fs::read(&built)
        .unwrap_or_else(|e| panic!("the launcher build left no {}: {e}", built.display()));
    assert!(
        elf::is_static_elf(&bytes) == Some(true),
        "{} is dynamically linked; the launcher must be static",
        built.display()
    );
    copy_if_changed(&bytes, &embedded);
    launcher_name(&bytes);
}

/// `UWSGIDOCKER_LAUNCHER_NAME`, the launcher's file name in the runtime directory:
/// `uwsgi-docker-launcher-<FNV-1a of its bytes>`, so that bridges of different builds
/// sharing the directory each find their own. Hashed here, not at every spawn.
fn launcher_name(bytes: &[u8]) {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    println!("cargo:rustc-env=UWSGIDOCKER_LAUNCHER_NAME=uwsgi-docker-launcher-{hash:016x}");
}

/// Write only when the bytes differ, so `include_bytes!` does not rebuild for nothing.
fn copy_if_changed(bytes: &[u8], to: &Path) {
    if std::fs::read(to).is_ok_and(|old| old == bytes) {
        return;
    }
    std::fs::write(to, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
}

/// `UWSGIDOCKER_GIT_COMMIT` for `uwsgi-docker --version`: the commit being built, or
/// `unknown` outside a git checkout (a source tarball, a crate).
fn git_commit() {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    // Rebuilt when HEAD moves: HEAD itself (a checkout) and the branch it names (a commit).
    for file in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!(
        "cargo:rustc-env=UWSGIDOCKER_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
