//! `pgward-report migrations`: the history in `_prisma_migrations` joined with the
//! migrations folder. Where `pgward-migrate status` answers "can I deploy?", this answers
//! "what happened?": every attempt with its start, duration, outcome and failure logs,
//! rollbacks and re-applies, totals and the slowest migrations.

use std::collections::BTreeMap;
use std::path::Path;

use pgward_shared::codes::WarningCode;
use pgward_shared::error::Error;
use pgward_shared::migrations::history::{self, HistoryRow};
use pgward_shared::migrations::report::{
    AttemptOutcome, AttemptRecord, LastApplied, MigrationStatus, MigrationSummary, MigrationTotals,
    MigrationsReport, SlowAttempt,
};
use pgward_shared::migrations::state::MigrationState;
use pgward_shared::migrations::warnings::{state_warnings, StateReader};
use pgward_shared::migrations::MigrationsFolder;
use pgward_shared::output::{Context, Failure, Outcome};

/// How many of the slowest attempts the report names.
pub const SLOWEST: usize = 10;

/// Runs migrations: reads the history and, when it exists, the folder.
pub fn migrations(ctx: &Context, dir: &Path) -> Result<Outcome, Failure> {
    let folder = match MigrationsFolder::read(dir) {
        Ok(folder) => Some(folder),
        Err(Error::MigrationsDirMissing { path }) => {
            ctx.warn(
                WarningCode::NoMigrationsDir,
                format!(
                    "no migrations folder at {}: the report covers the history only (pass --dir to compare with the folder)",
                    path.display()
                ),
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    let mut session = ctx.connect()?;
    let schema = session.schema().to_string();
    let history_table = history::table_exists(&mut session.client, &schema)?;
    let rows = if history_table {
        history::read_rows(&mut session.client, &schema)?
    } else {
        Vec::new()
    };
    let mut state = compare(folder.as_ref(), &rows);
    let report = build_from(schema, history_table, folder.as_ref(), &rows, &state);
    if folder.is_none() {
        // Without a folder nothing is "missing locally": the history alone speaks.
        state.missing_locally.clear();
    }
    ctx.warn_all(state_warnings(&state, StateReader::Report));
    Ok(Outcome::ok(report))
}

/// The report for `rows` against `folder` (no database involved).
pub fn build(
    schema: String,
    history_table: bool,
    folder: Option<&MigrationsFolder>,
    rows: &[HistoryRow],
) -> MigrationsReport {
    build_from(schema, history_table, folder, rows, &compare(folder, rows))
}

/// [`build`], with the folder and the history already compared.
fn build_from(
    schema: String,
    history_table: bool,
    folder: Option<&MigrationsFolder>,
    rows: &[HistoryRow],
    state: &MigrationState,
) -> MigrationsReport {
    let attempts: Vec<AttemptRecord> = rows.iter().map(attempt).collect();

    let mut names: Vec<String> = folder
        .map(|f| f.migrations.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    for row in rows {
        if !names.contains(&row.migration_name) {
            names.push(row.migration_name.clone());
        }
    }
    let mut by_name: BTreeMap<&str, Vec<&AttemptRecord>> = BTreeMap::new();
    for a in &attempts {
        by_name.entry(a.migration.as_str()).or_default().push(a);
    }
    let migrations: Vec<MigrationSummary> = names
        .iter()
        .map(|name| {
            let tries = by_name.get(name.as_str()).cloned().unwrap_or_default();
            let local = folder.and_then(|f| f.get(name));
            let mut m = summary(
                name,
                &tries,
                local.is_some(),
                local.map(|m| m.down.is_some()),
                state,
            );
            // Without a folder nothing is "missing locally": the history alone speaks.
            if folder.is_none() && m.status == MigrationStatus::MissingLocally {
                m.status = MigrationStatus::Applied;
            }
            m
        })
        .collect();

    let mut applied: Vec<&AttemptRecord> = attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Applied && a.duration_ms.is_some())
        .collect();
    let last_applied = applied
        .iter()
        .filter_map(|a| Some((a.finished_at?, *a)))
        .max_by_key(|(finished, _)| *finished)
        .map(|(finished_at, a)| LastApplied {
            migration: a.migration.clone(),
            started_at: a.started_at,
            finished_at,
            duration_ms: a.duration_ms.unwrap_or(0),
        });
    applied.sort_by_key(|a| std::cmp::Reverse(a.duration_ms));
    let slowest = applied
        .iter()
        .take(SLOWEST)
        .map(|a| SlowAttempt {
            migration: a.migration.clone(),
            started_at: a.started_at,
            duration_ms: a.duration_ms.unwrap_or(0),
        })
        .collect();
    let totals = MigrationTotals {
        local: folder.map_or(0, |f| f.migrations.len()),
        applied: state.applied.len() + state.missing_locally.len(),
        pending: state.pending.len(),
        failed: state.failed.len(),
        edited: state.edited.len(),
        missing_locally: if folder.is_some() {
            state.missing_locally.len()
        } else {
            0
        },
        attempts: attempts.len(),
        failed_attempts: attempts.iter().filter(|a| a.failed()).count(),
        rolled_back_attempts: attempts
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::RolledBack)
            .count(),
        reapplied: migrations.iter().filter(|m| m.reapplied).count(),
        total_duration_ms: applied.iter().filter_map(|a| a.duration_ms).sum(),
    };
    MigrationsReport {
        schema,
        history_table,
        migrations_dir: folder.map(|f| f.path.display().to_string()),
        totals,
        migrations,
        attempts,
        slowest,
        last_applied,
    }
}

/// The folder (none: an empty one) against the history.
fn compare(folder: Option<&MigrationsFolder>, rows: &[HistoryRow]) -> MigrationState {
    let empty = MigrationsFolder {
        path: Default::default(),
        migrations: Vec::new(),
        has_lock_file: false,
    };
    MigrationState::compare(folder.unwrap_or(&empty), rows)
}

fn attempt(row: &HistoryRow) -> AttemptRecord {
    let outcome = if row.rolled_back_at.is_some() {
        AttemptOutcome::RolledBack
    } else if row.finished_at.is_some() {
        AttemptOutcome::Applied
    } else {
        AttemptOutcome::Failed
    };
    AttemptRecord {
        migration: row.migration_name.clone(),
        outcome,
        started_at: row.started_at,
        finished_at: row.finished_at,
        rolled_back_at: row.rolled_back_at,
        duration_ms: row
            .finished_at
            .map(|f| (f - row.started_at).num_milliseconds().max(0) as u64),
        applied_steps_count: row.applied_steps_count,
        logs: row.logs.clone().filter(|l| !l.is_empty()),
    }
}

fn summary(
    name: &str,
    tries: &[&AttemptRecord],
    local: bool,
    has_down: Option<bool>,
    state: &MigrationState,
) -> MigrationSummary {
    let status = if state.failed.iter().any(|f| f.name == name) {
        MigrationStatus::Failed
    } else if state.applied.iter().any(|a| a.name == name) {
        MigrationStatus::Applied
    } else if state.missing_locally.iter().any(|m| m == name) {
        MigrationStatus::MissingLocally
    } else if state.pending.iter().any(|p| p == name) {
        MigrationStatus::Pending
    } else {
        MigrationStatus::RolledBack
    };
    let applied = tries
        .iter()
        .rev()
        .find(|a| a.outcome == AttemptOutcome::Applied);
    let reapplied = applied.is_some_and(|ok| {
        tries
            .iter()
            .any(|a| a.started_at <= ok.started_at && a.outcome != AttemptOutcome::Applied)
    });
    MigrationSummary {
        name: name.to_string(),
        status,
        local,
        has_down,
        edited: state.edited.iter().any(|e| e.name == name),
        attempts: tries.len(),
        failed_attempts: tries.iter().filter(|a| a.failed()).count(),
        rolled_back_attempts: tries
            .iter()
            .filter(|a| a.outcome == AttemptOutcome::RolledBack)
            .count(),
        reapplied,
        started_at: applied.map(|a| a.started_at),
        finished_at: applied.and_then(|a| a.finished_at),
        duration_ms: applied.and_then(|a| a.duration_ms),
        last_failure_logs: tries
            .iter()
            .rev()
            .filter(|a| a.failed())
            .find_map(|a| a.logs.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn row(name: &str, start: &str, finish: Option<&str>, rolled_back: bool) -> HistoryRow {
        HistoryRow {
            id: format!("{name}-{start}"),
            checksum: String::new(),
            finished_at: finish.map(at),
            migration_name: name.into(),
            logs: finish.is_none().then(|| "ERROR: boom".to_string()),
            rolled_back_at: rolled_back.then(|| at(start)),
            started_at: at(start),
            applied_steps_count: 1,
        }
    }

    #[test]
    fn a_failed_then_rolled_back_then_applied_migration_counts_as_reapplied() {
        let rows = [
            row(
                "a",
                "2026-01-01T00:00:00Z",
                Some("2026-01-01T00:00:02Z"),
                false,
            ),
            row("b", "2026-01-01T00:01:00Z", None, true),
            row(
                "b",
                "2026-01-01T00:02:00Z",
                Some("2026-01-01T00:02:00.5Z"),
                false,
            ),
            row("c", "2026-01-01T00:03:00Z", None, false),
        ];
        let report = build("public".into(), true, None, &rows);
        let b = &report.migrations[1];
        assert_eq!(b.name, "b");
        assert!(b.reapplied);
        assert_eq!(b.attempts, 2);
        assert_eq!(b.rolled_back_attempts, 1);
        assert_eq!(b.duration_ms, Some(500));
        assert_eq!(b.last_failure_logs.as_deref(), Some("ERROR: boom"));
        assert_eq!(report.migrations[2].status, MigrationStatus::Failed);
        assert_eq!(report.totals.failed, 1);
        assert_eq!(report.totals.failed_attempts, 2);
        assert_eq!(report.totals.reapplied, 1);
        assert_eq!(report.slowest[0].migration, "a");
        assert_eq!(report.slowest[0].duration_ms, 2000);
        assert_eq!(
            report.last_applied.as_ref().map(|l| l.migration.as_str()),
            Some("b")
        );
    }
}
