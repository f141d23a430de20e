//! `pgward-backup prune`: retention for cron. Keeps the newest `--keep-last` backups, every
//! backup younger than `--keep-days`, and always the newest verified backup, whatever the
//! numbers say; removes leftovers of interrupted runs older than `--leftover-age`.

use std::time::Duration;

use chrono::Utc;
use pgward_shared::error::Result;
use pgward_shared::storage::Storage;
use serde::Serialize;

use crate::inventory;

/// Retention rules.
#[derive(Debug, Clone)]
pub struct PruneRules {
    /// Keep this many newest backups.
    pub keep_last: Option<usize>,
    /// Keep backups younger than this many days.
    pub keep_days: Option<u64>,
    /// Remove leftovers older than this (a younger one may be a backup still running).
    pub leftover_age: Duration,
}

/// prune's `result`.
#[derive(Debug, Serialize)]
pub struct PruneResult {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// Backups kept, with why.
    pub kept: Vec<KeptBackup>,
    /// Backups deleted (dry run: to be deleted).
    pub deleted: Vec<String>,
    /// Leftovers of interrupted runs deleted.
    pub leftovers_deleted: Vec<String>,
}

/// A kept backup and the rule that kept it.
#[derive(Debug, Serialize)]
pub struct KeptBackup {
    /// The id.
    pub id: String,
    /// `keep-last`, `keep-days` or `newest-verified`.
    pub reason: String,
}

/// Decides and (unless `dry_run`) deletes.
pub fn prune(storage: &dyn Storage, rules: &PruneRules, dry_run: bool) -> Result<PruneResult> {
    let listing = inventory::list(storage)?;
    let now = Utc::now();
    let newest_verified = pgward_shared::inventory::newest_verified(
        &listing
            .backups
            .iter()
            .map(|b| b.entry.clone())
            .collect::<Vec<_>>(),
    )
    .map(|e| e.id.clone());
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for (rank, b) in listing.backups.iter().enumerate() {
        let reason = if rules.keep_last.is_some_and(|n| rank < n) {
            Some("keep-last")
        } else if rules
            .keep_days
            .is_some_and(|d| now - b.entry.created_at < chrono::Duration::days(d as i64))
        {
            Some("keep-days")
        } else if newest_verified.as_deref() == Some(b.entry.id.as_str()) {
            Some("newest-verified")
        } else {
            None
        };
        match reason {
            Some(r) => kept.push(KeptBackup {
                id: b.entry.id.clone(),
                reason: r.into(),
            }),
            None => deleted.push(b.entry.id.clone()),
        }
    }
    let leftovers: Vec<String> = storage
        .list_incomplete()?
        .into_iter()
        .filter(|(_, age)| age.is_none_or(|a| a >= rules.leftover_age.as_secs()))
        .map(|(id, _)| id)
        .collect();
    if !dry_run {
        for id in deleted.iter().chain(&leftovers) {
            pgward_shared::log::info(&format!("deleting {id}"));
            storage.delete(id)?;
        }
    }
    Ok(PruneResult {
        dry_run,
        kept,
        deleted,
        leftovers_deleted: leftovers,
    })
}
