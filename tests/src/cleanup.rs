//! Making sure no PostgreSQL process and no temp dir outlives the test process.
//!
//! Rust never drops statics, so the shared cluster in [`crate::cluster()`] would
//! otherwise be left running after every `cargo test`. Three layers cover the cases:
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
    static ATEXIT: Once = Once::new();
    ATEXIT.call_once(|| {
        // SAFETY: tear_down_all is an `extern "C" fn()` that never unwinds.
        let rc = unsafe { libc::atexit(tear_down_all) };
        assert_eq!(rc, 0, "could not register the cluster cleanup with atexit");
    });
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

extern "C" fn tear_down_all() {
    let clusters = std::mem::take(&mut *live_clusters());
    for cluster in clusters {
        tear_down(cluster);
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
