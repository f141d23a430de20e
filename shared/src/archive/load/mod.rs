//! Loading a verified backup into an empty database: pre-data (tables, types, functions;
//! the part the largest table does not need restored while it loads), then every data
//! chunk in parallel, then sequences, then post-data (indexes,
//! constraints, triggers) in parallel, then materialized views, row counts against the
//! manifest, and ANALYZE. `pgward-restore` and `pgward-backup verify --deep` both load
//! through here.
//!
//! One job per module: `schedule.rs` hands the tables to loader sessions (largest first,
//! with `--jobs 4` or more a table that is most of the data split chunk by chunk across
//! the sessions, the gate on the rest of pre-data, the tail's early post-data pass),
//! `copy.rs` loads a table's chunks with COPY FREEZE (or one chunk of a split table with
//! plain COPY), `pg_restore.rs` builds and runs the pg_restore commands (pre-data, the
//! two post-data passes), `post_data.rs` plans those passes from the archive's table of
//! contents, `finish.rs` does what follows the data (sequences,
//! materialized views, row counts, ANALYZE), `sql_format.rs` loads a `--format sql` backup
//! through psql behind `sql_guard.rs`, `database.rs` creates and drops the database loaded
//! into, and `staging.rs` holds the private folder pg_restore reads its files from.

mod copy;
mod database;
mod finish;
mod pg_restore;
pub mod post_data;
mod schedule;
mod sql_format;
pub mod sql_guard;
mod staging;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::archive::large_objects;
use crate::archive::manifest::{BackupFormat, BackupManifest, ManifestTable, SCHEMA_FILE};
use crate::archive::workers::TablePatterns;
use crate::connect::connect;
use crate::connect::dburl::ConnectionSettings;
use crate::error::{Error, Result};
use crate::log;
use crate::storage::Storage;
use post_data::{split_pre_data, PostDataPlan};
use serde::{Deserialize, Serialize};

pub use database::{create_database, drop_database};
pub(crate) use pg_restore::pg_restore_command;

/// Application name of restore sessions.
const APP: &str = "pgward-restore";

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Parallel loaders (and pg_restore jobs for post-data).
    pub jobs: usize,
    /// Only the data of tables matching these patterns (the schema is always whole).
    pub tables: Vec<String>,
    /// Skip restoring ownership and privileges (for another cluster's roles).
    pub no_owner: bool,
    /// Leave the backup's large objects out.
    pub no_large_objects: bool,
}

/// One table loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableLoad {
    /// `schema.table`.
    pub table: String,
    /// Rows loaded.
    pub rows: u64,
    /// Rows the manifest recorded.
    pub expected_rows: u64,
    /// Seconds spent loading it (summed over its chunks).
    pub seconds: f64,
    /// Whether its rows were stored frozen (`COPY ... FREEZE` after a TRUNCATE in the same
    /// transaction). False when the restoring role may insert into the table but not
    /// truncate it: the rows are then loaded as plain COPY, and WAL-logged, and the first
    /// VACUUM rewrites their pages.
    pub frozen: bool,
}

/// What a load did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    /// Per table.
    pub tables: Vec<TableLoad>,
    /// Seconds per phase. Pre-data counts only the part before the first table loads; the
    /// rest runs during `data_s`.
    pub pre_data_s: f64,
    /// See `pre_data_s`.
    pub data_s: f64,
    /// Indexes and keys built during `data_s`, on tables already loaded while others
    /// still loaded; the rest of post-data runs after all data, in `post_data_s`.
    #[serde(default)] // absent from older documents (`report render`)
    pub post_data_early_items: usize,
    /// See `pre_data_s`.
    pub post_data_s: f64,
    /// See `pre_data_s`.
    pub verify_and_analyze_s: f64,
    /// Large objects restored (counted in the target and compared with the manifest).
    #[serde(default)] // absent from older documents (`report render`)
    pub large_objects: u64,
}

fn since(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// Loads the backup `manifest` from `storage` into the (empty) database `target`.
pub fn load(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    target: &ConnectionSettings,
    options: &LoadOptions,
) -> Result<LoadReport> {
    if manifest.format == BackupFormat::Sql {
        // It restores whole: `--no-large-objects` is refused before anything is touched.
        return sql_format::load_sql(storage, manifest, target);
    }
    let jobs = options.jobs.max(1);
    let staging = staging::folder()?;
    let schema_path = staging::write_new(
        staging.path(),
        SCHEMA_FILE,
        &crate::archive::verify::read_checked(storage, manifest, SCHEMA_FILE)?,
    )?;
    let tables = selected_tables(manifest, &options.tables)?;
    let list = pg_restore::pg_restore_list(target, &schema_path)?;
    let order = schedule::plan(manifest, &tables, jobs);
    // The largest table starts loading once the schema it needs exists; the other tables'
    // schema is restored while it loads (see `split_pre_data`).
    let split = order
        .first()
        .and_then(|w| split_pre_data(&list, tables[w.table]));
    let (head_list, rest_list) = match &split {
        Some(split) => (
            Some(staging::write_new(
                staging.path(),
                "pre-data-head.list",
                split.head.as_bytes(),
            )?),
            Some(staging::write_new(
                staging.path(),
                "pre-data-rest.list",
                split.rest.as_bytes(),
            )?),
        ),
        None => (None, None),
    };
    let pre_data = |list: Option<&std::path::Path>| {
        pg_restore::run(pg_restore::pg_restore(
            target,
            &schema_path,
            "pre-data",
            pg_restore::Workers::Jobs(1),
            options.no_owner,
            list,
        ))
    };
    let t = Instant::now();
    log::info("restoring the schema (pre-data)");
    pre_data(head_list.as_deref())?;
    let pre_data_s = since(t);

    let t = Instant::now();
    let post_data = pg_restore::PostData {
        plan: PostDataPlan::new(&list, &tables),
        target,
        archive: &schema_path,
        staging: staging.path(),
        no_owner: options.no_owner,
    };
    let schema_ready = schedule::Gate::default();
    let failed = AtomicBool::new(false);
    let (rest, large_objects, loaded) = std::thread::scope(|scope| {
        // Large objects need no schema (their owners are the cluster's roles): they load
        // on a session of their own from the start, until the rest fails, if it does.
        let large_objects =
            large_objects::file_to_restore(manifest, options.no_large_objects).map(|_| {
                scope.spawn(|| {
                    large_objects::restore(storage, manifest, target, options.no_owner, &failed)
                })
            });
        let rest = scope.spawn(|| {
            let mut opener = schedule::Opener {
                gate: &schema_ready,
                passed: false,
            };
            if let Some(list) = &rest_list {
                log::info("restoring the rest of the schema while the largest table loads");
                pre_data(Some(list))?;
            }
            opener.passed = true;
            Ok(())
        });
        let schedule = schedule::Schedule {
            order: &order,
            schema_ready: &schema_ready,
        };
        let loaded = schedule::load_data(
            storage, manifest, target, &tables, jobs, &post_data, schedule,
        );
        if loaded.is_err() {
            failed.store(true, Ordering::SeqCst);
        }
        let joined = |thread: std::thread::ScopedJoinHandle<Result<()>>, what: &str| {
            thread.join().unwrap_or_else(|_| {
                Err(Error::ExternalTool {
                    tool: "pg_restore".into(),
                    reason: format!("the thread restoring {what} panicked"),
                    hint: "report this as a bug".into(),
                })
            })
        };
        let rest = joined(rest, "the schema");
        let large_objects = large_objects
            .map(|thread| joined(thread, "the large objects"))
            .transpose();
        (rest, large_objects, loaded)
    });
    // A failed schema stops the other loads, so its error is the cause.
    rest?;
    let loaded = loaded?;
    large_objects?;
    let report_tables = finish::check_row_counts(&tables, &loaded.per_table)?;
    let data_s = since(t);

    let mut session = connect(target, APP)?;
    let large_objects = large_objects::check_count(
        &mut session,
        large_objects::to_restore(manifest, options.no_large_objects),
    )?;
    finish::restore_sequences(&mut session, manifest)?;

    let t = Instant::now();
    log::info("building indexes, constraints and triggers (post-data)");
    post_data.run_rest(&loaded.early, jobs)?;
    finish::refresh_materialized_views(&mut session, manifest)?;
    let post_data_s = since(t);

    let t = Instant::now();
    let analyzed: Vec<&ManifestTable> = loaded.early.iter().map(|&i| tables[i]).collect();
    finish::analyze_all_but(&mut session, &analyzed)?;
    Ok(LoadReport {
        tables: report_tables,
        pre_data_s,
        data_s,
        post_data_early_items: loaded
            .early
            .iter()
            .map(|&i| post_data.plan.early_count(i))
            .sum(),
        post_data_s,
        verify_and_analyze_s: since(t),
        large_objects,
    })
}

/// The tables of `manifest` whose data `patterns` select (all when empty); a usage error
/// when a pattern selects none. Restore calls it before touching the target.
pub fn selected_tables<'m>(
    manifest: &'m BackupManifest,
    patterns: &[String],
) -> Result<Vec<&'m ManifestTable>> {
    if patterns.is_empty() {
        return Ok(manifest.tables.iter().collect());
    }
    let selected = TablePatterns::compile(patterns)?;
    selected.require_each_matches(
        manifest
            .tables
            .iter()
            .map(|t| (t.schema.as_str(), t.name.as_str())),
        &format!("backup {}", manifest.id),
    )?;
    let chosen: Vec<&ManifestTable> = manifest
        .tables
        .iter()
        .filter(|t| selected.matches(&t.schema, &t.name))
        .collect();
    Ok(chosen)
}
