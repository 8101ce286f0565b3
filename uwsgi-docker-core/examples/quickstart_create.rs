//! The create request for the original plugin's quickstart vassal, printed and checked.
//!
//! The vassal file goes through the same path the bridge takes: `spec::parse_vassal`, then
//! `plan::ContainerPlan::new`, then the request builder.
//! Run: `cargo run -p uwsgi-docker-core --example quickstart_create`.
use uwsgi_docker_core::docker::{create_body, Api, ApiVersion};
use uwsgi_docker_core::plan::{ContainerPlan, VassalIdentity};
use uwsgi_docker_core::spec;

/// The original plugin's quickstart vassal, as its README writes it.
const QUICKSTART: &str = include_str!("../tests/seed/quickstart.ini");

fn main() {
    let spec = match spec::parse_vassal("foobar.ini", QUICKSTART.as_bytes()) {
        Ok(Some(spec)) => spec,
        other => panic!("the quickstart vassal is a Docker vassal: {other:?}"),
    };
    let identity = VassalIdentity::new("foobar.ini", "/etc/uwsgi", "host:1", "host:4242:1");
    let plan = ContainerPlan::new(spec, &identity);

    let api = Api::negotiate(ApiVersion {
        major: 1,
        minor: 41,
    })
    .expect("1.41 is supported");
    let mut request = Vec::new();
    api.create(&plan, &mut request);
    println!("{}", String::from_utf8_lossy(&request));

    let body = create_body(&plan);
    let host = &body["HostConfig"];
    let bindings = &host["PortBindings"];
    assert!(bindings["3031/tcp"][0]["HostPort"] == "9001");
    assert!(bindings["3031/tcp"][0]["HostIp"] == "");
    assert!(bindings["5000/tcp"][0]["HostPort"] == "5001");
    assert!(bindings["5000/tcp"][0]["HostIp"] == "127.0.0.1");
    assert!(body["ExposedPorts"].get("3031/tcp").is_some());
    assert!(body["ExposedPorts"].get("5000/tcp").is_some());
    // As in the original plugin: /etc/uwsgi/foobar.ini gets /etc/uwsgi/foobar.ini.sock, seen as /foobar.ini.sock.
    assert!(host["Mounts"].as_array().is_some_and(|mounts| mounts
        .iter()
        .any(|m| m["Type"] == "bind"
            && m["Source"] == "/etc/uwsgi/foobar.ini.sock"
            && m["Target"] == "/foobar.ini.sock")));
    // The serialised request carries exactly this body.
    let text = String::from_utf8_lossy(&request);
    let (_, sent) = text.split_once("\r\n\r\n").expect("a whole request");
    assert!(serde_json::from_str::<serde_json::Value>(sent).ok() == Some(body));
    eprintln!("quickstart create request: OK");
}
