//! Running `forgetlab` subprocesses (train, eval, fit, report) and passing signals on to them.
//!
//! The sweep never trains in-process: each stage is a child process, so a crash, a NaN or an
//! out-of-memory kill takes down one run, not the sweep. Signals (SIGINT, SIGTERM, SIGUSR1)
//! that reach the sweep while it supervises children are forwarded to them, once each: the
//! trainer checkpoints and exits 3, and the sweep stops starting new work. Outside supervision
//! the signals keep their default action.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use forgetlab_runs::{ExperimentDir, RunDir, RunStatus};

use crate::error::SweepError;

/// Exit status of a forgetlab command that stopped on a signal after checkpointing.
pub const EXIT_INTERRUPTED: i32 = 3;

/// The forgetlab executable and the CPU threads each of its processes may use.
#[derive(Debug, Clone)]
pub struct Forgetlab {
    pub exe: PathBuf,
    pub threads: usize,
}

impl Forgetlab {
    pub fn new(exe: impl Into<PathBuf>, threads: usize) -> Self {
        Self {
            exe: exe.into(),
            threads: threads.max(1),
        }
    }

    fn command(&self, args: Vec<OsString>) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--threads")
            .arg(self.threads.to_string())
            .args(args);
        cmd
    }

    /// `forgetlab train <run>/config.toml --run-dir <run>` (resumes from the newest checkpoint).
    pub fn train(&self, run: &RunDir) -> Command {
        self.command(vec![
            "train".into(),
            run.config().into(),
            "--run-dir".into(),
            run.root().into(),
        ])
    }

    /// `forgetlab eval all <run>`.
    pub fn eval(&self, run: &RunDir) -> Command {
        self.command(vec!["eval".into(), "all".into(), run.root().into()])
    }

    /// `forgetlab fit <experiment-dir>`.
    pub fn fit(&self, dir: &ExperimentDir) -> Command {
        self.command(vec!["fit".into(), dir.root().into()])
    }

    /// `forgetlab report <experiment-dir>`.
    pub fn report(&self, dir: &ExperimentDir) -> Command {
        self.command(vec!["report".into(), dir.root().into()])
    }
}

/// How a child process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exit status 0.
    Success,
    /// Exit status 3: stopped on a signal after checkpointing (resumable).
    Interrupted,
    /// Any other status, or killed by a signal.
    Failed {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

impl Exit {
    fn of(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match status.code() {
            Some(0) => Exit::Success,
            Some(EXIT_INTERRUPTED) => Exit::Interrupted,
            code => Exit::Failed {
                code,
                signal: status.signal(),
            },
        }
    }

    /// Exit code, when the process exited normally.
    pub fn code(&self) -> Option<i32> {
        match self {
            Exit::Success => Some(0),
            Exit::Interrupted => Some(EXIT_INTERRUPTED),
            Exit::Failed { code, .. } => *code,
        }
    }

    /// `exit status 1`, `killed by signal 9`, ...
    pub fn describe(&self) -> String {
        match self {
            Exit::Success => "exit status 0".into(),
            Exit::Interrupted => "exit status 3 (interrupted, resumable)".into(),
            Exit::Failed { code: Some(c), .. } => format!("exit status {c}"),
            Exit::Failed {
                signal: Some(s), ..
            } => format!("killed by signal {s}"),
            Exit::Failed { .. } => "unknown exit".into(),
        }
    }
}

/// Where a child's stdout and stderr go.
#[derive(Debug, Clone)]
pub enum Output {
    /// The sweep's own stdout/stderr (Slurm tasks: the job's output file).
    Inherit,
    /// Appended to a file, after a header line naming the command.
    File(PathBuf),
}

// Process-wide signal state. The handlers are installed once; while no supervisor is active
// they perform the signal's default action.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static SEEN: AtomicUsize = AtomicUsize::new(0);
static LAST: AtomicI32 = AtomicI32::new(0);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// The signals the sweep forwards to its children.
pub const FORWARDED_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1];

fn install_handlers() -> Result<(), String> {
    INSTALLED
        .get_or_init(|| {
            for signal in FORWARDED_SIGNALS {
                let action = move || {
                    if ACTIVE.load(Ordering::SeqCst) > 0 {
                        LAST.store(signal, Ordering::SeqCst);
                        SEEN.fetch_add(1, Ordering::SeqCst);
                    } else {
                        let _ = signal_hook::low_level::emulate_default_handler(signal);
                    }
                };
                // SAFETY: the action only touches atomics or performs the default action,
                // both async-signal-safe.
                unsafe { signal_hook::low_level::register(signal, action) }
                    .map_err(|e| format!("cannot install a handler for signal {signal}: {e}"))?;
            }
            Ok(())
        })
        .clone()
}

/// Supervises children: notices stop requests (a caught signal or an external flag) and
/// forwards them to the child being waited on.
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    seen_at_start: usize,
    handles_signals: bool,
}

impl Supervisor {
    /// With `handle_signals`, SIGINT/SIGTERM/SIGUSR1 reaching this process are forwarded to the
    /// children instead of ending it. `stop` is an extra way to ask for a stop (tests,
    /// embedding programs); children then receive SIGTERM.
    pub fn new(stop: Option<Arc<AtomicBool>>, handle_signals: bool) -> Self {
        let handles_signals = handle_signals
            && match install_handlers() {
                Ok(()) => true,
                Err(err) => {
                    tracing::warn!("{err}; signals will not be forwarded");
                    false
                }
            };
        if handles_signals {
            ACTIVE.fetch_add(1, Ordering::SeqCst);
        }
        Self {
            stop: stop.unwrap_or_default(),
            seen_at_start: SEEN.load(Ordering::SeqCst),
            handles_signals,
        }
    }

    fn signals_seen(&self) -> usize {
        if self.handles_signals {
            SEEN.load(Ordering::SeqCst) - self.seen_at_start
        } else {
            0
        }
    }

    /// True once a stop was requested: no new work should start.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.signals_seen() > 0
    }

    /// Asks every supervised child to stop (as SIGTERM would).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Runs `cmd` to completion, forwarding stop requests, calling `on_poll` about every
    /// 200 ms while it runs. With `own_group`, the child gets its own process group, so a
    /// Ctrl-C on the terminal reaches it only through this supervisor (exactly once).
    pub fn run(
        &self,
        mut cmd: Command,
        output: &Output,
        own_group: bool,
        on_poll: &mut dyn FnMut(),
    ) -> Result<Exit, SweepError> {
        let program = describe_command(&cmd);
        cmd.stdin(Stdio::null());
        if let Output::File(path) = output {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| SweepError::io(path, e))?;
            let _ = writeln!(
                file,
                "=== {} [{}] ===",
                program,
                forgetlab_runs::unix_now() as u64
            );
            let err = file.try_clone().map_err(|e| SweepError::io(path, e))?;
            cmd.stdout(file).stderr(err);
        }
        if own_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|error| SweepError::Spawn {
            program: program.clone(),
            error,
        })?;
        let pid = child.id() as libc::pid_t;
        let mut forwarded = 0usize;
        let mut sent_stop = false;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(Exit::of(status)),
                Ok(None) => {}
                Err(error) => {
                    return Err(SweepError::Spawn { program, error });
                }
            }
            // The child is not reaped yet, so its pid cannot have been reused.
            let seen = self.signals_seen();
            if seen > forwarded {
                let signal = LAST.load(Ordering::SeqCst);
                // SAFETY: kill(2) on our own unreaped child.
                unsafe { libc::kill(pid, signal) };
                forwarded = seen;
                sent_stop = true;
            } else if !sent_stop && self.stop.load(Ordering::SeqCst) {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                sent_stop = true;
            }
            on_poll();
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.handles_signals {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// `forgetlab --threads 2 train ...` for messages.
pub fn describe_command(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Whether the process behind a `running` status is still at work: a live trainer process on
/// this host, or an active Slurm job. Returns who holds it.
pub fn live_elsewhere(status: &RunStatus) -> Option<String> {
    if let Some(who) = live_here(status) {
        return Some(who);
    }
    if let Some(job) = &status.slurm_job
        && crate::slurm::job_active(job) == Some(true)
    {
        return Some(format!("Slurm job {job}"));
    }
    None
}

/// Like [`live_elsewhere`], looking only at processes on this host.
///
/// This is not [`forgetlab_runs::host::writer_alive`], which asks whether a process could
/// have written a record at its time stamp (and says yes for the asking process itself, as a
/// lock holder checking its own lock needs). The sweep asks whether a trainer is at work on
/// the run now, and answers it differently on purpose:
/// - its own pid is never a trainer: the sweep does not train in-process, and a requeued
///   Slurm task can be given the pid its earlier trainer had;
/// - the process must be a trainer (`train` in its command line), so a live process that is
///   not one does not hold the run, whatever its start time;
/// - the status's time stamp is not consulted: a trainer found under the pid holds the run
///   even if it started after the status was written (a restarted trainer has not written its
///   own status yet), so two trainers never share a run directory.
///
/// The test below pins each difference.
pub fn live_here(status: &RunStatus) -> Option<String> {
    if let (Some(host), Some(pid)) = (&status.host, status.pid)
        && forgetlab_runs::host::is_this_host(host)
        && pid != std::process::id()
        && process_mentions(pid, "train")
    {
        return Some(format!("pid {pid} on {host}"));
    }
    None
}

/// Whether process `pid` runs with `word` as one of its arguments (Linux `/proc`; false
/// where that cannot be read, as for a process that has exited or a zombie).
fn process_mentions(pid: u32, word: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| bytes.split(|&b| b == 0).any(|arg| arg == word.as_bytes()))
        .unwrap_or(false)
}

/// Available CPU cores.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Console log of a run's child processes (stdout and stderr of train and eval, appended).
pub fn console_log(run: &RunDir) -> PathBuf {
    run.root().join("console.log")
}

/// Console log of experiment-level commands (fit, report).
pub fn experiment_console_log(dir: &ExperimentDir) -> PathBuf {
    dir.root().join("console.log")
}

#[cfg(test)]
mod tests {
    use std::process::Child;

    use forgetlab_runs::host::{hostname, writer_alive};
    use forgetlab_runs::{RunState, unix_now};

    use super::*;

    fn running(pid: u32, updated_unix: f64) -> RunStatus {
        RunStatus {
            pid: Some(pid),
            updated_unix,
            host: hostname(),
            ..RunStatus::now(RunState::Running, 2, 5, 128)
        }
    }

    /// Spawns `args` and waits until the child has exec'd it (before that, its command line
    /// is this test's).
    fn spawn(args: &[&str]) -> Child {
        let child = Command::new(args[0]).args(&args[1..]).spawn().unwrap();
        let started = std::time::Instant::now();
        while !process_mentions(child.id(), args[args.len() - 1]) {
            assert!(started.elapsed() < Duration::from_secs(10), "{args:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    fn stop(mut child: Child) {
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_trainer_at_work_is_not_the_same_question_as_a_writer_alive() {
        if !std::path::Path::new("/proc/self/cmdline").exists() {
            return;
        }
        // The asking process: alive as a writer, never a trainer.
        let me = running(std::process::id(), unix_now());
        assert!(writer_alive(std::process::id(), me.updated_unix));
        assert_eq!(live_here(&me), None);

        // A live process that is not a trainer, started before the status was written.
        let other = spawn(&["sleep", "30"]);
        let status = running(other.id(), unix_now() + 5.0);
        let (alive, held) = (
            writer_alive(other.id(), status.updated_unix),
            live_here(&status),
        );
        stop(other);
        assert!(alive);
        assert_eq!(held, None);

        // A trainer that started after the status was written still holds the run.
        let trainer = spawn(&["bash", "-c", "sleep 30; true", "train"]);
        let status = running(trainer.id(), unix_now() - 3600.0);
        let (alive, held) = (
            writer_alive(trainer.id(), status.updated_unix),
            live_here(&status),
        );
        let pid = trainer.id();
        stop(trainer);
        assert!(!alive);
        assert!(held.is_some_and(|who| who.starts_with(&format!("pid {pid} on "))));

        // Gone: neither holds it.
        assert!(!writer_alive(pid, unix_now()));
        assert_eq!(live_here(&running(pid, unix_now())), None);
    }
}
