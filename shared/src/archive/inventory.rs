//! `pgward-backup list`, and finding a backup by id, `latest`, or "taken before migration
//! X": the manifests are the inventory; folders or prefixes without one are leftovers.

use crate::archive::manifest::{
    check_id, BackupFormat, BackupManifest, VerificationRecord, MANIFEST_FILE, MIGRATIONS_FILE,
    VERIFIED_FILE,
};
use crate::archive::sources::BackupEntry;
use crate::archive::sources::{choose_source, of_source, BackupSource};
use crate::codes::WarningCode;
use crate::error::{Error, Result};
use crate::migrations::history::HistoryRow;
use crate::migrations::{prisma_collator, prisma_order};
use crate::storage::Storage;
use serde::{Deserialize, Serialize};

/// A backup as `list` shows it: the shared inventory entry plus details.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedBackup {
    /// The inventory fields every tool reads.
    #[serde(flatten)]
    pub entry: BackupEntry,
    /// Its format.
    pub format: BackupFormat,
    /// Tables in it.
    pub tables: usize,
    /// Rows in it.
    pub rows: u64,
    /// Seconds the backup took.
    pub duration_s: f64,
    /// Every location holding a complete copy, the one it is read from first (with one
    /// location: that one).
    #[serde(default)] // absent from older documents (`report render`)
    pub copies: Vec<ListedCopy>,
}

/// One complete copy of a listed backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ListedCopy {
    /// Its location.
    pub location: String,
    /// Whether `verify` checked this copy (its own `verified.json`).
    pub verified: bool,
}

/// list's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListResult {
    /// The location.
    pub location: String,
    /// Complete backups, newest first.
    pub backups: Vec<ListedBackup>,
    /// Ids of leftovers of interrupted runs (never restorable; prune removes them).
    pub incomplete: Vec<String>,
    /// Ids of backups being written right now (their writer holds the folder's lock or
    /// keeps its heartbeat fresh): not backups yet, and never pruned.
    #[serde(default)] // absent from older documents (`report render`)
    pub running: Vec<String>,
    /// Backups whose manifest exists but cannot be read: never restorable, never pruned
    /// (someone should look at them), newest id last.
    #[serde(default)] // absent from older documents (`report render`)
    pub damaged: Vec<DamagedBackup>,
}

/// A backup `list` cannot read.
#[derive(Debug, Serialize, Deserialize)]
pub struct DamagedBackup {
    /// Its id.
    pub id: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The warnings a listing deserves, `(code, message)`: `pgward-backup list` and
/// `pgward-report backups` both give them.
pub fn listing_warnings(
    incomplete: &[String],
    damaged: &[DamagedBackup],
) -> Vec<(WarningCode, String)> {
    let mut warnings = Vec::new();
    if !incomplete.is_empty() {
        warnings.push((
            WarningCode::IncompleteBackups,
            format!(
                "{} incomplete leftover(s) of interrupted runs (not backups; `pgward-backup prune` removes them): {}",
                incomplete.len(),
                incomplete.join(", ")
            ),
        ));
    }
    if !damaged.is_empty() {
        warnings.push((
            WarningCode::DamagedBackups,
            format!(
                "{} backup(s) with an unreadable manifest (never restored, never pruned; inspect and remove them by hand): {}",
                damaged.len(),
                damaged
                    .iter()
                    .map(|d| format!("{} ({})", d.id, d.problem))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    warnings
}

/// Reads and parses a backup's manifest; a missing or unreadable one is corruption.
pub fn read_manifest(storage: &dyn Storage, id: &str) -> Result<BackupManifest> {
    read_backup(storage, id).map(|b| b.manifest)
}

/// [`read_manifest`], with the SHA-256 of manifest.json's bytes: what `verified.json`
/// names, so that a later restore knows which manifest a verify checked.
pub fn read_manifest_with_digest(
    storage: &dyn Storage,
    id: &str,
) -> Result<(BackupManifest, String)> {
    read_backup(storage, id).map(|b| (b.manifest, b.manifest_sha256))
}

/// A backup's manifest as [`read_backup`] checked it.
#[derive(Debug, Clone)]
pub struct ReadBackup {
    /// The manifest.
    pub manifest: BackupManifest,
    /// SHA-256 of manifest.json's bytes.
    pub manifest_sha256: String,
    /// manifest.json's bytes, as read (a copy of the backup writes these very bytes).
    pub manifest_bytes: Vec<u8>,
    /// Whether `verified.json` records a passing verify of this very manifest (or, written
    /// by an older pgward, of an unnamed one).
    pub verified: bool,
}

/// The one reader of a backup's manifest, for every command: the backup is addressed by
/// `id`, the folder or prefix it was found under, never by what the manifest says. The
/// manifest must name that id, and its file paths and columns pass
/// [`BackupManifest::check_addresses`]; when `verified.json` records the SHA-256 of the
/// manifest a verify checked, manifest.json must still have it. Anything else is
/// [`Error::BackupCorrupt`]: `list` shows it as damaged, nothing restores or prunes it.
pub fn read_backup(storage: &dyn Storage, id: &str) -> Result<ReadBackup> {
    let corrupt = |problems: String| Error::BackupCorrupt {
        id: id.to_string(),
        problems,
        files: vec![MANIFEST_FILE.to_string()],
    };
    check_id(id).map_err(corrupt)?;
    let bytes = storage.read_small(id, MANIFEST_FILE)?.ok_or_else(|| {
        corrupt(format!(
            "{MANIFEST_FILE} is missing: the backup never finished"
        ))
    })?;
    let manifest = BackupManifest::parse(&bytes, id).map_err(corrupt)?;
    let manifest_sha256 = crate::migrations::checksum(&bytes);
    let record = storage
        .read_small(id, VERIFIED_FILE)?
        .and_then(|b| serde_json::from_slice::<VerificationRecord>(&b).ok());
    let verified = match record.as_ref().and_then(|r| r.manifest_sha256.as_deref()) {
        Some(recorded) if recorded != manifest_sha256 => {
            return Err(corrupt(format!(
                "{MANIFEST_FILE} is not the manifest `pgward-backup verify` checked ({VERIFIED_FILE} records SHA-256 {recorded}, it now has {manifest_sha256}): it was altered after verification"
            )))
        }
        _ => record.is_some(),
    };
    Ok(ReadBackup {
        manifest,
        manifest_sha256,
        manifest_bytes: bytes,
        verified,
    })
}

/// Whether `verified.json` of backup `id` names a manifest SHA-256 that manifest.json, still
/// a readable manifest, no longer has (it was changed after a verify passed). Any read
/// failure: no.
pub fn altered_after_verify(storage: &dyn Storage, id: &str) -> bool {
    let read = |path| storage.read_small(id, path).ok().flatten();
    let recorded = read(VERIFIED_FILE)
        .and_then(|b| serde_json::from_slice::<VerificationRecord>(&b).ok())
        .and_then(|r| r.manifest_sha256);
    // Only a manifest that still reads as one: garbage is damaged whatever the record.
    match (recorded, read(MANIFEST_FILE)) {
        (Some(recorded), Some(bytes)) => {
            recorded != crate::migrations::checksum(&bytes)
                && serde_json::from_slice::<BackupManifest>(&bytes).is_ok()
        }
        _ => false,
    }
}

/// Every complete backup, newest first.
pub fn list(storage: &dyn Storage) -> Result<ListResult> {
    let mut backups = Vec::new();
    let mut damaged = Vec::new();
    for id in storage.list()? {
        let read = match read_backup(storage, &id) {
            Ok(r) => r,
            // A damaged manifest is not a backup anyone should pick, but it is listed
            // apart so that it is noticed rather than silently ignored.
            Err(Error::BackupCorrupt { problems, .. }) => {
                damaged.push(DamagedBackup {
                    id,
                    problem: problems,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut entry = listed(&read.manifest, read.verified);
        entry.copies = copies_of(storage, &id, read.verified);
        backups.push(entry);
    }
    backups.sort_by(|a, b| {
        b.entry
            .created_at
            .cmp(&a.entry.created_at)
            .then(b.entry.id.cmp(&a.entry.id))
    });
    let mut incomplete = Vec::new();
    let mut running = Vec::new();
    for (id, _) in storage.list_incomplete()? {
        if check_id(&id).is_ok() && storage.is_being_written(&id)? {
            running.push(id);
        } else {
            incomplete.push(id);
        }
    }
    incomplete.sort();
    running.sort();
    damaged.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(ListResult {
        location: storage.location(),
        backups,
        incomplete,
        running,
        damaged,
    })
}

/// The complete copies of backup `id`: the first (already read: `verified`), then each
/// other one with its own verification record.
fn copies_of(storage: &dyn Storage, id: &str, verified: bool) -> Vec<ListedCopy> {
    storage
        .holders(id)
        .into_iter()
        .enumerate()
        .map(|(i, holder)| ListedCopy {
            location: holder.location(),
            verified: if i == 0 {
                verified
            } else {
                read_backup(holder, id).is_ok_and(|r| r.verified)
            },
        })
        .collect()
}

fn listed(manifest: &BackupManifest, verified: bool) -> ListedBackup {
    ListedBackup {
        entry: BackupEntry {
            id: manifest.id.clone(),
            database: manifest.database.clone(),
            env: manifest.env.clone(),
            created_at: manifest.snapshot_time,
            size_bytes: manifest.size_bytes(),
            label: manifest.label.clone(),
            migration_head: manifest.migration_head.clone(),
            verified,
        },
        format: manifest.format,
        tables: manifest.tables.len(),
        rows: manifest.total_rows(),
        duration_s: (manifest.finished_at - manifest.started_at).num_milliseconds() as f64 / 1000.0,
        copies: Vec::new(),
    }
}

/// The id `latest` or an id names; an unknown id is an error, an incomplete one is
/// corruption (it exists but never finished). `latest` is the newest backup of `source`
/// (see [`source_for`]): never one of another database or environment.
pub fn resolve_id(
    storage: &dyn Storage,
    requested: &str,
    source: Option<BackupSource>,
) -> Result<String> {
    if requested == "latest" {
        let listing = list(storage)?;
        let source = source_for(&listing, source, "latest")?;
        let entries = entries(&listing);
        if let Some(newest) = of_source(&entries, &source).first() {
            return Ok(newest.id.clone());
        }
        // Only damaged ones of that source: say so rather than "none".
        let prefix = id_prefix(&source);
        if let Some(d) = listing
            .damaged
            .iter()
            .rev()
            .find(|d| d.id.starts_with(&prefix))
        {
            return Err(read_backup(storage, &d.id).err().unwrap_or_else(|| {
                Error::BackupCorrupt {
                    id: d.id.clone(),
                    problems: d.problem.clone(),
                    files: vec![MANIFEST_FILE.to_string()],
                }
            }));
        }
        return Err(not_of_source("latest", &source, &listing));
    }
    check_id(requested).map_err(|problem| {
        Error::usage(
            problem,
            "name a backup by the id `pgward-backup list` shows, or `latest`",
        )
    })?;
    if storage.list()?.iter().any(|id| id == requested) {
        return Ok(requested.to_string());
    }
    if storage
        .list_incomplete()?
        .iter()
        .any(|(id, _)| id == requested)
    {
        return Err(Error::BackupCorrupt {
            id: requested.to_string(),
            problems: format!("{MANIFEST_FILE} is missing: the backup never finished"),
            files: vec![MANIFEST_FILE.to_string()],
        });
    }
    Err(Error::BackupNotFound {
        id: requested.to_string(),
        location: storage.location(),
    })
}

/// The listing's backups as inventory entries, newest first.
fn entries(listing: &ListResult) -> Vec<BackupEntry> {
    listing.backups.iter().map(|b| b.entry.clone()).collect()
}

/// How pgward's own ids of `source` begin (`<database>-<env>-`).
fn id_prefix(source: &BackupSource) -> String {
    let id = crate::archive::manifest::backup_id(
        &source.database,
        source.env.as_deref(),
        chrono::DateTime::UNIX_EPOCH,
    );
    id[..id.rfind('-').map_or(0, |i| i + 1)].to_string()
}

/// The source whose backups `what` chooses among: `configured` (the URL's database and the
/// selected environment), else the only source the location holds; a location with
/// backups of several and nothing configured is a usage error naming them.
pub fn source_for(
    listing: &ListResult,
    configured: Option<BackupSource>,
    what: &str,
) -> Result<BackupSource> {
    match choose_source(&entries(listing), configured) {
        Ok(Some(source)) => Ok(source),
        Ok(None) => Err(Error::BackupNotFound {
            id: what.to_string(),
            location: listing.location.clone(),
        }),
        Err(several) => Err(Error::usage(
            format!(
                "{} holds backups of {}: `{what}` would not know whose to pick",
                listing.location,
                several
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "name the backup by its id (`pgward-backup list` shows them), or say whose backups you mean with --database-url / DATABASE_URL and --env",
        )),
    }
}

/// "No backup of `source`" for `what` (`latest`, "taken before migration X"), naming the
/// sources the location does hold.
fn not_of_source(what: &str, source: &BackupSource, listing: &ListResult) -> Error {
    let others: Vec<String> = crate::archive::sources::sources(&entries(listing))
        .iter()
        .map(ToString::to_string)
        .collect();
    Error::NoBackupOfSource {
        what: what.to_string(),
        wanted: source.to_string(),
        location: listing.location.clone(),
        others,
    }
}

/// The newest backup of `source` in which `migration` was not yet applied: the state to
/// return to when that migration went wrong.
pub fn before_migration(
    storage: &dyn Storage,
    migration: &str,
    source: Option<BackupSource>,
) -> Result<String> {
    let what = format!("taken before migration {migration}");
    let listing = list(storage)?;
    let source = source_for(&listing, source, &what)?;
    let collator = prisma_collator();
    let mut candidates: Vec<(chrono::DateTime<chrono::Utc>, String)> = Vec::new();
    for b in &listing.backups {
        if !source.holds(&b.entry) {
            continue;
        }
        let id = &b.entry.id;
        let rows: Vec<HistoryRow> = storage
            .read_small(id, MIGRATIONS_FILE)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let applied = rows
            .iter()
            .any(|r| r.migration_name == migration && r.is_applied());
        let head_before = b
            .entry
            .migration_head
            .as_deref()
            .is_none_or(|head| prisma_order(&collator, head, migration).is_lt());
        if !applied && head_before {
            candidates.push((b.entry.created_at, id.clone()));
        }
    }
    candidates
        .into_iter()
        .max()
        .map(|(_, id)| id)
        .ok_or_else(|| not_of_source(&what, &source, &listing))
}
