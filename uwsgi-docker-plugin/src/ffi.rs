//! The one place that touches C pointers: the hook the C glue calls, turned into owned Rust
//! values under a single panic boundary. Everything after that is safe Rust in the crate root.
use std::ffi::{c_char, c_int, c_uint, CStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use crate::{act, decide, log, Options, RealHost, Vassal};

/// Mirrors `struct uwsgi_docker_vassal` in `glue/docker_plugin.c`, field for field.
#[repr(C)]
#[derive(Debug)]
pub struct RawVassal {
    name: *const c_char,
    config: *const c_char,
    config_len: u32,
    use_config: c_int,
    argv: *const *const c_char,
    required: c_int,
    debug: c_int,
    daemon_socket: *const c_char,
    socket_dir: *const c_char,
    bridge: *const c_char,
    plugin_path: *const c_char,
    socket_mode: c_uint,
    name_prefix: *const c_char,
    socket_owner: *const c_char,
    policy: *const c_char,
}

/// Called by the glue's `vassal_before_exec` in the Emperor's forked child. Returns only
/// when uWSGI should exec the vassal itself; otherwise execs the bridge or exits.
#[no_mangle]
pub extern "C" fn uwsgi_docker_vassal_before_exec(raw: *const RawVassal) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the glue passes a pointer to a `struct uwsgi_docker_vassal` on its stack,
        // valid for this call; `as_ref` handles NULL.
        let Some(raw) = (unsafe { raw.as_ref() }) else {
            return;
        };
        handle(raw);
    }));
    if outcome.is_err() {
        // A panic must not let a Docker vassal start on the host: stop this child.
        log("the docker plugin's vassal hook panicked; the vassal is not started");
        std::process::exit(1);
    }
}

fn handle(raw: &RawVassal) {
    // SAFETY: the glue sets `name` to the instance's NUL-terminated `char name[0xff]`.
    let Some(name) = (unsafe { c_string(raw.name) }) else {
        return;
    };
    let options = Options {
        required: raw.required != 0,
        debug: raw.debug != 0,
        // SAFETY: option strings are NULL or NUL-terminated strings uWSGI keeps for its life.
        daemon_socket: unsafe { c_string(raw.daemon_socket) }.map(OsString::from_vec),
        // SAFETY: as above.
        socket_dir: unsafe { c_string(raw.socket_dir) }.map(OsString::from_vec),
        // SAFETY: as above.
        bridge: unsafe { c_string(raw.bridge) }.map(|b| PathBuf::from(OsString::from_vec(b))),
        // SAFETY: NULL or dladdr's `dli_fname`, a NUL-terminated path valid while loaded.
        plugin_path: unsafe { c_string(raw.plugin_path) }
            .map(|p| PathBuf::from(OsString::from_vec(p))),
        socket_mode: (raw.socket_mode != 0).then_some(raw.socket_mode),
        // SAFETY: as for the other option strings.
        name_prefix: unsafe { c_string(raw.name_prefix) }.map(OsString::from_vec),
        // SAFETY: NULL or uWSGI's `chown-socket` option string, kept for its life.
        socket_owner: unsafe { c_string(raw.socket_owner) }.map(OsString::from_vec),
        // SAFETY: as for the other option strings.
        policy: unsafe { c_string(raw.policy) }.map(OsString::from_vec),
    };
    let Ok(name) = String::from_utf8(name) else {
        if options.required {
            log("a vassal's name is not UTF-8 text; docker is required (emperor-docker-required), so it is refused");
            std::process::exit(1);
        }
        return;
    };
    let config = if raw.use_config != 0 && !raw.config.is_null() {
        let len = usize::try_from(raw.config_len).unwrap_or(0);
        // SAFETY: with `use_config`, the instance's `config` holds `config_len` bytes the
        // Emperor allocated before the fork; the child's copy lives until exec or exit.
        Some(unsafe { std::slice::from_raw_parts(raw.config.cast::<u8>(), len) })
    } else {
        None
    };
    let argv = if raw.argv.is_null() {
        None
    } else {
        // SAFETY: on uWSGI 2.1 the glue passes the Emperor's NULL-terminated vassal argv.
        Some(unsafe { c_string_array(raw.argv) })
    };
    let vassal = Vassal {
        name: &name,
        pushed_config: config,
        argv,
    };
    let decision = decide(&vassal, &options, &RealHost);
    act(&name, decision, options.debug);
}

/// The bytes of a C string, `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the call.
unsafe fn c_string(ptr: *const c_char) -> Option<Vec<u8>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated, by this function's contract.
    Some(unsafe { CStr::from_ptr(ptr) }.to_bytes().to_vec())
}

/// A NULL-terminated array of C strings.
///
/// # Safety
/// `argv` points to an array of valid C strings ending with a NULL pointer.
unsafe fn c_string_array(argv: *const *const c_char) -> Vec<OsString> {
    let mut out = Vec::new();
    for index in 0.. {
        // SAFETY: every slot up to and including the NULL terminator is readable.
        let arg = unsafe { *argv.add(index) };
        // SAFETY: a non-NULL slot is a valid C string (this function's contract).
        match unsafe { c_string(arg) } {
            Some(bytes) => out.push(OsString::from_vec(bytes)),
            None => break,
        }
    }
    out
}
