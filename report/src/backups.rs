//! `pgward-report backups`: the inventory of a backup location from its manifests, sizes
//! and durations over time, and the newest backup's age held against `--max-age`. Made
//! for cron: exit 3 when the newest backup is too old, or when there is none, so a monitor
//! that only sees exit codes alarms; `--format prometheus` feeds the same facts to
//! dashboards.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pgward_shared::archive::inventory::{self, ListedBackup};
use pgward_shared::archive::results::{BackupRow, BackupsReport, LocationBackups, NewestBackup};
use pgward_shared::archive::sources::{choose_source, source_in_use};
use pgward_shared::codes::WarningCode;
use pgward_shared::output::{Context, Failure, Outcome};
use pgward_shared::storage::open_storage;
use pgward_shared::storage::S3Options;

/// Runs backups.
pub fn backups(
    ctx: &Context,
    from: &[String],
    storage_args: &S3Options,
    max_age: Duration,
) -> Result<Outcome, Failure> {
    let storage = open_storage(ctx, from, storage_args)?;
    let mut listed = inventory::list(&storage)?;
    // The verdict is about one database's backups: another's newer ones must not hide
    // that this one's stopped.
    let entries: Vec<_> = listed.backups.iter().map(|b| b.entry.clone()).collect();
    let source = match choose_source(&entries, source_in_use(ctx)) {
        Ok(source) => source,
        Err(_) => Some(inventory::source_for(&listed, None, "report backups")?),
    };
    if let Some(source) = &source {
        listed.backups.retain(|b| source.holds(&b.entry));
    }
    // Ages to the millisecond, as the manifests' times are.
    let now = Utc::now();
    let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    let warnings = inventory::listing_warnings(&listed.incomplete, &listed.damaged);
    let mut locations = storage.locations();
    locations.extend(storage.unopened().iter().map(|(l, _)| l.clone()));
    let unreadable = storage.unreadable();
    ctx.warn_all(storage.unavailable_warnings());
    let mut report = build(
        listed.location,
        listed.backups,
        listed.incomplete,
        now,
        max_age,
    );
    report.source = source;
    ctx.warn_all(warnings);
    if locations.len() > 1 {
        report.locations = per_location(&report, &locations, &unreadable);
        let behind: Vec<String> = report
            .locations
            .iter()
            .filter(|l| {
                !l.readable
                    || report
                        .newest
                        .as_ref()
                        .is_some_and(|n| l.newest.as_ref().is_none_or(|ln| ln.id != n.id))
            })
            .map(|l| match (&l.newest, l.readable) {
                (_, false) => format!("{} could not be read", l.location),
                (Some(n), true) => format!(
                    "{} holds no copy of the newest backup (its newest is {}, {} old)",
                    l.location,
                    n.id,
                    humantime::format_duration(whole_seconds(n.age_s))
                ),
                (None, true) => format!("{} holds no copy of any backup", l.location),
            })
            .collect();
        if !behind.is_empty() {
            ctx.warn(
                WarningCode::BackupCopyBehind,
                format!(
                    "{}: copy it with pgward-backup copy latest (the environment's or --to locations)",
                    behind.join("; ")
                ),
            );
            return Ok(Outcome::attention(report));
        }
    }
    match &report.newest {
        None => {
            ctx.warn(
                WarningCode::NoBackups,
                format!("there is no complete backup in {}", report.location),
            );
            Ok(Outcome::attention(report))
        }
        Some(newest) if report.too_old => {
            ctx.warn(
                WarningCode::BackupTooOld,
                format!(
                    "the newest backup {} is {} old, older than --max-age {}",
                    newest.id,
                    humantime::format_duration(whole_seconds(newest.age_s)),
                    humantime::format_duration(whole_seconds(report.max_age_s)),
                ),
            );
            Ok(Outcome::attention(report))
        }
        Some(_) => Ok(Outcome::ok(report)),
    }
}

/// Each location's complete copies among the report's backups, and its newest.
fn per_location(
    report: &BackupsReport,
    locations: &[String],
    unreadable: &[String],
) -> Vec<LocationBackups> {
    locations
        .iter()
        .map(|location| {
            let held: Vec<_> = report
                .backups
                .iter()
                .filter(|b| b.backup.copies.iter().any(|c| &c.location == location))
                .collect();
            LocationBackups {
                location: location.clone(),
                readable: !unreadable.contains(location),
                count: held.len(),
                newest: held.first().map(|b| NewestBackup {
                    id: b.backup.entry.id.clone(),
                    created_at: b.backup.entry.created_at,
                    age_s: b.age_s,
                    size_bytes: b.backup.entry.size_bytes,
                    duration_s: b.backup.duration_s,
                    verified: b
                        .backup
                        .copies
                        .iter()
                        .any(|c| &c.location == location && c.verified),
                }),
            }
        })
        .collect()
}

fn whole_seconds(s: f64) -> Duration {
    Duration::from_secs(s.max(0.0) as u64)
}

/// The report on `backups` (newest first, as the inventory lists them), as of `now`.
pub fn build(
    location: String,
    backups: Vec<ListedBackup>,
    incomplete: Vec<String>,
    now: DateTime<Utc>,
    max_age: Duration,
) -> BackupsReport {
    let seconds = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1000.0;
    let brief = |b: &ListedBackup| NewestBackup {
        id: b.entry.id.clone(),
        created_at: b.entry.created_at,
        age_s: seconds(now - b.entry.created_at).max(0.0),
        size_bytes: b.entry.size_bytes,
        duration_s: b.duration_s,
        verified: b.entry.verified,
    };
    let newest = backups.first().map(brief);
    let newest_verified = backups.iter().find(|b| b.entry.verified).map(brief);
    let max_age_s = max_age.as_secs_f64();
    let rows: Vec<BackupRow> = backups
        .iter()
        .enumerate()
        .map(|(i, b)| BackupRow {
            age_s: seconds(now - b.entry.created_at).max(0.0),
            since_previous_s: backups
                .get(i + 1)
                .map(|older| seconds(b.entry.created_at - older.entry.created_at)),
            backup: b.clone(),
        })
        .collect();
    BackupsReport {
        location,
        checked_at: now,
        max_age_s,
        too_old: newest.as_ref().is_none_or(|n| n.age_s > max_age_s),
        count: rows.len(),
        verified_count: backups.iter().filter(|b| b.entry.verified).count(),
        // Saturating: crafted manifests' sizes may add up past u64.
        total_bytes: backups
            .iter()
            .fold(0u64, |sum, b| sum.saturating_add(b.entry.size_bytes)),
        newest,
        newest_verified,
        backups: rows,
        incomplete,
        source: None,
        locations: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgward_shared::archive::manifest::BackupFormat;
    use pgward_shared::archive::sources::BackupEntry;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn listed(id: &str, created_at: &str, verified: bool) -> ListedBackup {
        ListedBackup {
            entry: BackupEntry {
                id: id.into(),
                database: "app".into(),
                env: None,
                created_at: at(created_at),
                size_bytes: 100,
                label: None,
                migration_head: None,
                verified,
            },
            format: BackupFormat::Directory,
            tables: 1,
            rows: 1,
            duration_s: 2.5,
            copies: Vec::new(),
        }
    }

    #[test]
    fn ages_gaps_and_the_max_age_verdict() {
        let backups = vec![
            listed("new", "2026-01-02T00:00:00Z", false),
            listed("old", "2026-01-01T00:00:00Z", true),
        ];
        let day = Duration::from_secs(86400);
        let now = at("2026-01-02T06:00:00Z");
        let report = build("here".into(), backups.clone(), vec![], now, day);
        assert!(!report.too_old);
        assert_eq!(report.newest.as_ref().map(|n| n.age_s), Some(6.0 * 3600.0));
        assert_eq!(
            report.newest_verified.as_ref().map(|n| n.id.as_str()),
            Some("old")
        );
        assert_eq!(report.backups[0].since_previous_s, Some(86400.0));
        assert_eq!(report.backups[1].since_previous_s, None);
        assert_eq!(report.total_bytes, 200);
        let later = build(
            "here".into(),
            backups,
            vec![],
            at("2026-01-03T00:00:01Z"),
            day,
        );
        assert!(later.too_old);
        let none = build("here".into(), vec![], vec![], now, day);
        assert!(none.too_old && none.newest.is_none());
    }
}
