//! The private folder the schema archive and pg_restore's `--use-list` files are written
//! to: readable by this user only, removed when dropped (also on an error).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A new folder under the system's temporary folder, mode 0700, removed when dropped.
pub(super) fn folder() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("pgward-restore-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|e| Error::io("create", std::env::temp_dir(), e))
}

/// Writes file `name` into `dir` with mode 0600, created new: never written through a
/// file or link already there.
pub(super) fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Error::io("write", &path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::{folder, write_new};

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn the_staging_folder_is_private_written_once_and_removed_when_dropped() {
        let staging = folder().expect("a staging folder");
        let dir = staging.path().to_path_buf();
        assert_eq!(mode(&dir), 0o700, "readable by this user only");
        assert!(dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pgward-restore-")));
        let list = write_new(&dir, "rest.list", b"1; 2 3 TABLE public t u\n").expect("written");
        assert_eq!(mode(&list), 0o600);
        assert_eq!(
            std::fs::read(&list).expect("read back"),
            b"1; 2 3 TABLE public t u\n"
        );
        assert!(
            write_new(&dir, "rest.list", b"again").is_err(),
            "never written through a file already there"
        );
        drop(staging);
        assert!(!dir.exists(), "removed with everything in it");
    }
}
