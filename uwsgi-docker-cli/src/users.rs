//! Users and groups from `/etc/passwd` and `/etc/group`: the files themselves, as every
//! Debian host keeps them (no NSS modules; a tenant that exists only in LDAP is named by uid).
use uwsgi_docker_core::policy::Tenant;

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
        Tenant {
            uid: self.uid,
            gid: self.gid,
            name: Some(self.name),
            home: Some(self.home),
        }
    }
}

/// One `/etc/group` entry, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
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

/// `name:password:gid:members`.
pub fn parse_group_line(line: &str) -> Option<Group> {
    let mut fields = line.split(':');
    let name = fields.next().filter(|n| !n.is_empty())?;
    let _password = fields.next()?;
    let gid = fields.next()?.parse().ok()?;
    Some(Group {
        name: name.to_owned(),
        gid,
    })
}

fn users() -> impl Iterator<Item = User> {
    read_lines("/etc/passwd").filter_map(|l| parse_passwd_line(&l))
}

fn groups() -> impl Iterator<Item = Group> {
    read_lines("/etc/group").filter_map(|l| parse_group_line(&l))
}

fn read_lines(path: &str) -> impl Iterator<Item = String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
}

pub fn user_by_uid(uid: u32) -> Option<User> {
    users().find(|u| u.uid == uid)
}

pub fn user_by_name(name: &str) -> Option<User> {
    users().find(|u| u.name == name)
}

pub fn group_by_name(name: &str) -> Option<Group> {
    groups().find(|g| g.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines() {
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
        assert_eq!(
            parse_group_line("www-data:x:33:"),
            Some(Group {
                name: "www-data".into(),
                gid: 33
            })
        );
    }

    #[test]
    fn root_is_found_on_this_host() {
        let root = user_by_uid(0).expect("every host has root");
        assert_eq!(root.name, "root");
        assert_eq!(user_by_name("root").map(|u| u.uid), Some(0));
        assert_eq!(group_by_name("root").map(|g| g.gid), Some(0));
    }
}
