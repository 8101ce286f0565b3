//! A container's memory, CPU and OOM kills from its cgroup files, without asking the
//! daemon: cgroup v2 (`memory.current`, `memory.max`, `cpu.stat`, `memory.events`) or v1
//! (`memory.usage_in_bytes`, `memory.limit_in_bytes`, `memory.oom_control`,
//! `cpuacct.usage`), under the paths Docker's and Podman's cgroup drivers use.
use std::path::{Path, PathBuf};

use uwsgi_docker_core::docker::{ContainerUsage, UNLIMITED_MEMORY};

/// Where cgroups are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A container's cgroup directory names under a hierarchy, for the systemd and cgroupfs
/// drivers of Docker and Podman.
fn candidates(id: &str) -> [String; 4] {
    [
        format!("system.slice/docker-{id}.scope"),
        format!("docker/{id}"),
        format!("machine.slice/libpod-{id}.scope"),
        format!("libpod_parent/libpod-{id}"),
    ]
}

/// The usage of container `id` (its full id), `None` when no cgroup of it is found here.
pub fn read_usage(root: &Path, id: &str) -> Option<ContainerUsage> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    read_v2(root, id).or_else(|| read_v1(root, id))
}

fn read_v2(root: &Path, id: &str) -> Option<ContainerUsage> {
    let dir = candidates(id)
        .into_iter()
        .map(|c| root.join(c))
        .find(|d| d.join("memory.current").is_file())?;
    Some(ContainerUsage {
        memory_bytes: number(&dir.join("memory.current")),
        memory_limit_bytes: number(&dir.join("memory.max")).filter(|l| *l < UNLIMITED_MEMORY),
        cpu_nanoseconds: keyed(&dir.join("cpu.stat"), "usage_usec")
            .map(|us| us.saturating_mul(1000)),
        oom_kills: keyed(&dir.join("memory.events"), "oom_kill"),
    })
}

fn read_v1(root: &Path, id: &str) -> Option<ContainerUsage> {
    let in_hierarchy = |hierarchy: &str, file: &str| -> Option<PathBuf> {
        candidates(id)
            .into_iter()
            .map(|c| root.join(hierarchy).join(c).join(file))
            .find(|p| p.is_file())
    };
    let memory = in_hierarchy("memory", "memory.usage_in_bytes")?;
    let memory_dir = memory.parent()?;
    let cpu = in_hierarchy("cpuacct", "cpuacct.usage")
        .or_else(|| in_hierarchy("cpu,cpuacct", "cpuacct.usage"));
    Some(ContainerUsage {
        memory_bytes: number(&memory),
        memory_limit_bytes: number(&memory_dir.join("memory.limit_in_bytes"))
            .filter(|l| *l < UNLIMITED_MEMORY),
        cpu_nanoseconds: cpu.and_then(|p| number(&p)),
        oom_kills: keyed(&memory_dir.join("memory.oom_control"), "oom_kill"),
    })
}

/// A file holding one number (`max` and anything else: `None`).
fn number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a `key value` per line file.
fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_keyed(&text, key)
}

fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_and_v1_layouts_are_read() {
        let root = std::env::temp_dir().join(format!("ud-cgroup-{}", std::process::id()));
        let id = "0123abcd";
        let v2 = root.join("v2/system.slice/docker-0123abcd.scope");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("memory.current"), "4096\n").unwrap();
        std::fs::write(v2.join("memory.max"), "max\n").unwrap();
        std::fs::write(v2.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
        std::fs::write(v2.join("memory.events"), "low 0\noom 1\noom_kill 2\n").unwrap();
        let usage = read_usage(&root.join("v2"), id).unwrap();
        assert_eq!(usage.memory_bytes, Some(4096));
        assert_eq!(usage.memory_limit_bytes, None);
        assert_eq!(usage.cpu_nanoseconds, Some(1_500_000));
        assert_eq!(usage.oom_kills, Some(2));

        let memory = root.join("v1/memory/docker/0123abcd");
        let cpu = root.join("v1/cpuacct/docker/0123abcd");
        std::fs::create_dir_all(&memory).unwrap();
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(memory.join("memory.usage_in_bytes"), "8192\n").unwrap();
        std::fs::write(memory.join("memory.limit_in_bytes"), "268435456\n").unwrap();
        std::fs::write(
            memory.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "123456789\n").unwrap();
        let usage = read_usage(&root.join("v1"), id).unwrap();
        assert_eq!(usage.memory_bytes, Some(8192));
        assert_eq!(usage.memory_limit_bytes, Some(256 << 20));
        assert_eq!(usage.cpu_nanoseconds, Some(123_456_789));
        assert_eq!(usage.oom_kills, Some(1));

        assert!(read_usage(&root.join("v1"), "ffff").is_none());
        assert!(
            read_usage(&root.join("v1"), "../etc").is_none(),
            "not an id"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
