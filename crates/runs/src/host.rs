//! Which machine and process wrote a file, and whether that process still runs.
//!
//! A run directory is read from many places (the sweep, the dashboard, another cluster node),
//! and its writers can die without a word (SIGKILL, the OOM killer, a node crash). Whether a
//! writer is alive can only be decided on the host it ran on, so every record that names a
//! writer (`status.json`, the lock holder record) carries the host name and pid, and readers
//! elsewhere leave the question open. A pid can be reused after its process dies: a process
//! whose pid matches but which started after the record was written is not the writer.

/// This machine's host name (the kernel's, as `hostname` prints it).
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(uname_nodename)
}

fn uname_nodename() -> Option<String> {
    // SAFETY: uname fills the zeroed struct it is given; nodename is NUL-terminated.
    unsafe {
        let mut name: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut name) != 0 {
            return None;
        }
        let node = std::ffi::CStr::from_ptr(name.nodename.as_ptr());
        Some(node.to_string_lossy().into_owned()).filter(|s| !s.is_empty())
    }
}

/// Whether `host` is this machine.
pub fn is_this_host(host: &str) -> bool {
    hostname().is_some_and(|h| h == host)
}

/// Whether process `pid` on this host is alive and could be the one that wrote a record at
/// `written_unix` (seconds since the epoch): it exists, is not a zombie, and did not start
/// after that time (which would make it a later process that reused the pid).
pub fn writer_alive(pid: u32, written_unix: f64) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(raw, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match proc_stat(pid) {
        Some(stat) => {
            // Start times are known to about a clock tick, boot time to a second.
            stat.state != 'Z'
                && stat
                    .start_unix
                    .is_none_or(|start| start <= written_unix + 2.0)
        }
        None => true,
    }
}

struct ProcStat {
    state: char,
    start_unix: Option<f64>,
}

/// State and start time of a process from Linux's `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may hold spaces or parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22, starttime, in clock ticks since boot; `fields` starts at field 3.
    let start_ticks: Option<f64> = fields.get(19).and_then(|s| s.parse().ok());
    let start_unix = start_ticks.and_then(|ticks| {
        let boot = boot_time_unix()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (hz > 0).then(|| boot + ticks / hz as f64)
    });
    Some(ProcStat { state, start_unix })
}

fn boot_time_unix() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(writer_alive(std::process::id(), crate::unix_now()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!writer_alive(pid, crate::unix_now()));
    }

    #[test]
    fn a_zombie_is_dead_and_a_later_process_with_the_pid_is_not_the_writer() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: a zombie once it exits.
        std::thread::sleep(std::time::Duration::from_millis(300));
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(!writer_alive(pid, crate::unix_now()));
        }
        child.wait().unwrap();

        let mut sleeper = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = sleeper.id();
        assert!(writer_alive(pid, crate::unix_now()));
        if std::path::Path::new("/proc/self/stat").exists() {
            // A record written an hour before this process started was not written by it.
            assert!(!writer_alive(pid, crate::unix_now() - 3600.0));
        }
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[test]
    fn this_host_has_a_name() {
        let host = hostname().expect("a host name");
        assert!(is_this_host(&host));
        assert!(!is_this_host("not-this-host.invalid"));
    }
}
