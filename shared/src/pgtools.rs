//! pg_dump, pg_restore and psql: found (in `PGWARD_PG_BINDIR`; else the one closest to the
//! server's major on PATH and in the usual install folders, see [`check_fits_server`]),
//! their versions read and checked against the server, and run with the connection in
//! their environment (the password never on a command line). Every binary that needs one of
//! them, or only asks whether it fits (`pgward-validate preflight`), comes here.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::connect::dburl::ConnectionSettings;
use crate::connect::libpq::{libpq_env, LIBPQ_VARS_TO_CLEAR};
use crate::error::{Error, Result};

/// Names the folder holding pg_dump/pg_restore to use instead of the ones on PATH.
pub const BINDIR_ENV: &str = "PGWARD_PG_BINDIR";

/// Folders PostgreSQL's client programs are commonly installed in besides PATH (Debian's
/// and Ubuntu's packages, the PGDG RPMs, a source build, Homebrew), as glob patterns.
const INSTALL_DIRS: &[&str] = &[
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
];

/// The folder [`check_fits_server`] chose for each program, used by [`program`] from then
/// on: one per program, since a restore's safety backup picks a pg_dump for the target
/// after the pg_restore for the backup was picked.
static CHOSEN: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// The path of a PostgreSQL client program: in `PGWARD_PG_BINDIR`, else in the folder
/// [`check_fits_server`] chose for it, else found on PATH.
pub fn program(name: &str) -> PathBuf {
    if let Some(dir) = configured_dir() {
        return dir.join(name);
    }
    let chosen = CHOSEN.lock().unwrap_or_else(|e| e.into_inner());
    match chosen.iter().find(|(program, _)| program == name) {
        Some((_, dir)) => dir.join(name),
        None => PathBuf::from(name),
    }
}

fn configured_dir() -> Option<PathBuf> {
    std::env::var_os(BINDIR_ENV)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// Every folder holding a program `name`: PATH's in order, then [`INSTALL_DIRS`]' (a
/// program reached twice, through a link, once).
fn candidate_dirs(name: &str) -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let installed = INSTALL_DIRS.iter().flat_map(|pattern| expand(pattern));
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in std::env::split_paths(&path).chain(installed) {
        // The folder as found, not the link's target: Debian's /usr/bin/pg_dump is a link
        // to a wrapper that goes by the name it was called by.
        if let Ok(real) = std::fs::canonicalize(dir.join(name)) {
            if real.is_file() && !seen.contains(&real) {
                seen.push(real);
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// The existing folders matching `pattern`, whose one `*` stands for part of a folder
/// name (`/usr/lib/postgresql/*/bin`).
fn expand(pattern: &str) -> Vec<PathBuf> {
    let Some((head, tail)) = pattern.split_once('*') else {
        return vec![PathBuf::from(pattern)];
    };
    let (parent, prefix) = head.rsplit_once('/').unwrap_or(("", head));
    let (suffix, rest) = tail.split_once('/').unwrap_or((tail, ""));
    let Ok(entries) = std::fs::read_dir(if parent.is_empty() { "/" } else { parent }) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| {
            entry.file_name().to_str().is_some_and(|name| {
                name.len() >= prefix.len() + suffix.len()
                    && name.starts_with(prefix)
                    && name.ends_with(suffix)
            })
        })
        .map(|entry| entry.path().join(rest))
        .filter(|dir| dir.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The version of `dir`'s `name`, when it runs and says one.
fn version_in(dir: &std::path::Path, name: &str) -> Option<ClientVersion> {
    let out = Command::new(dir.join(name))
        .arg("--version")
        .output()
        .ok()?;
    ClientVersion::parse(&String::from_utf8_lossy(&out.stdout))
}

/// A command for `name` connecting as `settings`.
pub fn command(name: &str, settings: &ConnectionSettings) -> Command {
    let mut cmd = Command::new(program(name));
    for var in LIBPQ_VARS_TO_CLEAR {
        cmd.env_remove(var);
    }
    cmd.envs(libpq_env(settings));
    cmd.stdin(Stdio::null());
    cmd
}

/// A client program's `--version` line (`pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`)
/// and the release it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientVersion {
    /// The line as the program printed it, trimmed.
    pub text: String,
    /// `15` of 15.18.
    pub major: u32,
    /// `18` of 15.18; 0 for a release without one (`18beta1`).
    pub minor: u32,
}

impl ClientVersion {
    /// Reads the first number of `text` as `MAJOR[.MINOR]`; none when it holds no number.
    pub fn parse(text: &str) -> Option<ClientVersion> {
        let number = text
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
        let mut parts = number
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().ok());
        let major = parts.next().flatten()?;
        let minor = parts.next().flatten().unwrap_or(0);
        Some(ClientVersion {
            text: text.trim().to_string(),
            major,
            minor,
        })
    }

    /// Whether this psql has restricted mode (`\restrict`, added in 13.22, 14.19, 15.14,
    /// 16.10, 17.6 and 18), in which it runs no meta-command.
    pub fn has_restricted_mode(&self) -> bool {
        let minor = self.minor;
        match self.major {
            18.. => true,
            17 => minor >= 6,
            16 => minor >= 10,
            15 => minor >= 14,
            14 => minor >= 19,
            13 => minor >= 22,
            _ => false,
        }
    }
}

/// The version of client program `name` ([`program`]), from its `--version`.
pub fn version(name: &str) -> Result<ClientVersion> {
    let out = Command::new(program(name))
        .arg("--version")
        .output()
        .map_err(|e| Error::ExternalTool {
            tool: name.to_string(),
            reason: format!("cannot run {}: {e}", program(name).display()),
            hint: format!("install the PostgreSQL client tools (apt-get install postgresql-client), or set {BINDIR_ENV}"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    ClientVersion::parse(&text).ok_or_else(|| Error::ExternalTool {
        tool: name.to_string(),
        reason: format!("cannot read its version from `{}`", text.trim()),
        hint: format!("check the {name} on PATH, or set {BINDIR_ENV}"),
    })
}

/// Picks the `name` to use with a server of `server_version_num` and returns its
/// `--version` line; fails unless it is at least the server's major (older clients cannot
/// dump or restore newer servers). With `PGWARD_PG_BINDIR` set, that folder's; else, of
/// PATH's and the usual install folders' ([`INSTALL_DIRS`]), the oldest major that is not
/// older than the server, PATH's first among equals; [`program`] then uses it. Not simply
/// the newest: pg_dump and pg_restore 17 and later write
/// `SET transaction_timeout`, which servers before 17 reject, so a backup of a 16 server
/// by pg_dump 18 would not restore into 16.
pub fn check_fits_server(name: &str, server_version_num: i32) -> Result<String> {
    let server_major = server_version_num / 10_000;
    if configured_dir().is_some() {
        let ClientVersion { major, text, .. } = version(name)?;
        if (major as i32) < server_major {
            return Err(Error::ExternalTool {
                tool: name.to_string(),
                reason: format!("{text} is older than the server (PostgreSQL {server_major}); it is the one {BINDIR_ENV} names"),
                hint: format!("point {BINDIR_ENV} at the bin folder of PostgreSQL {server_major} or newer (e.g. /usr/lib/postgresql/{server_major}/bin), or unset it to use the installed one closest to the server"),
            });
        }
        return Ok(text);
    }
    let found: Vec<(PathBuf, ClientVersion)> = candidate_dirs(name)
        .into_iter()
        .filter_map(|dir| version_in(&dir, name).map(|v| (dir, v)))
        .collect();
    // min_by_key keeps the first of equals: PATH's.
    let fitting = found
        .iter()
        .filter(|(_, v)| v.major as i32 >= server_major)
        .min_by_key(|(_, v)| v.major);
    match fitting {
        Some((dir, v)) => {
            let mut chosen = CHOSEN.lock().unwrap_or_else(|e| e.into_inner());
            chosen.retain(|(program, _)| program != name);
            chosen.push((name.to_string(), dir.clone()));
            Ok(v.text.clone())
        }
        _ => {
            let seen = if found.is_empty() {
                "none was found".to_string()
            } else {
                found
                    .iter()
                    .map(|(dir, v)| format!("{} ({})", dir.join(name).display(), v.text))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Err(Error::ExternalTool {
                tool: name.to_string(),
                reason: format!("no {name} of PostgreSQL {server_major} or newer is installed (the server runs {server_major}; looked on PATH and in {}: {seen})", INSTALL_DIRS.join(", ")),
                hint: format!("install PostgreSQL {server_major}'s client programs or newer (e.g. apt-get install postgresql-client-{server_major} from apt.postgresql.org) and put their bin folder on PATH, or set {BINDIR_ENV} to it"),
            })
        }
    }
}

/// Reads a child's stderr to its end on a thread of its own (so that a chatty child never
/// blocks on a full pipe while its stdin or stdout is streamed); join it for the text once
/// the child exits.
pub fn stderr_reader(child: &mut std::process::Child) -> std::thread::JoinHandle<Vec<u8>> {
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_end(&mut s, &mut text);
        }
        text
    })
}

/// The error for client program `name` that did not start.
pub fn not_started(name: &str, e: std::io::Error) -> Error {
    Error::ExternalTool {
        tool: name.to_string(),
        reason: format!("cannot start {}: {e}", program(name).display()),
        hint: format!("install the PostgreSQL client tools (apt-get install postgresql-client), or set {BINDIR_ENV}"),
    }
}

/// A reader that fails once an interrupt has arrived, so that streaming to or from a
/// client program (which may take as long as the largest large object) stops at the next
/// piece, and its caller can end the program.
pub struct Interruptible<R>(pub R);

impl<R: std::io::Read> std::io::Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if crate::interrupt::requested() {
            return Err(std::io::Error::other("interrupted"));
        }
        self.0.read(buf)
    }
}

/// Ends a client program (pg_dump, pg_restore) when an interrupt arrives. Its server
/// session is not one pgward can cancel, and it may wait on the server for as long as a
/// lock is held or a large object takes, with pgward blocked writing to it: SIGTERM makes
/// it cancel its query and exit. Created right after the program starts; [`Self::wait`]
/// replaces `Child::wait`.
pub struct EndOnInterrupt {
    pid: u32,
    /// Whether the program may still be signalled: cleared before it is reaped, so that
    /// its pid, once free for another process, is never signalled.
    running: std::sync::Arc<std::sync::Mutex<bool>>,
    _registration: crate::interrupt::CancelRegistration,
}

impl EndOnInterrupt {
    /// Registers `child` to be ended on interrupt.
    pub fn new(child: &std::process::Child) -> EndOnInterrupt {
        let pid = child.id();
        let running = std::sync::Arc::new(std::sync::Mutex::new(true));
        let registration = crate::interrupt::on_interrupt({
            let running = running.clone();
            move || {
                let running = running.lock().unwrap_or_else(|e| e.into_inner());
                if *running {
                    // SAFETY: kill(2) on our own child, which is not reaped yet (see
                    // `running`).
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                }
            }
        });
        EndOnInterrupt {
            pid,
            running,
            _registration: registration,
        }
    }

    /// Waits for `child` (the one given to [`Self::new`]) to end, and reaps it.
    pub fn wait(
        self,
        child: &mut std::process::Child,
    ) -> std::io::Result<std::process::ExitStatus> {
        loop {
            // SAFETY: an all-zero siginfo_t is valid; waitid(2) with WNOWAIT waits for
            // our child's end without reaping it.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let waited = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if waited == 0
                || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                break;
            }
        }
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = false;
        child.wait()
    }
}

/// Turns a finished child's failure into an error with its stderr.
pub fn check_status(name: &str, status: std::process::ExitStatus, stderr: &[u8]) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    if crate::interrupt::requested() {
        return Err(Error::Interrupted);
    }
    let text = crate::redact::scrub(String::from_utf8_lossy(stderr).trim());
    Err(Error::ExternalTool {
        tool: name.to_string(),
        reason: format!("exited with {status}: {text}"),
        hint: format!("see {name}'s message above; check the connection and privileges"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn restricted_mode_comes_with_the_august_2025_minor_releases() {
        let ok =
            |line: &str| super::ClientVersion::parse(line).is_some_and(|v| v.has_restricted_mode());
        assert!(ok("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"));
        assert!(ok("psql (PostgreSQL) 17.6"));
        assert!(ok("psql (PostgreSQL) 18beta1"));
        assert!(!ok("psql (PostgreSQL) 15.13"));
        assert!(!ok("psql (PostgreSQL) 12.22"));
        assert!(!ok("psql"));
    }

    #[test]
    fn an_install_folder_pattern_finds_every_major_and_nothing_else() {
        let root = tempfile::tempdir().expect("a temp dir");
        for dir in ["pg/14/bin", "pg/18/bin", "pg/17", "other/16/bin"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("the folder is made");
        }
        std::fs::write(root.path().join("pg/x"), "a file").expect("a file");
        let pattern = format!("{}/pg/*/bin", root.path().display());
        assert_eq!(
            super::expand(&pattern),
            vec![root.path().join("pg/14/bin"), root.path().join("pg/18/bin")]
        );
        let prefixed = format!("{}/pg/1*/bin", root.path().display());
        assert_eq!(super::expand(&prefixed).len(), 2);
        assert_eq!(
            super::expand("/nonexistent-pgward/*/bin"),
            Vec::<std::path::PathBuf>::new()
        );
    }

    #[test]
    fn one_parser_reads_the_release_of_every_client_program() {
        use super::ClientVersion;
        let v = ClientVersion::parse("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n")
            .expect("a version");
        assert_eq!((v.major, v.minor), (15, 18));
        assert_eq!(
            v.text,
            "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        );
        let beta = ClientVersion::parse("pg_restore (PostgreSQL) 18beta1").expect("a version");
        assert_eq!((beta.major, beta.minor), (18, 0));
        assert_eq!(ClientVersion::parse("pg_dump (PostgreSQL)"), None);
    }
}
