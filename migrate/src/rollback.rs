//! `pgward-migrate rollback`: run the `down.sql` of the newest applied migrations, newest
//! first, each in one transaction with the deletion of that migration's history rows.
//!
//! Prisma has no state for "reverted after success"; with the rows gone, Prisma and pgward
//! both see the migration as pending again, so the two tools keep agreeing.

use std::path::Path;

use pgward_shared::cli::DRY_RUN_HELP;
use pgward_shared::codes::ErrorCode;
use pgward_shared::config::GuardArgs;
use pgward_shared::error::{describe_pg_error, Error, Result};
use pgward_shared::log;
use pgward_shared::migrations::history;
use pgward_shared::migrations::state::MigrationState;
use pgward_shared::migrations::{LocalMigration, MigrationsFolder};
use pgward_shared::output::{Context, Failure, Outcome};

use pgward_shared::migrations::engine::{
    drop_left_indexes, elapsed_ms, index_names, run_script, Bookkeeping, LeftBehind, ScriptPlan,
    Watch,
};
use pgward_shared::migrations::lock::{with_migration_lock, DEFAULT_LOCK_WAIT};
use pgward_shared::migrations::results::{RollbackRefused, RollbackResult, RolledBack};

/// How far to roll back.
#[derive(Debug, Clone)]
pub enum RollbackExtent {
    /// The newest N applied migrations.
    Steps(usize),
    /// Everything applied after this migration (which stays applied).
    To(String),
}

/// rollback's options: its flags, parsed straight into them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RollbackOptions {
    /// How many of the newest applied migrations to roll back [default: 1]
    #[arg(long, value_name = "N", conflicts_with = "to")]
    pub steps: Option<usize>,
    /// Roll back every migration applied after this one
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    // Say what would be rolled back; change nothing.
    #[arg(long, help = DRY_RUN_HELP)]
    pub dry_run: bool,
    // --force / --yes.
    #[command(flatten)]
    pub guard: GuardArgs,
}

impl RollbackOptions {
    /// How far to roll back: `--to`, else `--steps`, else the newest migration.
    pub fn extent(&self) -> RollbackExtent {
        match &self.to {
            Some(name) => RollbackExtent::To(name.clone()),
            None => RollbackExtent::Steps(self.steps.unwrap_or(1)),
        }
    }
}

/// Runs rollback.
pub fn rollback(ctx: &Context, dir: &Path, options: &RollbackOptions) -> Result<Outcome, Failure> {
    let extent = &options.extent();
    let (dry_run, guard) = (options.dry_run, options.guard);
    let folder = MigrationsFolder::read_non_empty(dir)?;
    let db = ctx.database()?;
    if !dry_run {
        // Audited before the guard: a refused attempt on a protected database is worth a line.
        ctx.audit(&db);
        ctx.settings
            .guard_destructive("rollback", &db.display_target(), guard)?;
    }
    let mut session = ctx.connect()?;
    with_migration_lock(
        &mut session,
        DEFAULT_LOCK_WAIT,
        dry_run,
        |client, schema| rollback_locked(client, schema, &folder, extent, dry_run),
    )
}

fn rollback_locked(
    client: &mut postgres::Client,
    schema: &str,
    folder: &MigrationsFolder,
    extent: &RollbackExtent,
    dry_run: bool,
) -> Result<Outcome, Failure> {
    let rows = history::read_rows_if_any(client, schema)?;
    let state = MigrationState::compare(folder, &rows);
    if !state.failed.is_empty() {
        return Err(Error::FailedMigrations {
            names: state.failed.iter().map(|f| f.name.clone()).collect(),
        }
        .into());
    }
    if !state.missing_locally.is_empty() {
        return Err(Error::HistoryDiverged {
            summary: state.problem_summary(),
        }
        .into());
    }
    let targets = select_targets(folder, &state, extent)?;
    if let Some(m) = targets.iter().find(|m| m.down.is_none()) {
        return Err(Failure::with_result(
            Error::NoDownSql {
                migration: m.name.clone(),
            },
            RollbackRefused {
                would_roll_back: targets.iter().map(|m| m.name.clone()).collect(),
            },
        ));
    }
    let mut result = RollbackResult {
        dry_run,
        rolled_back: Vec::new(),
    };
    // How the session reads the text sent, looked at from file to file.
    let mut watch = Watch::session();
    for m in targets {
        let down = m.read_down()?.unwrap_or_default();
        let plan = ScriptPlan::new(&down);
        if dry_run {
            result.rolled_back.push(RolledBack {
                name: m.name.clone(),
                statements: plan.statements.len(),
                mode: plan.mode,
                duration_ms: None,
            });
            continue;
        }
        log::info(&format!("rolling back {}", m.name));
        let started = std::time::Instant::now();
        let books = Bookkeeping {
            on_finish: Some(history::delete_migration(schema, &m.name)),
            ..Default::default()
        };
        match run_script(client, &down, &plan, &books, &mut watch) {
            Ok(done) => result.rolled_back.push(RolledBack {
                name: m.name.clone(),
                mode: done.mode,
                statements: done.statements,
                duration_ms: Some(elapsed_ms(started)),
            }),
            Err(mut f) => {
                // A concurrent index build of down.sql that failed has committed an
                // INVALID index: drop that one (it is the only thing it left).
                if let LeftBehind::InvalidIndexes(left) = &mut f.left_behind {
                    if let Err(e) = drop_left_indexes(client, left) {
                        log::warn(&format!(
                            "the INVALID index {} the failed CREATE INDEX CONCURRENTLY of down.sql left could not be dropped ({}): drop it with DROP INDEX CONCURRENTLY",
                            index_names(left),
                            describe_pg_error(&e).1
                        ));
                    }
                }
                let hint = if f.partly_committed() {
                    format!("part of down.sql was committed (it cannot run in one transaction) and {} is still recorded as applied; finish reverting by hand, then run rollback again or restore a backup", m.name)
                } else {
                    format!("down.sql was rolled back and {} stays applied; fix down.sql and run rollback again, or restore the backup taken before it", m.name)
                };
                let error = f.into_error(
                    ErrorCode::RollbackFailed,
                    format!("down.sql of {}", m.name),
                    hint,
                );
                return Err(Failure::with_result(error, &result));
            }
        }
    }
    Ok(Outcome::ok(result))
}

fn select_targets<'f>(
    folder: &'f MigrationsFolder,
    state: &MigrationState,
    extent: &RollbackExtent,
) -> Result<Vec<&'f LocalMigration>> {
    let applied: Vec<&LocalMigration> = state
        .applied
        .iter()
        .filter_map(|a| folder.get(&a.name))
        .collect();
    let newer = match extent {
        RollbackExtent::Steps(n) => {
            if *n == 0 || *n > applied.len() {
                return Err(Error::usage(
                    format!("--steps {n} but {} migration(s) are applied", applied.len()),
                    "pass --steps between 1 and the number of applied migrations",
                ));
            }
            &applied[applied.len() - n..]
        }
        RollbackExtent::To(name) => match applied.iter().position(|m| &m.name == name) {
            Some(i) => &applied[i + 1..],
            None => return Err(Error::usage(
                format!("--to names `{name}`, which is not an applied migration"),
                "pass the folder name of an applied migration, as `pgward-migrate status` lists it",
            )),
        },
    };
    Ok(newer.iter().rev().copied().collect())
}
