//! `pgward-migrate resolve`: Prisma's way out of a failed migration, with Prisma's rules
//! and error codes (P3008, P3011, P3012, P3017).

use std::path::Path;

use pgward_shared::cli::DRY_RUN_HELP;
use pgward_shared::config::GuardArgs;
use pgward_shared::error::{Error, Result};
use pgward_shared::migrations::history;
use pgward_shared::migrations::MigrationsFolder;
use pgward_shared::output::{Context, Failure, Outcome};
use serde::Serialize;

use pgward_shared::migrations::lock::{with_migration_lock, DEFAULT_LOCK_WAIT};

/// What resolve records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// `--applied`: the migration was applied by hand; record it finished.
    Applied,
    /// `--rolled-back`: the failed attempt was undone by hand; it no longer blocks.
    RolledBack,
}

/// resolve's options: its flags, parsed straight into them.
#[derive(Debug, Clone, clap::Args)]
pub struct ResolveOptions {
    /// Record this migration as applied
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "rolled_back",
        required_unless_present = "rolled_back"
    )]
    pub applied: Option<String>,
    /// Record this failed migration as rolled back
    #[arg(long, value_name = "NAME")]
    pub rolled_back: Option<String>,
    // Say what would be recorded; change nothing.
    #[arg(long, help = DRY_RUN_HELP)]
    pub dry_run: bool,
    // --force / --yes.
    #[command(flatten)]
    pub guard: GuardArgs,
}

impl ResolveOptions {
    /// The migration and what to record of it.
    fn target(&self) -> Result<(&str, Resolution)> {
        match (&self.applied, &self.rolled_back) {
            (Some(name), _) => Ok((name, Resolution::Applied)),
            (None, Some(name)) => Ok((name, Resolution::RolledBack)),
            // clap requires one of the two; a caller that builds the options may not.
            (None, None) => Err(Error::usage(
                "resolve needs --applied NAME or --rolled-back NAME",
                "e.g. pgward-migrate resolve --rolled-back 20240101000000_add_index",
            )),
        }
    }
}

/// resolve's `result`.
#[derive(Debug, Serialize)]
pub struct ResolveResult {
    /// The migration.
    pub migration: String,
    /// What was recorded.
    pub resolution: Resolution,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// History rows changed or added.
    pub rows_changed: u64,
}

/// Runs resolve.
pub fn resolve(ctx: &Context, dir: &Path, options: &ResolveOptions) -> Result<Outcome, Failure> {
    let (name, resolution) = options.target()?;
    let (dry_run, guard) = (options.dry_run, options.guard);
    let folder = MigrationsFolder::read(dir)?;
    let db = ctx.database()?;
    if !dry_run {
        // Audited before the guard: a refused attempt on a protected database is worth a line.
        ctx.audit(&db);
        ctx.settings
            .guard_destructive("resolve", &db.display_target(), guard)?;
    }
    let mut session = ctx.connect()?;
    let result = with_migration_lock(
        &mut session,
        DEFAULT_LOCK_WAIT,
        dry_run,
        |client, schema| {
            Ok(resolve_locked(
                client, schema, &folder, name, resolution, dry_run,
            )?)
        },
    )?;
    Ok(Outcome::ok(result))
}

fn resolve_locked(
    client: &mut postgres::Client,
    schema: &str,
    folder: &MigrationsFolder,
    name: &str,
    resolution: Resolution,
    dry_run: bool,
) -> Result<ResolveResult> {
    let table_exists = history::table_exists(client, schema)?;
    let rows = if table_exists {
        history::read_rows(client, schema)?
    } else {
        Vec::new()
    };
    let mine: Vec<_> = rows.iter().filter(|r| r.migration_name == name).collect();
    let rows_changed = match resolution {
        Resolution::Applied => {
            let Some(m) = folder.get(name) else {
                return Err(Error::InvalidHistoryAction {
                    message: format!("P3017: the migration `{name}` could not be found in {}", folder.path.display()),
                    hint: "pass the whole name of the migration's folder (e.g. 20201207184859_initial_migration)".into(),
                });
            };
            if mine.iter().any(|r| r.is_applied()) {
                return Err(Error::InvalidHistoryAction {
                    message: format!("P3008: the migration `{name}` is already recorded as applied in the database"),
                    hint: "nothing to resolve; `pgward-migrate status` shows the history".into(),
                });
            }
            if dry_run {
                1 + mine.iter().filter(|r| r.is_failed()).count() as u64
            } else {
                if !table_exists {
                    history::create_table(client, schema)?;
                }
                let mut tx = client
                    .transaction()
                    .map_err(|e| Error::query("starting the resolve transaction", &e))?;
                let rolled = history::roll_back_failed(schema, name)
                    .execute(&mut tx)
                    .map_err(|e| Error::query("marking failed attempts rolled back", &e))?;
                history::record_applied(schema, name, &m.checksum)
                    .execute(&mut tx)
                    .map_err(|e| Error::query("recording the migration as applied", &e))?;
                tx.commit()
                    .map_err(|e| Error::query("committing the resolve", &e))?;
                rolled + 1
            }
        }
        Resolution::RolledBack => {
            let failed = mine.iter().filter(|r| r.is_failed()).count() as u64;
            if failed == 0 {
                let message = if mine.is_empty() {
                    format!("P3011: migration `{name}` cannot be rolled back because it was never applied to the database")
                } else {
                    format!("P3012: migration `{name}` cannot be rolled back because it is not in a failed state")
                };
                return Err(Error::InvalidHistoryAction {
                    message,
                    hint: "`pgward-migrate status` lists the failed migrations; to revert an applied one use `pgward-migrate rollback`".into(),
                });
            }
            if dry_run {
                failed
            } else {
                history::roll_back_failed(schema, name)
                    .execute(client)
                    .map_err(|e| Error::query("marking the migration rolled back", &e))?
            }
        }
    };
    Ok(ResolveResult {
        migration: name.to_string(),
        resolution,
        dry_run,
        rows_changed,
    })
}
