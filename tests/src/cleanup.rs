//! Making sure no PostgreSQL process, no S3 server and no temp dir outlives the test
//! process.
//!
//! Rust never drops statics, so the shared cluster in [`crate::cluster()`] (and the shared
//! S3 server in [`crate::s3()`]) would otherwise be left running after every `cargo
//! test`. Three layers cover the cases, for clusters and for servers alike:
//! - a cluster owned by a test ([`crate::Cluster::start_tls`]) is torn down when it is
//!   dropped, also while a panicking test unwinds;
//! - an `atexit` hook tears down whatever is still live when the process exits normally,
//!   which is also how libtest ends a run with failed tests (`exit(101)`);
//! - a detached reaper shell per cluster polls the test process and tears the cluster
//!   down once the process is gone, which covers SIGKILL, Ctrl-C and aborts.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, Once};

use crate::server_user::ServerUser;

/// The reaper: waits until the test process ($1) is gone, then stops the cluster in
/// data dir $2 the way `pg_ctl stop -m immediate` does (SIGQUIT to the postmaster; the
/// reaper cannot use pg_ctl itself, which refuses root, while a reaper running as the
/// server user could not `kill -0` a root test process) and removes the temp dir $3.
/// It ignores the signals a terminal sends, so Ctrl-C on `cargo test` cannot kill it
/// before it has done its work.
const REAPER_SCRIPT: &str = r#"
trap '' INT TERM HUP
while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
if [ -f "$2/postmaster.pid" ]; then
  postmaster=$(head -n 1 "$2/postmaster.pid")
  kill -QUIT "$postmaster" 2>/dev/null
  tries=0
  while kill -0 "$postmaster" 2>/dev/null && [ "$tries" -lt 100 ]; do
    sleep 0.1
    tries=$((tries + 1))
  done
fi
rm -rf "$3"
"#;

/// Everything needed to tear one cluster down.
struct LiveCluster {
    root: PathBuf,
    data_dir: PathBuf,
    pg_ctl: PathBuf,
    server_user: Option<ServerUser>,
    reaper: Option<Child>,
}

/// Every cluster of this process that has not been torn down yet.
static LIVE_CLUSTERS: Mutex<Vec<LiveCluster>> = Mutex::new(Vec::new());

/// Tears its cluster down when dropped; held by [`crate::Cluster`] from the moment its
/// temp dir exists, so a cluster whose startup panics is cleaned up too.
#[derive(Debug)]
pub(crate) struct CleanupGuard {
    root: PathBuf,
}

/// Registers a cluster living in `root` (data dir `data_dir`) for cleanup by all three
/// layers, and starts its reaper.
pub(crate) fn register(
    root: &Path,
    data_dir: &Path,
    pg_ctl: &Path,
    server_user: Option<ServerUser>,
) -> CleanupGuard {
    register_atexit();
    let reaper = Command::new("sh")
        .arg("-c")
        .arg(REAPER_SCRIPT)
        .arg("pgward-test-reaper")
        .arg(std::process::id().to_string())
        .arg(data_dir)
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start the cluster reaper (`sh`): {e}"));
    live_clusters().push(LiveCluster {
        root: root.to_path_buf(),
        data_dir: data_dir.to_path_buf(),
        pg_ctl: pg_ctl.to_path_buf(),
        server_user,
        reaper: Some(reaper),
    });
    CleanupGuard {
        root: root.to_path_buf(),
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        let cluster = {
            let mut live = live_clusters();
            live.iter()
                .position(|c| c.root == self.root)
                .map(|i| live.swap_remove(i))
        };
        if let Some(cluster) = cluster {
            tear_down(cluster);
        }
    }
}

/// The registry, usable even after a test panicked while holding it.
fn live_clusters() -> MutexGuard<'static, Vec<LiveCluster>> {
    LIVE_CLUSTERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers [`tear_down_all`] with `atexit`, once per process.
fn register_atexit() {
    static ATEXIT: Once = Once::new();
    ATEXIT.call_once(|| {
        // SAFETY: tear_down_all is an `extern "C" fn()` that never unwinds.
        let rc = unsafe { libc::atexit(tear_down_all) };
        assert_eq!(rc, 0, "could not register the test cleanup with atexit");
    });
}

extern "C" fn tear_down_all() {
    let clusters = std::mem::take(&mut *live_clusters());
    for cluster in clusters {
        tear_down(cluster);
    }
    let servers = std::mem::take(&mut *live_servers());
    for server in servers {
        tear_down_server(server);
    }
}

/// Stops the server and removes the temp dir. Runs in Drop (maybe while unwinding) and
/// in atexit, so it ignores every error instead of panicking.
fn tear_down(mut cluster: LiveCluster) {
    // The reaper goes first so that it cannot signal a recycled postmaster pid later.
    if let Some(mut reaper) = cluster.reaper.take() {
        let _ = reaper.kill();
        let _ = reaper.wait();
    }
    if cluster.data_dir.join("postmaster.pid").exists() {
        let mut stop = Command::new(&cluster.pg_ctl);
        stop.args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&cluster.data_dir)
            .current_dir(&cluster.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(user) = cluster.server_user {
            user.apply(&mut stop);
        }
        let _ = stop.status();
    }
    let _ = std::fs::remove_dir_all(&cluster.root);
}

/// The reaper of a plain server process: waits until the test process ($1) is gone, then
/// kills the server whose pid is in `$2/server.pid` (only if that pid still runs a command
/// naming a path in $2, so a recycled pid is never hit), removes the files the server made
/// outside $2 (listed in `$2/outside-files`) and removes $2.
const PROCESS_REAPER_SCRIPT: &str = r#"
trap '' INT TERM HUP
while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
if [ -f "$2/server.pid" ]; then
  pid=$(cat "$2/server.pid")
  if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2/"; then
    kill -KILL "$pid" 2>/dev/null
    tries=0
    while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 50 ]; do
      sleep 0.1
      tries=$((tries + 1))
    done
  fi
fi
if [ -f "$2/outside-files" ]; then
  while IFS= read -r file; do rm -f -- "$file"; done < "$2/outside-files"
fi
rm -rf "$2"
"#;

/// The file in a server's root listing files outside the root to remove at teardown;
/// written by [`ServerGuard::remove_at_teardown`].
const OUTSIDE_FILES: &str = "outside-files";

/// The file in a server's root that names the pid of its running process, for the reaper
/// and the atexit hook; written by [`ServerGuard::started`].
const SERVER_PID_FILE: &str = "server.pid";

/// A server process (not a PostgreSQL cluster) that must not outlive the test process.
struct LiveServer {
    root: PathBuf,
    reaper: Option<Child>,
}

/// Every server of this process that has not been torn down yet.
static LIVE_SERVERS: Mutex<Vec<LiveServer>> = Mutex::new(Vec::new());

/// Kills its server and removes its root when dropped; the same is done by the atexit
/// hook and, after a SIGKILL of the test process, by the reaper.
#[derive(Debug)]
pub(crate) struct ServerGuard {
    root: PathBuf,
}

/// Registers a server whose files all live in `root` (removed at teardown) for cleanup by
/// all three layers, and starts its reaper. Call [`ServerGuard::started`] with the pid of
/// every process started for it.
pub(crate) fn register_server(root: &Path) -> ServerGuard {
    register_atexit();
    let reaper = Command::new("sh")
        .arg("-c")
        .arg(PROCESS_REAPER_SCRIPT)
        .arg("pgward-test-reaper")
        .arg(std::process::id().to_string())
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start the server reaper (`sh`): {e}"));
    live_servers().push(LiveServer {
        root: root.to_path_buf(),
        reaper: Some(reaper),
    });
    ServerGuard {
        root: root.to_path_buf(),
    }
}

impl ServerGuard {
    /// Records `pid` as the server's running process. Its command line must name a path
    /// inside the root folder, which is how the reaper and the atexit hook recognize it.
    pub(crate) fn started(&self, pid: u32) {
        let file = self.root.join(SERVER_PID_FILE);
        std::fs::write(&file, pid.to_string())
            .unwrap_or_else(|e| panic!("could not write {}: {e}", file.display()));
    }

    /// Has `path`, a file the server makes outside its root (a unix socket in /tmp), removed
    /// at teardown if no process listens on it any more.
    pub(crate) fn remove_at_teardown(&self, path: &Path) {
        let list = self.root.join(OUTSIDE_FILES);
        let line = format!("{}\n", path.display());
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&list)
            .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()))
            .unwrap_or_else(|e| panic!("could not write {}: {e}", list.display()));
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let server = {
            let mut live = live_servers();
            live.iter()
                .position(|s| s.root == self.root)
                .map(|i| live.swap_remove(i))
        };
        if let Some(server) = server {
            tear_down_server(server);
        }
    }
}

fn live_servers() -> MutexGuard<'static, Vec<LiveServer>> {
    LIVE_SERVERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kills the server's process (if it still runs) and removes its root. Like
/// [`tear_down`], never panics.
fn tear_down_server(mut server: LiveServer) {
    if let Some(mut reaper) = server.reaper.take() {
        let _ = reaper.kill();
        let _ = reaper.wait();
    }
    let pid = std::fs::read_to_string(server.root.join(SERVER_PID_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<libc::pid_t>().ok());
    if let Some(pid) = pid {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let inside_root = format!("{}/", server.root.to_string_lossy());
        if String::from_utf8_lossy(&cmdline).contains(&inside_root) {
            // SAFETY: kill has no memory-safety preconditions; the pid runs our server.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            for _ in 0..50 {
                // Our own child stays a zombie (which `kill -0` still finds) until reaped.
                // SAFETY: waitpid with a null status pointer only reaps; kill with signal
                // 0 only checks that the process exists.
                let reaped = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
                if reaped == pid || (reaped == -1 && unsafe { libc::kill(pid, 0) } != 0) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
    let outside = std::fs::read_to_string(server.root.join(OUTSIDE_FILES)).unwrap_or_default();
    for file in outside.lines() {
        // Only a socket nobody listens on: another server may have reused the port.
        let in_use = std::os::unix::net::UnixStream::connect(file).is_ok();
        if !in_use {
            let _ = std::fs::remove_file(file);
        }
    }
    let _ = std::fs::remove_dir_all(&server.root);
}
