//! The create request for the seed README's quickstart vassal, printed and checked.
//!
//! ```ini
//! [emperor]
//! docker-image = psgi001
//! docker-port = 9001:3031
//! docker-port = 127.0.0.1:5001:5000
//! ```
//!
//! The spec and plan are written out by hand here, as `spec::parse_vassal` and
//! `ContainerPlan::new` would make them, so this example shows the request layer alone.
//! Run: `cargo run -p uwsgi-docker-core --example quickstart_create`.
use uwsgi_docker_core::docker::{create_body, Api, ApiVersion};
use uwsgi_docker_core::plan::{labels, ContainerPlan};
use uwsgi_docker_core::spec::{HandoffMode, PortMapping, Protocol, VassalSpec};

fn main() {
    let spec = VassalSpec {
        image: "psgi001".into(),
        socket: None,
        ports: vec![
            PortMapping {
                host_ip: None,
                host_port: Some(9001),
                container_port: 3031,
                protocol: Protocol::Tcp,
            },
            PortMapping {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(5001),
                container_port: 5000,
                protocol: Protocol::Tcp,
            },
        ],
        workdir: None,
        mounts: vec![],
        network_mode: None,
        hostname: None,
        proxy: None,
        env: vec![],
        user: None,
        memory: None,
        swap: None,
        cidfile: None,
        dns: vec![],
        labels: vec![],
        nano_cpus: None,
        pids_limit: None,
        read_only: false,
        cap_drop: vec![],
        tmpfs: vec![],
        stop_signal: "SIGINT".into(),
        stop_timeout: None,
        tty: true,
        uwsgi: "uwsgi".into(),
        handoff: HandoffMode::Native,
    };
    let proxy_host_path = "/etc/uwsgi/vassals/psgi.ini.sock".to_owned();
    let proxy_container_path = "/run/uwsgi-docker/emperor.sock".to_owned();
    let plan = ContainerPlan {
        spec,
        vassal_name: "psgi.ini".into(),
        container_name: "psgi.ini".into(),
        labels: vec![
            (labels::BRIDGE.into(), "host:4242:1".into()),
            (labels::EMPEROR.into(), "host:/etc/uwsgi/vassals".into()),
            (labels::MANAGED.into(), "1".into()),
            (labels::PROXY.into(), proxy_host_path.clone()),
            (labels::VASSAL.into(), "psgi.ini".into()),
        ],
        proxy_host_path: proxy_host_path.clone(),
        proxy_container_path: proxy_container_path.clone(),
        cmd: vec!["uwsgi".into(), "--ini".into(), "emperor://psgi.ini".into()],
        env: vec![format!("UWSGI_EMPEROR_PROXY={proxy_container_path}")],
        handoff: HandoffMode::Native,
        passes_socket: false,
        launcher_host_path: None,
    };

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
    let proxy_bind = format!("{proxy_host_path}:{proxy_container_path}");
    assert!(host["Binds"]
        .as_array()
        .is_some_and(|binds| binds.iter().any(|b| *b == proxy_bind.as_str())));
    // The serialised request carries exactly this body.
    let text = String::from_utf8_lossy(&request);
    let (_, sent) = text.split_once("\r\n\r\n").expect("a whole request");
    assert!(serde_json::from_str::<serde_json::Value>(sent).ok() == Some(body));
    eprintln!("quickstart create request: OK");
}
