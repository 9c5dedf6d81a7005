//! How much memory this process may still allocate: the smaller of the kernel's MemAvailable
//! and the room left under every cgroup memory limit above the process (v2 `memory.max`, v1
//! `memory.limit_in_bytes`).
//!
//! A batch job's limit is usually its cgroup's, not the machine's: Slurm and containers cap a
//! job far below what /proc/meminfo reports free, and allocating past the cap gets the job
//! killed by the OOM killer without a word. Whatever cannot be read is left out; when nothing
//! can be read (not Linux), nothing is known and no check is made.

use std::fs;
use std::path::{Path, PathBuf};

/// Memory the process may still allocate, and where the bound comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    pub bytes: u64,
    /// `MemAvailable in /proc/meminfo` or `cgroup memory limit of <dir>`.
    pub source: String,
}

/// Limits at or above this are "no limit" (cgroup v1 reports one as ~2^63 rounded to pages).
const NO_LIMIT: u64 = 1 << 60;

/// The tightest bound on further allocation, if any can be read.
pub fn available() -> Option<Available> {
    let mut best = mem_available().map(|bytes| Available {
        bytes,
        source: "MemAvailable in /proc/meminfo".to_string(),
    });
    let cgroups = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for limit in cgroup_room(&cgroups, Path::new("/sys/fs/cgroup")) {
        if best.as_ref().is_none_or(|b| limit.bytes < b.bytes) {
            best = Some(limit);
        }
    }
    best
}

/// MemAvailable of /proc/meminfo, in bytes.
fn mem_available() -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The room left under each cgroup limit on the way from the process's cgroups (as listed
/// in `/proc/self/cgroup`) up to the hierarchy root under `mount`.
fn cgroup_room(proc_cgroup: &str, mount: &Path) -> Vec<Available> {
    let mut out = Vec::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if id == "0" && controllers.is_empty() {
            // cgroup v2: memory.max and memory.current in each directory.
            walk_up(mount, relative, |dir| {
                room(dir, "memory.max", "memory.current", &mut out)
            });
        } else if controllers.split(',').any(|c| c == "memory") {
            // cgroup v1, memory controller mounted at <mount>/memory.
            walk_up(&mount.join("memory"), relative, |dir| {
                room(
                    dir,
                    "memory.limit_in_bytes",
                    "memory.usage_in_bytes",
                    &mut out,
                )
            });
        }
    }
    out
}

/// Calls `visit` on `root/relative` and each of its parents up to `root`.
fn walk_up(root: &Path, relative: &str, mut visit: impl FnMut(&Path)) {
    let mut dir: PathBuf = root.join(relative);
    loop {
        visit(&dir);
        if dir == root || !dir.pop() || !dir.starts_with(root) {
            break;
        }
    }
}

fn read_number(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn room(dir: &Path, limit_file: &str, usage_file: &str, out: &mut Vec<Available>) {
    // "max" (v2, no limit) does not parse and is skipped like an absent file.
    let Some(limit) = read_number(&dir.join(limit_file)).filter(|&l| l < NO_LIMIT) else {
        return;
    };
    let used = read_number(&dir.join(usage_file)).unwrap_or(0);
    out.push(Available {
        bytes: limit.saturating_sub(used),
        source: format!("cgroup memory limit of {}", dir.display()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read_in_kib() {
        let text = "MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_meminfo(text), Some(2 * 1024 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn the_room_under_every_limit_above_the_process_is_found() {
        let mount = tempfile::tempdir().unwrap();
        // v2: a limited job inside an unlimited parent.
        let job = mount.path().join("slurm/job_7");
        fs::create_dir_all(&job).unwrap();
        fs::write(mount.path().join("slurm/memory.max"), "max\n").unwrap();
        fs::write(job.join("memory.max"), "1000000\n").unwrap();
        fs::write(job.join("memory.current"), "250000\n").unwrap();
        let found = cgroup_room("0::/slurm/job_7\n", mount.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].bytes, 750_000);
        assert!(found[0].source.contains("job_7"), "{}", found[0].source);
        // v1: the memory controller's own hierarchy; an unlimited value is no limit.
        let v1 = mount.path().join("memory/docker/abc");
        fs::create_dir_all(&v1).unwrap();
        fs::write(v1.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        fs::write(
            mount.path().join("memory/docker/memory.limit_in_bytes"),
            "5000\n",
        )
        .unwrap();
        fs::write(
            mount.path().join("memory/docker/memory.usage_in_bytes"),
            "1000\n",
        )
        .unwrap();
        let found = cgroup_room("4:memory:/docker/abc\n3:cpu:/docker/abc\n", mount.path());
        assert_eq!(found.iter().map(|a| a.bytes).collect::<Vec<_>>(), [4000]);
        // Nothing readable: nothing known.
        assert!(cgroup_room("0::/elsewhere\n", Path::new("/nonexistent")).is_empty());
    }
}
