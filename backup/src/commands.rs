//! The four commands of pgward-backup as plain functions over a [`Context`]: backup, list,
//! verify, prune.

use chrono::Utc;
use pgward_shared::archive::manifest::{VerificationRecord, LARGE_OBJECTS_FILE, VERIFIED_FILE};
use pgward_shared::archive::sources::source_in_use;
use pgward_shared::codes::WarningCode;
use pgward_shared::config::GuardArgs;
use pgward_shared::error::{Error, Exit, Result};
use pgward_shared::output::{Context, Failure, Outcome, VERSION};
use pgward_shared::storage::{open_storage, S3Options, Storage};

use pgward_shared::archive::inventory;
use pgward_shared::archive::load::{self, LoadOptions, LoadReport};
use pgward_shared::archive::prune::{prune, PruneRules};
use pgward_shared::archive::results::{BackupPlan, PlannedTable, VerifyResult};
use pgward_shared::archive::verify::{check_files, require_all_ok, Depth};
use pgward_shared::archive::write::{dump, DumpOptions};
use pgward_shared::workdb;

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

/// `verify`.
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
    let id = inventory::resolve_id(storage.as_ref(), id, source_in_use(ctx))?;
    // A manifest that cannot be trusted (unreadable, naming places outside its backup, or
    // not the one an earlier verify recorded) fails here. One altered after a verify keeps
    // its verified.json: the record is the evidence that the manifest changed, and
    // removing it would let the next verify accept the altered manifest.
    if let Err(e) = inventory::read_backup(storage.as_ref(), &id) {
        if !inventory::altered_after_verify(storage.as_ref(), &id) {
            forget_verification(ctx, storage.as_ref(), &id);
        }
        return Err(e.into());
    }
    let checked = check_and_record(ctx, storage.as_ref(), &id, deep, jobs);
    if let Err(failure) = &checked {
        if failure.error.exit() == Exit::Integrity {
            forget_verification(ctx, storage.as_ref(), &id);
        }
    }
    checked
}

/// verify's checks of backup `id` (and with `deep` the scratch restore); when every one
/// passes, `verified.json` records them with the SHA-256 of the manifest they checked.
fn check_and_record(
    ctx: &Context,
    storage: &dyn Storage,
    id: &str,
    deep: bool,
    jobs: usize,
) -> Result<Outcome, Failure> {
    let (manifest, manifest_sha256) = inventory::read_manifest_with_digest(storage, id)?;
    if let Some(problem) = pgward_shared::archive::large_objects::inconsistency(&manifest) {
        return Err(
            pgward_shared::archive::verify::corrupt(id, LARGE_OBJECTS_FILE, problem).into(),
        );
    }
    pgward_shared::log::info(&format!("verifying {} files of {id}", manifest.files.len()));
    let files = check_files(
        storage,
        id,
        &manifest.files.iter().collect::<Vec<_>>(),
        jobs,
        Depth::Decode,
    )?;
    let mut result = VerifyResult {
        id: id.to_string(),
        files,
        deep,
        restore: None,
    };
    if let Err(e) = require_all_ok(id, &result.files) {
        return Err(Failure::with_result(e, &result));
    }
    if deep {
        let db = ctx.database()?;
        result.restore = Some(
            deep_restore(&db, storage, &manifest, jobs)
                .map_err(|e| Failure::with_result(e, &result))?,
        );
    }
    let record = VerificationRecord {
        verified_at: Utc::now(),
        deep,
        tool_version: VERSION.to_string(),
        manifest_sha256: Some(manifest_sha256),
    };
    storage.write_small(
        id,
        VERIFIED_FILE,
        &serde_json::to_vec_pretty(&record).unwrap_or_default(),
    )?;
    Ok(Outcome::ok(result))
}

/// A backup that fails a verify on its integrity (exit 5: a file or the `--deep` row
/// counts) is no longer "verified", whatever an earlier verify wrote: `list`,
/// `prune` (which keeps the newest verified backup) and restore (which trusts a
/// record of this manifest) read `verified.json`.
fn forget_verification(ctx: &Context, storage: &dyn Storage, id: &str) {
    if let Err(e) = storage.delete_small(id, VERIFIED_FILE) {
        ctx.warn(
            WarningCode::VerificationRecordKept,
            format!("{id} failed verification, but its earlier {VERIFIED_FILE} could not be removed ({e}); remove it by hand"),
        );
    }
}

/// The name of every scratch database of `verify --deep` begins with this.
const SCRATCH_PREFIX: &str = "pgward_verify_";

/// Restores into a scratch database on the same server, compares row counts (the loader
/// does), and drops it again whatever happens.
fn deep_restore(
    db: &pgward_shared::connect::dburl::ConnectionSettings,
    storage: &dyn Storage,
    manifest: &pgward_shared::archive::manifest::BackupManifest,
    jobs: usize,
) -> Result<LoadReport> {
    let scratch = format!(
        "{SCRATCH_PREFIX}{}_{}",
        std::process::id(),
        Utc::now().format("%H%M%S")
    );
    let mut admin = pgward_shared::connect::connect(db, "pgward-backup")?;
    // Scratch databases of killed runs (marked, nobody on them) go first; another deep
    // verify running beside this one keeps its own.
    for found in workdb::find(&mut admin.client, SCRATCH_PREFIX, true)? {
        if found.is_leftover() {
            workdb::drop_leftover(&mut admin.client, &found)?;
        }
    }
    workdb::create(
        &mut admin.client,
        &scratch,
        manifest,
        &format!(
            "scratch database of pgward-backup verify --deep of backup {}, dropped when it ends; with no session on it, that verify was interrupted, and the next verify --deep drops it",
            manifest.id
        ),
    )?;
    pgward_shared::log::info(&format!(
        "restoring {} into scratch database {scratch}",
        manifest.id
    ));
    let loaded = load::load(
        storage,
        manifest,
        &db.with_database(&scratch),
        &LoadOptions {
            jobs,
            ..Default::default()
        },
    );
    let dropped = load::drop_database(&mut admin.client, &scratch);
    let report = loaded?;
    dropped?;
    Ok(report)
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
    if rules.keep_last.is_none() && rules.keep_days.is_none() {
        return Err(Error::usage(
            "prune needs --keep-last N and/or --keep-days D",
            "e.g. pgward-backup prune --keep-last 7 --keep-days 30",
        )
        .into());
    }
    let storage = open_storage(ctx, from, args)?;
    if !dry_run {
        ctx.audit_location(&storage.location());
        ctx.settings
            .guard_destructive("prune", &storage.location(), guard)?;
    }
    Ok(Outcome::ok(prune(storage.as_ref(), rules, dry_run)?))
}
