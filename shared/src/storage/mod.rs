//! Where backups live: a local folder or `s3://bucket/prefix`, behind one interface.
//!
//! A backup is written through a [`BackupWriter`]: files stream in (never staged whole),
//! each hashed on the way, and nothing counts as a backup until [`BackupWriter::commit`]
//! writes `manifest.json` last (locally: into a hidden `.partial-<id>` folder renamed into
//! place; on S3: the manifest object uploaded after every other object). A run that dies
//! leaves only a leftover that `list` ignores and `prune` removes.

mod copies;
mod hashing;
mod local;
mod s3;

use std::io::{Read, Write};
use std::path::PathBuf;

pub use copies::{copy_to, holds_complete, replicate, BackupCopy, Copies};
pub use hashing::{HashingReader, HashingWriter};

use crate::archive::manifest::ManifestFile;
use crate::error::{Error, Result};

/// The backup locations: the flags (repeated for copies), else the selected environment's
/// `backups`. The first is where backups are written; the others hold copies.
pub fn resolve_locations(
    flags: &[String],
    settings: &crate::config::Settings,
) -> Result<Vec<String>> {
    if !flags.is_empty() {
        return Ok(flags.to_vec());
    }
    settings.backup_locations().ok_or_else(|| {
        Error::usage(
            "no backup location: pass --to/--from, or select an environment with `backups` in pgward.toml",
            "e.g. --to /var/backups/pgward or --to s3://bucket/prefix (repeat it for a second copy)",
        )
    })
}

/// What restore's `--from` names: the locations to read and the backup in them.
/// `LOCATION/ID` (or `LOCATION/latest`) names one location; a bare id or `latest` (no
/// `/`) names that backup in the environment's `backups`, every copy; no flag, the
/// environment's locations without an id (for `--before-migration`).
pub fn resolve_backup(
    flag: Option<&str>,
    settings: &crate::config::Settings,
) -> Result<(Vec<String>, Option<String>)> {
    let Some(text) = flag else {
        return Ok((resolve_locations(&[], settings)?, None));
    };
    let bare = text.trim_end_matches('/');
    let is_id = bare == "latest" || crate::archive::manifest::time_of_id(bare).is_some();
    if !bare.contains('/') && is_id {
        let locations = settings.backup_locations().ok_or_else(|| {
            Error::usage(
                format!("--from {bare} names a backup of the environment's `backups`, and no environment with `backups` is selected"),
                format!("select one (--env NAME), or name the location too: --from /var/backups/pgward/{bare} or --from s3://bucket/prefix/{bare}"),
            )
        })?;
        return Ok((locations, Some(bare.to_string())));
    }
    let (location, id) = Location::parse_with_id(text)?;
    Ok((vec![location.to_string()], id))
}

/// Options for S3 locations: the storage flags of every command that reads or writes
/// backups.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct S3Options {
    /// S3-compatible endpoint, path-style addressing (also AWS_ENDPOINT_URL)
    #[arg(long = "s3-endpoint", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Server-side encryption of uploaded objects: AES256 or aws:kms
    #[arg(long = "sse", value_name = "MODE")]
    pub sse: Option<String>,
    /// S3 storage class of uploaded objects (STANDARD_IA, GLACIER_IR, ...) [default: the environment's s3_storage_class, else the bucket's default]
    #[arg(long = "s3-storage-class", value_name = "CLASS")]
    pub storage_class: Option<String>,
}

/// A backup location as the user names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local folder holding backup folders.
    Local(PathBuf),
    /// A bucket and a key prefix (without trailing slash; may be empty).
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix.
        prefix: String,
    },
}

impl Location {
    /// `s3://bucket/prefix` or a folder path.
    pub fn parse(text: &str) -> Result<Location> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::usage(
                    format!("`{text}` names no bucket"),
                    "write S3 locations as s3://BUCKET/PREFIX",
                ));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if text.contains("://") {
            return Err(Error::usage(
                format!("`{text}` is neither a folder nor an s3:// location"),
                "use a local folder or s3://BUCKET/PREFIX",
            ));
        }
        Ok(Location::Local(PathBuf::from(text)))
    }

    /// Splits `LOCATION/ID` when its last part is a backup id (`latest` included);
    /// otherwise the whole text is the location.
    pub fn parse_with_id(text: &str) -> Result<(Location, Option<String>)> {
        let trimmed = text.trim_end_matches('/');
        if let Some((base, last)) = trimmed.rsplit_once('/') {
            if last == "latest" || crate::archive::manifest::time_of_id(last).is_some() {
                return Ok((Location::parse(base)?, Some(last.to_string())));
            }
        }
        Ok((Location::parse(trimmed)?, None))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// A place holding backups.
pub trait Storage: Send + Sync {
    /// The location, for messages.
    fn location(&self) -> String;
    /// Starts writing backup `id`; it is invisible to `list` until committed.
    fn begin(&self, id: &str) -> Result<Box<dyn BackupWriter>>;
    /// Ids of complete backups (with a manifest), in no particular order.
    fn list(&self) -> Result<Vec<String>>;
    /// Ids of leftovers of interrupted runs (no manifest), with their age in seconds when
    /// known.
    fn list_incomplete(&self) -> Result<Vec<(String, Option<u64>)>>;
    /// Streams one file of a backup.
    fn open(&self, id: &str, path: &str) -> Result<Box<dyn Read + Send>>;
    /// A small file of a backup (manifest, verification record), or `None` if absent.
    fn read_small(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>>;
    /// Writes a small file into a complete backup (the verification record).
    fn write_small(&self, id: &str, path: &str, bytes: &[u8]) -> Result<()>;
    /// Removes a small file of a backup if it is there (a verification record that no
    /// longer holds).
    fn delete_small(&self, id: &str, path: &str) -> Result<()>;
    /// Deletes a backup (complete or not) and everything in it.
    fn delete(&self, id: &str) -> Result<()>;
    /// Whether a leftover (no manifest) is a backup still being written: its writer holds
    /// the folder's lock (local), or its heartbeat is fresh or names a live process on
    /// this machine (S3). `prune` never removes one, whatever its age.
    fn is_being_written(&self, id: &str) -> Result<bool>;
    /// The S3 storage class new objects are written with, when one was chosen.
    fn storage_class(&self) -> Option<String> {
        None
    }
    /// The locations holding a complete copy of backup `id`, the one read first first
    /// (one location: itself, whatever it holds).
    fn holders(&self, id: &str) -> Vec<&dyn Storage>;
}

/// Refuses an id or file path that could address anything but a file of one backup in
/// the location (see [`crate::archive::manifest::check_id`]): every storage call goes through it,
/// whatever handed it the name.
fn check_address(id: &str, path: Option<&str>) -> Result<()> {
    crate::archive::manifest::check_id(id)
        .and_then(|()| path.map_or(Ok(()), crate::archive::manifest::check_path))
        .map_err(|problems| Error::BackupCorrupt {
            id: id.to_string(),
            problems,
            files: path.map(str::to_string).into_iter().collect(),
        })
}

/// How often an S3 writer refreshes its heartbeat object.
pub const HEARTBEAT_SECS: u64 = 20;
/// A heartbeat older than this (three missed refreshes) no longer shows a running writer.
pub const HEARTBEAT_STALE_SECS: u64 = 3 * HEARTBEAT_SECS;

/// Who is writing a backup: what an S3 writer's heartbeat object holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct WriterMark {
    /// Random, unique to this writer: a prefix another writer claimed is not ours.
    pub token: String,
    /// The machine (hostname) and its boot.
    pub host: String,
    /// `/proc/sys/kernel/random/boot_id`, when known.
    pub boot_id: Option<String>,
    /// The writing process.
    pub pid: u32,
    /// Its start time (clock ticks since boot), so that a reused pid is not taken for it.
    pub pid_start: Option<u64>,
}

impl WriterMark {
    /// The mark of this process, with a fresh token.
    pub fn of_this_process() -> WriterMark {
        let pid = std::process::id();
        WriterMark {
            token: format!("{:032x}", rand_u128()),
            host: hostname(),
            boot_id: boot_id(),
            pid,
            pid_start: process_start(pid),
        }
    }

    /// Whether it names a process of this machine (and this boot): `Some(alive)`; `None`
    /// when the writer runs elsewhere and only its heartbeat's age can tell.
    pub fn alive_here(&self) -> Option<bool> {
        if self.host != hostname() || self.boot_id.is_none() || self.boot_id != boot_id() {
            return None;
        }
        Some(self.pid_start.is_some() && process_start(self.pid) == self.pid_start)
    }
}

fn rand_u128() -> u128 {
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        return now ^ (u128::from(std::process::id()) << 96);
    }
    u128::from_le_bytes(bytes)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|b| b.trim().to_string())
}

/// Field 22 of `/proc/PID/stat`: when the process started.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after its end.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Every id one second can give a backup first named `id` is taken in `location`.
fn ids_exhausted(id: &str, location: &str) -> Error {
    Error::usage(
        format!(
            "{} backups named {id} (and {id}-2 to -{}) already exist or are being written in {location}",
            crate::archive::manifest::IDS_PER_SECOND,
            crate::archive::manifest::IDS_PER_SECOND
        ),
        "wait a second (ids carry the UTC second) and run again",
    )
}

/// A backup being written. Its folder or prefix is claimed for this writer alone (locally
/// by creating it, on S3 by a conditional write of its heartbeat object), marked as being
/// written while it lives (a lock the writer holds, or a heartbeat), and checked before the
/// manifest is published: a writer whose files were deleted under it fails
/// ([`Error::BackupRemovedWhileWriting`]) instead of publishing a manifest of files that
/// are gone.
pub trait BackupWriter: Send + Sync {
    /// The backup's id.
    fn id(&self) -> &str;
    /// Creates a file of the backup (path inside the backup, `/`-separated).
    fn create(&self, path: &str) -> Result<FileWriter>;
    /// Checks that every one of `files` is still there as written, then writes the
    /// manifest last and makes the backup visible.
    fn commit(self: Box<Self>, files: &[ManifestFile], manifest: &[u8]) -> Result<()>;
    /// Removes what was written.
    fn abort(self: Box<Self>);
}

/// Where a file's bytes go: a local file or an S3 multipart upload.
pub trait Sink: Write + Send {
    /// Makes the file durable (fsync, or complete the multipart upload).
    fn close(self: Box<Self>) -> Result<()>;
}

/// One file of a backup being written: (encrypted, when the backup is,) hashed and
/// counted on the way to its sink. The size and checksum are those of the stored bytes.
pub struct FileWriter {
    path: String,
    inner: Stage,
}

/// What a file's bytes pass through before the hash: nothing, or age encryption.
enum Stage {
    Clear(HashingWriter<Box<dyn Sink>>),
    Sealed(age::stream::StreamWriter<HashingWriter<Box<dyn Sink>>>),
}

impl FileWriter {
    /// Wraps a sink.
    pub fn new(path: &str, sink: Box<dyn Sink>) -> FileWriter {
        FileWriter {
            path: path.to_string(),
            inner: Stage::Clear(HashingWriter::new(sink)),
        }
    }

    /// The same file, its bytes encrypted to `recipients` (age) before they are hashed and
    /// stored. Only before anything was written.
    pub fn encrypted(self, recipients: &[&dyn age::Recipient]) -> Result<FileWriter> {
        let Stage::Clear(hashing) = self.inner else {
            return Ok(self);
        };
        let (sink, written, _) = hashing.finish();
        debug_assert_eq!(written, 0, "encryption starts before the first byte");
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().copied()).map_err(|e| {
                Error::usage(
                    format!("cannot encrypt {}: {e}", self.path),
                    "check --encrypt-to / encrypt_to",
                )
            })?;
        let sealed = encryptor
            .wrap_output(HashingWriter::new(sink))
            .map_err(|e| write_error(&self.path, e))?;
        Ok(FileWriter {
            path: self.path,
            inner: Stage::Sealed(sealed),
        })
    }

    /// Closes the file; its manifest entry.
    pub fn finish(self) -> Result<ManifestFile> {
        let hashing = match self.inner {
            Stage::Clear(hashing) => hashing,
            Stage::Sealed(sealed) => sealed.finish().map_err(|e| write_error(&self.path, e))?,
        };
        let (sink, size, sha256) = hashing.finish();
        sink.close()?;
        Ok(ManifestFile {
            path: self.path,
            size,
            sha256,
        })
    }
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.inner {
            Stage::Clear(w) => w.write(buf),
            Stage::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            Stage::Clear(w) => w.flush(),
            Stage::Sealed(w) => w.flush(),
        }
    }
}

/// The error behind a failed write to a backup file: the storage error a sink raised (an
/// S3 failure keeps its code and exit 7), else the I/O error itself.
pub fn write_error(path: &str, e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(err) = inner.downcast::<Error>() {
                return *err;
            }
        }
        return Error::io("write", path, std::io::Error::other("storage error"));
    }
    Error::io("write", path, e)
}

/// Opens the storage behind `location`.
pub fn open(location: &Location, s3: &S3Options) -> Result<Box<dyn Storage>> {
    match location {
        Location::Local(root) => Ok(Box::new(local::LocalStorage::new(root.clone()))),
        Location::S3 { bucket, prefix } => Ok(Box::new(s3::S3Storage::connect(
            bucket.clone(),
            prefix.clone(),
            s3,
        )?)),
    }
}

/// The files of `expected` that `found` (path and size of what is there) lacks or holds
/// at another size: what [`BackupWriter::commit`] refuses to publish.
fn missing_files(
    expected: &[ManifestFile],
    found: &std::collections::HashMap<String, u64>,
) -> Option<String> {
    let missing: Vec<String> = expected
        .iter()
        .filter(|f| found.get(&f.path) != Some(&f.size))
        .map(|f| f.path.clone())
        .collect();
    if missing.is_empty() {
        return None;
    }
    let shown = missing
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "{} of its {} files are gone or changed: {shown}{}",
        missing.len(),
        expected.len(),
        if missing.len() > 5 { ", ..." } else { "" }
    ))
}

/// Opens the storage `--to`/`--from` (or the environment's `backups`) names: one location,
/// or the copies of [`Copies`].
pub fn open_storage(
    ctx: &crate::output::Context,
    flags: &[String],
    s3: &S3Options,
) -> Result<Copies> {
    let locations = resolve_locations(flags, &ctx.settings)?;
    open_locations(&locations, &with_env_class(&ctx.settings, s3))
}

/// The S3 options, the storage class defaulting to the environment's `s3_storage_class`.
fn with_env_class(settings: &crate::config::Settings, s3: &S3Options) -> S3Options {
    let mut s3 = s3.clone();
    if s3.storage_class.is_none() {
        s3.storage_class = settings
            .env
            .as_ref()
            .and_then(|e| e.s3_storage_class.clone());
    }
    s3
}

/// Opens every one of `locations` (in order; the same location twice is refused). The
/// first must open; one after it that cannot is left out and noted (see [`Copies`]).
pub fn open_locations(locations: &[String], s3: &S3Options) -> Result<Copies> {
    let mut parsed: Vec<Location> = Vec::new();
    for text in locations {
        let location = Location::parse(text)?;
        if parsed.contains(&location) {
            return Err(Error::usage(
                format!("the backup location {location} is named twice"),
                "name each copy's location once (--to/--from, or `backups` in pgward.toml)",
            ));
        }
        parsed.push(location);
    }
    // The first location, where backups are written, must open; a later one that cannot
    // (S3 down) leaves the others usable: reads go on without it, writes and checks of
    // its copies fail (see Copies).
    let mut members = Vec::new();
    let mut unopened = Vec::new();
    for (i, location) in parsed.iter().enumerate() {
        match open(location, s3) {
            Ok(member) => members.push(member),
            Err(e) if i > 0 => unopened.push((location.to_string(), e.to_string())),
            Err(e) => return Err(e),
        }
    }
    Ok(Copies::new(members, unopened))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let mark = WriterMark::of_this_process();
        assert_eq!(mark.alive_here(), Some(true));
        assert_ne!(mark.token, WriterMark::of_this_process().token);
        let gone = WriterMark {
            pid_start: mark.pid_start.map(|s| s + 1),
            ..mark.clone()
        };
        assert_eq!(
            gone.alive_here(),
            Some(false),
            "a reused pid is not the writer"
        );
        let elsewhere = WriterMark {
            host: "another-host".into(),
            ..mark
        };
        assert_eq!(elsewhere.alive_here(), None);
    }

    #[test]
    fn storage_calls_refuse_addresses_outside_a_backup() {
        assert!(check_address("app-default-20260101T000000Z", Some("data/t1.copy.zst")).is_ok());
        assert!(check_address("../x", None).is_err());
        assert!(check_address("/abs/path", None).is_err());
        assert!(check_address("ok", Some("../../etc/passwd")).is_err());
        assert!(check_address("ok", Some("verified.json")).is_ok());
    }

    #[test]
    fn locations_and_ids() {
        assert_eq!(
            Location::parse("s3://acme/db/prod/").expect("valid"),
            Location::S3 {
                bucket: "acme".into(),
                prefix: "db/prod".into()
            }
        );
        assert_eq!(
            Location::parse("/var/backups").expect("valid"),
            Location::Local("/var/backups".into())
        );
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("gs://bucket").is_err());
        let (loc, id) =
            Location::parse_with_id("s3://acme/prod/app-prod-20261122T031300Z").expect("valid");
        assert_eq!(loc.to_string(), "s3://acme/prod");
        assert_eq!(id.as_deref(), Some("app-prod-20261122T031300Z"));
        let (loc, id) = Location::parse_with_id("/b/latest").expect("valid");
        assert_eq!(
            (loc.to_string(), id.as_deref()),
            ("/b".to_string(), Some("latest"))
        );
        let (_, id) = Location::parse_with_id("/b").expect("valid");
        assert_eq!(id, None);
    }
}
