//! Checking a backup without trusting it: every file of the manifest is read back, its
//! size and SHA-256 compared, and zstd files fully decompressed (which checks their
//! content checksums too). `pgward-backup verify` runs it on demand and records the result
//! in `verified.json`; `pgward-restore` runs it before it touches a database, reading only
//! the checksums when that record covers the same manifest ([`restore_depth`]).

use std::io::Read;

use crate::archive::inventory;
use crate::archive::load::{self, LoadOptions, LoadReport};
use crate::archive::manifest::{
    BackupManifest, ManifestFile, VerificationRecord, LARGE_OBJECTS_FILE, SQL_FILE, VERIFIED_FILE,
};
use crate::archive::results::VerifyResult;
use crate::archive::sources::source_in_use;
use crate::codes::WarningCode;
use crate::error::{Error, Exit, Result};
use crate::output::{Context, Failure, VERSION};
use crate::progress::{Counted, Progress};
use crate::storage::{HashingReader, Storage};
use crate::workdb;
use chrono::Utc;
use serde::{Deserialize, Serialize};

/// The outcome for one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileCheck {
    /// Path inside the backup.
    pub path: String,
    /// Whether it matched.
    pub ok: bool,
    /// What was wrong.
    pub problem: Option<String>,
}

/// How far each file is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Depth {
    /// Size and SHA-256, and every zstd file decompressed (its content checksums too).
    Decode,
    /// Size and SHA-256 only: an earlier `verify` decompressed these very bytes.
    Checksums,
    /// Size and SHA-256 of every data file, and its decompression, as the load streams it
    /// into a database that becomes the target only after every file matched (a restore
    /// into a new target); the other files before the load.
    WhileLoading,
}

/// How far a restore must read the backup before it touches the target: the checksums
/// alone when `verified.json` records a passing verify of this very manifest (the
/// manifest's SHA-256 names it, and every file's SHA-256 then proves the bytes are the
/// ones that verify decompressed); otherwise everything is decompressed too.
pub fn restore_depth(storage: &dyn Storage, id: &str, manifest_sha256: &str) -> Depth {
    let record = storage
        .read_small(id, VERIFIED_FILE)
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice::<VerificationRecord>(&bytes).ok());
    match record {
        Some(r) if r.manifest_sha256.as_deref() == Some(manifest_sha256) => Depth::Checksums,
        _ => Depth::Decode,
    }
}

/// Checks `files` of backup `id` with `jobs` readers at once, largest first so that the
/// big chunks are spread over all readers; results come back in the order given.
pub fn check_files(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    files: &[&ManifestFile],
    jobs: usize,
    depth: Depth,
) -> Result<Vec<FileCheck>> {
    let mut order = files.to_vec();
    order.sort_by_key(|f| std::cmp::Reverse(f.size));
    let readers = vec![(); jobs.clamp(1, order.len().max(1))];
    // Reading a big backup takes a while: a bar on a terminal, lines in cron logs.
    let progress = Progress::start("verify", order.iter().map(|f| f.size).sum());
    let checked = crate::archive::workers::try_queue(readers, &order, |(), f| {
        check_file(storage, manifest, f, depth, Some(&progress))
    });
    progress.finish();
    let checked = checked?;
    let mut by_path: std::collections::HashMap<String, FileCheck> =
        checked.into_iter().map(|c| (c.path.clone(), c)).collect();
    Ok(files
        .iter()
        .filter_map(|f| by_path.remove(&f.path))
        .collect())
}

/// The error that blames `file` of backup `id` for a failed load, if it does not check
/// out against the manifest when read again whole (`None` when it does, or when the store
/// itself fails: then the load's own error is the one to report).
pub fn blame(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    file: &ManifestFile,
) -> Option<Error> {
    let id = &manifest.id;
    match check_file(storage, manifest, file, Depth::Decode, None) {
        Ok(FileCheck {
            problem: Some(problem),
            ..
        }) => Some(corrupt(id, &file.path, &problem)),
        _ => None,
    }
}

/// Compares what was read of `file` (its byte count and SHA-256) with the manifest: the
/// problem, if any.
pub fn mismatch(file: &ManifestFile, size: u64, sha256: &str) -> Option<String> {
    if size != file.size {
        Some(format!(
            "size {size} bytes, the manifest says {}",
            file.size
        ))
    } else if sha256 != file.sha256 {
        Some("SHA-256 differs from the manifest (the file was altered)".into())
    } else {
        None
    }
}

/// [`Error::BackupCorrupt`] for one file of backup `id`.
pub fn corrupt(id: &str, path: &str, problem: &str) -> Error {
    Error::BackupCorrupt {
        id: id.to_string(),
        problems: format!("{path}: {problem}"),
        files: vec![path.to_string()],
    }
}

fn check_file(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    file: &ManifestFile,
    depth: Depth,
    progress: Option<&Progress>,
) -> Result<FileCheck> {
    crate::interrupt::check()?;
    let problem = match read_and_hash(storage, manifest, file, depth, progress) {
        Ok((size, sha)) => mismatch(file, size, &sha),
        Err(FileProblem::Storage(e)) => return Err(e),
        Err(FileProblem::Unreadable(reason)) => Some(reason),
    };
    Ok(FileCheck {
        path: file.path.clone(),
        ok: problem.is_none(),
        problem,
    })
}

enum FileProblem {
    /// The store itself failed (network, credentials): not the backup's fault.
    Storage(Error),
    /// The file is missing, truncated or does not decompress.
    Unreadable(String),
}

fn read_and_hash(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    file: &ManifestFile,
    depth: Depth,
    progress: Option<&Progress>,
) -> std::result::Result<(u64, String), FileProblem> {
    let reader = match storage.open(&manifest.id, &file.path) {
        Ok(r) => r,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(FileProblem::Unreadable("missing".into()))
        }
        Err(Error::Storage {
            s3_code: Some(code),
            ..
        }) if code == "NoSuchKey" => return Err(FileProblem::Unreadable("missing".into())),
        Err(e) => return Err(FileProblem::Storage(e)),
    };
    let mut hashing = HashingReader::new(Counted::new(reader, progress));
    if depth != Depth::Checksums && file.path.ends_with(".zst") {
        // A SQL backup's lines are checked as they decompress: one psql would take for a
        // meta-command makes the file bad before anything is touched.
        // An encrypted file decrypts on the way (the hash is of the stored bytes); one
        // that does not, with an identity the manifest names, is a bad file.
        let plain = match crate::archive::crypt::plain(manifest, &file.path, &mut hashing) {
            Ok(plain) => plain,
            Err(Error::BackupKeyMismatch { reason, .. }) => {
                return Err(FileProblem::Unreadable(reason))
            }
            Err(e) => return Err(FileProblem::Storage(e)),
        };
        let decoded = zstd::Decoder::new(plain).and_then(|mut d| {
            if file.path == SQL_FILE {
                crate::archive::load::sql_guard::scan(d)
            } else {
                std::io::copy(&mut d, &mut std::io::sink()).map(|_| None)
            }
        });
        match decoded {
            Err(e) => return Err(FileProblem::Unreadable(format!("does not decompress: {e}"))),
            Ok(Some((line, text))) => {
                return Err(FileProblem::Unreadable(format!(
                    "line {line} is a psql meta-command pgward does not run: `{text}`"
                )))
            }
            Ok(None) => {}
        }
    }
    hashing
        .finish()
        .map_err(|e| FileProblem::Unreadable(format!("cannot be read: {e}")))
}

/// Fails with [`Error::BackupCorrupt`] naming every file that did not check out.
pub fn require_all_ok(id: &str, checks: &[FileCheck]) -> Result<()> {
    let bad: Vec<&FileCheck> = checks.iter().filter(|c| !c.ok).collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(Error::BackupCorrupt {
        id: id.to_string(),
        problems: bad
            .iter()
            .map(|c| format!("{}: {}", c.path, c.problem.as_deref().unwrap_or("bad")))
            .collect::<Vec<_>>()
            .join("; "),
        files: bad.iter().map(|c| c.path.clone()).collect(),
    })
}

/// Reads a whole small file of a backup, checked against the manifest.
pub fn read_checked(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    path: &str,
) -> Result<Vec<u8>> {
    let entry = manifest
        .file(path)
        .ok_or_else(|| corrupt(&manifest.id, path, "not in the manifest"))?;
    let mut bytes = Vec::new();
    storage
        .open(&manifest.id, path)?
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    let sha = hex_sha256(&bytes);
    if let Some(problem) = mismatch(entry, bytes.len() as u64, &sha) {
        return Err(corrupt(&manifest.id, path, &problem));
    }
    if manifest.encryption.is_none() {
        return Ok(bytes);
    }
    let mut plain = Vec::new();
    crate::archive::crypt::plain(manifest, path, bytes.as_slice())?
        .read_to_end(&mut plain)
        .map_err(|e| Error::BackupKeyMismatch {
            id: manifest.id.clone(),
            reason: format!("{path} does not decrypt: {e}"),
        })?;
    Ok(plain)
}

fn hex_sha256(bytes: &[u8]) -> String {
    crate::migrations::checksum(bytes)
}

/// `pgward-backup verify` of backup `id` (an id or `latest`, among the backups of the
/// database in use): every file's checksum and decompression, with `deep` a restore into a
/// scratch database whose row counts must match; when all pass, `verified.json` records
/// it with the SHA-256 of the manifest checked. A backup that fails on its integrity loses
/// an earlier record.
pub fn verify_backup(
    ctx: &Context,
    storage: &dyn Storage,
    id: &str,
    deep: bool,
    jobs: usize,
) -> std::result::Result<VerifyResult, Failure> {
    let id = inventory::resolve_id(storage, id, source_in_use(ctx))?;
    // A manifest that cannot be trusted (unreadable, naming places outside its backup, or
    // not the one an earlier verify recorded) fails here. One altered after a verify keeps
    // its verified.json: the record is the evidence that the manifest changed, and
    // removing it would let the next verify accept the altered manifest.
    if let Err(e) = inventory::read_backup(storage, &id) {
        if !inventory::altered_after_verify(storage, &id) {
            forget_verification(ctx, storage, &id);
        }
        return Err(e.into());
    }
    let checked = check_and_record(ctx, storage, &id, deep, jobs);
    if let Err(failure) = &checked {
        if failure.error.exit() == Exit::Integrity {
            forget_verification(ctx, storage, &id);
        }
    }
    checked
}

/// verify's checks of backup `id` (and with `deep` the scratch restore); when every one
/// passes, `verified.json` records them with the SHA-256 of the manifest they checked.
fn check_and_record(
    ctx: &Context,
    storage: &dyn Storage,
    id: &str,
    deep: bool,
    jobs: usize,
) -> std::result::Result<VerifyResult, Failure> {
    let (manifest, manifest_sha256) = inventory::read_manifest_with_digest(storage, id)?;
    crate::archive::crypt::check_can_decrypt(&manifest)?;
    if let Some(problem) = crate::archive::large_objects::inconsistency(&manifest) {
        return Err(corrupt(id, LARGE_OBJECTS_FILE, problem).into());
    }
    crate::log::info(&format!("verifying {} files of {id}", manifest.files.len()));
    let files = check_files(
        storage,
        &manifest,
        &manifest.files.iter().collect::<Vec<_>>(),
        jobs,
        Depth::Decode,
    )?;
    let mut result = VerifyResult {
        id: id.to_string(),
        files,
        deep,
        restore: None,
        copies: Vec::new(),
    };
    if let Err(e) = require_all_ok(id, &result.files) {
        return Err(Failure::with_result(e, &result));
    }
    if deep {
        let db = ctx.database()?;
        result.restore = Some(
            deep_restore(&db, storage, &manifest, jobs)
                .map_err(|e| Failure::with_result(e, &result))?,
        );
    }
    let record = VerificationRecord {
        verified_at: Utc::now(),
        deep,
        tool_version: VERSION.to_string(),
        manifest_sha256: Some(manifest_sha256),
    };
    storage.write_small(
        id,
        VERIFIED_FILE,
        &serde_json::to_vec_pretty(&record).unwrap_or_default(),
    )?;
    Ok(result)
}

/// A backup that fails a verify on its integrity (exit 5: a file or the `--deep` row
/// counts) is no longer "verified", whatever an earlier verify wrote: `list`,
/// `prune` (which keeps the newest verified backup) and restore (which trusts a
/// record of this manifest) read `verified.json`.
fn forget_verification(ctx: &Context, storage: &dyn Storage, id: &str) {
    if let Err(e) = storage.delete_small(id, VERIFIED_FILE) {
        ctx.warn(
            WarningCode::VerificationRecordKept,
            format!("{id} failed verification, but its earlier {VERIFIED_FILE} could not be removed ({e}); remove it by hand"),
        );
    }
}

/// The name of every scratch database of `verify --deep` begins with this.
const SCRATCH_PREFIX: &str = "pgward_verify_";

/// Restores into a scratch database on the same server, compares row counts (the loader
/// does), and drops it again whatever happens.
fn deep_restore(
    db: &crate::connect::dburl::ConnectionSettings,
    storage: &dyn Storage,
    manifest: &crate::archive::manifest::BackupManifest,
    jobs: usize,
) -> Result<LoadReport> {
    let scratch = format!(
        "{SCRATCH_PREFIX}{}_{}",
        std::process::id(),
        Utc::now().format("%H%M%S")
    );
    let mut admin = crate::connect::connect(db, "pgward-backup")?;
    // Scratch databases of killed runs (marked, nobody on them) go first; another deep
    // verify running beside this one keeps its own.
    for found in workdb::find(&mut admin.client, SCRATCH_PREFIX, true)? {
        if found.is_leftover() {
            workdb::drop_leftover(&mut admin.client, &found)?;
        }
    }
    workdb::create(
        &mut admin.client,
        &scratch,
        manifest,
        &format!(
            "scratch database of pgward-backup verify --deep of backup {}, dropped when it ends; with no session on it, that verify was interrupted, and the next verify --deep drops it",
            manifest.id
        ),
    )?;
    crate::log::info(&format!(
        "restoring {} into scratch database {scratch}",
        manifest.id
    ));
    let loaded = load::load(
        storage,
        manifest,
        &db.with_database(&scratch),
        &LoadOptions {
            jobs,
            ..Default::default()
        },
    );
    let dropped = load::drop_database(&mut admin.client, &scratch);
    let report = loaded?;
    dropped?;
    Ok(report)
}
