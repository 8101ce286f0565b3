//! The one place that touches C pointers: the hook the C glue calls, turned into owned Rust
//! values under a single panic boundary. Everything after that is safe Rust in the crate root.
use std::ffi::{c_char, c_int, c_uint, CStr, OsString};
use std::mem::{offset_of, size_of};
use std::os::unix::ffi::OsStringExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use uwsgi_docker_core::settings::var;

use crate::{hook, log, HookInput};

/// Mirrors `struct uwsgi_docker_vassal` in `glue/docker_plugin.c`, field for field. The
/// glue `_Static_assert`s the same size and offsets, so a change on one side alone does
/// not build.
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
    pull: *const c_char,
    pull_timeout: *const c_char,
    registry_auth: *const c_char,
}

// The layout the glue asserts too, in pointer sizes (`P`), so that it holds on any
// pointer width: a pointer is P-aligned, and the u32/int pairs fill one 8-byte slot.
const _: () = {
    const P: usize = size_of::<*const c_char>();
    assert!(offset_of!(RawVassal, name) == 0);
    assert!(offset_of!(RawVassal, config) == P);
    assert!(offset_of!(RawVassal, config_len) == 2 * P);
    assert!(offset_of!(RawVassal, use_config) == 2 * P + 4);
    assert!(offset_of!(RawVassal, argv) == 2 * P + 8);
    assert!(offset_of!(RawVassal, required) == 3 * P + 8);
    assert!(offset_of!(RawVassal, debug) == 3 * P + 12);
    assert!(offset_of!(RawVassal, daemon_socket) == 3 * P + 16);
    assert!(offset_of!(RawVassal, socket_dir) == 4 * P + 16);
    assert!(offset_of!(RawVassal, bridge) == 5 * P + 16);
    assert!(offset_of!(RawVassal, plugin_path) == 6 * P + 16);
    assert!(offset_of!(RawVassal, socket_mode) == 7 * P + 16);
    assert!(offset_of!(RawVassal, name_prefix) == 8 * P + 16);
    assert!(offset_of!(RawVassal, socket_owner) == 9 * P + 16);
    assert!(offset_of!(RawVassal, policy) == 10 * P + 16);
    assert!(offset_of!(RawVassal, pull) == 11 * P + 16);
    assert!(offset_of!(RawVassal, pull_timeout) == 12 * P + 16);
    assert!(offset_of!(RawVassal, registry_auth) == 13 * P + 16);
    assert!(size_of::<RawVassal>() == 14 * P + 16);
};

/// Called by the glue's `vassal_before_exec` in the Emperor's forked child. Returns only
/// when uWSGI should exec the vassal itself; otherwise execs the bridge or exits.
///
/// # Safety
/// `raw` is NULL or points to a `struct uwsgi_docker_vassal` valid for the call, whose
/// string fields are NULL or NUL-terminated, whose `argv` is NULL or a NULL-terminated
/// array of such strings, and whose `config` holds `config_len` readable bytes when
/// `use_config` is set.
#[no_mangle]
pub unsafe extern "C" fn uwsgi_docker_vassal_before_exec(raw: *const RawVassal) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: NULL or valid for this call, by this function's contract.
        let Some(raw) = (unsafe { raw.as_ref() }) else {
            return;
        };
        // SAFETY: the fields are as this function's contract says.
        let Some(input) = (unsafe { hook_input(raw) }) else {
            return;
        };
        hook(input);
    }));
    if outcome.is_err() {
        // A panic must not let a Docker vassal start on the host: stop this child.
        log("the docker plugin's vassal hook panicked; the vassal is not started");
        std::process::exit(1);
    }
}

/// The hook's input, copied out of the glue's struct; `None` without a name.
///
/// # Safety
/// As for [`uwsgi_docker_vassal_before_exec`].
unsafe fn hook_input(raw: &RawVassal) -> Option<HookInput<'_>> {
    // SAFETY: the glue sets `name` to the instance's NUL-terminated `char name[0xff]`.
    let name = unsafe { c_string(raw.name) }?;
    let string = |ptr| {
        // SAFETY: option strings are NULL or NUL-terminated strings uWSGI keeps for its
        // life; `plugin_path` is NULL or dladdr's `dli_fname`, valid while loaded.
        unsafe { c_string(ptr) }.map(OsString::from_vec)
    };
    let yes = |on: c_int| (on != 0).then(|| OsString::from("1"));
    let option_values = [
        (var::REQUIRED, yes(raw.required)),
        (var::DEBUG, yes(raw.debug)),
        (var::DAEMON_SOCKET, string(raw.daemon_socket)),
        (var::SOCKET_DIR, string(raw.socket_dir)),
        (
            var::SOCKET_MODE,
            (raw.socket_mode != 0).then(|| OsString::from(format!("{:o}", raw.socket_mode))),
        ),
        (var::NAME_PREFIX, string(raw.name_prefix)),
        (var::SOCKET_OWNER, string(raw.socket_owner)),
        (var::POLICY, string(raw.policy)),
        (var::PULL, string(raw.pull)),
        (var::PULL_TIMEOUT, string(raw.pull_timeout)),
        (var::REGISTRY_AUTH, string(raw.registry_auth)),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value?)))
    .collect();
    let pushed_config = if raw.use_config != 0 && !raw.config.is_null() {
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
    Some(HookInput {
        name,
        pushed_config,
        argv,
        option_values,
        bridge: string(raw.bridge).map(PathBuf::from),
        plugin_path: string(raw.plugin_path).map(PathBuf::from),
    })
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
