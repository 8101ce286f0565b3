//! Request building. CONTRACT: each `Api` method appends one whole HTTP/1.1 request to `out`.
use super::ApiVersion;
use crate::plan::ContainerPlan;

/// Unversioned `GET /version`, sent once to negotiate.
pub fn version_request(out: &mut Vec<u8>) {
    let _ = out;
    todo!()
}

/// Request builder for one negotiated API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    pub version: ApiVersion,
}

impl Api {
    /// `min(ours, daemon's)`; an error when the daemon is older than [`ApiVersion::MINIMUM`].
    pub fn negotiate(daemon_max: ApiVersion) -> Result<Api, super::DaemonError> {
        let _ = daemon_max;
        todo!()
    }
    /// `POST /containers/create?name=…` with the JSON of [`create_body`].
    pub fn create(&self, plan: &ContainerPlan, out: &mut Vec<u8>) {
        let _ = (plan, out);
        todo!()
    }
    /// `POST /containers/{id}/attach?stream=1&stdout=1&stderr=1` with `Upgrade: tcp`.
    pub fn attach(&self, id: &str, out: &mut Vec<u8>) {
        let _ = (id, out);
        todo!()
    }
    /// `POST /containers/{id}/wait?condition=next-exit`.
    pub fn wait_next_exit(&self, id: &str, out: &mut Vec<u8>) {
        let _ = (id, out);
        todo!()
    }
    /// `POST /containers/{id}/start`, no body.
    pub fn start(&self, id: &str, out: &mut Vec<u8>) {
        let _ = (id, out);
        todo!()
    }
    /// `POST /containers/{id}/stop?t=N`.
    pub fn stop(&self, id: &str, timeout_secs: Option<u32>, out: &mut Vec<u8>) {
        let _ = (id, timeout_secs, out);
        todo!()
    }
    /// `POST /containers/{id}/kill?signal=S`.
    pub fn kill(&self, id: &str, signal: &str, out: &mut Vec<u8>) {
        let _ = (id, signal, out);
        todo!()
    }
    /// `DELETE /containers/{id}?force=1&v=1`.
    pub fn remove(&self, id: &str, out: &mut Vec<u8>) {
        let _ = (id, out);
        todo!()
    }
    /// `GET /containers/json?all=1&filters={"label":["k=v",…]}`.
    pub fn list_by_labels(&self, labels: &[(&str, &str)], out: &mut Vec<u8>) {
        let _ = (labels, out);
        todo!()
    }
    /// `GET /containers/{id}/json`.
    pub fn inspect(&self, id: &str, out: &mut Vec<u8>) {
        let _ = (id, out);
        todo!()
    }
}

/// The JSON body of the create request.
pub fn create_body(plan: &ContainerPlan) -> serde_json::Value {
    let _ = plan;
    todo!()
}
