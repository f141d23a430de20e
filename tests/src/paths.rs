//! Where the workspace, the shared corpus and the test fixtures are.
//!
//! Tests read real projects' Prisma migration histories (the corpus: langfuse's in this
//! crate's fixtures, others from outside the repository when present) and this crate's
//! own fixtures; these helpers find them no matter which directory `cargo test` runs in.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The Cargo workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the pgward-tests crate sits inside the workspace root")
        .to_path_buf()
}

/// The environment variable naming a folder of extra corpus histories
/// (`<folder>/<owner>__<repo>/migrations`).
pub const CORPUS_ENV: &str = "PGWARD_CORPUS";

/// The real-world migration history `name` (`langfuse__langfuse`): its folder holds
/// `migrations/` and `schema-after.sql`.
///
/// langfuse's MIT-licensed history is part of this repository (`tests/fixtures/corpus`).
/// The AGPL-licensed ones are not: they are looked up in the folder named by
/// [`CORPUS_ENV`], then in `shared/corpus` beside the checkout. When a history is found
/// nowhere, this writes one `skipped: corpus not present` line straight to the test's
/// stderr (past the harness's capture, so `cargo test` shows it even for a passing test)
/// and returns `None`; the caller returns without asserting anything else.
pub fn corpus_history(name: &str) -> Option<PathBuf> {
    let root = workspace_root();
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os(CORPUS_ENV) {
        candidates.push(PathBuf::from(dir).join(name));
    }
    candidates.push(fixtures_dir().join("corpus").join(name));
    if let Some(parent) = root.parent() {
        candidates.push(parent.join("shared").join("corpus").join(name));
    }
    if let Some(found) = candidates.iter().find(|c| c.join("migrations").is_dir()) {
        return Some(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    // io::stderr() writes to fd 2 directly: libtest captures only the print macros.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: corpus not present: {name} (looked in {}; set {CORPUS_ENV} to a folder \
         holding it)",
        looked.join(", ")
    );
    None
}

/// A fresh temp folder named `<prefix>…`, removed when the handle drops.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temp dir")
}

/// A path as the `&str` the binaries' arguments take.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// This crate's fixtures folder, `tests/fixtures`, for small hand-made inputs.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}
