//! Running the shell scripts in `scripts/` the way a user's terminal or cron does: from a
//! project folder, with the binaries of this build (`PGWARD_BIN`) and the cluster's
//! client tools (`PGWARD_PG_BINDIR`), in a process group of their own so that a test can
//! signal or kill the whole pipeline.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, cluster, workspace_root, Output};

/// How long a script may run before the test kills it (its whole process group).
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// The folder holding the built `pgward-*` binaries (what `PGWARD_BIN` names).
pub fn bin_dir() -> PathBuf {
    bin("migrate")
        .parent()
        .expect("the binary sits in a folder")
        .to_path_buf()
}

/// Runs `scripts/SCRIPT ARGS` in `dir` with a cleared environment (PATH, HOME,
/// PGWARD_BIN, PGWARD_PG_BINDIR and `envs`) and no stdin, killing its process group after
/// [`SCRIPT_TIMEOUT`].
pub fn run_script(dir: &Path, script: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    RunningScript::start(dir, script, args, envs).wait()
}

/// A script started in its own process group, its stdout and stderr read as it runs.
pub struct RunningScript {
    script: String,
    child: Child,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

/// Starts `command` in a process group of its own, with SIGINT and SIGQUIT at their
/// defaults, as a shell on a terminal starts a foreground job, so that a test's Ctrl-C
/// reaches it as a user's would. Without the reset, a test run started as a background
/// job (`cargo test &`, a CI runner that ignores SIGINT) passes the ignored SIGINT on, and
/// bash cannot trap a signal ignored on entry.
pub fn in_its_own_terminal_group(command: &mut Command) -> &mut Command {
    command.process_group(0);
    // SAFETY: between fork and exec only async-signal-safe calls are allowed; signal(2)
    // is one, and nothing is allocated.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        })
    }
}

impl RunningScript {
    /// Starts `scripts/SCRIPT ARGS` as [`run_script`] does, without waiting for it.
    pub fn start(dir: &Path, script: &str, args: &[&str], envs: &[(&str, &str)]) -> RunningScript {
        let mut command = Command::new(workspace_root().join("scripts").join(script));
        command.args(args).current_dir(dir).env_clear();
        for key in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .env("PGWARD_BIN", bin_dir())
            .env("PGWARD_PG_BINDIR", &cluster().bin_dir)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        in_its_own_terminal_group(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {command:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        RunningScript {
            script: script.to_string(),
            child,
            stdout: read_to_end(stdout),
            stderr: read_to_end(stderr),
        }
    }

    /// The script's pid, which is also its process group's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the script's process group, as a terminal's Ctrl-C does.
    pub fn signal_group(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions; the negative pid names the
        // script's own process group (process_group(0) in `start`).
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), signal) };
    }

    /// Waits for the script to end (killing its group after [`SCRIPT_TIMEOUT`] and
    /// failing the test); a death by signal N is reported as `128 + N`, as shells do.
    pub fn wait(mut self) -> Output {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the script can be waited for") {
                break status;
            }
            if started.elapsed() > SCRIPT_TIMEOUT {
                self.signal_group(libc::SIGKILL);
                let status = self.child.wait().expect("the killed script can be reaped");
                panic!(
                    "{} did not finish within {SCRIPT_TIMEOUT:?} and was killed ({status}):\n{}",
                    self.script,
                    self.stderr.join().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            code: status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .expect("a finished process has an exit code or a signal"),
            stdout: self
                .stdout
                .join()
                .expect("the stdout reader does not panic"),
            stderr: self
                .stderr
                .join()
                .expect("the stderr reader does not panic"),
        }
    }
}

/// Reads `pipe` to its end on a thread of its own, so that a chatty script never blocks.
fn read_to_end(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}
