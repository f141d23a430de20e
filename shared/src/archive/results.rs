//! The results of the commands that write, read and restore backups (the envelope's
//! `result`), beside the archive they describe: `pgward-backup backup --dry-run` and
//! `verify`, `pgward-restore`, `pgward-report backups`. (`backup`, `list` and `prune` print
//! [`crate::archive::write::DumpResult`], [`crate::archive::inventory::ListResult`] and
//! [`crate::archive::prune::PruneResult`].)

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::archive::inventory::ListedBackup;
use crate::archive::load::LoadReport;
use crate::archive::manifest::ManifestLargeObjects;
use crate::archive::sources::BackupSource;
use crate::archive::verify::{Depth, FileCheck};

/// backup's `result` with `--dry-run`: what a backup would write.
#[derive(Debug, Serialize, Deserialize)]
pub struct BackupPlan {
    /// Always true: nothing was written.
    pub dry_run: bool,
    /// The location it would write to.
    pub location: String,
    /// The tables it would back up.
    pub tables: Vec<PlannedTable>,
    /// Their size in all.
    pub bytes: u64,
    /// The database's large objects (or that they would be left out).
    pub large_objects: ManifestLargeObjects,
}

/// One table of a [`BackupPlan`].
#[derive(Debug, Serialize, Deserialize)]
pub struct PlannedTable {
    /// `schema.table`.
    pub table: String,
    /// Its size.
    pub bytes: u64,
}

/// verify's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyResult {
    /// The backup.
    pub id: String,
    /// Files checked.
    pub files: Vec<FileCheck>,
    /// Whether a scratch restore was part of it.
    pub deep: bool,
    /// The scratch restore, with `--deep`.
    pub restore: Option<LoadReport>,
    /// Each location's copy, checked on its own (with one location: that one); `--deep`
    /// restores the first that passes.
    #[serde(default)] // absent from older documents (`report render`)
    pub copies: Vec<VerifiedCopy>,
}

/// One location's copy of a backup, as verify found it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifiedCopy {
    /// The location.
    pub location: String,
    /// Whether every check passed there (and `verified.json` records it).
    pub verified: bool,
    /// What failed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// restore's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RestoreResult {
    /// The backup restored.
    pub backup: String,
    /// The database (and environment) it is a backup of.
    pub source: BackupSource,
    /// Whether that is another database than the target (or another environment than the
    /// selected one): allowed only for a backup named by its id, never one `latest` or
    /// `--before-migration` picked, and always stated here and in a warning.
    pub other_database: bool,
    /// Where it came from.
    pub location: String,
    /// The database restored into.
    pub target_db: String,
    /// Whether the target was created.
    pub created: bool,
    /// Whether an existing target was replaced.
    pub replaced: bool,
    /// The safety backup of the replaced target.
    pub safety_backup: Option<String>,
    /// Files whose checksums were verified (with `while_loading`, the data files count
    /// once loaded).
    pub verified_files: usize,
    /// How they were read before the target was touched: `decode` (checksums and
    /// decompression), `checksums` (a passing `pgward-backup verify` of the same manifest
    /// had decompressed them), or `while_loading` (a new target: the data files were
    /// checked and decompressed as they loaded into the database renamed to the target
    /// only once all matched; the other files first).
    pub verify_depth: Depth,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// The load, per table and phase.
    pub load: Option<LoadReport>,
}

/// A backup with its age and the gap to the one before it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupRow {
    /// The inventory entry.
    #[serde(flatten)]
    pub backup: ListedBackup,
    /// Seconds between its snapshot and the report.
    pub age_s: f64,
    /// Seconds since the backup before it (none for the oldest).
    pub since_previous_s: Option<f64>,
}

/// The newest backup, in brief.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewestBackup {
    /// Its id.
    pub id: String,
    /// When its snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// How old it is.
    pub age_s: f64,
    /// Its size.
    pub size_bytes: u64,
    /// How long it took.
    pub duration_s: f64,
    /// Whether `verify` has checked it.
    pub verified: bool,
}

/// backups' `result`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupsReport {
    /// The location.
    pub location: String,
    /// When the inventory was read (ages are counted to this moment).
    pub checked_at: DateTime<Utc>,
    /// `--max-age`.
    pub max_age_s: f64,
    /// Whether the newest backup is older than `--max-age` (or there is none).
    pub too_old: bool,
    /// Complete backups.
    pub count: usize,
    /// Of them, verified.
    pub verified_count: usize,
    /// Their total size.
    pub total_bytes: u64,
    /// The newest backup.
    pub newest: Option<NewestBackup>,
    /// The newest verified backup (the one to trust for a restore).
    pub newest_verified: Option<NewestBackup>,
    /// Every complete backup, newest first.
    pub backups: Vec<BackupRow>,
    /// Leftovers of interrupted runs (not backups).
    pub incomplete: Vec<String>,
    /// The database and environment reported on: the URL's (and `--env`'s), or the only
    /// one the location holds backups of. Backups of others are not counted.
    pub source: Option<BackupSource>,
    /// With several locations: each one's complete copies and its newest (a location
    /// whose copies stopped shows an older newest, and the report needs attention).
    #[serde(default)] // absent from older documents (`report render`)
    pub locations: Vec<LocationBackups>,
}

/// One location's share of the backups reported on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocationBackups {
    /// The location.
    pub location: String,
    /// Whether it could be read.
    pub readable: bool,
    /// Complete copies it holds.
    pub count: usize,
    /// The newest of them.
    pub newest: Option<NewestBackup>,
}

/// copy's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CopyResult {
    /// The backup.
    pub id: String,
    /// The location it was read from.
    pub from: String,
    /// Each `--to` location: copied now, or already complete there (`seconds` 0).
    pub copies: Vec<crate::storage::BackupCopy>,
}
