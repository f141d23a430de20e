//! `pgward-backup list`, and finding a backup by id, `latest`, or "taken before migration
//! X": the manifests are the inventory; folders or prefixes without one are leftovers.

use pgward_shared::error::{Error, Result};
use pgward_shared::history::HistoryRow;
use pgward_shared::inventory::BackupEntry;
use pgward_shared::manifest::{
    time_of_id, BackupFormat, BackupManifest, MANIFEST_FILE, MIGRATIONS_FILE, VERIFIED_FILE,
};
use pgward_shared::migrations::{prisma_collator, prisma_order};
use pgward_shared::storage::Storage;
use serde::Serialize;

/// A backup as `list` shows it: the shared inventory entry plus details.
#[derive(Debug, Clone, Serialize)]
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
}

/// list's `result`.
#[derive(Debug, Serialize)]
pub struct ListResult {
    /// The location.
    pub location: String,
    /// Complete backups, newest first.
    pub backups: Vec<ListedBackup>,
    /// Ids of leftovers of interrupted runs (never restorable; prune removes them).
    pub incomplete: Vec<String>,
    /// Backups whose manifest exists but cannot be read: never restorable, never pruned
    /// (someone should look at them), newest id last.
    pub damaged: Vec<DamagedBackup>,
}

/// A backup `list` cannot read.
#[derive(Debug, Serialize)]
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
) -> Vec<(&'static str, String)> {
    let mut warnings = Vec::new();
    if !incomplete.is_empty() {
        warnings.push((
            "INCOMPLETE_BACKUPS",
            format!(
                "{} incomplete leftover(s) of interrupted runs (not backups; `pgward-backup prune` removes them): {}",
                incomplete.len(),
                incomplete.join(", ")
            ),
        ));
    }
    if !damaged.is_empty() {
        warnings.push((
            "DAMAGED_BACKUPS",
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
    read_manifest_with_digest(storage, id).map(|(manifest, _)| manifest)
}

/// [`read_manifest`], with the SHA-256 of manifest.json's bytes: what `verified.json`
/// names, so that a later restore knows which manifest a verify checked.
pub fn read_manifest_with_digest(
    storage: &dyn Storage,
    id: &str,
) -> Result<(BackupManifest, String)> {
    let bytes = storage
        .read_small(id, MANIFEST_FILE)?
        .ok_or_else(|| Error::BackupCorrupt {
            id: id.to_string(),
            problems: format!("{MANIFEST_FILE} is missing: the backup never finished"),
            files: vec![MANIFEST_FILE.to_string()],
        })?;
    let manifest = serde_json::from_slice(&bytes).map_err(|e| Error::BackupCorrupt {
        id: id.to_string(),
        problems: format!("{MANIFEST_FILE} cannot be read: {e}"),
        files: vec![MANIFEST_FILE.to_string()],
    })?;
    Ok((manifest, pgward_shared::migrations::checksum(&bytes)))
}

/// Every complete backup, newest first.
pub fn list(storage: &dyn Storage) -> Result<ListResult> {
    let mut backups = Vec::new();
    let mut damaged = Vec::new();
    for id in storage.list()? {
        let manifest = match read_manifest(storage, &id) {
            Ok(m) => m,
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
        let verified = storage.read_small(&id, VERIFIED_FILE)?.is_some();
        backups.push(listed(&manifest, verified));
    }
    backups.sort_by(|a, b| {
        b.entry
            .created_at
            .cmp(&a.entry.created_at)
            .then(b.entry.id.cmp(&a.entry.id))
    });
    let mut incomplete: Vec<String> = storage
        .list_incomplete()?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    incomplete.sort();
    damaged.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(ListResult {
        location: storage.location(),
        backups,
        incomplete,
        damaged,
    })
}

fn listed(manifest: &BackupManifest, verified: bool) -> ListedBackup {
    ListedBackup {
        entry: BackupEntry {
            id: manifest.id.clone(),
            database: manifest.database.clone(),
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
    }
}

/// The id `latest` or an id names; an unknown id is an error, an incomplete one is
/// corruption (it exists but never finished).
pub fn resolve_id(storage: &dyn Storage, requested: &str) -> Result<String> {
    let complete = storage.list()?;
    if requested == "latest" {
        // The newest backup whose manifest reads: a damaged one is for `verify` to name,
        // not for `latest` to pick.
        let mut by_time: Vec<_> = complete
            .into_iter()
            .filter_map(|id| time_of_id(&id).map(|t| (t, id)))
            .collect();
        by_time.sort();
        let mut newest_damaged = None;
        for (_, id) in by_time.into_iter().rev() {
            match read_manifest(storage, &id) {
                Ok(_) => return Ok(id),
                Err(e) => {
                    newest_damaged.get_or_insert(e);
                }
            }
        }
        // Only damaged ones: say so rather than "none".
        return Err(newest_damaged.unwrap_or_else(|| Error::BackupNotFound {
            id: "latest".into(),
            location: storage.location(),
        }));
    }
    if complete.iter().any(|id| id == requested) {
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

/// The newest backup in which `migration` was not yet applied: the state to return to
/// when that migration went wrong.
pub fn before_migration(storage: &dyn Storage, migration: &str) -> Result<String> {
    let collator = prisma_collator();
    let mut candidates: Vec<(chrono::DateTime<chrono::Utc>, String)> = Vec::new();
    for id in storage.list()? {
        let Ok(manifest) = read_manifest(storage, &id) else {
            continue;
        };
        let rows: Vec<HistoryRow> = storage
            .read_small(&id, MIGRATIONS_FILE)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let applied = rows
            .iter()
            .any(|r| r.migration_name == migration && r.is_applied());
        let head_before = manifest
            .migration_head
            .as_deref()
            .is_none_or(|head| prisma_order(&collator, head, migration).is_lt());
        if !applied && head_before {
            candidates.push((manifest.snapshot_time, id));
        }
    }
    candidates
        .into_iter()
        .max()
        .map(|(_, id)| id)
        .ok_or_else(|| Error::BackupNotFound {
            id: format!("taken before migration {migration}"),
            location: storage.location(),
        })
}
