use super::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "uwsgi-docker-hostfs-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A socket file nobody listens on, as a crashed bridge leaves it.
fn stale_socket(path: &Path) {
    drop(UnixListener::bind(path).expect("bind"));
    assert!(std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()));
}

fn refused(err: &HostFsError) -> &str {
    match err {
        HostFsError::Refused { why, .. } => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn open_dir_refuses_symlinks_relative_paths_and_dot_dot() {
    let dir = temp_dir("opendir");
    let real = dir.join("real");
    std::fs::create_dir(&real).expect("mkdir");
    std::os::unix::fs::symlink(&real, dir.join("link")).expect("symlink");
    assert!(open_dir(&real).is_ok());
    let err = open_dir(&dir.join("link")).expect_err("a symlink");
    assert!(refused(&err).contains("is a symlink"), "{err}");
    assert!(err.to_string().contains("link"), "{err}");
    // Deeper: a symlink in the middle.
    std::fs::create_dir(real.join("sub")).expect("mkdir");
    assert!(open_dir(&dir.join("link/sub")).is_err());
    assert!(open_dir(&real.join("sub")).is_ok());
    for bad in ["relative/dir", "/tmp/../etc", "/tmp/./x", ""] {
        assert!(open_dir(Path::new(bad)).is_err(), "{bad}");
    }
    std::fs::write(real.join("file"), b"x").expect("write");
    assert!(open_dir(&real.join("file")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_component_walk_refuses_symlinks_too() {
    let dir = temp_dir("walk");
    let real = dir.join("real");
    std::fs::create_dir(&real).expect("mkdir");
    std::os::unix::fs::symlink(&real, dir.join("link")).expect("symlink");
    let names = |p: &Path| -> Vec<OsString> {
        plain_components(p)
            .expect("plain")
            .into_iter()
            .map(OsStr::to_owned)
            .collect()
    };
    let walk_path = |p: &Path| {
        let owned = names(p);
        let borrowed: Vec<&OsStr> = owned.iter().map(OsString::as_os_str).collect();
        walk(p, &borrowed)
    };
    let fd = walk_path(&real).expect("a real dir");
    let st = rustix::fs::fstat(&fd).expect("fstat");
    assert_eq!(st.st_ino, std::fs::metadata(&real).expect("stat").ino());
    let err = walk_path(&dir.join("link")).expect_err("a symlink");
    assert!(refused(&err).contains("symlink"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bind_replaces_a_stale_socket_with_mode_and_owner() {
    let dir = temp_dir("stale");
    let path = dir.join("proxy.sock");
    stale_socket(&path);
    let owner = SocketOwner {
        uid: None,
        gid: Some(33),
    };
    let bound = bind_unix(&path, 0o660, owner).expect("bind over a stale socket");
    let meta = std::fs::symlink_metadata(&path).expect("stat");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), 33);
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
    // It listens: a client gets in, and a second bind is refused as in use.
    let _client = UnixStream::connect(&path).expect("connect");
    let err = bind_unix(&path, 0o600, SocketOwner::default()).expect_err("in use");
    assert!(refused(&err).contains("in use"), "{err}");
    bound.entry.remove().expect("remove our own socket");
    assert!(std::fs::symlink_metadata(&path).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bind_refuses_what_is_not_a_stale_stream_socket() {
    let dir = temp_dir("refuse");
    // A regular file.
    let file = dir.join("file.sock");
    std::fs::write(&file, b"precious").expect("write");
    let err = bind_unix(&file, 0o600, SocketOwner::default()).expect_err("a file");
    assert!(refused(&err).contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&file).expect("kept"), b"precious");
    // A symlink to a stale socket: the symlink is not a socket, and neither is touched.
    let target = dir.join("target.sock");
    stale_socket(&target);
    let link = dir.join("link.sock");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let err = bind_unix(&link, 0o600, SocketOwner::default()).expect_err("a symlink");
    assert!(refused(&err).contains("not a socket"), "{err}");
    assert!(std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()));
    assert!(std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_socket()));
    // A live datagram socket (journald's kind) and a live seqpacket one.
    let dgram_path = dir.join("dgram.sock");
    let dgram = UnixDatagram::bind(&dgram_path).expect("bind dgram");
    let err = bind_unix(&dgram_path, 0o600, SocketOwner::default()).expect_err("live dgram");
    assert!(refused(&err).contains("datagram"), "{err}");
    assert!(std::fs::symlink_metadata(&dgram_path).is_ok());
    let seq_path = dir.join("seq.sock");
    let seq =
        rustix::net::socket(AddressFamily::UNIX, SocketType::SEQPACKET, None).expect("socket");
    rustix::net::bind(&seq, &SocketAddrUnix::new(&seq_path).expect("addr")).expect("bind");
    rustix::net::listen(&seq, 1).expect("listen");
    let err = bind_unix(&seq_path, 0o600, SocketOwner::default()).expect_err("live seqpacket");
    assert!(refused(&err).contains("seqpacket"), "{err}");
    assert!(std::fs::symlink_metadata(&seq_path).is_ok());
    // A live stream socket with a full backlog is live too, and the probe does not wait.
    let full_path = dir.join("full.sock");
    let full = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).expect("socket");
    rustix::net::bind(&full, &SocketAddrUnix::new(&full_path).expect("addr")).expect("bind");
    rustix::net::listen(&full, 0).expect("listen");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(fd) = connect_unix(&full_path, Duration::ZERO) {
            fillers.push(fd);
        }
    }
    let started = Instant::now();
    let err = bind_unix(&full_path, 0o600, SocketOwner::default()).expect_err("live, full");
    assert!(refused(&err).contains("in use"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let err = connect_unix(&full_path, Duration::from_millis(100)).expect_err("full backlog");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    drop((dgram, seq, full, fillers));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bind_under_a_symlinked_directory_is_refused() {
    let dir = temp_dir("symdir");
    let real = dir.join("real");
    std::fs::create_dir(&real).expect("mkdir");
    std::os::unix::fs::symlink(&real, dir.join("link")).expect("symlink");
    let err = bind_unix(&dir.join("link/app.sock"), 0o600, SocketOwner::default())
        .expect_err("symlinked dir");
    assert!(refused(&err).contains("symlink"), "{err}");
    assert!(std::fs::read_dir(&real).expect("read").next().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_name_too_long_for_sun_path_binds_and_is_found_again() {
    let dir = temp_dir("long");
    let name = format!("{}.sock", "v".repeat(150));
    let path = dir.join(&name);
    let bound = bind_unix(&path, 0o600, SocketOwner::default()).expect("bind a long name");
    assert!(std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket()));
    // No temporary name is left, and the probe finds it live.
    let entries: Vec<_> = std::fs::read_dir(&dir).expect("read").collect();
    assert_eq!(entries.len(), 1);
    let err = bind_unix(&path, 0o600, SocketOwner::default()).expect_err("in use");
    assert!(refused(&err).contains("in use"), "{err}");
    drop(bound.listener);
    // Stale now: a new bind replaces it.
    let again = bind_unix(&path, 0o600, SocketOwner::default()).expect("rebind");
    again.entry.remove().expect("remove");
    assert!(std::fs::read_dir(&dir).expect("read").next().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn our_socket_is_removed_only_while_it_is_ours() {
    let dir = temp_dir("ours");
    let path = dir.join("app.sock");
    let bound = bind_unix(&path, 0o600, SocketOwner::default()).expect("bind");
    drop(bound.listener);
    // Somebody replaced it with a file of theirs: it stays.
    std::fs::remove_file(&path).expect("rm");
    std::fs::write(&path, b"theirs").expect("write");
    assert!(bound.entry.remove().is_err());
    assert_eq!(std::fs::read(&path).expect("kept"), b"theirs");
    let _ = std::fs::remove_dir_all(&dir);
}

const ID_A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ID_B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

#[test]
fn cidfile_is_new_or_one_of_ours_and_removed_only_with_our_id() {
    let dir = temp_dir("cid");
    let path = dir.join("app.cid");
    let cid = write_cidfile(&path, ID_A).expect("new");
    assert_eq!(std::fs::read(&path).expect("read"), ID_A.as_bytes());
    drop(cid);
    // Left by an earlier bridge: replaced.
    let cid = write_cidfile(&path, ID_B).expect("replace ours");
    assert_eq!(std::fs::read(&path).expect("read"), ID_B.as_bytes());
    cid.remove().expect("remove");
    assert!(std::fs::symlink_metadata(&path).is_err());
    // Rewritten by somebody else after we wrote it: stays.
    let cid = write_cidfile(&path, ID_A).expect("new");
    std::fs::write(&path, ID_B).expect("rewrite");
    assert!(cid.remove().is_err());
    assert_eq!(std::fs::read(&path).expect("kept"), ID_B.as_bytes());
    std::fs::remove_file(&path).expect("rm");
    // Anything else is refused and kept.
    std::fs::write(&path, b"root:x:0:0::/root:/bin/sh\n").expect("write");
    let err = write_cidfile(&path, ID_A).expect_err("not a cidfile");
    assert!(refused(&err).contains("not a cidfile"), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("kept"),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    // A container id with a second link (a hard link to a victim) is not ours either.
    std::fs::write(&path, ID_A).expect("write");
    std::fs::hard_link(&path, dir.join("other")).expect("link");
    assert!(write_cidfile(&path, ID_B).is_err());
    assert_eq!(
        std::fs::read(dir.join("other")).expect("kept"),
        ID_A.as_bytes()
    );
    // A symlink at the name, or in the directory part: refused, the target untouched.
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").expect("write");
    let link = dir.join("link.cid");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    let err = write_cidfile(&link, ID_A).expect_err("symlink");
    assert!(refused(&err).contains("symlink"), "{err}");
    std::os::unix::fs::symlink(&dir, dir.join("dirlink")).expect("symlink");
    assert!(write_cidfile(&dir.join("dirlink/victim"), ID_A).is_err());
    assert_eq!(std::fs::read(&victim).expect("kept"), b"precious");
    // A FIFO does not hang us.
    let fifo = dir.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    assert!(write_cidfile(&fifo, ID_A).is_err());
    // gc's removal: only with the id.
    let gc_path = dir.join("gc.cid");
    let _cid = write_cidfile(&gc_path, ID_A).expect("new");
    assert_eq!(remove_cidfile_if(&gc_path, ID_B).ok(), Some(false));
    assert_eq!(remove_cidfile_if(&gc_path, ID_A).ok(), Some(true));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn private_dir_is_made_and_checked() {
    let dir = temp_dir("private");
    let base = dir.join("run");
    let fd = private_dir(&base, "emperor-1").expect("create");
    let st = rustix::fs::fstat(&fd).expect("fstat");
    assert_eq!(st.st_mode & 0o777, 0o700);
    assert!(private_dir(&base, "emperor-1").is_ok(), "again: it exists");
    std::fs::set_permissions(
        base.join("emperor-1"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let err = private_dir(&base, "emperor-1").expect_err("open to others");
    assert!(refused(&err).contains("0700"), "{err}");
    std::os::unix::fs::symlink(&dir, base.join("emperor-2")).expect("symlink");
    assert!(private_dir(&base, "emperor-2").is_err());
    // A world-writable base (say /tmp) is refused.
    assert!(private_dir(Path::new("/tmp"), "x").is_err());
    assert!(private_dir(&base, "..").is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn emperor_ids_become_distinct_dir_names() {
    assert_eq!(sanitise_dir_name("e2e12x3"), "e2e12x3");
    let a = sanitise_dir_name("host:123");
    let b = sanitise_dir_name("host_123");
    assert_ne!(a, b);
    assert!(a.starts_with("vhost_123-"), "{a}");
    for id in ["..", ".", "", "a/b", &"x".repeat(300)] {
        let name = sanitise_dir_name(id);
        assert!(
            !name.is_empty() && !name.contains('/') && !name.starts_with('.'),
            "{name}"
        );
        assert!(name.len() <= 90, "{name}");
    }
}

/// The race from issue 8: a tenant swaps the socket's directory for a symlink to a victim
/// directory between our check and our unlink. The victim is a stale socket itself, so
/// every per-file check passes for it: only acting on the pinned directory saves it.
#[test]
fn symlink_swap_race_never_removes_the_victim() {
    let dir = temp_dir("race");
    let victim_dir = dir.join("victim");
    std::fs::create_dir(&victim_dir).expect("mkdir");
    let victim = victim_dir.join("app.sock");
    stale_socket(&victim);
    let victim_ino = std::fs::symlink_metadata(&victim).expect("stat").ino();
    let tenant = dir.join("tenant");
    std::fs::create_dir(&tenant).expect("mkdir");
    let real = rustix::fs::open(&tenant, dir_flags(), Mode::empty()).expect("pin");
    let parked = dir.join("parked");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, tenant, parked, victim_dir) = (
            stop.clone(),
            tenant.clone(),
            parked.clone(),
            victim_dir.clone(),
        );
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(&tenant, &parked).expect("park the real dir");
                std::os::unix::fs::symlink(&victim_dir, &tenant).expect("swap in the symlink");
                std::thread::yield_now();
                std::fs::remove_file(&tenant).expect("remove the symlink");
                std::fs::rename(&parked, &tenant).expect("put the real dir back");
                std::thread::yield_now();
                swaps += 1;
            }
            swaps
        })
    };
    let path = tenant.join("app.sock");
    let (mut removed, mut refusals) = (0u32, 0u32);
    for _ in 0..2000 {
        // A stale socket in the tenant's real dir, wherever the swapper has it right now.
        let name = proc_path(real.as_fd(), Some(OsStr::new("app.sock")));
        if let Ok(listener) = UnixListener::bind(&name) {
            drop(listener);
        }
        match remove_stale_socket_path(&path) {
            Ok(StaleOutcome::Removed) => removed += 1,
            Ok(StaleOutcome::Absent) => {}
            Err(_) => refusals += 1,
        }
        let still = std::fs::symlink_metadata(&victim).expect("the victim survives");
        assert_eq!(still.ino(), victim_ino, "the victim was replaced");
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    assert!(
        swaps > 0 && removed > 0,
        "swaps {swaps}, removed {removed}, refused {refusals}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_cidfile_refuses_early_what_write_would_refuse() {
    let dir = temp_dir("checkcid");
    assert!(check_cidfile(&dir.join("new.cid")).is_ok());
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").expect("write");
    assert!(check_cidfile(&victim).is_err());
    std::os::unix::fs::symlink(&victim, dir.join("link")).expect("symlink");
    assert!(check_cidfile(&dir.join("link")).is_err());
    std::fs::write(dir.join("old.cid"), ID_A).expect("write");
    assert!(check_cidfile(&dir.join("old.cid")).is_ok());
    assert!(check_cidfile(Path::new("relative.cid")).is_err());
    assert_eq!(std::fs::read(&victim).expect("kept"), b"precious");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17's third route: a path the daemon looks up again must be one only root can
/// redirect: every directory above it root's and writable by no one else, no symlink.
#[test]
fn fixed_paths_need_every_directory_above_to_be_roots() {
    if !rustix::process::geteuid().is_root() {
        return crate::host::test_skip::skip("needs root");
    }
    // Not under /tmp: it is world-writable.
    let base = Path::new("/run").join(format!("uwsgi-docker-fixed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("tenant/data")).expect("mkdir");
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tenant = base.join("tenant");
    std::os::unix::fs::chown(&tenant, Some(4242), Some(4242)).expect("chown");
    // The tenant's own directory under root's: fine, its name cannot be swapped.
    check_fixed_path(&tenant, false).expect("the tenant's dir itself");
    // Something inside it: the tenant can rename it.
    let err = check_fixed_path(&tenant.join("data"), false)
        .expect_err("inside the tenant's dir")
        .to_string();
    assert!(
        err.contains("can be changed by others than root") && err.contains("uid 4242"),
        "{err}"
    );
    // A group- or world-writable directory, sticky or not.
    let shared = base.join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::create_dir(shared.join("x")).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    assert!(check_fixed_path(&shared.join("x"), false).is_err());
    assert!(check_fixed_path(Path::new("/tmp/x"), true).is_err());
    // A symlink anywhere, and a missing last component only when allowed.
    std::os::unix::fs::symlink(&tenant, base.join("link")).expect("symlink");
    let err = check_fixed_path(&base.join("link"), false)
        .expect_err("a symlink")
        .to_string();
    assert!(err.contains("is a symlink"), "{err}");
    check_fixed_path(&base.join("absent.sock"), true).expect("a socket to be bound");
    assert!(check_fixed_path(&base.join("absent"), false).is_err());
    assert!(check_fixed_path(Path::new("/"), false).is_err());
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn state_files_are_replaced_whole_and_read_back_from_every_private_dir() {
    let base = temp_dir("state").join("run");
    let first = StateFile::open(&base, "emperor-a", "app.ini").expect("open");
    assert_eq!(first.read(1024), None, "nothing yet");
    first.write(b"{\"starts\":1}").expect("write");
    first.write(b"{\"starts\":2}").expect("replace");
    assert_eq!(first.read(1024).as_deref(), Some(&b"{\"starts\":2}"[..]));
    let other = StateFile::open(&base, "emperor-b", "x/../y.ini").expect("open");
    other.write(b"{}").expect("write");
    // A symlink named like a state file is not followed; a non-state file is skipped.
    let dir_a = base.join("emperor-a");
    std::os::unix::fs::symlink("/etc/passwd", dir_a.join("evil.ini.state")).expect("symlink");
    std::fs::write(dir_a.join("app.ini.sock"), b"x").expect("write");
    let mut found = read_state_files(&base, 1024).expect("read");
    found.sort();
    let names: Vec<String> = found
        .iter()
        .map(|(p, _)| p.strip_prefix(&base).unwrap().display().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], "emperor-a/app.ini.state");
    assert!(
        names[1].starts_with("emperor-b/v") && names[1].matches('/').count() == 1,
        "{names:?}"
    );
    // Too large: skipped.
    assert!(read_state_files(&base, 4)
        .expect("read")
        .iter()
        .all(|(_, b)| b.len() <= 4));
    // A group-writable base is not read.
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    assert!(read_state_files(&base, 1024).is_err());
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let other_path = found[1].0.clone();
    assert!(remove_state_file(&base, &other_path).expect("gc removes it"));
    assert!(!remove_state_file(&base, &other_path).expect("gone"));
    assert!(remove_state_file(&base, Path::new("/etc/passwd")).is_err());
    first.remove().expect("remove");
    first.remove().expect("removing twice is fine");
    assert_eq!(first.read(1024), None);
    assert!(read_state_files(&base.join("missing"), 1024)
        .expect("none")
        .is_empty());
}
