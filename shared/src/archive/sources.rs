//! The backup inventory as every tool reads it: `pgward-backup list` prints these entries in
//! `result.backups`, and `pgward-validate preflight` and the reports read them back from that
//! JSON, so binaries that never touch S3 need no storage code to ask "is there a recent,
//! verified backup?".
//!
//! A location may hold backups of several databases (a restore's safety backup of another
//! database lands beside the backups it restored from; environments may share a bucket).
//! Every choice among them — `latest`, `--before-migration`, prune's `--keep-last`,
//! preflight's recent verified backup, `report backups` — goes through [`BackupSource`]
//! and [`of_source`] here: only backups of the database (and environment) in question are
//! candidates.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One complete backup (a folder or S3 prefix with a manifest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupEntry {
    /// `<database>-<env>-<UTC yyyymmddTHHMMSSZ>`.
    pub id: String,
    /// The database backed up.
    pub database: String,
    /// The environment it was taken in (`--env`), if any.
    #[serde(default)]
    pub env: Option<String>,
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

impl BackupEntry {
    /// The database and environment it is a backup of.
    pub fn source(&self) -> BackupSource {
        BackupSource {
            database: self.database.clone(),
            env: self.env.clone(),
        }
    }
}

/// What a backup is a backup of: a database name and the environment it was taken in
/// (`None`: none selected, shown as `default` as in backup ids).
/// The part of `pgward-backup list`'s result other binaries read: its backups.
#[derive(Debug, Clone, Deserialize)]
pub struct Listing {
    /// Every complete backup of the location, newest first.
    pub backups: Vec<BackupEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackupSource {
    /// The database name.
    pub database: String,
    /// The environment, if one was selected.
    pub env: Option<String>,
}

impl BackupSource {
    /// The source `database` in environment `env`.
    pub fn new(database: &str, env: Option<&str>) -> BackupSource {
        BackupSource {
            database: database.to_string(),
            env: env.map(str::to_string),
        }
    }

    /// Whether `entry` is a backup of this source.
    pub fn holds(&self, entry: &BackupEntry) -> bool {
        entry.database == self.database && entry.env == self.env
    }
}

impl std::fmt::Display for BackupSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "database {} (env {})",
            self.database,
            self.env.as_deref().unwrap_or("default")
        )
    }
}

/// The entries that are backups of `source`, in the order given.
pub fn of_source<'a>(entries: &'a [BackupEntry], source: &BackupSource) -> Vec<&'a BackupEntry> {
    entries.iter().filter(|e| source.holds(e)).collect()
}

/// Every source with backups among `entries`, in order.
pub fn sources(entries: &[BackupEntry]) -> Vec<BackupSource> {
    let mut all: Vec<BackupSource> = entries.iter().map(BackupEntry::source).collect();
    all.sort();
    all.dedup();
    all
}

/// Whose backups `latest`, `--before-migration`, prune, preflight and the reports choose
/// among: the database of the URL in use (flag, environment, `pgward.toml`) and the
/// selected environment; `None` without a URL (then a location must hold one database's
/// backups for a choice to mean anything).
pub fn source_in_use(ctx: &crate::output::Context) -> Option<BackupSource> {
    ctx.database()
        .ok()
        .map(|db| BackupSource::new(&db.dbname, ctx.settings.env_name.as_deref()))
}

/// The source a command acts for: `configured` (the database of the URL in use and the
/// selected environment) when there is one; otherwise the one source of a location that
/// holds backups of only one. `Err` lists the sources when the choice is not clear.
pub fn choose_source(
    entries: &[BackupEntry],
    configured: Option<BackupSource>,
) -> Result<Option<BackupSource>, Vec<BackupSource>> {
    if configured.is_some() {
        return Ok(configured);
    }
    let all = sources(entries);
    match all.len() {
        0 => Ok(None),
        1 => Ok(all.into_iter().next()),
        _ => Err(all),
    }
}

/// The newest verified backup of `source`, if any.
pub fn newest_verified<'a>(
    entries: &'a [BackupEntry],
    source: &BackupSource,
) -> Option<&'a BackupEntry> {
    of_source(entries, source)
        .into_iter()
        .filter(|e| e.verified)
        .max_by_key(|e| (e.created_at, e.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, database: &str, env: Option<&str>, verified: bool) -> BackupEntry {
        BackupEntry {
            id: id.into(),
            database: database.into(),
            env: env.map(Into::into),
            created_at: crate::archive::manifest::time_of_id(id).expect("an id with a time"),
            size_bytes: 1,
            label: None,
            migration_head: None,
            verified,
        }
    }

    #[test]
    fn only_backups_of_the_source_are_candidates() {
        let entries = vec![
            entry("app-prod-20260101T000000Z", "app", Some("prod"), true),
            entry("app-default-20260102T000000Z", "app", None, true),
            entry("other-prod-20260103T000000Z", "other", Some("prod"), true),
        ];
        let prod = BackupSource::new("app", Some("prod"));
        assert_eq!(
            newest_verified(&entries, &prod).map(|e| e.id.as_str()),
            Some("app-prod-20260101T000000Z"),
            "a newer backup of another database or environment is never picked"
        );
        assert_eq!(
            of_source(&entries, &BackupSource::new("app", None)).len(),
            1
        );
        assert_eq!(sources(&entries).len(), 3);
        assert_eq!(choose_source(&entries, Some(prod.clone())), Ok(Some(prod)));
        assert!(choose_source(&entries, None).is_err());
        assert_eq!(
            choose_source(&entries[..1], None),
            Ok(Some(BackupSource::new("app", Some("prod"))))
        );
        // An older pgward's listing has no env: read as none.
        let old: BackupEntry = serde_json::from_value(serde_json::json!({
            "id": "app-default-20260102T000000Z", "database": "app",
            "created_at": "2026-01-02T00:00:00Z", "size_bytes": 1, "label": null,
            "migration_head": null, "verified": false
        }))
        .expect("an entry without env reads");
        assert_eq!(old.env, None);
    }
}
