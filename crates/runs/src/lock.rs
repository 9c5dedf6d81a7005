//! One writer per run directory (and per experiment directory) at a time.
//!
//! Two trainers on one run directory interleave their metrics, overwrite each other's
//! checkpoints and leave a directory no resume can trust; two sweeps on one experiment train
//! every run twice. So every writer holds a [`DirLock`] for as long as it writes, taken before
//! its first write, and a second writer is refused at once with a message naming the first.
//!
//! Mechanism: an exclusive, non-blocking OS advisory lock (`flock(2)`, through
//! [`std::fs::File::try_lock`]) on the file `lock` in the directory, plus a holder record
//! `lock.json` (host, pid, start time, command line) written atomically after the lock is taken
//! and removed before it is released. The kernel lock decides; the record is there to name the
//! holder in the refusal and to notice a writer that died without releasing cleanly. The kernel
//! drops a dead process's lock itself, so a writer killed by SIGKILL or the OOM killer never
//! blocks its successor: the next writer gets the lock, finds the dead writer's record, and
//! takes over with a warning. A record naming a live process on this host is respected even
//! when the kernel lock is free (e.g. someone deleted `lock` under a running writer). Never
//! delete `lock`: a writer that re-creates it locks a new file the current holder knows nothing
//! of.
//!
//! Shared filesystems (what a Slurm cluster runs on) differ in how far such a lock reaches:
//! - NFS: Linux clients implement `flock` as a whole-file byte-range lock held at the server
//!   (NFSv3 through the NLM/lockd side protocol, NFSv4 in the protocol itself), so writers on
//!   different nodes exclude each other. A mount with `nolock` (NFSv3) or `local_lock=flock`
//!   keeps locks node-local. After a client crash NFSv4 frees its locks when the lease expires
//!   (about 90 s); NFSv3 only when the crashed client reboots and its statd says so.
//! - Lustre: coherent across clients only when mounted with `-o flock`; `localflock` makes the
//!   lock node-local and `noflock` makes it fail (`ENOSYS`).
//! - GPFS / IBM Storage Scale, BeeGFS, CephFS and others: whether `flock` is cluster-wide
//!   depends on the filesystem and its settings (BeeGFS: `tuneUseGlobalFileLocks`); check by
//!   starting the same writer on one run directory from two nodes (the second must be refused).
//!
//! Where the lock is node-local, two writers on different nodes are not stopped; the holder
//! record still names the first to anyone who looks. Where locking fails outright (`ENOSYS`,
//! `ENOLCK`, ...), the record alone serves as the lock, with a warning: it is created with an
//! exclusive create, a record of a dead process on this host is taken over, and a record from
//! another host (whose process cannot be checked from here) refuses the writer, naming the
//! file to delete if that process is gone. Whether a process is alive is only ever judged on
//! its own host ([`crate::host`]).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::atomic::write_json_atomic;
use crate::host::{hostname, is_this_host, writer_alive};
use crate::status::unix_now;

/// The file the OS lock is taken on; it stays in the directory for good.
pub const LOCK_FILE: &str = "lock";
/// The holder record, present while a writer holds the lock.
pub const HOLDER_FILE: &str = "lock.json";

/// Who holds (or held) a directory's lock: the contents of `lock.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    /// Seconds since the Unix epoch when the lock was taken.
    pub started_at: u64,
    /// The holder's command line.
    pub command: String,
}

impl LockHolder {
    fn this_process(command: String) -> Self {
        Self {
            host: hostname().unwrap_or_else(|| "unknown-host".into()),
            pid: std::process::id(),
            started_at: unix_now() as u64,
            command,
        }
    }

    /// Whether the holder still runs: `Some` on its own host, `None` elsewhere (unknowable).
    pub fn alive(&self) -> Option<bool> {
        is_this_host(&self.host).then(|| writer_alive(self.pid, self.started_at as f64))
    }

    /// `pid 123 on node1 since 2026-12-05 15:10:02 UTC, running `forgetlab train ...``.
    pub fn describe(&self) -> String {
        format!(
            "pid {} on {} since {}, running `{}`",
            self.pid,
            self.host,
            format_utc(self.started_at),
            self.command
        )
    }
}

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another writer holds the lock.
    #[error("{} is in use by another writer ({}); wait for it to finish or stop it", dir.display(), describe(holder))]
    Held {
        dir: PathBuf,
        holder: Option<Box<LockHolder>>,
    },
    /// The filesystem has no working locks and the holder record names a process that cannot
    /// be checked from this host.
    #[error("{} is in use by another writer ({}) according to {}; file locks do not work on this filesystem ({reason}), so this cannot be checked from here: delete that file if the process is gone", dir.display(), describe(holder), record.display())]
    Unverifiable {
        dir: PathBuf,
        holder: Option<Box<LockHolder>>,
        record: PathBuf,
        reason: String,
    },
    /// The directory or its lock files could not be opened or written (the message includes
    /// the cause, so it is not also reported as a source).
    #[error("cannot lock {}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
}

fn describe(holder: &Option<Box<LockHolder>>) -> String {
    holder
        .as_deref()
        .map(LockHolder::describe)
        .unwrap_or_else(|| "holder not recorded yet".into())
}

/// An exclusive lock on a directory, released (and its holder record removed) on drop.
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    record: PathBuf,
    me: LockHolder,
    /// The OS lock; `None` when the filesystem has none and the record is the lock.
    _file: Option<File>,
    took_over: Option<LockHolder>,
}

impl DirLock {
    /// Locks the existing directory `dir` for this process, recording its command line.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        Self::acquire_as(dir, command_line())
    }

    /// [`DirLock::acquire`] recording `command` as the holder's command.
    pub fn acquire_as(dir: &Path, command: impl Into<String>) -> Result<Self, LockError> {
        acquire_with(dir, command.into(), |file| file.try_lock())
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The holder record of a writer that died holding the lock, which this one replaced.
    pub fn took_over(&self) -> Option<&LockHolder> {
        self.took_over.as_ref()
    }

    /// The recorded holder of `dir`'s lock, if any (a record may outlive a killed writer).
    pub fn holder(dir: &Path) -> Option<LockHolder> {
        read_holder(&dir.join(HOLDER_FILE))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Remove the record while still holding the lock, and only if it is ours.
        if read_holder(&self.record).as_ref() == Some(&self.me) {
            let _ = std::fs::remove_file(&self.record);
        }
    }
}

fn acquire_with(
    dir: &Path,
    command: String,
    kernel_lock: impl FnOnce(&File) -> Result<(), TryLockError>,
) -> Result<DirLock, LockError> {
    let lock_path = dir.join(LOCK_FILE);
    let record = dir.join(HOLDER_FILE);
    if !dir.is_dir() {
        return Err(LockError::Io {
            path: dir.to_path_buf(),
            error: io::Error::new(io::ErrorKind::NotFound, "no such directory"),
        });
    }
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| LockError::Io { path, error }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    let me = LockHolder::this_process(command);
    match kernel_lock(&file) {
        Ok(()) => {
            let previous = read_holder(&record);
            if let Some(prev) = &previous {
                if prev.alive() == Some(true) {
                    // Alive on this host but without the OS lock: the lock file was replaced
                    // under it. It is still writing; do not join it.
                    return Err(LockError::Held {
                        dir: dir.to_path_buf(),
                        holder: previous.map(Box::new),
                    });
                }
                warn_takeover(dir, prev);
            }
            write_json_atomic(&record, &me).map_err(io_err(&record))?;
            Ok(DirLock {
                dir: dir.to_path_buf(),
                record,
                me,
                _file: Some(file),
                took_over: previous,
            })
        }
        Err(TryLockError::WouldBlock) => Err(LockError::Held {
            dir: dir.to_path_buf(),
            holder: current_holder(&record).map(Box::new),
        }),
        Err(TryLockError::Error(err)) => record_only(dir, record, me, &err),
    }
}

/// The record of the process holding the OS lock. A writer records itself just after
/// locking, so a missing record, or one of a dead process, may be a writer starting this
/// instant: give it a moment.
fn current_holder(record: &Path) -> Option<LockHolder> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let holder = read_holder(record);
        let settled = holder.as_ref().is_some_and(|h| h.alive() != Some(false));
        if settled || Instant::now() >= deadline {
            return holder;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lock on a filesystem without working OS locks: the record itself, created exclusively.
fn record_only(
    dir: &Path,
    record: PathBuf,
    me: LockHolder,
    why: &io::Error,
) -> Result<DirLock, LockError> {
    tracing::warn!(
        "{}: file locks do not work here ({why}); relying on the holder record {} alone, which does not stop two writers that start at the same instant",
        dir.display(),
        record.display()
    );
    let mut took_over = None;
    // Twice at most: once more after removing a dead process's record.
    for _ in 0..2 {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&record)
        {
            Ok(mut file) => {
                let mut bytes = serde_json::to_vec_pretty(&me).map_err(io::Error::other);
                if let Ok(b) = &mut bytes {
                    b.push(b'\n');
                }
                bytes
                    .and_then(|b| file.write_all(&b))
                    .and_then(|()| file.sync_all())
                    .map_err(|error| LockError::Io {
                        path: record.clone(),
                        error,
                    })?;
                return Ok(DirLock {
                    dir: dir.to_path_buf(),
                    record,
                    me,
                    _file: None,
                    took_over,
                });
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let holder = read_holder(&record);
                match holder.as_ref().and_then(LockHolder::alive) {
                    Some(false) if took_over.is_none() => {
                        if let Some(prev) = &holder {
                            warn_takeover(dir, prev);
                        }
                        let _ = std::fs::remove_file(&record);
                        took_over = holder;
                    }
                    Some(true) => {
                        return Err(LockError::Held {
                            dir: dir.to_path_buf(),
                            holder: holder.map(Box::new),
                        });
                    }
                    _ => {
                        return Err(LockError::Unverifiable {
                            dir: dir.to_path_buf(),
                            holder: holder.map(Box::new),
                            record,
                            reason: why.to_string(),
                        });
                    }
                }
            }
            Err(error) => {
                return Err(LockError::Io {
                    path: record,
                    error,
                });
            }
        }
    }
    Err(LockError::Held {
        dir: dir.to_path_buf(),
        holder: read_holder(&record).map(Box::new),
    })
}

fn warn_takeover(dir: &Path, previous: &LockHolder) {
    let why = match previous.alive() {
        Some(_) => "which is no longer running",
        None => "on another host; its lock was released, so it ended or lost its node",
    };
    tracing::warn!(
        "{}: taking over the lock of {} {why}",
        dir.display(),
        previous.describe()
    );
}

fn read_holder(record: &Path) -> Option<LockHolder> {
    let bytes = std::fs::read(record).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// This process's command line, the program by its file name, on one line.
fn command_line() -> String {
    let mut args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let program = args
        .next()
        .map(|p| {
            Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(p)
        })
        .unwrap_or_default();
    std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
        .replace(['\n', '\r'], " ")
}

/// `2026-12-05 15:10:02 UTC` for seconds since the Unix epoch.
fn format_utc(unix: u64) -> String {
    crate::utc::UtcTime::from_unix(i64::try_from(unix).unwrap_or(i64::MAX)).to_seconds()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn record_of(pid: u32, host: &str) -> LockHolder {
        LockHolder {
            host: host.into(),
            pid,
            started_at: unix_now() as u64 - 60,
            command: "forgetlab train run.toml".into(),
        }
    }

    fn this_host() -> String {
        hostname().unwrap()
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire_as(dir.path(), "forgetlab train a.toml").unwrap();
        assert!(first.took_over().is_none());
        let holder = DirLock::holder(dir.path()).unwrap();
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.command, "forgetlab train a.toml");

        // A second open file description conflicts even within one process.
        let err = DirLock::acquire_as(dir.path(), "forgetlab eval all").unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{message}");
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains(&this_host()), "{message}");
        assert!(message.contains("forgetlab train a.toml"), "{message}");
        assert!(message.contains(" UTC"), "{message}");
        assert!(!message.contains('\n'));

        drop(first);
        assert!(
            DirLock::holder(dir.path()).is_none(),
            "record removed on release"
        );
        assert!(dir.path().join(LOCK_FILE).is_file(), "the lock file stays");
        let again = DirLock::acquire_as(dir.path(), "forgetlab eval all").unwrap();
        assert!(again.took_over().is_none());
    }

    #[test]
    fn a_lock_held_by_another_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join(LOCK_FILE);
        // flock(1) holds the lock for as long as its command runs (`-o`: the command does not
        // inherit it).
        let mut holder = std::process::Command::new("flock")
            .arg("-o")
            .arg(&lock)
            .args(["sleep", "5"])
            .spawn()
            .expect("flock(1) from util-linux");
        std::thread::sleep(Duration::from_millis(500));
        let err = DirLock::acquire_as(dir.path(), "second").unwrap_err();
        assert!(matches!(err, LockError::Held { holder: None, .. }), "{err}");
        holder.kill().unwrap();
        holder.wait().unwrap();
        DirLock::acquire_as(dir.path(), "third").unwrap();
    }

    #[test]
    fn a_dead_writers_record_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let stale = record_of(dead_pid(), &this_host());
        write_json_atomic(&dir.path().join(HOLDER_FILE), &stale).unwrap();
        let lock = DirLock::acquire_as(dir.path(), "forgetlab train --resume r").unwrap();
        assert_eq!(lock.took_over(), Some(&stale));
        let now = DirLock::holder(dir.path()).unwrap();
        assert_eq!(now.pid, std::process::id());
    }

    #[test]
    fn a_live_writer_on_this_host_is_respected_even_without_the_os_lock() {
        let dir = tempfile::tempdir().unwrap();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let live = record_of(sleeper.id(), &this_host());
        // Its record predates the sleeper: it did not write it, the pid is a reused one.
        let mut reused = live.clone();
        reused.started_at = unix_now() as u64 - 3600;
        write_json_atomic(&dir.path().join(HOLDER_FILE), &reused).unwrap();
        let lock = DirLock::acquire_as(dir.path(), "x").unwrap();
        assert_eq!(lock.took_over(), Some(&reused));
        drop(lock);

        let mut live = live;
        live.started_at = unix_now() as u64;
        write_json_atomic(&dir.path().join(HOLDER_FILE), &live).unwrap();
        let err = DirLock::acquire_as(dir.path(), "x").unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[test]
    fn another_hosts_record_is_taken_over_when_its_os_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let other = record_of(1, "another-node.invalid");
        write_json_atomic(&dir.path().join(HOLDER_FILE), &other).unwrap();
        let lock = DirLock::acquire_as(dir.path(), "x").unwrap();
        assert_eq!(lock.took_over(), Some(&other));
    }

    #[test]
    fn without_os_locks_the_record_is_the_lock() {
        let no_locks = |_: &File| -> Result<(), TryLockError> {
            Err(TryLockError::Error(io::Error::from_raw_os_error(
                libc::ENOLCK,
            )))
        };
        let dir = tempfile::tempdir().unwrap();
        let first = acquire_with(dir.path(), "first".into(), no_locks).unwrap();
        let err = acquire_with(dir.path(), "second".into(), no_locks).unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
        drop(first);
        assert!(DirLock::holder(dir.path()).is_none());

        // A dead process's record on this host is taken over.
        let stale = record_of(dead_pid(), &this_host());
        write_json_atomic(&dir.path().join(HOLDER_FILE), &stale).unwrap();
        let lock = acquire_with(dir.path(), "third".into(), no_locks).unwrap();
        assert_eq!(lock.took_over(), Some(&stale));
        drop(lock);

        // Another host's record cannot be checked: refused, naming the file to delete.
        let other = record_of(1, "another-node.invalid");
        write_json_atomic(&dir.path().join(HOLDER_FILE), &other).unwrap();
        let err = acquire_with(dir.path(), "fourth".into(), no_locks).unwrap_err();
        assert!(matches!(err, LockError::Unverifiable { .. }), "{err}");
        assert!(err.to_string().contains(HOLDER_FILE), "{err}");
        assert!(err.to_string().contains("another-node.invalid"), "{err}");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = DirLock::acquire_as(&missing, "x").unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
        assert!(!missing.exists());
    }

    #[test]
    fn utc_times() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_827_696), "2000-02-29 12:34:56 UTC");
        assert_eq!(format_utc(1_796_483_402), "2026-12-05 15:10:02 UTC");
    }
}
