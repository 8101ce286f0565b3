//! The proxy socket: bound before anything is created, open to exactly one peer from
//! inside the vassal's container (told by its pid namespace), closed after the handoff.
use super::interface::{Action, Generation, ProxyPeer};
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

#[derive(Debug)]
pub(super) struct ProxyGate {
    pub(super) state: ProxyState,
    /// The container's init, once inspected.
    init_pid: Option<u32>,
    /// Its pid namespace: the one a peer must be in.
    init_pid_ns: Option<u64>,
}

impl ProxyGate {
    pub(super) fn new() -> ProxyGate {
        ProxyGate {
            state: ProxyState::Unbound,
            init_pid: None,
            init_pid_ns: None,
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

    /// The init's namespace is known: start accepting.
    pub(super) fn accept_from(&mut self, pid_ns: u64, out: &mut Outbox) {
        self.init_pid_ns = Some(pid_ns);
        self.state = ProxyState::Accepting;
        out.push(Action::AcceptProxy);
    }

    /// Whether a peer in `pid_ns` is the vassal we wait for.
    pub(super) fn admits(&self, pid_ns: Option<u64>) -> bool {
        self.state == ProxyState::Accepting
            && self.init_pid_ns.is_some()
            && pid_ns == self.init_pid_ns
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_peer_in_the_inits_namespace_is_admitted_and_only_while_accepting() {
        let mut out = Outbox::new(false);
        let mut gate = ProxyGate::new();
        assert!(!gate.admits(None));
        gate.bind("/run/x.sock".into(), &mut out);
        assert!(!gate.close(&mut out), "a bind in flight is waited for");
        gate.state = ProxyState::Bound;
        gate.set_init(42);
        assert!(!gate.admits(Some(7)), "not accepting yet");
        gate.accept_from(7, &mut out);
        assert!(gate.admits(Some(7)));
        assert!(!gate.admits(Some(8)) && !gate.admits(None));
        assert!(gate.close(&mut out));
        assert!(!gate.admits(Some(7)), "closed");
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
}
