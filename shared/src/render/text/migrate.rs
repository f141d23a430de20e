//! The text views of pgward-migrate's commands, read from their typed results
//! ([`crate::migrations::results`]): `status` as a summary line, the migrations that need
//! a look and one closing line with the next action; `deploy`, `rollback` and `seed` as
//! one line per migration (name, mode, duration, locks) and the total; `resolve` and `new`
//! in a sentence. A failed run ends in its `error[CODE]` with the hint, whatever its
//! result.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::diagnostic::plural;
use super::lines::{error_block, warning_lines};
use super::table::columns;
use super::TextStyle;
use crate::codes::WarningCode;
use crate::migrations::engine::RunMode;
use crate::migrations::results::{
    DeployResult, DeployedMigration, NewResult, Resolution, ResolveResult, RollbackRefused,
    RollbackResult, SeedResult, StatusResult,
};
use crate::migrations::state::{FailedMigration, MigrationState};
use crate::output::Envelope;
use crate::render::human_seconds;

/// The folder `pgward-migrate` reads when `--dir` is not given.
const DEFAULT_DIR: &str = "prisma/migrations";

/// The view of a pgward-migrate document.
pub(super) fn view(e: &Envelope, style: TextStyle) -> Option<String> {
    let body = match e.command.as_str() {
        "status" => read(e).map(|r| status(e, &r)),
        "deploy" => read(e).map(|r| deploy(e, &r)).or_else(|| {
            // A deploy refused over failed migrations reports the state it found.
            read::<MigrationState>(e).map(|s| {
                format!(
                    "Nothing applied to {}: {} must be resolved first:\n\n{}",
                    database(e),
                    plural(s.failed.len(), "failed migration", "failed migrations"),
                    failed_list(&s.failed, "  ", DEFAULT_DIR)
                )
            })
        }),
        "rollback" => read(e)
            .map(|r| rollback(&r))
            .or_else(|| read(e).map(|r| rollback_refused(&r))),
        "resolve" => read(e).map(|r| resolve(&r)),
        "new" => read(e).map(|r| new(&r)),
        "seed" => read(e).map(|r| seed(e, &r)),
        _ => return None,
    };
    let body = match body {
        Some(body) => body,
        // No result (a usage error, no connection): the error is the whole story.
        None if e.result.is_null() && e.error.is_some() => String::new(),
        None => return None,
    };
    let shown: &[&str] = match e.command.as_str() {
        "status" => &[WarningCode::PendingMigrations.as_str()],
        "deploy" => &[WarningCode::LockOverBudget.as_str()],
        _ => &[],
    };
    Some(finish(body, e, shown, style))
}

/// `body`, then the warnings not already told, then the error.
pub(super) fn finish(body: String, e: &Envelope, shown: &[&str], style: TextStyle) -> String {
    let mut out = body;
    let error = e.error.as_ref().map(|err| error_block(err, style));
    for block in [
        warning_lines(&e.warnings, shown, style),
        error.unwrap_or_default(),
    ] {
        if block.is_empty() {
            continue;
        }
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&block);
    }
    out.trim_end().to_string()
}

fn read<T: DeserializeOwned>(e: &Envelope) -> Option<T> {
    if e.result.is_null() {
        return None;
    }
    T::deserialize(&e.result).ok()
}

/// `app@db:5432`, the database a document worked on.
pub(super) fn database(e: &Envelope) -> String {
    match &e.target {
        Some(t) => format!("{}@{}:{}", t.database, t.host, t.port),
        None => "the database".into(),
    }
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "-".into(),
        |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// `--dir X ` when the folder is not the default one.
fn dir_flag(dir: &str) -> String {
    if dir == DEFAULT_DIR || dir.is_empty() {
        String::new()
    } else {
        format!(" --dir {}", shell_word(dir))
    }
}

fn shell_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The recorded error's first line worth reading: the database's message.
fn first_error_line(logs: &str) -> &str {
    let mut lines = logs.lines().map(str::trim).filter(|l| !l.is_empty());
    let all: Vec<&str> = lines.by_ref().collect();
    if let Some(at) = all.iter().position(|l| *l == "Database error:") {
        if let Some(message) = all.get(at + 1) {
            return message;
        }
    }
    all.into_iter()
        .find(|l| !l.starts_with("Migration name:"))
        .unwrap_or("(no error recorded)")
}

fn failed_list(failed: &[FailedMigration], indent: &str, dir: &str) -> String {
    let mut out = String::new();
    for f in failed {
        out.push_str(&format!(
            "{indent}failed   {}  (started {}, {} applied)\n",
            f.name,
            when(Some(f.started_at)),
            plural(
                usize::try_from(f.applied_steps_count).unwrap_or(0),
                "statement",
                "statements"
            )
        ));
        let error = f
            .logs
            .as_deref()
            .map_or("(no error recorded)", first_error_line);
        out.push_str(&format!("{indent}         error: {error}\n"));
        out.push_str(&format!(
            "{indent}         once the database is repaired: pgward-migrate resolve --rolled-back {}{}\n",
            f.name,
            dir_flag(dir)
        ));
    }
    out
}

fn status(e: &Envelope, r: &StatusResult) -> String {
    let s = &r.state;
    let mut counts = vec![format!("{} applied", s.applied.len())];
    for (n, what) in [
        (s.failed.len(), "failed"),
        (s.edited.len(), "edited after apply"),
        (s.pending.len(), "pending"),
        (s.missing_locally.len(), "missing locally"),
    ] {
        if n > 0 {
            counts.push(format!("{n} {what}"));
        }
    }
    let listed = !(s.failed.is_empty()
        && s.edited.is_empty()
        && s.pending.is_empty()
        && s.missing_locally.is_empty());
    let mut out = format!(
        "{} in {}; database {} (schema {}): {}{}\n",
        plural(r.local_migrations, "migration", "migrations"),
        r.migrations_dir,
        database(e),
        r.schema,
        counts.join(", "),
        if listed { ":" } else { "" }
    );
    if listed {
        out.push('\n');
        out.push_str(&failed_list(&s.failed, "  ", &r.migrations_dir));
        for edited in &s.edited {
            out.push_str(&format!(
                "  edited   {}  checksum {} when applied, {} now\n",
                edited.name,
                short(&edited.recorded_checksum),
                short(&edited.local_checksum)
            ));
        }
        for name in &s.pending {
            out.push_str(&format!("  pending  {name}\n"));
        }
        for name in &s.missing_locally {
            out.push_str(&format!(
                "  missing  {name}  (applied, not in the folder)\n"
            ));
        }
    }
    if !r.history_table {
        out.push_str("\nNo _prisma_migrations table yet: nothing has been deployed here.\n");
    }
    if let Some(last) = s.applied.last() {
        out.push_str(&format!(
            "\nLast applied: {} ({}).\n",
            last.name,
            when(last.finished_at)
        ));
    }
    if let Some(holder) = &r.lock_holder {
        out.push_str(&format!(
            "The migration lock is held by pid {} ({}, {}): {}\n",
            holder.pid,
            if holder.application_name.is_empty() {
                "no application_name"
            } else {
                &holder.application_name
            },
            holder.state,
            holder.query.lines().next().unwrap_or_default()
        ));
    }
    let next = if e.error.is_some() {
        None // the error's hint says it
    } else if !s.edited.is_empty() || !s.missing_locally.is_empty() {
        Some("restore the edited or missing migration files from version control (git checkout), then run status again".to_string())
    } else if !s.pending.is_empty() {
        Some(format!(
            "`pgward-migrate deploy{}` applies the {}",
            dir_flag(&r.migrations_dir),
            plural(s.pending.len(), "pending migration", "pending migrations")
        ))
    } else {
        Some("nothing to do: the database is up to date".to_string())
    };
    if let Some(next) = next {
        out.push_str(&format!("\nNext: {next}.\n"));
    }
    out
}

/// The first 12 characters of a checksum.
fn short(checksum: &str) -> String {
    let cut: String = checksum.chars().take(12).collect();
    if cut.len() < checksum.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

fn mode_words(mode: &RunMode) -> (&'static str, Option<&str>) {
    match mode {
        RunMode::Transaction => ("transaction", None),
        RunMode::Statements { reason } => ("step by step", Some(reason)),
        RunMode::Whole { reason } => ("whole file", Some(reason)),
    }
}

fn duration(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| human_seconds(ms as f64 / 1000.0))
}

/// What the migration's locks blocked, longest first (with `--trace`): `ACCESS EXCLUSIVE
/// on "Order" 1 ms`; `-` without a trace, `no blocking lock` when none blocked anything.
fn lock_column(m: &DeployedMigration) -> String {
    let Some(trace) = &m.trace else {
        return "-".into();
    };
    let blocking = trace
        .relations
        .iter()
        .filter(|r| r.blocks != crate::locks::Blocks::Nothing)
        .max_by(|a, b| a.held_ms.total_cmp(&b.held_ms));
    match blocking {
        Some(r) => format!(
            "{} on {} {}",
            r.strongest.name(),
            r.relation,
            human_seconds(r.held_ms / 1000.0)
        ),
        None => "no blocking lock".into(),
    }
}

fn deploy(e: &Envelope, r: &DeployResult) -> String {
    let traced = r.applied.iter().any(|m| m.trace.is_some());
    let verb = if r.dry_run { "Would apply" } else { "Applied" };
    let mut out = if r.applied.is_empty() && e.error.is_none() {
        format!(
            "Nothing to apply: {} already applied to {} (schema {}) from {}.\n",
            plural(r.already_applied, "migration was", "migrations were"),
            database(e),
            r.schema,
            r.migrations_dir
        )
    } else {
        format!(
            "{verb} {} to {} (schema {}) from {}{}:\n\n",
            plural(r.applied.len(), "migration", "migrations"),
            database(e),
            r.schema,
            r.migrations_dir,
            if r.dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            }
        )
    };
    if !r.applied.is_empty() {
        let mut rows = Vec::new();
        for m in &r.applied {
            let (mode, reason) = mode_words(&m.mode);
            let mut row = vec![
                m.name.clone(),
                mode.to_string(),
                plural(m.statements, "statement", "statements"),
                duration(m.duration_ms),
            ];
            let mut lock = lock_column(m);
            if m.retries > 0 {
                lock = format!(
                    "{lock}, {} after lock timeouts",
                    plural(m.retries as usize, "retry", "retries")
                );
            }
            row.push(if traced || m.retries > 0 {
                lock
            } else {
                String::new()
            });
            row.push(reason.map(|r| format!("({r})")).unwrap_or_default());
            rows.push(row);
        }
        if let Some(failed) = failed_migration(e) {
            rows.push(failed);
        }
        out.push_str(&columns(rows));
    } else if let Some(failed) = failed_migration(e) {
        out.push_str(&columns(vec![failed]));
    }
    let nothing_to_apply = r.applied.is_empty() && e.error.is_none();
    if !r.dry_run && !nothing_to_apply {
        let total: u64 = r.applied.iter().filter_map(|m| m.duration_ms).sum();
        out.push_str(&format!(
            "\n{} in {}; {} before this run.\n",
            plural(r.applied.len(), "migration applied", "migrations applied"),
            human_seconds(total as f64 / 1000.0),
            plural(r.already_applied, "was applied", "were applied")
        ));
    }
    if !r.still_pending.is_empty() {
        out.push_str(&format!(
            "Still pending (after --to): {}.\n",
            r.still_pending.join(", ")
        ));
    }
    if let Some(relations) = r.relations.as_ref().filter(|r| !r.is_empty()) {
        out.push_str("\nLocks taken, strongest first:\n");
        let rows = relations
            .iter()
            .map(|rel| {
                vec![
                    rel.relation.clone(),
                    rel.strongest.name().to_string(),
                    format!("held {}", human_seconds(rel.held_ms / 1000.0)),
                    format!("blocks {}", rel.blocks.words()),
                    if rel.rewritten { "rewritten" } else { "" }.to_string(),
                ]
            })
            .collect();
        out.push_str(&columns(rows));
    }
    let over: Vec<&str> = e
        .warnings
        .iter()
        .filter(|w| w.code == WarningCode::LockOverBudget.as_str())
        .map(|w| w.message.as_str())
        .collect();
    if !over.is_empty() {
        out.push_str("\nOver the lock budget (--max-lock):\n");
        for line in over {
            out.push_str(&format!("  {line}\n"));
        }
    }
    if r.dry_run && e.error.is_none() && !r.applied.is_empty() {
        out.push_str(&format!(
            "\nNext: `pgward-migrate deploy{}` applies them.\n",
            dir_flag(&r.migrations_dir)
        ));
    }
    out
}

/// The row of the migration a failed deploy stopped at, from the error's details.
fn failed_migration(e: &Envelope) -> Option<Vec<String>> {
    let details = e.error.as_ref()?.details.as_ref()?;
    let name = details.get("migration")?.as_str()?;
    let at = match (
        details.get("line").and_then(|v| v.as_u64()),
        details.get("column").and_then(|v| v.as_u64()),
    ) {
        (Some(line), Some(column)) => format!("at line {line}, column {column}"),
        _ => String::new(),
    };
    let statement = details
        .get("statement")
        .and_then(|v| v.as_str())
        .and_then(|s| s.lines().next())
        .unwrap_or_default();
    Some(vec![
        name.to_string(),
        "FAILED".into(),
        at,
        statement.to_string(),
    ])
}

fn rollback(r: &RollbackResult) -> String {
    let verb = if r.dry_run {
        "Would roll back"
    } else {
        "Rolled back"
    };
    if r.rolled_back.is_empty() {
        return "Nothing rolled back.\n".into();
    }
    let mut out = format!(
        "{verb} {}, newest first{}:\n\n",
        plural(r.rolled_back.len(), "migration", "migrations"),
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    let rows = r
        .rolled_back
        .iter()
        .map(|m| {
            let (mode, reason) = mode_words(&m.mode);
            vec![
                m.name.clone(),
                format!("down.sql, {mode}"),
                plural(m.statements, "statement", "statements"),
                duration(m.duration_ms),
                reason.map(|r| format!("({r})")).unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&columns(rows));
    if !r.dry_run {
        let total: u64 = r.rolled_back.iter().filter_map(|m| m.duration_ms).sum();
        out.push_str(&format!(
            "\n{} in {}; their history rows are deleted, so deploy applies them again.\n",
            plural(
                r.rolled_back.len(),
                "migration rolled back",
                "migrations rolled back"
            ),
            human_seconds(total as f64 / 1000.0)
        ));
    }
    out
}

fn rollback_refused(r: &RollbackRefused) -> String {
    format!(
        "Nothing rolled back; it would have rolled back, newest first: {}.\n",
        r.would_roll_back.join(", ")
    )
}

fn resolve(r: &ResolveResult) -> String {
    let what = match r.resolution {
        Resolution::Applied => "applied",
        Resolution::RolledBack => "rolled back",
    };
    if r.dry_run {
        format!(
            "Would record {} as {what} (dry run: nothing changed).\n",
            r.migration
        )
    } else {
        let next = match r.resolution {
            Resolution::Applied => "deploy now treats it as applied",
            Resolution::RolledBack => "it no longer blocks deploy, which applies it again",
        };
        format!(
            "Recorded {} as {what} ({} changed); {next}.\n",
            r.migration,
            plural(r.rows_changed as usize, "history row", "history rows")
        )
    }
}

fn new(r: &NewResult) -> String {
    let verb = if r.dry_run { "Would create" } else { "Created" };
    let mut out = format!("{verb} migration {}:\n", r.name);
    for file in &r.files {
        out.push_str(&format!("  {file}\n"));
    }
    if !r.dry_run {
        out.push_str("\nNext: write the change in migration.sql and its undo in down.sql; `pgward-validate lint` checks it before deploy.\n");
    }
    out
}

fn seed(e: &Envelope, r: &SeedResult) -> String {
    let verb = if r.dry_run { "Would run" } else { "Ran" };
    if r.files.is_empty() && e.error.is_some() {
        return String::new(); // the error names the file that failed
    }
    if r.files.is_empty() {
        return format!("No seed files in {}.\n", r.seeds_dir);
    }
    let mut out = format!(
        "{verb} {} from {}{}:\n\n",
        plural(r.files.len(), "seed file", "seed files"),
        r.seeds_dir,
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    let rows = r
        .files
        .iter()
        .map(|f| {
            let (mode, reason) = mode_words(&f.mode);
            vec![
                f.file.clone(),
                mode.to_string(),
                plural(f.statements, "statement", "statements"),
                duration(f.duration_ms),
                reason.map(|r| format!("({r})")).unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&columns(rows));
    out
}

#[cfg(test)]
mod tests {
    use super::first_error_line;

    #[test]
    fn the_error_line_of_a_recorded_failure_is_the_database_message() {
        let logs = "Migration name: 1_a\n\nDatabase error code: 42P01\n\nDatabase error:\nrelation \"x\" does not exist\n\nPosition: line 2";
        assert_eq!(first_error_line(logs), "relation \"x\" does not exist");
        assert_eq!(
            first_error_line("Migration name: 1_a\nsomething broke"),
            "something broke"
        );
    }
}
