//! `USER[:GROUP]` (names or numbers) to a uid and gid, from `/etc/passwd` and `/etc/group`:
//! the few lines of the files' format that a socket owner needs, with no NSS.
use std::path::Path;

use uwsgi_docker_core::policy::Tenant;

use crate::host::hostfs::SocketOwner;

/// Why `USER[:GROUP]` names no one on this host.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("no user {name:?} in {path}; use a user name from it or a number")]
    NoUser { name: String, path: String },
    #[error("no group {name:?} in {path}; use a group name from it or a number")]
    NoGroup { name: String, path: String },
}

/// Resolve `USER[:GROUP]` against the host's `/etc/passwd` and `/etc/group`. Without a
/// group only the owner changes (as uWSGI's `chown-socket` does).
pub fn resolve_owner(spec: &str) -> Result<SocketOwner, OwnerError> {
    resolve_owner_in(spec, Path::new("/etc/passwd"), Path::new("/etc/group"))
}

pub fn resolve_owner_in(
    spec: &str,
    passwd: &Path,
    group: &Path,
) -> Result<SocketOwner, OwnerError> {
    let (user, group_name) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| OwnerError::Read {
            path: path.display().to_string(),
            cause: source,
        })
    };
    let uid = match user.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => lookup(&read(passwd)?, user).ok_or_else(|| OwnerError::NoUser {
            name: user.to_owned(),
            path: passwd.display().to_string(),
        })?,
    };
    let gid = match group_name {
        None => None,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup(&read(group)?, g).ok_or_else(|| OwnerError::NoGroup {
                name: g.to_owned(),
                path: group.display().to_string(),
            })?,
        }),
    };
    Ok(SocketOwner {
        uid: Some(uid),
        gid,
    })
}

/// The third field (uid or gid) of the line whose first field is `name`: both files share
/// that much of their format (`name:password:ID:…`).
fn lookup(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == name).then_some(())?;
            fields.nth(1)?.trim().parse().ok()
        })
}

/// One `/etc/passwd` entry, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

impl User {
    /// The tenant this user is.
    pub fn into_tenant(self) -> Tenant {
        Tenant::new(self.uid, self.gid)
            .with_name(self.name)
            .with_home(self.home)
    }
}

/// `name:password:uid:gid:gecos:home:shell`.
pub fn parse_passwd_line(line: &str) -> Option<User> {
    let mut fields = line.split(':');
    let name = fields.next().filter(|n| !n.is_empty())?;
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    let _gecos = fields.next()?;
    let home = fields.next()?;
    Some(User {
        name: name.to_owned(),
        uid,
        gid,
        home: home.to_owned(),
    })
}

fn users() -> impl Iterator<Item = User> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(parse_passwd_line)
        .collect::<Vec<_>>()
        .into_iter()
}

/// The passwd entry with this uid (the tenant of a file it owns).
pub fn user_by_uid(uid: u32) -> Option<User> {
    users().find(|u| u.uid == uid)
}

/// The passwd entry named `name` (a tenant the policy names).
pub fn user_by_name(name: &str) -> Option<User> {
    users().find(|u| u.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve() {
        let dir = std::env::temp_dir().join(format!("uwsgi-docker-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let passwd = dir.join("passwd");
        let group = dir.join("group");
        std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/sh\n# x:x:9:9\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n").expect("passwd");
        std::fs::write(&group, "root:x:0:\nwww-data:x:33:\nweb:x:1001:alice\n").expect("group");
        let r = |s: &str| resolve_owner_in(s, &passwd, &group);
        assert_eq!(
            r("root:www-data").ok(),
            Some(SocketOwner {
                uid: Some(0),
                gid: Some(33)
            })
        );
        assert_eq!(
            r("www-data").ok(),
            Some(SocketOwner {
                uid: Some(33),
                gid: None
            })
        );
        assert_eq!(
            r("1000:1001").ok(),
            Some(SocketOwner {
                uid: Some(1000),
                gid: Some(1001)
            })
        );
        assert_eq!(
            r("0:web").ok(),
            Some(SocketOwner {
                uid: Some(0),
                gid: Some(1001)
            })
        );
        let err = r("nobody-here:web").expect_err("unknown user").to_string();
        assert!(
            err.contains("nobody-here") && err.contains("passwd"),
            "{err}"
        );
        let err = r("root:x").expect_err("unknown group").to_string();
        assert!(err.contains("\"x\"") && err.contains("group"), "{err}");
        // A commented line is not an entry.
        assert!(r("#").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_host_files_know_root() {
        assert_eq!(
            resolve_owner("root:root").ok(),
            Some(SocketOwner {
                uid: Some(0),
                gid: Some(0)
            })
        );
    }

    #[test]
    fn passwd_lines_and_lookups() {
        assert_eq!(
            parse_passwd_line("www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin"),
            Some(User {
                name: "www-data".into(),
                uid: 33,
                gid: 33,
                home: "/var/www".into()
            })
        );
        assert_eq!(parse_passwd_line("broken:x:notanumber:1::/:/bin/sh"), None);
        assert_eq!(parse_passwd_line(""), None);
        let root = user_by_uid(0).expect("every host has root");
        assert_eq!(root.name, "root");
        assert_eq!(user_by_name("root").map(|u| u.uid), Some(0));
    }
}
