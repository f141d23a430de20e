//! Backups in a local folder: `<root>/<id>/...`, written under `<root>/.partial-<id>` and
//! renamed into place after the manifest, so a folder named like a backup is always whole.
//! Folders are created 0700 and files 0600: backups hold the whole database.
//!
//! The writer holds an exclusive `flock` on its `.partial-` folder from creation to
//! publication (the kernel drops it when the process dies, however it dies): `prune`
//! leaves a locked leftover alone whatever its age. Every rename is followed by an fsync of
//! the folder that holds the new name, so a published backup or `verified.json` survives a
//! power loss.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{check_address, BackupWriter, FileWriter, Sink, Storage};
use crate::archive::manifest::{ManifestFile, MANIFEST_FILE};
use crate::error::{Error, Result};

/// Name prefix of a backup folder still being written.
const PARTIAL_PREFIX: &str = ".partial-";

/// A local folder of backups.
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Backups under `root`.
    pub fn new(root: PathBuf) -> LocalStorage {
        LocalStorage { root }
    }

    fn entries(&self) -> Result<Vec<(String, PathBuf)>> {
        let read = fs::read_dir(&self.root).map_err(|e| Error::io("read", &self.root, e))?;
        let mut out = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| Error::io("read", &self.root, e))?;
            if let Some(name) = entry.file_name().to_str() {
                if entry.path().is_dir() {
                    out.push((name.to_string(), entry.path()));
                }
            }
        }
        Ok(out)
    }
}

fn create_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io("create", path, e))
}

fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", path, e))
}

/// Writes `bytes` to `path` through a temporary file and a rename, mode 0600, then fsyncs
/// the folder so that the rename itself is durable. The temporary file is created new
/// (`O_EXCL`): a file or symlink already there under its name (a killed run's, or one
/// planted to redirect the write) is removed, never written through.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    if fs::symlink_metadata(&tmp).is_ok_and(|m| !m.is_dir()) {
        fs::remove_file(&tmp).map_err(|e| Error::io("remove", &tmp, e))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Takes an exclusive `flock` on `file`; with `wait: false`, `Ok(false)` when another open
/// file description holds one. (`File::lock` needs Rust 1.89; the MSRV is older.)
fn flock(file: &File, wait: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let operation = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock only acts on the descriptor, which `file` keeps open.
    let rc = unsafe { libc::flock(file.as_raw_fd(), operation) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Whether the folder at `path` is locked by a writer (see [`LocalWriter`]). The probe's
/// own lock, if it gets one, goes with the descriptor at once.
fn locked(path: &Path) -> bool {
    File::open(path)
        .and_then(|dir| flock(&dir, false))
        .is_ok_and(|got| !got)
}

impl Storage for LocalStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn holders(&self, _id: &str) -> Vec<&dyn Storage> {
        vec![self]
    }

    fn begin(&self, id: &str) -> Result<Box<dyn BackupWriter>> {
        create_dir(&self.root)?;
        for candidate in crate::archive::manifest::id_candidates(id) {
            let partial = self.root.join(format!("{PARTIAL_PREFIX}{candidate}"));
            if self.root.join(&candidate).exists() || partial.exists() {
                continue;
            }
            // Not recursive: of two runs starting in the same second, exactly one
            // creates it; the other takes the next id.
            match DirBuilder::new().mode(0o700).create(&partial) {
                Ok(()) => {
                    // Waiting: only a prune's probe can hold it, for an instant; the
                    // folder is this writer's alone.
                    let lock = File::open(&partial)
                        .and_then(|dir| flock(&dir, true).map(|_| dir))
                        .map_err(|e| Error::io("lock", &partial, e))?;
                    return Ok(Box::new(LocalWriter {
                        root: self.root.clone(),
                        id: candidate,
                        partial,
                        lock,
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", &partial, e)),
            }
        }
        Err(super::ids_exhausted(id, &self.location()))
    }

    fn list(&self) -> Result<Vec<String>> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|(name, path)| !name.starts_with('.') && path.join(MANIFEST_FILE).is_file())
            .map(|(name, _)| name)
            .collect())
    }

    fn list_incomplete(&self) -> Result<Vec<(String, Option<u64>)>> {
        let now = std::time::SystemTime::now();
        Ok(self
            .entries()?
            .into_iter()
            .filter_map(|(name, path)| {
                let id = match name.strip_prefix(PARTIAL_PREFIX) {
                    Some(id) => id.to_string(),
                    None if !name.starts_with('.')
                        && crate::archive::manifest::time_of_id(&name).is_some()
                        && !path.join(MANIFEST_FILE).is_file() =>
                    {
                        name.clone()
                    }
                    None => return None,
                };
                let age = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .map(|d| d.as_secs());
                Some((id, age))
            })
            .collect())
    }

    fn open(&self, id: &str, path: &str) -> Result<Box<dyn Read + Send>> {
        check_address(id, Some(path))?;
        let file_path = self.root.join(id).join(path);
        let file = File::open(&file_path).map_err(|e| Error::io("read", &file_path, e))?;
        Ok(Box::new(UncachingReader(
            std::io::BufReader::with_capacity(1 << 20, file),
        )))
    }

    fn read_small(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
        check_address(id, Some(path))?;
        let file_path = self.root.join(id).join(path);
        match fs::read(&file_path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &file_path, e)),
        }
    }

    fn write_small(&self, id: &str, path: &str, bytes: &[u8]) -> Result<()> {
        check_address(id, Some(path))?;
        write_atomically(&self.root.join(id).join(path), bytes)
    }

    fn delete_small(&self, id: &str, path: &str) -> Result<()> {
        check_address(id, Some(path))?;
        let file_path = self.root.join(id).join(path);
        match fs::remove_file(&file_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("remove", &file_path, e))
            }
            _ => sync_dir(&self.root.join(id)).or_else(|e| match e {
                // The backup itself is gone: nothing left to make durable.
                Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
                e => Err(e),
            }),
        }
    }

    fn is_being_written(&self, id: &str) -> Result<bool> {
        check_address(id, None)?;
        Ok([
            self.root.join(format!("{PARTIAL_PREFIX}{id}")),
            self.root.join(id),
        ]
        .iter()
        .any(|dir| locked(dir)))
    }

    fn delete(&self, id: &str) -> Result<()> {
        check_address(id, None)?;
        for dir in [
            self.root.join(id),
            self.root.join(format!("{PARTIAL_PREFIX}{id}")),
        ] {
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
            }
        }
        Ok(())
    }
}

struct LocalWriter {
    root: PathBuf,
    id: String,
    partial: PathBuf,
    /// The `.partial-` folder, opened and exclusively locked (`flock`) until the writer is
    /// dropped: published or aborted. Its inode also tells whether the folder at the
    /// partial path is still the one this writer created.
    lock: File,
}

impl LocalWriter {
    /// Fails unless the `.partial-` folder is still the one this writer created and holds
    /// every one of `files` at its size: a folder deleted under a running backup (and
    /// perhaps created again by a late file) is never published.
    fn check_intact(&self, files: &[ManifestFile]) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let gone = |reason: String| Error::BackupRemovedWhileWriting {
            id: self.id.clone(),
            location: self.root.display().to_string(),
            reason,
        };
        let held = self
            .lock
            .metadata()
            .map_err(|e| Error::io("check", &self.partial, e))?;
        match fs::metadata(&self.partial) {
            Ok(m) if (m.dev(), m.ino()) == (held.dev(), held.ino()) => {}
            Ok(_) => {
                return Err(gone(format!(
                    "{} was deleted and made again",
                    self.partial.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(gone(format!("{} was deleted", self.partial.display())))
            }
            Err(e) => return Err(Error::io("check", &self.partial, e)),
        }
        let found = files
            .iter()
            .filter_map(|f| {
                fs::metadata(self.partial.join(&f.path))
                    .ok()
                    .map(|m| (f.path.clone(), m.len()))
            })
            .collect();
        match super::missing_files(files, &found) {
            Some(reason) => Err(gone(reason)),
            None => Ok(()),
        }
    }
}

struct LocalSink {
    path: PathBuf,
    file: BufWriter<File>,
}

impl Write for LocalSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Sink for LocalSink {
    fn close(self: Box<Self>) -> Result<()> {
        let path = self.path;
        let file = self
            .file
            .into_inner()
            .map_err(|e| Error::io("write", &path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io("sync", &path, e))?;
        drop_cached(&file);
        Ok(())
    }
}

/// Reads a backup file and, when done, drops it from the page cache (see
/// [`drop_cached`]): a restore reads each file once.
struct UncachingReader(std::io::BufReader<File>);

impl Read for UncachingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Drop for UncachingReader {
    fn drop(&mut self) {
        drop_cached(self.0.get_ref());
    }
}

/// Asks the kernel to drop `file`'s pages from its cache once they are on disk: a backup
/// is written once and read back rarely, and on a database host its gigabytes would
/// otherwise push the server's own cached pages out.
fn drop_cached(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: posix_fadvise only reads the descriptor, which `file` keeps open; it is
        // advice, and its result changes nothing we rely on.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
    // Elsewhere the kernel keeps the pages until it needs them.
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

impl BackupWriter for LocalWriter {
    fn id(&self) -> &str {
        &self.id
    }

    fn create(&self, path: &str) -> Result<FileWriter> {
        check_address(&self.id, Some(path))?;
        let file_path = self.partial.join(path);
        // Subfolders one level at a time, never the `.partial-` folder itself: if it was
        // deleted under the writer, creating a file fails instead of making it again.
        if let Some((folder, _)) = path.rsplit_once('/') {
            let mut dir = self.partial.clone();
            for part in folder.split('/') {
                dir.push(part);
                match DirBuilder::new().mode(0o700).create(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(Error::BackupRemovedWhileWriting {
                            id: self.id.clone(),
                            location: self.root.display().to_string(),
                            reason: format!("cannot create {}: {e}", dir.display()),
                        })
                    }
                    _ => {}
                }
            }
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file_path)
            .map_err(|e| Error::io("create", &file_path, e))?;
        Ok(FileWriter::new(
            path,
            Box::new(LocalSink {
                path: file_path,
                file: BufWriter::with_capacity(1 << 20, file),
            }),
        ))
    }

    fn commit(self: Box<Self>, files: &[ManifestFile], manifest: &[u8]) -> Result<()> {
        self.check_intact(files)?;
        // Every subfolder's entries (data/) are made durable before the manifest names
        // them; the manifest's own rename syncs the backup folder.
        let mut folders: Vec<&str> = files
            .iter()
            .filter_map(|f| f.path.rsplit_once('/').map(|(dir, _)| dir))
            .collect();
        folders.sort_unstable();
        folders.dedup();
        for folder in folders {
            sync_dir(&self.partial.join(folder))?;
        }
        write_atomically(&self.partial.join(MANIFEST_FILE), manifest)?;
        let done = self.root.join(&self.id);
        fs::rename(&self.partial, &done).map_err(|e| Error::io("rename", &done, e))?;
        sync_dir(&self.root)?;
        sync_dir(&done)
    }

    fn abort(self: Box<Self>) {
        // Best effort: what remains is a `.partial-` leftover that prune removes.
        let _ = fs::remove_dir_all(&self.partial);
    }
}
