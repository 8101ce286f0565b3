//! Wrapper mode: a stock uWSGI Emperor with `emperor-wrapper = /path/uwsgi-docker` execs us
//! in place of uWSGI for every vassal. Docker vassals get a bridge; the others are exec'd to
//! the real uWSGI with the same argv, env and fds, their config still unread.
//!
//! Only ini vassals can be Docker vassals (`--ini`, or `--config NAME.ini`); xml, yaml and
//! json vassals, and names of an `emperor-extra-extension` (passed as `--config NAME`),
//! always go to uWSGI, or are refused when Docker is required. A pushed config (pg, amqp,
//! zeromq monitors) comes as `--ini emperor://NAME.ini`. A name with no known extension
//! never reaches us: the Emperor's monitors skip such a row or file silently
//! (`uwsgi_emperor_is_valid` in uWSGI's `core/emperor.c`), so name pushed vassals `*.ini`.
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::RecvFlags;
use rustix::process::Signal;
use uwsgi_docker_core::emperor::{self, ConfigDecoder};
use uwsgi_docker_core::spec;

use crate::args::{ConfigSource, WrapperArgs};
use crate::host::sys;
use crate::output::{fail, fail_naming};
use crate::runtime::start::{run_bridge, BridgeStart};
use crate::runtime::tenancy::{self, Origin};
use crate::settings::{self, var, RuntimeSettings};

/// A vassal waits this long for its config push; so do we.
const CONFIG_WAIT: Duration = Duration::from_secs(5);
const CONFIG_HEADER_LEN: usize = 4;

pub fn run(args: WrapperArgs) -> ExitCode {
    // First thing: the Emperor set PR_SET_PDEATHSIG(SIGKILL) and it survived exec; a bridge
    // must outlive a dead Emperor long enough to remove its container. Kept to restore it
    // for a vassal we exec to uWSGI.
    let death_signal = rustix::process::parent_process_death_signal()
        .ok()
        .flatten();
    if let Err(e) = rustix::process::set_parent_process_death_signal(None) {
        crate::output::warn(&format!(
            "vassal {}: cannot clear the parent-death signal: {e}",
            args.name
        ));
    }
    let settings = match settings::from_process_env() {
        Ok(s) => s,
        Err(e) => return fail(&format!("vassal {}: {e}", args.name)),
    };
    let emperor_control = match std::env::var("UWSGI_EMPEROR_FD") {
        Ok(v) => match sys::adopt_inherited_fd("UWSGI_EMPEROR_FD", &v) {
            Ok(fd) => fd,
            Err(e) => return fail(&format!("vassal {}: {e}", args.name)),
        },
        Err(_) => {
            return fail(&format!(
                "vassal {}: UWSGI_EMPEROR_FD is not set; wrapper mode runs under a uWSGI Emperor",
                args.name
            ))
        }
    };
    let emperor_config = match std::env::var("UWSGI_EMPEROR_FD_CONFIG") {
        Ok(v) if !v.is_empty() => match sys::adopt_inherited_fd("UWSGI_EMPEROR_FD_CONFIG", &v) {
            Ok(fd) => Some(fd),
            Err(e) => return fail(&format!("vassal {}: {e}", args.name)),
        },
        _ => None,
    };
    let name = args.name.clone();
    let required = settings.emperor.docker_required;

    if !args.is_ini() {
        if required {
            return fail(&format!(
                "vassal {name} is not an ini file; only ini vassals can run in Docker, and docker is required (UWSGIDOCKER_REQUIRED)"
            ));
        }
        // Under a policy, judge whose it is before uWSGI runs it as root.
        if settings.policy.is_some() {
            let origin = match &args.source {
                ConfigSource::Emperor => Ok(Origin::Pushed),
                ConfigSource::File(path) => crate::host::vassal_file::open(path)
                    .and_then(|file| Origin::of_file(&file, path)),
            };
            let origin = match origin {
                Ok(origin) => origin,
                Err(e) => return fail(&format!("vassal {name}: {e}")),
            };
            if let Err(e) = judge_native(&settings, &name, origin, &args.source) {
                return fail_naming(&name, &e);
            }
        }
        return exec_uwsgi(&settings, &args, death_signal);
    }

    // Read the config without consuming it: a non-Docker vassal still needs it. A file's
    // tenant is judged on the descriptor its text came from.
    let (text, packet_len, origin) = match &args.source {
        ConfigSource::File(path) => {
            match crate::host::vassal_file::open(path).map(|file| {
                let origin = Origin::of_file(&file, path);
                (file.text, origin)
            }) {
                Ok((text, origin)) => (text, None, origin),
                Err(e) => return fail(&format!("vassal {name}: {e}")),
            }
        }
        ConfigSource::Emperor => {
            let Some(fd) = &emperor_config else {
                return fail(&format!(
                    "vassal {name}: emperor://{name} but UWSGI_EMPEROR_FD_CONFIG is not set"
                ));
            };
            match peek_config_packet(fd.as_fd(), CONFIG_WAIT) {
                Ok((text, len)) => (text, Some(len), Ok(Origin::Pushed)),
                Err(e) => return fail(&format!("vassal {name}: {e}")),
            }
        }
    };
    // Two tenants controlling one file matter only under a policy.
    let origin = match origin {
        Ok(origin) => origin,
        Err(_) if settings.policy.is_none() => Origin::Pushed,
        Err(e) => return fail(&format!("vassal {name}: {e}")),
    };

    let spec = match spec::parse_vassal(&name, &text) {
        Err(e) => return fail(&e.to_string()),
        Ok(None) if required => {
            return fail(&format!(
                "vassal {name} has no docker-image and docker is required (UWSGIDOCKER_REQUIRED)"
            ))
        }
        Ok(None) => {
            if let Err(e) = judge_native(&settings, &name, origin, &args.source) {
                return fail_naming(&name, &e);
            }
            return exec_uwsgi(&settings, &args, death_signal);
        }
        Ok(Some(spec)) => spec,
    };
    // A Docker vassal's file is pushed to its container whole (a larger non-Docker vassal
    // is uWSGI's, so this waits for the parse).
    if let Err(e) = spec::check_pushable(&name, text.len()) {
        return fail(&e.to_string());
    }
    if let Some(message) = tenancy::tyrant_mode_message(&name) {
        return fail(&message);
    }

    // A bridge: show as `[uwsgi-docker-bridge] NAME` in ps. Exec'ing ourselves keeps the
    // fds and env; the marker stops a second round.
    if std::env::var_os(var::TITLED).is_none() {
        let err = Command::new("/proc/self/exe")
            .arg0(format!("[uwsgi-docker-bridge] {name}"))
            .args(args.argv.iter().skip(1))
            .env(var::TITLED, "1")
            .exec();
        // Only reached when the exec failed: carry on untitled.
        if settings.emperor.debug {
            crate::output::warn(&format!(
                "vassal {name}: cannot set the process title: {err}"
            ));
        }
    }
    // Single-threaded here (the signal self-pipe starts no thread), so this is sound.
    std::env::remove_var(var::TITLED);
    // Exec'd as /proc/self/exe, the process is named "exe" in top, pidof and ps -C.
    let _ = rustix::thread::set_name(c"uwsgi-docker");

    // Now consume the config packet the peek left in place.
    let (config, config_file) = match (&args.source, packet_len) {
        (ConfigSource::Emperor, Some(len)) => {
            let Some(fd) = &emperor_config else {
                return fail(&format!("vassal {name}: the config channel vanished"));
            };
            match consume_config_packet(fd.as_fd(), len) {
                Ok(config) => (config, None),
                Err(e) => return fail(&format!("vassal {name}: {e}")),
            }
        }
        (ConfigSource::File(path), _) => (text, Some(path.clone())),
        (ConfigSource::Emperor, None) => (text, None),
    };
    let emperor_config = match args.source {
        ConfigSource::Emperor => emperor_config,
        // A config channel next to a file name is not the Emperor's protocol; leave it be.
        ConfigSource::File(_) => None,
    };
    run_bridge(
        &settings,
        spec,
        BridgeStart {
            name,
            config,
            config_file,
            emperor_control: Some(emperor_control),
            emperor_config,
            inherited_socket: sys::inherited_listening_socket(),
            origin,
        },
    )
}

/// The policy's verdict on a vassal uWSGI would run on the host (see
/// [`tenancy::judge_native`]); with debug on, the verdict is logged.
fn judge_native(
    settings: &RuntimeSettings,
    name: &str,
    origin: Origin,
    source: &ConfigSource,
) -> Result<(), crate::runtime::start_error::StartError> {
    let file = match source {
        ConfigSource::File(path) => Some(path.as_path()),
        ConfigSource::Emperor => None,
    };
    if let Some((_, verdict)) = tenancy::judge_native(settings, name, origin, file)? {
        if settings.emperor.debug {
            crate::output::warn(&format!(
                "vassal {name}: runs with uwsgi on the host: {}",
                verdict.reason
            ));
        }
    }
    Ok(())
}

/// Exec the real uWSGI with our argv (`argv[0]` replaced), env and fds.
fn exec_uwsgi(
    settings: &RuntimeSettings,
    args: &WrapperArgs,
    death_signal: Option<Signal>,
) -> ExitCode {
    let Some(uwsgi) = find_uwsgi(settings) else {
        return fail(&format!(
            "vassal {}: cannot find the real uwsgi binary on PATH (other than uwsgi-docker); set UWSGIDOCKER_UWSGI",
            args.name
        ));
    };
    // Give the vassal back the Emperor's parent-death signal.
    if death_signal.is_some() {
        let _ = rustix::process::set_parent_process_death_signal(death_signal);
    }
    let err = Command::new(&uwsgi)
        .arg0(&uwsgi)
        .args(args.argv.iter().skip(1))
        .env_remove(var::TITLED)
        .exec();
    fail(&format!(
        "vassal {}: cannot exec {}: {err}",
        args.name,
        uwsgi.display()
    ))
}

/// `UWSGIDOCKER_UWSGI`, else the first `uwsgi` on PATH that is not this binary.
fn find_uwsgi(settings: &RuntimeSettings) -> Option<PathBuf> {
    if let Some(path) = &settings.uwsgi {
        return Some(path.clone());
    }
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    let me = std::fs::metadata("/proc/self/exe").ok();
    let my_path = std::fs::canonicalize("/proc/self/exe").ok();
    std::env::split_paths(&path)
        .map(|dir| dir.join("uwsgi"))
        .find(|candidate| is_other_executable(candidate, me.as_ref(), my_path.as_deref()))
}

fn is_other_executable(
    candidate: &Path,
    me: Option<&std::fs::Metadata>,
    my_path: Option<&Path>,
) -> bool {
    let Ok(meta) = std::fs::metadata(candidate) else {
        return false;
    };
    if !meta.is_file() || meta.mode() & 0o111 == 0 {
        return false;
    }
    let same_inode = me.is_some_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
    let same_path = my_path.is_some_and(|p| std::fs::canonicalize(candidate).is_ok_and(|c| c == p));
    !same_inode && !same_path
}

/// Why the Emperor's config packet did not arrive whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ConfigPacketError {
    #[error("no whole config packet from the Emperor within {0} s")]
    Timeout(u64),
    #[error("cannot wait for the config: {0}")]
    Poll(rustix::io::Errno),
    #[error("cannot read the config: {0}")]
    Read(rustix::io::Errno),
    #[error("the Emperor closed the config channel before sending the config")]
    ClosedBefore,
    #[error("the Emperor closed the config channel mid-packet")]
    ClosedMidPacket,
    #[error("the Emperor's {0}")]
    Header(emperor::ConfigError),
    #[error(transparent)]
    Decode(emperor::ConfigError),
    #[error("the config packet held no config")]
    Empty,
}

/// Wait up to `wait` for one whole config packet and return its config and packet length,
/// leaving it unread (MSG_PEEK).
fn peek_config_packet(
    fd: BorrowedFd<'_>,
    wait: Duration,
) -> Result<(Vec<u8>, usize), ConfigPacketError> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; CONFIG_HEADER_LEN + usize::from(u16::MAX)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConfigPacketError::Timeout(wait.as_secs()));
        }
        let timeout = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(ConfigPacketError::Poll(e)),
        }
        let n = match rustix::net::recv(fd, &mut buf[..], RecvFlags::PEEK) {
            Ok((_, 0)) => return Err(ConfigPacketError::ClosedBefore),
            Ok((n, _)) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            Err(e) => return Err(ConfigPacketError::Read(e)),
        };
        if let Some(packet) = whole_packet(buf.get(..n).unwrap_or_default())? {
            return Ok(packet);
        }
        // Part of a packet: more is on its way.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `Ok(Some((config, packet_len)))` when `bytes` hold one whole config packet.
fn whole_packet(bytes: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ConfigPacketError> {
    let len = emperor::config_packet_len(bytes).map_err(ConfigPacketError::Header)?;
    Ok(len.and_then(|len| {
        bytes
            .get(CONFIG_HEADER_LEN..len)
            .map(|config| (config.to_vec(), len))
    }))
}

/// Read exactly the peeked packet off the channel and decode it with the core's decoder.
fn consume_config_packet(fd: BorrowedFd<'_>, len: usize) -> Result<Vec<u8>, ConfigPacketError> {
    let mut packet = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let rest = packet.get_mut(filled..).unwrap_or_default();
        match rustix::io::read(fd, rest) {
            Ok(0) => return Err(ConfigPacketError::ClosedMidPacket),
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(ConfigPacketError::Read(e)),
        }
    }
    let mut config = None;
    ConfigDecoder::default()
        .feed(&packet, &mut |c| config = Some(c))
        .map_err(ConfigPacketError::Decode)?;
    config.ok_or(ConfigPacketError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    fn packet(config: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        emperor::encode_config(config, &mut p).expect("small");
        p
    }

    #[test]
    fn whole_packet_needs_every_byte() {
        let p = packet(b"[uwsgi]\n");
        assert_eq!(whole_packet(&p[..3]), Ok(None));
        assert_eq!(whole_packet(&p[..p.len() - 1]), Ok(None));
        assert_eq!(whole_packet(&p), Ok(Some((b"[uwsgi]\n".to_vec(), p.len()))));
        assert!(whole_packet(&[1, 0, 0, 0]).is_err());
    }

    #[test]
    fn peek_leaves_the_packet_unread() {
        let (mut emperor, vassal) = UnixStream::pair().expect("pair");
        let p = packet(b"[uwsgi]\nhttp = :0\n");
        emperor.write_all(&p).expect("write");
        let fd = OwnedFd::from(vassal);
        let (config, len) = peek_config_packet(fd.as_fd(), Duration::from_secs(1)).expect("peek");
        assert_eq!(
            (config.as_slice(), len),
            (&b"[uwsgi]\nhttp = :0\n"[..], p.len())
        );
        // Still there: a second peek sees the same packet.
        let again = peek_config_packet(fd.as_fd(), Duration::from_secs(1)).expect("peek");
        assert_eq!(again.1, p.len());
    }

    #[test]
    fn peek_times_out_without_a_packet() {
        let (_emperor, vassal) = UnixStream::pair().expect("pair");
        let fd = OwnedFd::from(vassal);
        let err = peek_config_packet(fd.as_fd(), Duration::from_millis(50)).expect_err("timeout");
        assert_eq!(err, ConfigPacketError::Timeout(0));
        assert!(err.to_string().contains("within"), "{err}");
    }

    #[test]
    fn find_uwsgi_prefers_the_setting() {
        let mut settings = RuntimeSettings::default();
        settings.uwsgi = Some(PathBuf::from("/opt/uwsgi"));
        assert_eq!(find_uwsgi(&settings), Some(PathBuf::from("/opt/uwsgi")));
        // Our own test binary is never "the other uwsgi".
        let me = std::fs::metadata("/proc/self/exe").ok();
        let exe = std::fs::canonicalize("/proc/self/exe").expect("exe");
        assert!(!is_other_executable(&exe, me.as_ref(), Some(&exe)));
        assert!(is_other_executable(
            Path::new("/bin/sh"),
            me.as_ref(),
            Some(&exe)
        ));
    }
}
