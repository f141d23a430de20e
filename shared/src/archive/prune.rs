//! `pgward-backup prune`: retention for cron. Keeps what the rules of [`Retention`] keep
//! (`--keep-last`, `--keep-days`, and grandfather-father-son `--keep-daily`,
//! `--keep-weekly`, `--keep-monthly`; or the environment's `retention` table), and always
//! the newest verified backup, whatever the numbers say. It acts on the backups of one database and environment: the one in use
//! (the URL's database and `--env`), or the only one the location holds; a location
//! holding several with none in use is refused. So a staging cron never applies its
//! retention to production's backups in a shared bucket, and a restore's safety backup of
//! another database is not pruned by this one's rules. `--all-databases` applies the rules
//! to every database's backups, each apart. Removes leftovers of interrupted runs older
//! than `--leftover-age`, never one whose writer is still running.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::storage::Storage;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::retention::{KeepReason, Retention};

use crate::archive::inventory;
use crate::archive::sources::{
    choose_source, newest_verified, of_source, sources, BackupEntry, BackupSource,
};

/// Retention rules.
#[derive(Debug, Clone)]
pub struct PruneRules {
    /// What to keep.
    pub retention: Retention,
    /// Where the rules come from: `flags`, or the environment's table of pgward.toml.
    pub retention_from: String,
    /// Remove leftovers older than this (a younger one may be a backup still running).
    pub leftover_age: Duration,
    /// The database and environment in use, whose backups the rules apply to.
    pub source: Option<BackupSource>,
    /// Apply the rules to every database's backups (each apart) instead.
    pub all_databases: bool,
}

/// prune's `result`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneResult {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// The rules applied (the newest verified backup is kept besides; absent in documents
    /// of older versions).
    #[serde(default)]
    pub rules: Retention,
    /// Where they come from: `flags`, or `pgward.toml [env.NAME.retention]`.
    #[serde(default)]
    pub rules_from: String,
    /// Backups kept, with why.
    pub kept: Vec<KeptBackup>,
    /// Backups deleted (dry run: to be deleted).
    pub deleted: Vec<String>,
    /// Leftovers of interrupted runs deleted.
    pub leftovers_deleted: Vec<String>,
    /// Backups still being written (their writer holds the lock or its heartbeat is
    /// fresh), left alone whatever their age.
    #[serde(default)] // absent from older documents (`report render`)
    pub leftovers_running: Vec<String>,
    /// With several locations: each location's own prune (the fields above are the
    /// first's), in order. Empty with one location.
    #[serde(default)] // absent from older documents (`report render`)
    pub locations: Vec<PrunedLocation>,
}

/// One location's prune, when there are several: the rules applied to the backups it
/// holds, its own newest verified copy kept, its own leftovers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrunedLocation {
    /// The location.
    pub location: String,
    /// Its prune; `None` when it could not be pruned (`problem` says why).
    pub result: Option<PruneResult>,
    /// Why it could not be pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A kept backup and the rule that kept it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptBackup {
    /// The id.
    pub id: String,
    /// The first rule that keeps it: `keep-last`, `keep-days`, `keep-daily`,
    /// `keep-weekly`, `keep-monthly` or `newest-verified`.
    pub reason: KeepReason,
}

impl PruneResult {
    /// A prune that deleted and kept nothing (a location that could not be read).
    pub fn empty(rules: &PruneRules, dry_run: bool) -> PruneResult {
        PruneResult {
            dry_run,
            rules: rules.retention.clone(),
            rules_from: rules.retention_from.clone(),
            kept: Vec::new(),
            deleted: Vec::new(),
            leftovers_deleted: Vec::new(),
            leftovers_running: Vec::new(),
            locations: Vec::new(),
        }
    }
}

/// Decides and (unless `dry_run`) deletes.
pub fn prune(storage: &dyn Storage, rules: &PruneRules, dry_run: bool) -> Result<PruneResult> {
    let listing = inventory::list(storage)?;
    let now = Utc::now();
    let entries: Vec<BackupEntry> = listing.backups.iter().map(|b| b.entry.clone()).collect();
    let chosen = if rules.all_databases {
        sources(&entries)
    } else {
        match choose_source(&entries, rules.source.clone()) {
            Ok(source) => source.into_iter().collect(),
            Err(several) => {
                let names: Vec<String> = several.iter().map(ToString::to_string).collect();
                return Err(Error::usage(
                    format!(
                        "{} holds backups of several databases ({}), and none is in use: prune would not know whose backups its rules are for",
                        storage.location(),
                        names.join(", ")
                    ),
                    "name the database whose backups to prune (--database-url, DATABASE_URL or --env), or pass --all-databases to apply the rules to each database's backups",
                ));
            }
        }
    };
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for source in chosen {
        let newest_verified = newest_verified(&entries, &source).map(|e| e.id.clone());
        // Newest first, as the listing is.
        let backups = of_source(&entries, &source);
        let created: Vec<_> = backups.iter().map(|b| b.created_at).collect();
        let decided = rules.retention.decide(&created, now);
        for (b, reason) in backups.into_iter().zip(decided) {
            let reason = reason.or_else(|| {
                (newest_verified.as_deref() == Some(b.id.as_str()))
                    .then_some(KeepReason::NewestVerified)
            });
            match reason {
                Some(reason) => kept.push(KeptBackup {
                    id: b.id.clone(),
                    reason,
                }),
                None => deleted.push(b.id.clone()),
            }
        }
    }
    let mut leftovers = Vec::new();
    let mut running = Vec::new();
    for (id, age) in storage.list_incomplete()? {
        // A name that is no backup id pgward could have written (`list` shows it) is
        // not for prune to act on, nor to stop pruning the rest.
        if age.is_some_and(|a| a < rules.leftover_age.as_secs())
            || crate::archive::manifest::check_id(&id).is_err()
        {
            continue;
        }
        if storage.is_being_written(&id)? {
            running.push(id);
        } else {
            leftovers.push(id);
        }
    }
    if !dry_run {
        for id in deleted.iter().chain(&leftovers) {
            crate::log::info(&format!("deleting {id}"));
            storage.delete(id)?;
        }
    }
    Ok(PruneResult {
        dry_run,
        rules: rules.retention.clone(),
        rules_from: rules.retention_from.clone(),
        kept,
        deleted,
        leftovers_deleted: leftovers,
        leftovers_running: running,
        locations: Vec::new(),
    })
}
