//! The four commands of pgward-backup as plain functions over a [`Context`]: backup, list,
//! verify, prune.

use pgward_shared::archive::inventory;
use pgward_shared::archive::prune::{prune, PruneRules};
use pgward_shared::archive::results::{BackupPlan, PlannedTable};
use pgward_shared::archive::verify;
use pgward_shared::archive::write::{dump, DumpOptions};
use pgward_shared::codes::WarningCode;
use pgward_shared::config::GuardArgs;
use pgward_shared::error::{Error, Result};
use pgward_shared::output::{Context, Failure, Outcome};
use pgward_shared::retention::Retention;
use pgward_shared::storage::{open_storage, S3Options};

/// `backup`.
pub fn backup(
    ctx: &Context,
    to: Option<&str>,
    args: &S3Options,
    options: &DumpOptions,
    dry_run: bool,
) -> Result<Outcome, Failure> {
    let db = ctx.database()?;
    let storage = open_storage(ctx, to, args)?;
    if dry_run {
        let mut coordinator = pgward_shared::archive::write::snapshot::Coordinator::open(&db)?;
        let all = coordinator.tables(options.lock_timeout)?;
        // A dry run refuses what the backup would refuse.
        let tables =
            pgward_shared::archive::write::refuse_incomplete(&mut coordinator, all, options);
        let large_objects = coordinator.large_objects(&db.dbname, options.no_large_objects)?;
        coordinator.close();
        let tables = tables?;
        return Ok(Outcome::ok(BackupPlan {
            dry_run: true,
            location: storage.location(),
            tables: tables
                .iter()
                .map(|t| PlannedTable {
                    table: format!("{}.{}", t.schema, t.name),
                    bytes: t.bytes,
                })
                .collect(),
            bytes: tables.iter().map(|t| t.bytes).sum(),
            large_objects,
        }));
    }
    ctx.audit(&db);
    let options = DumpOptions {
        env: ctx.settings.env_name.clone(),
        ..options.clone()
    };
    let (result, _) = dump(&db, storage.as_ref(), &options)?;
    if result.large_objects.excluded && result.large_objects.count > 0 {
        ctx.warn(
            WarningCode::LargeObjectsExcluded,
            format!(
                "--no-large-objects: the {} large object(s) of {} are not in backup {}; its manifest records this, and a restore of it says so",
                result.large_objects.count, db.dbname, result.id
            ),
        );
    }
    pgward_shared::log::info(&format!(
        "backup {} complete: {} rows, {} bytes",
        result.id, result.rows, result.size_bytes
    ));
    Ok(Outcome::ok(result))
}

/// `list`.
pub fn list(ctx: &Context, from: Option<&str>, args: &S3Options) -> Result<Outcome, Failure> {
    let storage = open_storage(ctx, from, args)?;
    let result = inventory::list(storage.as_ref())?;
    ctx.warn_all(inventory::listing_warnings(
        &result.incomplete,
        &result.damaged,
    ));
    Ok(Outcome::ok(result))
}

/// `verify`: the archive's verification of backup `id`, recorded in its `verified.json`.
pub fn verify(
    ctx: &Context,
    from: Option<&str>,
    id: &str,
    deep: bool,
    jobs: usize,
    args: &S3Options,
) -> Result<Outcome, Failure> {
    let storage = open_storage(ctx, from, args)?;
    ctx.audit_location(&storage.location());
    verify::verify_backup(ctx, storage.as_ref(), id, deep, jobs).map(Outcome::ok)
}

/// prune's rules: the `--keep-*` flags when any is given (they replace the environment's
/// table, never mix with it), else the selected environment's `retention` table; and where
/// they come from. No rule at all is refused: a prune would then keep only the newest
/// verified backup.
pub fn prune_retention(ctx: &Context, flags: Retention) -> Result<(Retention, String)> {
    if !flags.is_empty() {
        return Ok((flags, "flags".into()));
    }
    let from_env = ctx.settings.env.as_ref().and_then(|e| e.retention.clone());
    match (from_env, &ctx.settings.env_name) {
        (Some(rules), Some(name)) if !rules.is_empty() => {
            Ok((rules, format!("pgward.toml [env.{name}.retention]")))
        }
        _ => Err(Error::usage(
            "prune has no rules: no --keep-* flag was given and the environment has no [env.NAME.retention] table",
            "give the rules, e.g. pgward-backup prune --keep-last 7 --keep-days 30, or --keep-daily 7 --keep-weekly 4 --keep-monthly 12; or set them per environment in pgward.toml ([env.NAME.retention], see docs/config.md) and pass --env NAME",
        )),
    }
}

/// `prune`.
pub fn prune_command(
    ctx: &Context,
    from: Option<&str>,
    args: &S3Options,
    rules: &PruneRules,
    dry_run: bool,
    guard: GuardArgs,
) -> Result<Outcome, Failure> {
    let storage = open_storage(ctx, from, args)?;
    if !dry_run {
        ctx.audit_location(&storage.location());
        ctx.settings
            .guard_destructive("prune", &storage.location(), guard)?;
    }
    Ok(Outcome::ok(prune(storage.as_ref(), rules, dry_run)?))
}
