//! Running the built `pgward-*` binaries the way a user's script would.
//!
//! End-to-end tests exercise the real executables, not library calls, so exit codes,
//! stdout's single JSON document and stderr are tested as users see them. Each run gets
//! a cleared environment (only PATH, HOME and what the test passes), so a developer's
//! `DATABASE_URL` or `PGHOST` can never make a test pass or fail, and no stdin, so a
//! binary that would prompt fails instead of hanging.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long [`run`] and [`run_in`] wait before killing the binary and failing the test;
/// far beyond any real run, but short enough that a hang does not eat CI's time limit.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// What a finished run of a binary left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit code; a death by signal N is reported as `128 + N`, as shells do.
    pub code: i32,
    /// Everything the binary wrote to stdout (lossily decoded as UTF-8).
    pub stdout: String,
    /// Everything the binary wrote to stderr (lossily decoded as UTF-8).
    pub stderr: String,
}

impl Output {
    /// stdout parsed as JSON. Panics, showing stdout and stderr, unless stdout is
    /// exactly one JSON document (surrounding whitespace allowed).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not exactly one JSON document ({e})\n{self}"))
    }

    /// Panics, showing stdout and stderr, unless the run failed with exit `code` and the
    /// JSON error `error_code`, with the message and the hint every error carries.
    /// Returns the JSON.
    pub fn assert_error(&self, code: i32, error_code: &str) -> serde_json::Value {
        self.assert_code(code);
        let json = self.json();
        assert_eq!(json["ok"], false, "{self}");
        assert_eq!(json["exit_code"], code, "{self}");
        assert_eq!(json["error"]["code"], error_code, "{self}");
        for key in ["message", "hint"] {
            assert!(
                !json["error"][key].as_str().unwrap_or_default().is_empty(),
                "the error has a {key}\n{self}"
            );
        }
        json
    }

    /// Panics, showing stdout and stderr, unless the run exited `code` with the envelope
    /// saying so: `exit_code` is `code`, and `ok` is true exactly for 0 and 3. Returns the
    /// JSON.
    pub fn assert_envelope(&self, code: i32) -> serde_json::Value {
        self.assert_code(code);
        let json = self.json();
        assert_eq!(json["exit_code"], code, "{self}");
        assert_eq!(json["ok"], code == 0 || code == 3, "{self}");
        json
    }

    /// Panics, showing stdout and stderr, unless the exit code is `expected`.
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "expected exit code {expected}, got {}\n{self}",
            self.code
        );
        self
    }
}

/// The `error.message` of a failed run's JSON.
pub fn error_message(json: &serde_json::Value) -> &str {
    json["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error message in {json}"))
}

/// The strings of a JSON array of strings, or of objects with a string `key`
/// (`json_strings(&result["applied"], "name")`).
pub fn json_strings(value: &serde_json::Value, key: &str) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {value}"))
        .iter()
        .map(|v| {
            v.as_str()
                .or_else(|| v[key].as_str())
                .unwrap_or_else(|| panic!("expected a string or an object with {key:?}: {v}"))
                .to_string()
        })
        .collect()
}

/// The ids in a JSON array of ids or of objects with an `id` (backups).
pub fn json_ids(value: &serde_json::Value) -> Vec<String> {
    json_strings(value, "id")
}

/// The codes of an envelope's warnings.
pub fn warning_codes(envelope: &serde_json::Value) -> Vec<String> {
    json_strings(&envelope["warnings"], "code")
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Borrows variables held as `(name, String)` (an [`crate::S3Server::env`], say) in the
/// form [`run`] takes.
pub fn env_refs<'e>(env: &'e [(&'static str, String)]) -> Vec<(&'static str, &'e str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The path of the built binary `pgward-<name>` (`bin("migrate")`), found beside the
/// test executable in `target/<profile>/`. Panics if it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test executable knows its path");
    let mut dir = test_exe
        .parent()
        .expect("the test executable is in a folder");
    // Integration tests live in target/<profile>/deps, the binaries one level up.
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target/<profile>/deps has a parent");
    }
    let path = dir.join(format!("pgward-{name}"));
    assert!(
        path.is_file(),
        "{} does not exist; run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// Runs `pgward-<bin_name>` with `args`, a cleared environment plus `envs`, and no
/// stdin, and waits for it (killing it after [`RUN_TIMEOUT`]).
pub fn run(bin_name: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    finish(bin_name, command(bin_name, None, args, envs))
}

/// [`run`] in the working directory `dir` (where the binary looks for `pgward.toml`).
pub fn run_in(dir: &Path, bin_name: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    finish(bin_name, command(bin_name, Some(dir), args, envs))
}

/// `pgward-restore restore --from FROM --target-db INTO --create EXTRA...`, connecting
/// through `via` as the superuser, with the cluster's own pg_restore: a restore into a
/// database that does not exist yet ([`crate::Cluster::vacant_database`]).
pub fn restore_into_new_database(
    via: &crate::TestDb,
    from: &str,
    into: &crate::TestDb,
    extra: &[&str],
) -> Output {
    restore_into_new_database_with(via, from, into, extra, &[])
}

/// [`restore_into_new_database`] with `envs` besides the cluster's client tools (an S3
/// server's credentials, say).
pub fn restore_into_new_database_with(
    via: &crate::TestDb,
    from: &str,
    into: &crate::TestDb,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Output {
    let url = via.url();
    let mut args = vec![
        "restore",
        "--from",
        from,
        "--database-url",
        &url,
        "--target-db",
        &into.name,
        "--create",
    ];
    args.extend_from_slice(extra);
    let mut all = via.cluster().pg_tools_env().to_vec();
    all.extend_from_slice(envs);
    run("restore", &args, &all)
}

/// Starts `pgward-<bin_name>` like [`run`] but returns at once, with stdout and stderr
/// piped, for tests that signal or kill it. Read the pipes (or call
/// `wait_with_output`) so a chatty binary cannot block on a full pipe.
pub fn spawn(bin_name: &str, args: &[&str], envs: &[(&str, &str)]) -> Child {
    let mut command = command(bin_name, None, args, envs);
    command
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {command:?}: {e}"))
}

fn command(bin_name: &str, dir: Option<&Path>, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(bin(bin_name));
    command.args(args).env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    if let Some(client_bin) = crate::cluster::selected_client_bin() {
        // PGWARD_TEST_PG's major: its client programs first on PATH.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(client_bin.to_path_buf()).chain(std::env::split_paths(&path));
        command.env(
            "PATH",
            std::env::join_paths(dirs).expect("PATH's folders join again"),
        );
    }
    command
        .envs(envs.iter().map(|(k, v)| (OsStr::new(k), OsStr::new(v))))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command
}

fn finish(bin_name: &str, mut command: Command) -> Output {
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {command:?}: {e}"));
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = match receiver.recv_timeout(RUN_TIMEOUT) {
        Ok(output) => output,
        Err(_) => {
            // SAFETY: kill has no memory-safety preconditions. The waiter has not
            // reported, so the child is (barring a last-moment exit) not reaped and the
            // pid still names it.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let partial = match receiver.recv() {
                Ok(Ok(output)) => to_output(&output).to_string(),
                Ok(Err(e)) => format!("(its output could not be collected: {e})"),
                Err(_) => "(its output was lost)".to_string(),
            };
            panic!(
                "pgward-{bin_name} did not finish within {RUN_TIMEOUT:?} and was killed: \
                 {command:?}\n{partial}"
            );
        }
    }
    .unwrap_or_else(|e| panic!("could not collect the output of {command:?}: {e}"));
    to_output(&output)
}

fn to_output(output: &std::process::Output) -> Output {
    Output {
        code: output
            .status
            .code()
            .or_else(|| output.status.signal().map(|signal| 128 + signal))
            .expect("a finished process has an exit code or a signal"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Waits for a [`spawn`]ed binary and collects what it left behind, as [`run`] does (a
/// death by signal N is `128 + N`).
pub fn wait_child(child: Child) -> Output {
    let output = child
        .wait_with_output()
        .expect("the spawned binary's output can be collected");
    Output {
        code: output
            .status
            .code()
            .or_else(|| output.status.signal().map(|s| 128 + s))
            .expect("a finished process has an exit code or a signal"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `pgward-restore ARGS` again after a run that was killed while it loaded into the
/// database `partial`: once the killed run's sessions are gone, the new run must succeed,
/// say it dropped the leftover, and leave no `partial` behind.
pub fn restore_after_a_killed_run(partial: &str, args: &[&str]) -> Output {
    let cluster = crate::cluster();
    wait_until(
        Duration::from_secs(60),
        "the killed run's sessions end",
        || cluster.sessions_on(partial) == 0,
    );
    let out = run("restore", args, &cluster.pg_tools_env());
    out.assert_code(0);
    assert!(out.stderr.contains("an interrupted run left"), "{out}");
    assert!(!cluster.database_exists(partial), "{out}");
    out
}

/// Polls `condition` every 10 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Backup ids carry the UTC second: tests that take backups back to back wait for the
/// next second, so that each backup's id carries its own second (not the same second's
/// `-2`, which storage_s3.rs covers).
pub fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// Runs `pgward-<tool> ARGS` in `dir` (the test's own when `None`) with a pty as stdin,
/// stdout and stderr (`script`, util-linux), as a person at a 120-column terminal does;
/// returns its exit code and everything the terminal received.
pub fn on_a_terminal(
    dir: Option<&Path>,
    tool: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (i32, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = quote(&bin(tool).to_string_lossy());
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut command = Command::new("script");
    command
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_clear()
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .env("LINES", "40")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    let out = command.output().expect("script (util-linux) runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// [`on_a_terminal`] in the test's folder, which must succeed; what the terminal received.
pub fn on_a_terminal_ok(tool: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
    let (code, text) = on_a_terminal(None, tool, args, envs);
    assert_eq!(code, 0, "pgward-{tool} on a terminal: {text}");
    text
}
