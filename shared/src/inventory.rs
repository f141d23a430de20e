//! The backup inventory as every tool reads it: `pgward-backup list` prints these entries in
//! `result.backups`, and `pgward-validate preflight` and the reports read them back from that
//! JSON, so binaries that never touch S3 need no storage code to ask "is there a recent,
//! verified backup?".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One complete backup (a folder or S3 prefix with a manifest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupEntry {
    /// `<database>-<env>-<UTC yyyymmddTHHMMSSZ>`.
    pub id: String,
    /// The database backed up.
    pub database: String,
    /// When the snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// Total size of its files.
    pub size_bytes: u64,
    /// `--label`, if any.
    pub label: Option<String>,
    /// The newest applied migration at backup time.
    pub migration_head: Option<String>,
    /// Whether `verify` has checked it since it was written.
    pub verified: bool,
}

/// The newest verified backup, if any.
pub fn newest_verified(entries: &[BackupEntry]) -> Option<&BackupEntry> {
    entries
        .iter()
        .filter(|e| e.verified)
        .max_by_key(|e| e.created_at)
}
