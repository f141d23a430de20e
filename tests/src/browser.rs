//! Headless Chromium for the tests of the HTML pages: measuring a page shown at a given
//! width (a phone's 390 pixels too, though headless Chromium lays its own window out at
//! no less than 500) and keeping screenshots where people can look at them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::paths::{path_str, temp_dir, workspace_root};

/// Debian's Chromium (`apt-get install chromium`, which scripts/lib/install.sh runs).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `target/test-artifacts/GROUP` (under CARGO_TARGET_DIR when set), created.
pub fn artefacts(group: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = target.join("test-artifacts").join(group);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Runs headless Chromium on the file `page` in a `width` x `height` window with `extra`
/// arguments (`--dump-dom`, `--screenshot=PATH`, ...), reading local files allowed;
/// returns its stdout. Panics, with Chromium's stderr, when it fails.
pub fn headless(page: &Path, width: u32, height: u32, extra: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium), or run bash scripts/test.sh, which does"
    );
    let profile = temp_dir("chromium_profile_");
    let mut command = Command::new(CHROMIUM);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--disable-sync",
        "--disable-background-networking",
        "--force-device-scale-factor=1",
        "--allow-file-access-from-files",
    ]);
    command
        .arg(format!("--user-data-dir={}", path_str(profile.path())))
        .arg(format!("--window-size={width},{height}"))
        .args(extra)
        .arg(format!("file://{}", path_str(page)))
        .stdin(Stdio::null());
    let out = command.output().expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium failed on {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
