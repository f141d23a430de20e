//! The commands of pgward-backup as plain functions over a [`Context`]: backup, list,
//! verify, prune, copy.

use pgward_shared::archive::inventory;
use pgward_shared::archive::prune::{prune, PruneRules, PrunedLocation};
use pgward_shared::archive::results::{
    BackupPlan, CopyResult, PlannedTable, VerifiedCopy, VerifyResult,
};
use pgward_shared::archive::sources::source_in_use;
use pgward_shared::archive::verify;
use pgward_shared::archive::write::{dump, DumpOptions};
use pgward_shared::codes::WarningCode;
use pgward_shared::config::GuardArgs;
use pgward_shared::error::{Error, Result};
use pgward_shared::output::{Context, Failure, Outcome};
use pgward_shared::retention::Retention;
use pgward_shared::storage::{
    copy_to, holds_complete, open_storage, replicate, S3Options, Storage,
};

/// `backup`.
pub fn backup(
    ctx: &Context,
    to: &[String],
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
    let (mut result, _) = dump(&db, &storage, &options)?;
    // The other locations get their copies once the first is complete.
    let (copies, copied) = replicate(&storage, &result.id, options.jobs);
    result.copies.extend(copies);
    if let Err(e) = copied {
        return Err(Failure::with_result(e, &result));
    }
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
pub fn list(ctx: &Context, from: &[String], args: &S3Options) -> Result<Outcome, Failure> {
    let storage = open_storage(ctx, from, args)?;
    let result = inventory::list(&storage)?;
    ctx.warn_all(storage.unavailable_warnings());
    ctx.warn_all(inventory::listing_warnings(
        &result.incomplete,
        &result.damaged,
    ));
    Ok(Outcome::ok(result))
}

/// `verify`: the archive's verification of backup `id`, recorded in its `verified.json`;
/// with several locations, of each location's copy on its own.
pub fn verify(
    ctx: &Context,
    from: &[String],
    id: &str,
    deep: bool,
    jobs: usize,
    args: &S3Options,
) -> Result<Outcome, Failure> {
    let storage = open_storage(ctx, from, args)?;
    for location in storage.locations() {
        ctx.audit_location(&location);
    }
    if storage.len() == 1 && storage.unopened().is_empty() {
        let mut result = verify::verify_backup(ctx, &storage, id, deep, jobs)?;
        result.copies = vec![VerifiedCopy {
            location: storage.location(),
            verified: true,
            problem: None,
        }];
        return Ok(Outcome::ok(result));
    }
    // The backup is chosen once, among every location's, then each copy is checked.
    let id = inventory::resolve_id(&storage, id, source_in_use(ctx))?;
    ctx.warn_all(storage.unavailable_warnings());
    let held_in = storage.location_of(&id);
    let mut checked: Option<VerifyResult> = None;
    let mut copies = Vec::new();
    // The first failure, and the location of the copy it is about.
    let mut failure: Option<(Failure, String)> = None;
    for member in storage.members() {
        let location = member.location();
        let outcome = match holds_complete(member, &id) {
            Err(e) => Err(Failure::from(e)),
            Ok(false) => Err(Failure::from(Error::BackupCopyMissing {
                id: id.clone(),
                location: location.clone(),
                held_in: held_in.clone(),
            })),
            // --deep restores one copy: the first that passes the file checks.
            Ok(true) => verify::verify_backup(ctx, member, &id, deep && checked.is_none(), jobs),
        };
        match outcome {
            Ok(result) => {
                copies.push(VerifiedCopy {
                    location,
                    verified: true,
                    problem: None,
                });
                checked.get_or_insert(result);
            }
            Err(f) => {
                pgward_shared::log::error(&format!("the copy in {location}: {}", f.error));
                copies.push(VerifiedCopy {
                    location: location.clone(),
                    verified: false,
                    problem: Some(f.error.to_string()),
                });
                failure.get_or_insert((f, location));
            }
        }
    }
    for (location, why) in storage.unopened() {
        pgward_shared::log::error(&format!("the copy in {location}: {why}"));
        copies.push(VerifiedCopy {
            location: location.clone(),
            verified: false,
            problem: Some(why.clone()),
        });
        failure.get_or_insert((
            Failure::from(Error::Storage {
                location: location.clone(),
                action: "open the backup location".into(),
                s3_code: None,
                reason: why.clone(),
            }),
            location.clone(),
        ));
    }
    let mut result = checked.unwrap_or(VerifyResult {
        id,
        files: Vec::new(),
        deep,
        restore: None,
        copies: Vec::new(),
    });
    // A damaged copy, with another one verified: the way out is that copy, not an older
    // backup.
    let good_in = copies
        .iter()
        .find(|c| c.verified)
        .map(|c| c.location.clone());
    result.copies = copies;
    match failure {
        Some((f, location)) => {
            let error = match (*f.error, good_in) {
                (
                    Error::BackupCorrupt {
                        id,
                        problems,
                        files,
                    },
                    Some(good_in),
                ) => Error::BackupCopyDamaged {
                    id,
                    location,
                    problems,
                    files,
                    good_in,
                },
                (error, _) => error,
            };
            Err(Failure::with_result(error, &result))
        }
        None => Ok(Outcome::ok(result)),
    }
}

/// `copy`: backup `id` (or `latest`), complete in the `--from` locations, copied to each
/// `--to` location that lacks it, checked on arrival, its manifest last (either side
/// defaults to the environment's `backups`).
pub fn copy(
    ctx: &Context,
    from: &[String],
    to: &[String],
    id: &str,
    jobs: usize,
    replace_damaged: bool,
    args: &S3Options,
) -> Result<Outcome, Failure> {
    let source = open_storage(ctx, from, args)?;
    let id = inventory::resolve_id(&source, id, source_in_use(ctx))?;
    ctx.warn_all(source.unavailable_warnings());
    let Some(holder) = source.holders(&id).into_iter().next() else {
        return Err(Error::BackupNotFound {
            id,
            location: source.location(),
        }
        .into());
    };
    let dest = open_storage(ctx, to, args)?;
    let dests: Vec<&dyn Storage> = dest.members().collect();
    for member in &dests {
        ctx.audit_location(&member.location());
    }
    let (copies, copied) = copy_to(holder, &dests, dest.unopened(), &id, jobs, replace_damaged);
    let result = CopyResult {
        id,
        from: holder.location(),
        copies,
    };
    match copied {
        Err(e) => Err(Failure::with_result(e, &result)),
        Ok(()) => Ok(Outcome::ok(result)),
    }
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
    from: &[String],
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
    if storage.len() == 1 && storage.unopened().is_empty() {
        return Ok(Outcome::ok(prune(&storage, rules, dry_run)?));
    }
    // Several locations: each is pruned on its own, by its own listing. A location's
    // leftovers are its own (a killed copy's is deleted there alone), its newest verified
    // copy is kept, and one whose copies failed for a while keeps its newest ones: never a
    // decision over the others' backups that could empty it.
    let mut locations = Vec::new();
    let mut failure = None;
    for member in storage.members() {
        ctx.audit_location(&member.location());
        match prune(member, rules, dry_run) {
            Ok(pruned) => locations.push(PrunedLocation {
                location: member.location(),
                result: Some(pruned),
                problem: None,
            }),
            Err(e) => {
                pgward_shared::log::error(&format!("prune of {}: {e}", member.location()));
                locations.push(PrunedLocation {
                    location: member.location(),
                    result: None,
                    problem: Some(e.to_string()),
                });
                failure.get_or_insert(e);
            }
        }
    }
    for (location, why) in storage.unopened() {
        locations.push(PrunedLocation {
            location: location.clone(),
            result: None,
            problem: Some(why.clone()),
        });
        failure.get_or_insert(Error::Storage {
            location: location.clone(),
            action: "open the backup location to prune it".into(),
            s3_code: None,
            reason: why.clone(),
        });
    }
    let mut result = locations
        .first()
        .and_then(|l| l.result.clone())
        .unwrap_or_else(|| pgward_shared::archive::prune::PruneResult::empty(rules, dry_run));
    result.locations = locations;
    if let Some(e) = failure {
        // The other locations were pruned; this one needs a look.
        return Err(Failure::with_result(e, &result));
    }
    Ok(Outcome::ok(result))
}
