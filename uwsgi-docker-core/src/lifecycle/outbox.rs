//! The queue of actions for the runtime, and the numbering of daemon connections.
use std::collections::VecDeque;

use super::events::{Event, Notice};
use super::interface::{Action, DockerConn};

#[derive(Debug, Default)]
pub(super) struct Outbox {
    actions: VecDeque<Action>,
    next_conn: u32,
    debug: bool,
}

impl Outbox {
    pub(super) fn new(debug: bool) -> Outbox {
        Outbox {
            debug,
            ..Outbox::default()
        }
    }

    pub(super) fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    pub(super) fn pop(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub(super) fn event(&mut self, event: Event) {
        self.push(Action::Log(event));
    }

    pub(super) fn notice(&mut self, notice: Notice) {
        self.event(Event::Notice(notice));
    }

    /// A `docker-debug` line, built only when it will be shown.
    pub(super) fn debug(&mut self, text: impl FnOnce() -> String) {
        if self.debug {
            self.event(Event::Debug(text()));
        }
    }

    /// A new connection id, with the action that opens it. Ids are never reused.
    pub(super) fn connect(&mut self) -> DockerConn {
        let conn = DockerConn(self.next_conn);
        self.next_conn += 1;
        self.push(Action::DockerConnect(conn));
        conn
    }
}
