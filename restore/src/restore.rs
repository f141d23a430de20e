//! `pgward-restore restore`: prove the backup is good, then guard the target, then load.
//!
//! 1. Every file's checksum is verified before the target is touched (exit 5, target
//!    untouched, if any fails): first, or, for a new target, as the data files load into
//!    the database that becomes the target only once every one matched.
//! 2. A non-empty target is refused without `--clean` (exit 6). With `--clean` (and
//!    `--force` in a protected environment) a safety backup of the target is taken first,
//!    then its sessions are ended and it is dropped.
//! 3. The backup is loaded (schema, parallel data, sequences, parallel indexes and
//!    constraints), row counts are checked against the manifest, and ANALYZE runs. A new
//!    database is loaded under another name and renamed to the target only then.

use pgward_shared::archive::inventory;
use pgward_shared::archive::large_objects;
use pgward_shared::archive::load::{self, LoadOptions};
use pgward_shared::archive::manifest::{BackupFormat, LARGE_OBJECTS_FILE};
use pgward_shared::archive::sources::BackupSource;
use pgward_shared::archive::verify::{self, check_files, require_all_ok, restore_depth, Depth};
use pgward_shared::archive::write::{dump, DumpOptions};
use pgward_shared::cli::{Jobs, Tables, DRY_RUN_HELP, NO_LARGE_OBJECTS_HELP};
use pgward_shared::codes::WarningCode;
use pgward_shared::config::GuardArgs;
use pgward_shared::error::{Error, Result};
use pgward_shared::log;
use pgward_shared::output::{Context, Failure, Outcome};
use pgward_shared::storage::{self, S3Options, Storage};
use pgward_shared::workdb;

use crate::target;
use pgward_shared::archive::results::RestoreResult;

/// restore's options: the flags of `pgward-restore`, parsed straight into the engine's
/// options.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct RestoreOptions {
    /// LOCATION/ID or LOCATION/latest (LOCATION alone with --before-migration)
    /// [default: the environment's `backups`]
    #[arg(long, value_name = "LOCATION/ID")]
    pub from: Option<String>,
    /// Restore the newest backup taken before this migration was applied
    #[arg(long, value_name = "NAME")]
    pub before_migration: Option<String>,
    /// Restore into this database instead of the URL's (for restore tests)
    #[arg(long, value_name = "NAME")]
    pub target_db: Option<String>,
    /// Create the target database if it does not exist
    #[arg(long)]
    pub create: bool,
    /// Replace a non-empty target (after a safety backup of it)
    #[arg(long)]
    pub clean: bool,
    /// Do not take the safety backup --clean takes
    #[arg(long, requires = "clean")]
    pub no_safety_backup: bool,
    /// Where the safety backup goes [default: the backup's location]
    #[arg(long, value_name = "LOCATION")]
    pub safety_backup_to: Option<String>,
    // Parallel loaders (and checksum readers).
    #[command(flatten)]
    pub jobs: Jobs,
    // Only the data of these tables.
    #[command(flatten)]
    pub tables: Tables,
    /// Do not restore ownership and privileges (restoring into another cluster)
    #[arg(long)]
    pub no_owner: bool,
    // Leave the backup's large objects out.
    #[arg(long, help = NO_LARGE_OBJECTS_HELP)]
    pub no_large_objects: bool,
    // Verify and plan; change nothing.
    #[arg(long, help = DRY_RUN_HELP)]
    pub dry_run: bool,
    // --force / --yes.
    #[command(flatten)]
    pub guard: GuardArgs,
}

impl RestoreOptions {
    /// Whether any option was given (so that one given both before and after the
    /// `restore` word is refused rather than one of them silently ignored): every field
    /// defaults to "not given" (none, false, empty).
    pub fn given(&self) -> bool {
        *self != RestoreOptions::default()
    }
}

/// Runs restore.
pub fn restore(
    ctx: &Context,
    options: &RestoreOptions,
    storage_args: &S3Options,
) -> Result<Outcome, Failure> {
    let (locations, id) = storage::resolve_backup(options.from.as_deref(), &ctx.settings)?;
    // With several locations (`backups = [...]`), the backup is read from the first that
    // holds a complete copy of it.
    let store = storage::open_locations(&locations, storage_args)?;
    // Where a safety backup goes by default: the first location, where backups are written.
    let written_to = &locations[0];
    // Where a safety backup goes without --safety-backup-to: every location the backup was
    // looked for in (with `backups = [...]`, a copy in each).
    let safety_locations = &locations;
    // `latest` and `--before-migration` choose among the backups of the URL's database
    // (and environment) only; a backup of another database is restored only when named.
    let db = ctx.database()?;
    let source = BackupSource::new(&db.dbname, ctx.settings.env_name.as_deref());
    let (id, named) =
        match (id, &options.before_migration) {
            (_, Some(migration)) => (
                inventory::before_migration(&store, migration, Some(source.clone()))?,
                false,
            ),
            (Some(id), None) if id == "latest" => (
                inventory::resolve_id(&store, &id, Some(source.clone()))?,
                false,
            ),
            (Some(id), None) => (inventory::resolve_id(&store, &id, None)?, true),
            (None, None) => return Err(Error::usage(
                match &options.from {
                    Some(from) => format!("--from {from} names no backup"),
                    None => "no backup named: --from is missing".to_string(),
                },
                "name one: --from LOCATION/ID, --from LOCATION/latest, --from ID or --from latest (in the environment's `backups`), or --before-migration NAME",
            )
            .into()),
        };
    let (manifest, manifest_sha256) = inventory::read_manifest_with_digest(&store, &id)?;
    ctx.warn_all(store.unavailable_warnings());
    // An encrypted backup without the identity it was encrypted to stops here, before
    // anything is read or touched.
    pgward_shared::archive::crypt::check_can_decrypt(&manifest)?;
    let backup_source = BackupSource::new(&manifest.database, manifest.env.as_deref());
    if !named && backup_source != source {
        // Selection only ever picks backups of `source`; a manifest saying otherwise was
        // not chosen by this restore.
        return Err(Error::BackupCorrupt {
            id,
            problems: format!("its manifest says it is a backup of {backup_source}, but it was picked as one of {source}"),
            files: vec![pgward_shared::archive::manifest::MANIFEST_FILE.to_string()],
        }
        .into());
    }
    // A --tables typo is a usage error before anything is read or touched.
    let tables = match manifest.format {
        BackupFormat::Directory => load::selected_tables(&manifest, &options.tables.tables)?,
        BackupFormat::Sql => Vec::new(),
    };
    // A manifest that contradicts itself is not what pgward wrote: the target must not
    // be touched.
    if let Some(problem) = large_objects::inconsistency(&manifest) {
        return Err(verify::corrupt(&id, LARGE_OBJECTS_FILE, problem).into());
    }
    if options.no_large_objects
        && manifest.format == BackupFormat::Sql
        && large_objects::to_restore(&manifest, false) != Some(0)
    {
        return Err(Error::usage(
            format!(
                "--no-large-objects cannot leave out the large objects of {id}: a --backup-format sql backup restores whole"
            ),
            "restore without --no-large-objects (and drop what you do not want afterwards: SELECT lo_unlink(oid) FROM pg_largeobject_metadata)",
        )
        .into());
    }
    if let Some(message) = large_objects::not_restored(&manifest, options.no_large_objects) {
        ctx.warn(WarningCode::LargeObjectsNotRestored, message);
    }
    let large_objects_file = large_objects::file_to_restore(&manifest, options.no_large_objects);

    let target_name = options
        .target_db
        .clone()
        .unwrap_or_else(|| db.dbname.clone());
    // A backup of one database goes into another only when named: `latest` and
    // `--before-migration` never decide that on their own, even with --target-db.
    if !named && backup_source.database != target_name {
        return Err(Error::usage(
            format!(
                "{} picks {id}, a backup of database {}; restoring it into database {target_name} needs it named by its id",
                options.before_migration.as_ref().map_or("latest".to_string(), |m| format!("--before-migration {m}")),
                backup_source.database
            ),
            format!(
                "name it: --from {}/{id} (the result then says whose backup it is)",
                store.location_of(&id)
            ),
        )
        .into());
    }
    let target_settings = db.with_database(&target_name);
    let mut admin = target::admin_session(&db, &target_name)?;
    target::check_server_versions(&id, &manifest, admin.server_version_num)?;
    let exists = target::exists(&mut admin.client, &target_name)?;
    let objects = if exists {
        target::user_objects(&target_settings)?
    } else {
        0
    };
    // A new target is loaded into a database of another name that becomes the target only
    // once complete, and the load checks every data file as it streams it: a bad file
    // fails the restore with nothing of anyone's touched, and each file is read and
    // decompressed once, not twice. Anything else (a target --clean drops before loading,
    // an empty one loaded in place, a dry run, a --format sql backup) is checked whole
    // before it is touched.
    let while_loading = !exists && !options.dry_run && manifest.format == BackupFormat::Directory;
    let streamed: std::collections::HashSet<&str> = if while_loading {
        tables
            .iter()
            .flat_map(|t| t.chunks.iter().map(|c| c.file.as_str()))
            .chain(large_objects_file)
            .collect()
    } else {
        Default::default()
    };
    // The large objects' file is not read at all when they are left out.
    let first: Vec<_> = manifest
        .files
        .iter()
        .filter(|f| !streamed.contains(f.path.as_str()))
        .filter(|f| f.path != LARGE_OBJECTS_FILE || large_objects_file.is_some())
        .collect();
    let depth = restore_depth(&store, &id, &manifest_sha256);
    log::info(&format!(
        "verifying {} files of {id} before touching anything ({}){}",
        first.len(),
        match depth {
            Depth::Checksums =>
                "checksums; `pgward-backup verify` already decompressed these very files",
            _ => "checksums, and every file decompressed",
        },
        if while_loading {
            format!(
                ", and its {} data files as they load into a new database",
                streamed.len()
            )
        } else {
            String::new()
        }
    ));
    // Read from the first location holding a complete copy, or the next when it is damaged.
    let copy = CopyRead {
        ctx,
        store: &store,
        id: &id,
        manifest_sha256: &manifest_sha256,
    };
    let (checks, depth) = copy.check(&manifest, &first, options.jobs.get())?;

    let other_database = backup_source.database != target_name || backup_source != source;
    if other_database {
        ctx.warn(
            WarningCode::OtherDatabaseBackup,
            format!(
                "{id} is a backup of {backup_source}, restored into database {target_name}: it was named by its id"
            ),
        );
    }
    let mut result = RestoreResult {
        backup: id.clone(),
        source: backup_source,
        other_database,
        location: copy.location(),
        target_db: target_name.clone(),
        created: false,
        replaced: false,
        safety_backup: None,
        verified_files: checks.len(),
        verify_depth: if while_loading {
            Depth::WhileLoading
        } else {
            depth
        },
        dry_run: options.dry_run,
        load: None,
    };
    if !exists && !options.create {
        return Err(Error::usage(
            format!("the target database {target_name} does not exist"),
            "pass --create to create it, or --target-db NAME for another one",
        )
        .into());
    }
    if objects > 0 && !options.clean {
        return Err(Failure::with_result(
            Error::TargetNotEmpty {
                database: target_name.clone(),
                objects,
            },
            &result,
        ));
    }
    // A new database is loaded under another name and renamed when complete; an empty
    // one that already exists (its owner and settings are someone's) is loaded in place.
    // Whether that name is free is settled before anything is touched.
    let in_place = exists && objects == 0;
    let partial = if in_place {
        None
    } else {
        Some(target::prepare_partial(
            &mut admin.client,
            &target_name,
            options.dry_run,
        )?)
    };
    if options.dry_run {
        result.created = !exists;
        result.replaced = objects > 0;
        return Ok(Outcome::ok(result));
    }
    ctx.audit(&target_settings);
    if objects > 0 {
        ctx.settings.guard_destructive(
            "restore over",
            &target_settings.display_target(),
            options.guard,
        )?;
        if !options.no_safety_backup {
            result.safety_backup = Some(safety_backup(
                ctx,
                &target_settings,
                options,
                storage_args,
                safety_locations,
                &id,
            )?);
        }
        let ended = target::terminate_sessions(&mut admin.client, &target_name)?;
        log::info(&format!(
            "replacing {target_name} (ended {ended} session(s))"
        ));
        load::drop_database(&mut admin.client, &target_name)?;
        result.replaced = true;
    }
    if manifest.format == BackupFormat::Sql && !options.tables.tables.is_empty() {
        ctx.warn(
            WarningCode::TablesIgnored,
            "--tables does not apply to a --format sql backup: it restores whole",
        );
    }
    let mut admin = Some(admin);
    let (loaded, load_into) = loop {
        let mut session = match admin.take() {
            Some(session) => session,
            None => target::admin_session(&db, &target_name)?,
        };
        let load_into = match &partial {
            Some(name) => {
                target::create_partial(&mut session.client, name, &target_name, &id, &manifest)?;
                name.clone()
            }
            None => target_name.clone(),
        };
        drop(session);
        let loaded = load::load(
            &store,
            &manifest,
            &db.with_database(&load_into),
            &LoadOptions {
                jobs: options.jobs.get(),
                tables: options.tables.tables.clone(),
                no_owner: options.no_owner,
                no_large_objects: options.no_large_objects,
            },
        );
        // A new database checks its data files as they stream in: a damaged one, with
        // another location holding the backup, drops what was loaded (nothing of anyone's:
        // the target did not exist) and loads that copy instead, checked as above.
        if let (Err(Error::BackupCorrupt { problems, .. }), Some(_), false) =
            (&loaded, &partial, result.replaced)
        {
            // Not dropped: the failure is reported as any failed load (what is left, what
            // to do).
            let dropped = || -> Result<pgward_shared::connect::Session> {
                let mut session = target::admin_session(&db, &target_name)?;
                load::drop_database(&mut session.client, &load_into)?;
                Ok(session)
            };
            if let Some((damaged, session)) = copy
                .skip()
                .and_then(|damaged| Some((damaged, dropped().ok()?)))
            {
                admin = Some(session);
                copy.switch(&damaged, problems)?;
                let (rechecked, _) = copy.check(&manifest, &first, options.jobs.get())?;
                result.location = copy.location();
                result.verified_files = rechecked.len();
                continue;
            }
        }
        break (loaded, load_into);
    };
    // What follows opens sessions of its own: the load may have taken hours.
    let report = match loaded {
        Ok(report) => report,
        Err(e) => {
            ctx.warn(
                WarningCode::RestoreIncomplete,
                after_failed_load(
                    &db,
                    &target_name,
                    &load_into,
                    &result,
                    // It was parsed before anything was touched; no new error here.
                    &safety_destination(options, written_to),
                ),
            );
            return Err(Failure::with_result(e, &result));
        }
    };
    if !in_place {
        // The database's own settings and comment, as pg_restore --create gives them,
        // after the load (a statement_timeout of the source must not cut it short).
        let comment = manifest
            .database_properties
            .as_ref()
            .and_then(|p| p.comment.as_deref());
        target::admin_session(&db, &target_name)
            .and_then(|mut admin| {
                workdb::apply_settings(&mut admin.client, &load_into, &manifest, !options.no_owner)?;
                if !options.no_owner {
                    workdb::apply_grants(&mut admin.client, &load_into, &manifest)?;
                }
                workdb::publish(&mut admin.client, &load_into, &target_name, comment)
            })
            .map_err(|e| {
                ctx.warn(
                    WarningCode::RestoreIncomplete,
                    format!("the backup is restored completely into {load_into}, but its database settings could not be applied or it could not be renamed to {target_name}: fix the cause, then rename it by hand (ALTER DATABASE {load_into} RENAME TO {target_name})"),
                );
                Failure::with_result(e, &result)
            })?;
        result.created = !exists;
    }
    result.verified_files += streamed.len();
    result.load = Some(report);
    Ok(Outcome::ok(result))
}

/// The copy of a backup a restore reads: the first location holding it, and the next one
/// when that one turns out damaged before anyone's data is touched.
struct CopyRead<'a> {
    ctx: &'a Context,
    store: &'a storage::Copies,
    id: &'a str,
    /// The manifest's SHA-256 as first read: every copy used must have the same.
    manifest_sha256: &'a str,
}

impl CopyRead<'_> {
    /// The location the backup is read from now.
    fn location(&self) -> String {
        self.store.location_of(self.id)
    }

    /// Checks `files` in the copy read now at the depth its verification allows, moving
    /// on to the next location holding the backup while the copy read is damaged.
    fn check(
        &self,
        manifest: &pgward_shared::archive::manifest::BackupManifest,
        files: &[&pgward_shared::archive::manifest::ManifestFile],
        jobs: usize,
    ) -> Result<(Vec<verify::FileCheck>, Depth)> {
        loop {
            let depth = restore_depth(self.store, self.id, self.manifest_sha256);
            let checked = check_files(self.store, manifest, files, jobs, depth)
                .and_then(|checks| require_all_ok(self.id, &checks).map(|()| checks));
            if let Err(Error::BackupCorrupt { problems, .. }) = &checked {
                if let Some(damaged) = self.skip() {
                    self.switch(&damaged, problems)?;
                    continue;
                }
            }
            return checked.map(|checks| (checks, depth));
        }
    }

    /// Leaves out the copy read now, found damaged, when another location holds the
    /// backup: the damaged copy's location.
    fn skip(&self) -> Option<String> {
        let damaged = self.location();
        self.store.skip_copy(self.id, &damaged).then_some(damaged)
    }

    /// Reads from the next location holding the backup (chosen by [`CopyRead::skip`]),
    /// after the copy in `damaged` failed with `problems`: warns, and makes sure that copy
    /// has the same manifest, byte for byte.
    fn switch(&self, damaged: &str, problems: &str) -> Result<()> {
        let (id, read_from) = (self.id, self.location());
        self.ctx.warn(
            WarningCode::BackupCopyUnavailable,
            format!("the copy of {id} in {damaged} is damaged ({problems}); restoring the copy in {read_from} instead (`pgward-backup verify {id}` shows each copy)"),
        );
        let (_, digest) = inventory::read_manifest_with_digest(self.store, id)?;
        if digest != self.manifest_sha256 {
            return Err(Error::BackupCorrupt {
                id: id.to_string(),
                problems: format!(
                    "the copy in {read_from} has another manifest than the one in {damaged}"
                ),
                files: vec![pgward_shared::archive::manifest::MANIFEST_FILE.to_string()],
            });
        }
        Ok(())
    }
}

/// What is left of the target after its load failed, and what to do: the warning of a
/// failed restore. The database a new target was loading under held nothing of anyone's:
/// it is dropped.
fn after_failed_load(
    db: &pgward_shared::connect::dburl::ConnectionSettings,
    target_name: &str,
    load_into: &str,
    result: &RestoreResult,
    safety_location: &str,
) -> String {
    if load_into == target_name {
        return format!(
            "{target_name} was empty before this restore and is now only partly restored: fix the cause and run this restore again with --clean --no-safety-backup"
        );
    }
    let dropped = target::admin_session(db, target_name)
        .and_then(|mut admin| load::drop_database(&mut admin.client, load_into));
    let left = match dropped {
        Ok(()) => format!("{load_into}, where it was loading, was dropped"),
        Err(e) => format!("{load_into}, where it was loading, could not be dropped ({e}); the next restore into {target_name} drops it"),
    };
    match (&result.safety_backup, result.replaced) {
        (Some(safety), _) => format!(
            "{target_name} was dropped, and its restore failed, so it does not exist now ({left}); its previous contents are in the safety backup {safety}: fix the cause and run this restore again, or put them back with pgward-restore restore --from {safety_location}/{safety} --create"
        ),
        (None, true) => format!(
            "{target_name} was dropped without a safety backup (--no-safety-backup), and its restore failed, so it does not exist now ({left}): fix the cause and run this restore again with --create"
        ),
        (None, false) => format!(
            "{target_name} was not created ({left}): fix the cause and run this restore again"
        ),
    }
}

/// Where the safety backup goes: `--safety-backup-to`, else the restored backup's location.
fn safety_destination(options: &RestoreOptions, written_to: &str) -> String {
    options
        .safety_backup_to
        .clone()
        .unwrap_or_else(|| written_to.to_string())
}

/// Backs up the target before it is replaced, to `--safety-backup-to` or else to every
/// one of `locations` (written to the first, copied to the others); returns its id. A copy
/// that fails is a warning, not a reason to stop: the safety backup is complete in the
/// first location.
fn safety_backup(
    ctx: &Context,
    target_settings: &pgward_shared::connect::dburl::ConnectionSettings,
    options: &RestoreOptions,
    storage_args: &S3Options,
    locations: &[String],
    restoring: &str,
) -> Result<String> {
    let destinations = match &options.safety_backup_to {
        Some(to) => vec![to.clone()],
        None => locations.to_vec(),
    };
    let store = storage::open_locations(&destinations, storage_args)?;
    log::info(&format!(
        "taking a safety backup of {} to {}",
        target_settings.dbname,
        destinations.join(" and ")
    ));
    let dumped = dump(
        target_settings,
        &store,
        &DumpOptions {
            jobs: options.jobs.get(),
            label: Some(format!("safety backup before restoring {restoring}")),
            env: ctx.settings.env_name.clone(),
            // Everything else as a backup without flags takes it: every table's data and
            // the large objects (the target's are part of what is replaced).
            ..DumpOptions::default()
        },
    );
    match dumped {
        Ok((result, _)) => {
            if let (_, Err(e)) = storage::replicate(&store, &result.id, options.jobs.get()) {
                ctx.warn(
                    WarningCode::BackupCopyUnavailable,
                    format!("the safety backup {} is complete in {}, but a copy of it failed ({e}); the restore goes on", result.id, store.location()),
                );
            }
            Ok(result.id)
        }
        Err(Error::LargeObjectsUnreadable {
            database, reason, ..
        }) => Err(Error::LargeObjectsUnreadable {
            database,
            reason,
            safety_backup: true,
        }),
        Err(e) => Err(e),
    }
}
