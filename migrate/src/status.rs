//! `pgward-migrate status`: the folder against the history, with distinct exit codes for
//! "pending" (3) and "broken" (5), which Prisma reports alike.

use std::path::Path;

use pgward_shared::codes::WarningCode;
use pgward_shared::error::Error;
use pgward_shared::migrations::history;
use pgward_shared::migrations::results::StatusResult;
use pgward_shared::migrations::state::MigrationState;
use pgward_shared::migrations::warnings::{state_warnings, StateReader};
use pgward_shared::migrations::MigrationsFolder;
use pgward_shared::output::{Context, Failure, Outcome};

/// Runs status.
pub fn status(ctx: &Context, dir: &Path) -> Result<Outcome, Failure> {
    // The server starts the session while the folder is read and checksummed.
    let early = ctx.connect_early();
    let folder = MigrationsFolder::read_non_empty(dir)?;
    let mut session = ctx.connect_from(early)?;
    let schema = session.schema().to_string();
    let client = &mut session.client;
    // Whether there is a history, and who holds the migration lock: one round trip.
    let (history_table, lock_holder) = history::table_exists_and_lock_holder(client, &schema)?;
    let rows = if history_table {
        history::read_rows(client, &schema)?
    } else {
        if history::schema_exists(client, &schema)? && !history::schema_is_empty(client, &schema)? {
            ctx.warn(
                WarningCode::NoHistoryNonEmptySchema,
                format!("schema `{schema}` has objects but no _prisma_migrations table; deploy will refuse (P3005) until it is baselined"),
            );
        }
        Vec::new()
    };
    let state = MigrationState::compare(&folder, &rows);
    let result = StatusResult {
        migrations_dir: folder.path.display().to_string(),
        schema,
        history_table,
        local_migrations: folder.migrations.len(),
        up_to_date: state.pending.is_empty() && !state.has_integrity_problems(),
        lock_holder,
        state,
    };
    if !result.state.failed.is_empty() {
        let names = result.state.failed.iter().map(|f| f.name.clone()).collect();
        return Err(Failure::with_result(
            Error::FailedMigrations { names },
            &result,
        ));
    }
    if result.state.has_integrity_problems() {
        let summary = result.state.problem_summary();
        return Err(Failure::with_result(
            Error::HistoryDiverged { summary },
            &result,
        ));
    }
    if !result.state.pending.is_empty() {
        ctx.warn_all(state_warnings(&result.state, StateReader::Status));
        return Ok(Outcome::attention(result));
    }
    Ok(Outcome::ok(result))
}
