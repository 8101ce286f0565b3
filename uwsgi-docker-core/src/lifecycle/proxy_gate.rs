//! The proxy socket: bound before anything is created, open to exactly one peer from
//! inside the vassal's container, closed after the handoff. A peer is told by its cgroup
//! (no daemon request), else by its pid namespace against the container init's.
use super::interface::{Action, Generation, PeerIdentity, ProxyPeer};
use super::outbox::Outbox;
use crate::emperor::{encode_config, ConfigError};
use crate::handoff::{self, HandedFd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProxyState {
    Unbound,
    Binding,
    Bound,
    Accepting,
    /// The vassal has its channels; the listener is closed.
    HandedOff,
    /// Closed without a handoff (or never bound).
    Closed,
}

/// What becomes of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PeerVerdict {
    /// It is in the container: it gets the channels.
    Admit,
    /// Its cgroup does not tell: it waits until the init's pid namespace is known.
    Hold,
    Refuse,
}

/// Peers held at once; more are refused (uWSGI connects once).
const MAX_HELD_PEERS: usize = 4;

#[derive(Debug)]
pub(super) struct ProxyGate {
    pub(super) state: ProxyState,
    /// The started container's id: a peer whose cgroup names it is admitted.
    container_id: Option<String>,
    /// The container's init, once inspected.
    init_pid: Option<u32>,
    /// Its pid namespace: the one a held peer must be in.
    init_pid_ns: Option<u64>,
    /// Peers waiting for `init_pid_ns`, with their pid (for messages) and namespace.
    held: Vec<(ProxyPeer, Option<u32>, Option<u64>)>,
}

impl ProxyGate {
    pub(super) fn new() -> ProxyGate {
        ProxyGate {
            state: ProxyState::Unbound,
            container_id: None,
            init_pid: None,
            init_pid_ns: None,
            held: Vec::new(),
        }
    }

    pub(super) fn bind(&mut self, path: String, out: &mut Outbox) {
        self.state = ProxyState::Binding;
        out.push(Action::BindProxy { path });
    }

    pub(super) fn is_handed_off(&self) -> bool {
        self.state == ProxyState::HandedOff
    }

    pub(super) fn set_init(&mut self, pid: u32) {
        self.init_pid = Some(pid);
    }

    pub(super) fn init_pid(&self) -> Option<u32> {
        self.init_pid
    }

    /// The container `container_id` started: accept peers from now on.
    pub(super) fn accept_in(&mut self, container_id: &str, out: &mut Outbox) {
        self.container_id = Some(container_id.to_owned());
        self.state = ProxyState::Accepting;
        out.push(Action::AcceptProxy);
    }

    /// What becomes of a peer that reads as `identity`.
    pub(super) fn judge(&self, identity: &PeerIdentity) -> PeerVerdict {
        if self.state != ProxyState::Accepting {
            return PeerVerdict::Refuse;
        }
        let cgroup = identity.cgroup.as_deref().and_then(container_of_cgroup);
        if cgroup.is_some() && cgroup == self.container_id.as_deref() {
            return PeerVerdict::Admit;
        }
        match (self.init_pid_ns, identity.pid_ns) {
            (_, None) => PeerVerdict::Refuse,
            (Some(init), Some(ns)) if init == ns => PeerVerdict::Admit,
            (Some(_), Some(_)) => PeerVerdict::Refuse,
            (None, Some(_)) if self.held.len() < MAX_HELD_PEERS => PeerVerdict::Hold,
            (None, Some(_)) => PeerVerdict::Refuse,
        }
    }

    /// Keeps a peer judged [`PeerVerdict::Hold`] until the init's namespace is known.
    pub(super) fn hold(&mut self, peer: ProxyPeer, identity: &PeerIdentity) {
        self.held.push((peer, identity.pid, identity.pid_ns));
    }

    /// Held peers wait for the init, and it was not inspected yet.
    pub(super) fn needs_init(&self) -> bool {
        !self.held.is_empty() && self.init_pid.is_none()
    }

    /// Held peers wait for the namespace of the init just inspected.
    pub(super) fn needs_namespace(&self) -> bool {
        !self.held.is_empty() && self.init_pid_ns.is_none()
    }

    /// The init's namespace is known: the first held peer in it is admitted, the other held
    /// peers are returned to be refused (with their pids).
    pub(super) fn resolve_held(
        &mut self,
        pid_ns: u64,
    ) -> (Option<ProxyPeer>, Vec<(ProxyPeer, Option<u32>)>) {
        self.init_pid_ns = Some(pid_ns);
        let mut admitted = None;
        let mut refused = Vec::new();
        for (peer, pid, ns) in self.held.drain(..) {
            if admitted.is_none() && ns == Some(pid_ns) {
                admitted = Some(peer);
            } else {
                refused.push((peer, pid));
            }
        }
        (admitted, refused)
    }

    /// Hands `generation`'s channels (and the listening socket, with `passes_socket`) to
    /// `peer`, after `config`, which waits in the channel's buffer, and closes the
    /// listener: single use.
    pub(super) fn hand_off(
        &mut self,
        peer: ProxyPeer,
        generation: Generation,
        config: &[u8],
        passes_socket: bool,
        out: &mut Outbox,
    ) -> Result<(), ConfigError> {
        let mut packet = Vec::with_capacity(config.len() + 4);
        encode_config(config, &mut packet)?;
        // uWSGI reads the config right after the handoff.
        out.push(Action::ToVassalConfig(generation, packet));
        // Protocol order: control, config, then the listening socket. A 2.0.x uWSGI takes
        // only two fds, so with a socket the plan's launcher receives them (native mode
        // with a socket is for uWSGI master, which maps the third onto fd 0).
        let mut fds = vec![HandedFd::Control, HandedFd::Config];
        if passes_socket {
            fds.push(HandedFd::Socket);
        }
        let data = handoff::encode(&fds).to_vec();
        out.push(Action::Handoff {
            generation,
            peer,
            data,
            fds,
        });
        out.push(Action::CloseProxy);
        self.state = ProxyState::HandedOff;
        Ok(())
    }

    /// Closes the listener if it is open; `false` while a bind is unanswered (the answer
    /// says whether there is a socket file to unlink).
    pub(super) fn close(&mut self, out: &mut Outbox) -> bool {
        match self.state {
            ProxyState::Binding => return false,
            ProxyState::Bound | ProxyState::Accepting => {
                out.push(Action::CloseProxy);
                self.state = ProxyState::Closed;
            }
            _ => {}
        }
        true
    }
}

/// The container id a `/proc/PID/cgroup` places its process in: the first id under one of
/// the engines' own root-owned trees, which nothing in a container or in a user's session can
/// create (Docker's cgroupfs `/docker/ID`, systemd `/system.slice/docker-ID.scope`, Podman's
/// `/machine.slice/libpod-ID.scope`, cgroupfs `/libpod_parent/libpod-ID`). Every line that
/// names one must name the same; `None` when none does or they differ (rootless engines, a
/// custom cgroup parent: the pid namespace decides then).
fn container_of_cgroup(text: &str) -> Option<&str> {
    let mut found = None;
    for line in text.lines() {
        // `hierarchy:controllers:path`; the path may itself hold ':'.
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        let Some(id) = engine_scope_id(path) else {
            continue;
        };
        match found {
            None => found = Some(id),
            Some(seen) if seen == id => {}
            Some(_) => return None,
        }
    }
    found
}

/// The container id at the root of `path`, for the engines' own trees.
fn engine_scope_id(path: &str) -> Option<&str> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let id = match (parts.next()?, parts.next()?) {
        ("docker", id) => id,
        ("system.slice", scope) => scope.strip_prefix("docker-")?.strip_suffix(".scope")?,
        ("machine.slice", scope) => scope.strip_prefix("libpod-")?.strip_suffix(".scope")?,
        ("libpod_parent", scope) => scope.strip_prefix("libpod-")?,
        _ => return None,
    };
    // Docker and Podman ids are 64 lowercase hex digits; only equality with the id create
    // answered admits a peer.
    let is_id = !id.is_empty() && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    is_id.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f2a0c1b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b";
    const OTHER: &str = "9999999999999999999999999999999999999999999999999999999999999999";

    fn peer(pid_ns: Option<u64>, cgroup: Option<String>) -> PeerIdentity {
        PeerIdentity {
            pid: Some(100),
            pid_ns,
            cgroup,
        }
    }

    #[test]
    fn the_engines_cgroup_trees_name_the_container_and_nothing_else_does() {
        let v1 =
            format!("12:memory:/docker/{ID}\n11:pids:/docker/{ID}\n1:name=systemd:/docker/{ID}\n");
        assert_eq!(container_of_cgroup(&v1), Some(ID));
        for path in [
            format!("/system.slice/docker-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/libpod_parent/libpod-{ID}"),
        ] {
            assert_eq!(
                container_of_cgroup(&format!("0::{path}\n")),
                Some(ID),
                "{path}"
            );
        }
        for text in [
            // A user's own delegated tree, a nested group, a host process, rootless Podman.
            format!("0::/user.slice/user-1000.slice/user@1000.service/docker-{ID}.scope\n"),
            format!("0::/docker/{OTHER}/{ID}\n"),
            "0::/user.slice/user-0.slice/session-1.scope\n".to_owned(),
            format!("0::/machine.slice/libpod-conmon-{ID}.scope\n"),
            format!("0::/docker/{}\n", &ID[..12]),
            format!("0::/docker/{}\n", ID.to_uppercase()),
            // Two lines that disagree.
            format!("12:memory:/docker/{ID}\n11:pids:/docker/{OTHER}\n"),
            String::new(),
        ] {
            assert_ne!(container_of_cgroup(&text), Some(ID), "{text:?}");
        }
    }

    #[test]
    fn a_peer_in_the_containers_cgroup_is_admitted_at_once_and_others_wait_for_the_namespace() {
        let mut out = Outbox::new(false);
        let mut gate = ProxyGate::new();
        let ours = Some(format!("0::/docker/{ID}\n"));
        assert_eq!(
            gate.judge(&peer(Some(7), ours.clone())),
            PeerVerdict::Refuse
        );
        gate.bind("/run/x.sock".into(), &mut out);
        assert!(!gate.close(&mut out), "a bind in flight is waited for");
        gate.state = ProxyState::Bound;
        assert_eq!(
            gate.judge(&peer(Some(7), ours.clone())),
            PeerVerdict::Refuse,
            "not accepting yet"
        );
        gate.accept_in(ID, &mut out);
        assert_eq!(gate.judge(&peer(None, ours.clone())), PeerVerdict::Admit);
        let elsewhere = Some(format!("0::/docker/{OTHER}\n"));
        assert_eq!(gate.judge(&peer(Some(8), elsewhere)), PeerVerdict::Hold);
        assert_eq!(
            gate.judge(&peer(None, None)),
            PeerVerdict::Refuse,
            "nothing to tell by"
        );
        assert!(!gate.needs_init());
        gate.hold(ProxyPeer(1), &peer(Some(8), None));
        gate.hold(ProxyPeer(2), &peer(Some(7), None));
        assert!(gate.needs_init());
        gate.set_init(42);
        assert!(!gate.needs_init() && gate.needs_namespace());
        let (admitted, refused) = gate.resolve_held(7);
        assert_eq!(admitted, Some(ProxyPeer(2)));
        assert_eq!(refused, [(ProxyPeer(1), Some(100))]);
        // Known now: judged by it at once.
        assert_eq!(gate.judge(&peer(Some(7), None)), PeerVerdict::Admit);
        assert_eq!(gate.judge(&peer(Some(9), None)), PeerVerdict::Refuse);
        assert!(gate.close(&mut out));
        assert_eq!(
            gate.judge(&peer(Some(7), ours)),
            PeerVerdict::Refuse,
            "closed"
        );
        let actions: Vec<Action> = std::iter::from_fn(|| out.pop()).collect();
        assert!(matches!(
            actions.as_slice(),
            [
                Action::BindProxy { .. },
                Action::AcceptProxy,
                Action::CloseProxy
            ]
        ));
    }

    #[test]
    fn at_most_a_few_peers_are_held() {
        let mut out = Outbox::new(false);
        let mut gate = ProxyGate::new();
        gate.state = ProxyState::Bound;
        gate.accept_in(ID, &mut out);
        for n in 0..MAX_HELD_PEERS as u64 {
            let someone = peer(Some(n), None);
            assert_eq!(gate.judge(&someone), PeerVerdict::Hold);
            gate.hold(ProxyPeer(n), &someone);
        }
        assert_eq!(gate.judge(&peer(Some(99), None)), PeerVerdict::Refuse);
    }
}
