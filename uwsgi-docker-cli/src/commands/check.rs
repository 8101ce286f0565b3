//! `uwsgi-docker check FILE.ini`: validate a vassal and print, as JSON, what the bridge
//! would ask dockerd for. A dry run: nothing is sent, no daemon is needed.
use std::path::Path;
use std::process::ExitCode;

use serde_json::{json, Value};
use uwsgi_docker_core::docker::{self, Api, ApiVersion};
use uwsgi_docker_core::plan::labels;
use uwsgi_docker_core::policy::RegistryAuth;
use uwsgi_docker_core::spec;

use crate::commands::run::vassal_name;
use crate::host::vassal_file::VassalFile;
use crate::output::{self, fail};
use crate::runtime::start::{check_fixed_paths, identity, plan, registry_credentials};
use crate::runtime::start_error::{StartError, VassalStartError};
use crate::runtime::tenancy::{self, Origin};
use crate::settings::RuntimeSettings;

/// Stands for the id dockerd gives the container at create.
pub const CONTAINER_ID: &str = "CONTAINER_ID";
/// Stands for the live bridge's `host:pid:starttime`.
pub const BRIDGE_ID: &str = "BRIDGE_ID";

pub fn run(settings: &RuntimeSettings, file: &Path) -> ExitCode {
    let result = match file.to_str().and_then(|f| f.strip_prefix("emperor://")) {
        // A config an imperial monitor pushes: its text on stdin, judged as the bridge
        // judges `--ini emperor://NAME` (no file owner: the policy's [vassals] tenant).
        Some(name) => match read_pushed(name) {
            Ok(text) => report_pushed(settings, name, &text),
            Err(e) => return fail(&e),
        },
        None => match crate::host::vassal_file::open(file) {
            Ok(read) => report(settings, file, &read),
            Err(e) => return fail(&format!("vassal {}: {e}", vassal_name(file))),
        },
    };
    match result {
        Ok(report) => match serde_json::to_string_pretty(&report) {
            Ok(out) => {
                output::say(out);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot print the report: {e}")),
        },
        Err(e) => fail(&e.to_string()),
    }
}

/// A pushed config's text from stdin: at most what the Emperor can push (65,535 bytes).
fn read_pushed(name: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let cap = usize::from(u16::MAX);
    let mut text = Vec::new();
    std::io::stdin()
        .lock()
        .take(cap as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("vassal {name}: cannot read its config from stdin: {e}"))?;
    if text.len() > cap {
        return Err(format!(
            "vassal {name}: a pushed config is at most {cap} bytes (the Emperor pushes it as one packet)"
        ));
    }
    Ok(text)
}

/// The JSON report for a config pushed by an imperial monitor as `emperor://NAME`.
pub fn report_pushed(
    settings: &RuntimeSettings,
    name: &str,
    text: &[u8],
) -> Result<Value, StartError> {
    let is_ini = Path::new(name).extension().is_some_and(|e| e == "ini");
    report_text(settings, name, text, Origin::Pushed, None, is_ini)
}

/// The JSON report for vassal file `file`, read as `read`.
pub fn report(
    settings: &RuntimeSettings,
    file: &Path,
    read: &VassalFile,
) -> Result<Value, StartError> {
    let name = vassal_name(file);
    // The owner matters only in tenant mode (a policy is set).
    let origin = match &settings.policy {
        Some(_) => Origin::of_file(read, file).map_err(VassalStartError::from)?,
        None => Origin::Pushed,
    };
    let is_ini = file.extension().is_some_and(|e| e == "ini");
    report_text(settings, &name, &read.text, origin, Some(file), is_ini)
}

/// The report on vassal `name` with config `text` (from `file`, or pushed when `None`).
fn report_text(
    settings: &RuntimeSettings,
    name: &str,
    text: &[u8],
    origin: Origin,
    file: Option<&Path>,
    is_ini: bool,
) -> Result<Value, StartError> {
    let name = name.to_owned();
    // Not an ini file: never a Docker vassal; under a policy, the verdict on running it
    // on the host.
    if !is_ini {
        return native_report(settings, &name, file, origin);
    }
    // Before parsing: a Docker vassal's file is pushed to its container whole.
    spec::check_pushable(&name, text.len())?;
    let Some(mut spec) = spec::parse_vassal(&name, text)? else {
        return native_report(settings, &name, file, origin);
    };
    let verdict = match tenancy::apply(settings, &name, origin, &mut spec)? {
        None => Value::Null,
        Some((tenant, decision)) => {
            spec.labels
                .push((labels::TENANT.to_owned(), tenant.uid.to_string()));
            // As the bridge would read it (never shown): a file it would refuse fails here.
            registry_credentials(settings, &decision.registry_auth)?;
            let registry_auth = match &decision.registry_auth {
                RegistryAuth::File { path, rule } => format!("{path} ({rule})"),
                RegistryAuth::None { rule } => format!("none ({rule})"),
                _ => match &settings.registry_auth {
                    Some(path) => format!("{} (UWSGIDOCKER_REGISTRY_AUTH)", path.display()),
                    None => "none".to_owned(),
                },
            };
            json!({
                "file": settings.policy.as_ref().map(|p| p.display().to_string()),
                "verdict": "allowed",
                "tenant": { "uid": tenant.uid, "gid": tenant.gid, "name": tenant.name, "home": tenant.home },
                "section": decision.section,
                "applied": decision.applied,
                "registry_auth": registry_auth,
            })
        }
    };
    let identity = identity(settings, &name, BRIDGE_ID.to_owned());
    let socket = spec.socket.as_ref().map(ToString::to_string);
    let plan = plan(settings, spec, &identity, false, false)?;
    // As the bridge judges them: paths the daemon looks up again must be unswappable.
    if settings.policy.is_some() {
        check_fixed_paths(&name, &plan)?;
    }
    let api = Api::with_version(ApiVersion::OURS);
    let mut requests = Vec::new();
    let mut push = |build: &dyn Fn(&mut Vec<u8>), body: Option<Value>| {
        let mut out = Vec::new();
        build(&mut out);
        let (method, path) = request_line(&out);
        let mut request = json!({ "method": method, "path": path });
        if let (Some(body), Some(map)) = (body, request.as_object_mut()) {
            map.insert("body".to_owned(), body);
        }
        requests.push(request);
    };
    push(&|out| docker::version_request(out), None);
    push(
        &|out| api.create(&plan, out),
        Some(docker::create_body(&plan)),
    );
    push(&|out| api.attach(CONTAINER_ID, out), None);
    push(&|out| api.wait_next_exit(CONTAINER_ID, out), None);
    push(&|out| api.start(CONTAINER_ID, out), None);
    push(&|out| api.inspect(CONTAINER_ID, out), None);
    push(
        &|out| api.stop(CONTAINER_ID, plan.spec.stop_timeout_secs(), out),
        None,
    );
    push(&|out| api.remove(CONTAINER_ID, out), None);
    let labels: serde_json::Map<String, Value> = plan
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Ok(json!({
        "vassal": plan.vassal_name,
        "container_name": plan.container_name,
        "image": plan.spec.image,
        "labels": labels,
        "proxy": {
            "host": plan.proxy_host_path,
            "container": plan.proxy_container_path,
        },
        "socket": socket,
        "socket_owner": plan.spec.socket_owner,
        "handoff": plan.handoff.as_str(),
        "launcher": plan.launcher_host_path,
        "cmd": plan.cmd,
        "env": plan.env,
        "policy": verdict,
        "api_version": ApiVersion::OURS.to_string(),
        "note": format!(
            "requests for API {} (the newest we speak); the bridge negotiates down to the daemon's. {CONTAINER_ID} and {BRIDGE_ID} stand for values known only at run time.",
            ApiVersion::OURS
        ),
        "requests": requests,
    }))
}

/// The report on a vassal that is not a Docker vassal: without a policy an error (there
/// are no requests to show), with one the verdict on running it on the host.
fn native_report(
    settings: &RuntimeSettings,
    name: &str,
    file: Option<&Path>,
    origin: Origin,
) -> Result<Value, StartError> {
    let Some((tenant, verdict)) = tenancy::judge_native(settings, name, origin, file)? else {
        return Err(VassalStartError::NotDocker {
            vassal: name.to_owned(),
        }
        .into());
    };
    Ok(json!({
        "vassal": name,
        "docker": false,
        "policy": {
            "file": settings.policy.as_ref().map(|p| p.display().to_string()),
            "verdict": "allowed on the host",
            "tenant": { "uid": tenant.uid, "gid": tenant.gid, "name": tenant.name, "home": tenant.home },
            "section": verdict.section,
            "reason": verdict.reason,
        },
        "note": "not a Docker vassal: the Emperor runs it with uwsgi on the host, as its own user (root unless emperor-tyrant)",
    }))
}

/// `METHOD PATH` from the request line.
fn request_line(request: &[u8]) -> (String, String) {
    let line_end = request
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(request.len());
    let line = String::from_utf8_lossy(request.get(..line_end).unwrap_or_default()).into_owned();
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    (method, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file read from a root-owned path.
    fn read_of(text: impl AsRef<[u8]>) -> VassalFile {
        VassalFile {
            text: text.as_ref().to_vec(),
            controllers: vec![0],
            shared_dir: false,
        }
    }

    fn settings() -> RuntimeSettings {
        let mut settings = RuntimeSettings::default();
        settings.emperor_id = Some("test-emperor".into());
        settings
    }

    #[test]
    fn check_shows_the_socket_the_handoff_and_the_launcher() {
        let text = b"[emperor]\ndocker-image = app\ndocker-socket = /run/app.sock\n";
        let file = Path::new("/srv/vassals/app.ini");
        // Without a launcher the plan is refused, saying what to do.
        let mut missing = settings();
        missing.launcher = Some("/nonexistent/l".into());
        let err = report(&missing, file, &read_of(text))
            .expect_err("no launcher")
            .to_string();
        assert!(err.contains("build-launcher.sh"), "{err}");
        // A native handoff needs none, and shows the socket it passes.
        let text = b"[emperor]\ndocker-image = app\ndocker-socket = 127.0.0.1:3031\ndocker-handoff = native\n";
        let report = report(&missing, file, &read_of(text)).expect("native");
        assert_eq!(report["socket"], "127.0.0.1:3031");
        assert_eq!(report["handoff"], "native");
        assert!(report["launcher"].is_null());
        assert_eq!(report["cmd"][0], "uwsgi");
    }

    /// A policy file of ours in a directory of our own (removed on drop).
    struct PolicyDir(std::path::PathBuf);

    impl PolicyDir {
        fn new(test: &str, policy: &str) -> PolicyDir {
            use std::os::unix::fs::PermissionsExt;
            let dir = std::env::temp_dir().join(format!("ud-check-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("dir");
            let path = dir.join("policy.ini");
            std::fs::write(&path, policy).expect("policy");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            PolicyDir(dir)
        }

        fn settings(&self) -> RuntimeSettings {
            let mut settings = settings();
            settings.policy = Some(self.0.join("policy.ini"));
            settings.launcher = Some("/nonexistent/launcher".into());
            settings
        }
    }

    impl Drop for PolicyDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn check_policy_shows_the_pull_verdict_and_the_credentials_file_never_its_content() {
        let dir = PolicyDir::new(
            "pull",
            "[default]\npull-modes = never\nregistry-auth = /nonexistent/%u.json\n\n[uid:0]\npull-modes = missing always\npull-default = always\nregistry-auth =\n",
        );
        let file = Path::new("/srv/vassals/app.ini");
        let vassal = |lines: &str| {
            read_of(format!(
                "[emperor]\ndocker-image = app\ndocker-handoff = native\n{lines}\n"
            ))
        };
        let mut settings = dir.settings();
        let out = report(&settings, file, &vassal("")).expect("allowed");
        let policy = &out["policy"];
        assert_eq!(policy["section"], "[uid:0]");
        let applied = policy["applied"].as_array().expect("applied");
        assert!(
            applied
                .iter()
                .any(|l| l
                    == "docker-pull = always: the default (policy line 7: pull-default = always)"),
            "{applied:?}"
        );
        let line = format!(
            "none (policy {} line 8: registry-auth =)",
            dir.0.join("policy.ini").display()
        );
        assert_eq!(policy["registry_auth"], line.as_str());
        let err = report_err(&settings, file, &vassal("docker-pull = never"));
        assert!(
            err.contains("docker-pull = \"never\" is not allowed")
                && err.contains("line 6: pull-modes = missing always"),
            "{err}"
        );
        // Without its own section the tenant's file is named, and one the bridge would
        // refuse is refused here too.
        settings.policy = Some(dir.0.join("policy.ini"));
        let read = VassalFile {
            controllers: vec![1000],
            ..vassal("")
        };
        let err = report(&settings, file, &read)
            .expect_err("no such file")
            .to_string();
        assert!(err.contains("registry-auth = /nonexistent/"), "{err}");
        assert!(
            err.contains("line 3: registry-auth = /nonexistent/%u.json"),
            "{err}"
        );
    }

    #[test]
    fn a_pushed_config_is_judged_by_its_vassals_tenant() {
        let dir = PolicyDir::new(
            "pushed",
            "[vassals]\nlegacy.ini = root\nlegacy.xml = root\n",
        );
        let settings = dir.settings();
        let native = b"[uwsgi]\nhttp-socket = :3031\n";
        // Unmapped: nobody's, refused with the way out for a pushed config.
        for name in ["row.ini", "row.xml"] {
            let err = report_pushed(&settings, name, native)
                .expect_err(name)
                .to_string();
            assert!(
                err.contains("the pushed config is owned by nobody (uid 65534)")
                    && err.contains("[vassals]"),
                "{err}"
            );
        }
        for name in ["legacy.ini", "legacy.xml"] {
            let out = report_pushed(&settings, name, native).expect(name);
            assert_eq!(out["policy"]["verdict"], "allowed on the host", "{out}");
        }
        // A Docker vassal pushed is judged for its mapped tenant too (nobody here).
        let out = report_pushed(
            &settings,
            "app.ini",
            b"[emperor]\ndocker-image = app\ndocker-handoff = native\n",
        )
        .expect("docker");
        assert_eq!(out["policy"]["tenant"]["uid"], 65534, "{out}");
    }

    fn report_err(settings: &RuntimeSettings, file: &Path, read: &VassalFile) -> String {
        report(settings, file, read)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn request_line_is_split() {
        assert_eq!(
            request_line(b"POST /v1.44/containers/x/start HTTP/1.1\r\nHost: docker\r\n\r\n"),
            ("POST".to_owned(), "/v1.44/containers/x/start".to_owned())
        );
        assert_eq!(request_line(b""), (String::new(), String::new()));
    }

    /// Needs the core's spec, plan and docker modules.
    #[test]
    fn check_prints_the_plan_and_requests() {
        let text = b"[uwsgi]\nhttp-socket = :8080\n\n[emperor]\ndocker-image = myapp:1\ndocker-env = A=b\n";
        let report = report(
            &settings(),
            Path::new("/srv/vassals/app.ini"),
            &read_of(text),
        )
        .expect("valid vassal");
        assert_eq!(report["vassal"], "app.ini");
        assert_eq!(report["container_name"], "app.ini");
        assert_eq!(report["image"], "myapp:1");
        assert_eq!(report["api_version"], "1.44");
        assert_eq!(report["labels"]["io.uwsgi-docker.managed"], "1");
        assert_eq!(report["labels"]["io.uwsgi-docker.vassal"], "app.ini");
        assert_eq!(report["labels"]["io.uwsgi-docker.emperor"], "test-emperor");
        assert_eq!(report["labels"]["io.uwsgi-docker.bridge"], BRIDGE_ID);
        let proxy = report["proxy"]["host"].as_str().expect("proxy path");
        assert_eq!(proxy, "/run/uwsgi-docker/test-emperor/app.ini.sock");
        let requests = report["requests"].as_array().expect("requests");
        let lines: Vec<(&str, &str)> = requests
            .iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or(""),
                    r["path"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(lines.first(), Some(&("GET", "/version")));
        assert_eq!(
            lines.get(1),
            Some(&("POST", "/v1.44/containers/create?name=app.ini"))
        );
        assert!(lines.contains(&("POST", "/v1.44/containers/CONTAINER_ID/start")));
        let create = &requests[1]["body"];
        assert_eq!(create["Image"], "myapp:1");
        assert!(create["Env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e == "A=b"));
        assert_eq!(create["HostConfig"]["Mounts"][0]["Type"], "bind");
        assert_eq!(create["StopTimeout"], 10);
        assert!(lines.contains(&("POST", "/v1.44/containers/CONTAINER_ID/stop?t=10")));
    }

    #[test]
    fn check_refuses_what_the_daemon_or_the_handoff_would_refuse() {
        let file = Path::new("/srv/vassals/app.ini");
        let refused = |lines: &str| {
            let text = format!("[emperor]\ndocker-image = app\n{lines}\n");
            report(&settings(), file, &read_of(text.as_bytes()))
                .expect_err(lines)
                .to_string()
        };
        for (lines, fragment) in [
            ("docker-memory = 1m", "at least 6m"),
            ("docker-memory = 8589934592g", "signed 64-bit"),
            ("docker-cpus = 9300000000", "signed 64-bit"),
            ("docker-cpus = 0", "from 0.01"),
            ("docker-mount = /srv:/", "other than /"),
            ("docker-mount = /a:/d\ndocker-tmpfs = /d", "already taken"),
            (
                "docker-mount = /srv:/app.ini.sock",
                "would mount over /app.ini.sock",
            ),
            (
                "docker-network-mode = container:db\ndocker-hostname = h",
                "cannot go with docker-network-mode",
            ),
        ] {
            let err = refused(lines);
            assert!(
                err.starts_with("vassal app.ini: ") && err.contains(fragment),
                "{lines}: {err}"
            );
        }
        let err = report(
            &settings(),
            file,
            &read_of(b"[emperor]\ndocker-image = Bad:Name\n"),
        )
        .expect_err("bad image")
        .to_string();
        assert!(err.contains("must be lowercase"), "{err}");
        // A file too long to push is refused before it is parsed.
        let mut text = b"[emperor]\ndocker-image = app\n".to_vec();
        text.resize(65_536, b'#');
        let err = report(&settings(), file, &read_of(&text))
            .expect_err("too long")
            .to_string();
        assert!(
            err.contains("65536 bytes") && err.contains("at most 65535"),
            "{err}"
        );
        text.truncate(65_535);
        assert!(report(&settings(), file, &read_of(&text)).is_ok());
    }

    #[test]
    fn check_refuses_a_bad_vassal() {
        let text = b"[emperor]\ndocker-image = x\ndocker-bogus = 1\n";
        let err = report(&settings(), Path::new("bad.ini"), &read_of(text))
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("bad.ini") && err.contains("docker-bogus"),
            "{err}"
        );
        let err = report(
            &settings(),
            Path::new("plain.ini"),
            &read_of(b"[uwsgi]\nhttp = :0\n"),
        )
        .expect_err("no image")
        .to_string();
        assert!(err.contains("no docker-image"), "{err}");
    }
}
