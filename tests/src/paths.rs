//! Where the workspace, the shared corpus and the test fixtures are.
//!
//! Tests read migration folders from the shared corpus (real projects' Prisma
//! migrations, kept beside the checkout in `shared/corpus`) and from this crate's own
//! fixtures; these helpers find them no matter which directory `cargo test` runs in.

use std::path::{Path, PathBuf};

/// The Cargo workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the pgward-tests crate sits inside the workspace root")
        .to_path_buf()
}

/// The shared corpus of real-world migration folders: `shared/corpus` beside the
/// workspace checkout. Panics if it is missing.
pub fn corpus_dir() -> PathBuf {
    let root = workspace_root();
    let corpus = root
        .parent()
        .expect("the workspace root has a parent folder")
        .join("shared")
        .join("corpus");
    assert!(
        corpus.is_dir(),
        "the shared corpus is missing: expected {} (the `shared/` folder beside the \
         workspace checkout {})",
        corpus.display(),
        root.display()
    );
    corpus
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
