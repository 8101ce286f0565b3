//! End to end for issue 8's host side: paths a vassal names are never followed through a
//! symlink, live sockets of any type are never removed, any container user receives its
//! channels, and a `docker-socket` can belong to a group (nginx's `www-data`) instead of
//! being open to every local user.
//!
//! Same rules as `e2e.rs`: a real Emperor and daemon per test, nothing left behind, skipped
//! without Docker, uWSGI or the test image (failing under `CI`).

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;

fn world(test: &str, options: EmperorOptions) -> Option<World> {
    prerequisites(test)?;
    World::start_with(test, options)
}

/// A `docker-socket` vassal speaking the uwsgi protocol (what nginx's `uwsgi_pass` speaks).
fn socket_vassal(socket: &Path, extra_emperor: &str) -> String {
    format!(
        "[emperor]\n\
         docker-image = {image}\n\
         docker-socket = {socket}\n\
         {extra_emperor}\n\
         \n\
         [uwsgi]\n\
         master = true\n\
         plugin = psgi\n\
         psgi = {APP_IN_IMAGE}\n\
         processes = 1\n",
        image = image(),
        socket = socket.display()
    )
}

/// Waits for the vassal's refusal in the log, checks that no container was made, and
/// removes the vassal (the Emperor would keep respawning it).
fn expect_refusal(w: &World, name: &str, needles: &[&str]) -> String {
    let mut all = vec![name];
    all.extend_from_slice(needles);
    let line = w.wait_for_log_line(&all, SPAWN_TIMEOUT);
    assert_eq!(container_id(name), None, "a container was made: {line}");
    w.remove_vassal(name);
    line
}

#[test]
fn symlinked_socket_and_cidfile_paths_are_refused() {
    let Some(mut w) = world("hostfs_symlinks", EmperorOptions::from_env()) else {
        return;
    };
    // A docker-socket under a symlinked directory.
    let real = w.root.join("real");
    std::fs::create_dir(&real).expect("mkdir");
    let link = w.root.join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let sock_vassal = w.vassal_name("symsock");
    let socket = link.join("app.sock");
    w.write_vassal(&sock_vassal, &socket_vassal(&socket, ""));
    let line = expect_refusal(&w, &sock_vassal, &["docker-socket", "symlink"]);
    assert!(line.contains(&link.display().to_string()), "{line}");

    // A docker-cidfile that is a symlink to a victim file, and one through a symlinked dir.
    let victim = w.root.join("victim.txt");
    std::fs::write(&victim, b"precious\n").expect("write the victim");
    let cid_link = w.root.join("app.cid");
    std::os::unix::fs::symlink(&victim, &cid_link).expect("symlink");
    let port = free_port();
    let cid_vassal = w.vassal_name("symcid");
    w.write_vassal(
        &cid_vassal,
        &docker_vassal(
            port,
            &format!("docker-cidfile = {}", cid_link.display()),
            "",
        ),
    );
    let line = expect_refusal(&w, &cid_vassal, &["docker-cidfile", "symlink"]);
    assert!(line.contains(&cid_link.display().to_string()), "{line}");
    std::fs::write(real.join("victim.txt"), b"precious\n").expect("write a second victim");
    let dir_vassal = w.vassal_name("symdircid");
    w.write_vassal(
        &dir_vassal,
        &docker_vassal(
            port,
            &format!("docker-cidfile = {}", link.join("victim.txt").display()),
            "",
        ),
    );
    expect_refusal(&w, &dir_vassal, &["docker-cidfile", "symlink"]);

    w.assert_clean_within(CLEANUP_TIMEOUT, "the refused vassals were removed");
    assert_eq!(
        std::fs::read(&victim).expect("the victim survives"),
        b"precious\n"
    );
    assert_eq!(
        std::fs::read(real.join("victim.txt")).expect("the victim survives"),
        b"precious\n"
    );
    assert!(std::fs::symlink_metadata(&cid_link).is_ok_and(|m| m.file_type().is_symlink()));
    let entries: Vec<_> = std::fs::read_dir(&real)
        .expect("read")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("victim.txt")]);
}

#[test]
fn a_live_datagram_socket_is_refused_and_survives() {
    let Some(mut w) = world("hostfs_dgram", EmperorOptions::from_env()) else {
        return;
    };
    let path = w.root.join("journal.sock");
    let live = UnixDatagram::bind(&path).expect("bind a datagram socket");
    let name = w.vassal_name("dgram");
    w.write_vassal(&name, &socket_vassal(&path, ""));
    let line = expect_refusal(&w, &name, &["docker-socket", "datagram"]);
    assert!(line.contains(&path.display().to_string()), "{line}");
    w.assert_clean_within(CLEANUP_TIMEOUT, "the refused vassal was removed");
    // Still the same, live socket: a datagram sent to the path arrives.
    let client = UnixDatagram::unbound().expect("client");
    client.send_to(b"still here", &path).expect("send");
    let mut buf = [0u8; 32];
    live.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let n = live.recv(&mut buf).expect("the socket still receives");
    assert_eq!(&buf[..n], b"still here");
    drop(live);
    std::fs::remove_file(&path).expect("remove the test's socket");
}

/// A non-root `docker-user` gets its channels through the private runtime directory, and
/// a vassal name too long for `sun_path` on the host side still binds its proxy there.
#[test]
fn a_non_root_user_with_a_long_name_receives_its_channels() {
    let Some(mut w) = world("hostfs_nonroot", EmperorOptions::from_env()) else {
        return;
    };
    let port = free_port();
    // In the container the proxy is `/<name>.sock` (under 108 bytes); on the host it is
    // `/run/uwsgi-docker/<emperor>/<name>.sock`, over 108.
    let short = "u".repeat(96 - w.vassal_name("").len());
    let name = w.vassal_name(&short);
    let proxy = w.proxy_socket(&name);
    assert!(
        proxy.as_os_str().len() > 108,
        "{} must not fit in sun_path",
        proxy.display()
    );
    w.write_vassal(&name, &docker_vassal(port, "docker-user = 1000:1000", ""));
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);

    // The container's processes run as 1000 (as the host sees them).
    let pid = inspect(&name, "{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("a Uid line");
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some("1000"),
        "{uid_line}"
    );
    // The proxy was bound in the Emperor's private directory: root's alone, 0700.
    let mounts = inspect(
        &name,
        "{{range .Mounts}}{{.Source}}|{{.Destination}}\n{{end}}",
    );
    assert!(
        mounts
            .lines()
            .any(|m| m.split('|').next() == proxy.to_str()),
        "no bind mount of {}: {mounts}",
        proxy.display()
    );
    let dir = std::fs::symlink_metadata(&w.proxy_dir).expect("the private dir");
    assert!(dir.is_dir());
    assert_eq!(dir.uid(), 0);
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    // The handoff is single-use: the socket file is gone once the vassal has its fds.
    assert!(
        wait_for(CLEANUP_TIMEOUT, || (!proxy.exists()).then_some(())).is_some(),
        "the proxy socket outlived the handoff"
    );
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
}

/// nginx from Debian, its workers as `www-data`, in a private prefix.
struct Nginx {
    child: Option<Child>,
    prefix: PathBuf,
}

impl Nginx {
    fn start(prefix: &Path, port: u16, upstream: &Path) -> Option<Nginx> {
        let binary = Path::new("/usr/sbin/nginx");
        if !binary.exists() {
            skip("nginx is not installed (apt-get install nginx)");
            return None;
        }
        std::fs::create_dir_all(prefix.join("tmp")).expect("nginx prefix");
        let p = prefix.display();
        let conf = format!(
            "daemon off;\n\
             master_process on;\n\
             user www-data;\n\
             worker_processes 1;\n\
             pid {p}/nginx.pid;\n\
             error_log {p}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {p}/tmp/body;\n\
               proxy_temp_path {p}/tmp/proxy;\n\
               fastcgi_temp_path {p}/tmp/fastcgi;\n\
               uwsgi_temp_path {p}/tmp/uwsgi;\n\
               scgi_temp_path {p}/tmp/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                   include /etc/nginx/uwsgi_params;\n\
                   uwsgi_pass unix:{upstream};\n\
                 }}\n\
               }}\n\
             }}\n",
            upstream = upstream.display()
        );
        std::fs::write(prefix.join("nginx.conf"), conf).expect("nginx.conf");
        let out = std::fs::File::create(prefix.join("nginx.out")).expect("nginx.out");
        let err = out.try_clone().expect("dup");
        let child = Command::new(binary)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .arg("-e")
            .arg(prefix.join("error.log"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn nginx");
        Some(Nginx {
            child: Some(child),
            prefix: prefix.to_owned(),
        })
    }

    fn log(&self) -> String {
        let mut text = std::fs::read(self.prefix.join("error.log"))
            .map(|b| lossy(&b))
            .unwrap_or_default();
        text.push_str(
            &std::fs::read(self.prefix.join("nginx.out"))
                .map(|b| lossy(&b))
                .unwrap_or_default(),
        );
        text
    }

    /// SIGTERM: nginx's fast shutdown takes its workers down with it.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten()).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `curl --unix-socket PATH` run as `user:group` with no supplementary groups: its exit code
/// (7 is "could not connect").
fn curl_as(user: &str, group: &str, socket: &Path) -> (Option<i32>, String) {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={user}"),
            &format!("--regid={group}"),
            "--clear-groups",
            "--",
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--unix-socket",
        ])
        .arg(socket)
        .arg("http://x/")
        .output();
    match out {
        Ok(out) => (out.status.code(), lossy(&out.stderr)),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!("setpriv is missing: {e}"),
        Err(e) => panic!("cannot run setpriv: {e}"),
    }
}

#[test]
fn nginx_as_www_data_serves_a_660_socket_that_nobody_else_can_reach() {
    let Some(mut w) = world(
        "hostfs_nginx",
        EmperorOptions::from_env().with_env("UWSGIDOCKER_SOCKET_MODE", "660"),
    ) else {
        return;
    };
    let socket = w.root.join("app.sock");
    let name = w.vassal_name("nginx");
    w.write_vassal(
        &name,
        &socket_vassal(&socket, "docker-socket-owner = root:www-data"),
    );
    let port = free_port();
    let Some(mut nginx) = Nginx::start(&w.root.join("nginx"), port, &socket) else {
        w.remove_vassal(&name);
        return;
    };
    let mut last = None;
    let served = wait_for(SPAWN_TIMEOUT, || {
        let got = http_get(port, "/");
        let done = matches!(&got, Ok((200, body)) if body == DEFAULT_GREETING);
        last = Some(got);
        done.then_some(())
    });
    assert!(
        served.is_some(),
        "nginx did not serve the vassal; last: {last:?}\nnginx log:\n{}\nEmperor log:\n{}",
        nginx.log(),
        w.log_tail(40)
    );
    // 660, root:www-data: not 666.
    let meta = std::fs::symlink_metadata(&socket).expect("the socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 33),
        "owner root, group www-data"
    );
    // The group gets in, everybody else is refused by the kernel: the same path, the same
    // client, only the group differs (curl says 7 for a refused connect, whatever errno).
    let (code, stderr) = curl_as("www-data", "www-data", &socket);
    assert_ne!(code, Some(7), "www-data could not connect: {stderr}");
    let (code, stderr) = curl_as("nobody", "nogroup", &socket);
    assert_eq!(code, Some(7), "nobody connected: {stderr}");
    // And a root client still speaks to it directly.
    let reply = UnixStream::connect(&socket)
        .and_then(|s| {
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            uwsgi_request(s, 0, "/")
        })
        .expect("a uwsgi request");
    assert!(reply.ends_with(DEFAULT_GREETING), "{reply}");

    nginx.stop();
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
    assert!(!socket.exists(), "the socket file outlived its vassal");
}
