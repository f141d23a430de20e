//! Loading a verified backup into an empty database: pre-data (tables, types, functions;
//! the part the largest table does not need restored while it loads), then every data
//! chunk in parallel, then sequences, then post-data (indexes,
//! constraints, triggers) in parallel, then materialized views, row counts against the
//! manifest, and ANALYZE. `pgward-restore` and `pgward-backup verify --deep` both load
//! through here.

pub mod post_data;
pub mod sql_guard;

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::archive::manifest::{
    BackupFormat, BackupManifest, ManifestFile, ManifestTable, SCHEMA_FILE, SQL_FILE,
};
use crate::connect::dburl::ConnectionSettings;
use crate::connect::{connect, libpq_dbname_arg, Session, EXACT_COPY_SETTINGS, READ_EVERY_ROW};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::sql::{quote_ident, quote_literal};
use crate::storage::{HashingReader, Storage};
use crate::{interrupt, log};
use serde::Serialize;

use crate::archive::large_objects;
use crate::archive::workers::{self, TablePatterns};
use crate::pgtools;
use post_data::{split_pre_data, PostDataPlan};
use sql_guard::SqlGuard;

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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
    pub post_data_early_items: usize,
    /// See `pre_data_s`.
    pub post_data_s: f64,
    /// See `pre_data_s`.
    pub verify_and_analyze_s: f64,
    /// Large objects restored (counted in the target and compared with the manifest).
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
        return load_sql(storage, manifest, target);
    }
    let jobs = options.jobs.max(1);
    let staging = tempfile_dir()?;
    let schema_path = staging.path().join(SCHEMA_FILE);
    {
        let bytes = crate::archive::verify::read_checked(storage, manifest, SCHEMA_FILE)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&schema_path)
            .map_err(|e| Error::io("create", &schema_path, e))?;
        f.write_all(&bytes)
            .map_err(|e| Error::io("write", &schema_path, e))?;
    }
    let tables = selected_tables(manifest, &options.tables)?;
    let list = pg_restore_list(target, &schema_path)?;
    let order = load_order(manifest, &tables);
    // The largest table starts loading once the schema it needs exists; the other tables'
    // schema is restored while it loads (see `split_pre_data`).
    let split = order
        .first()
        .and_then(|&i| split_pre_data(&list, tables[i]));
    let (head_list, rest_list) = match &split {
        Some(split) => (
            Some(write_list(
                staging.path(),
                "pre-data-head.list",
                &split.head,
            )?),
            Some(write_list(
                staging.path(),
                "pre-data-rest.list",
                &split.rest,
            )?),
        ),
        None => (None, None),
    };
    let pre_data = |list: Option<&std::path::Path>| {
        run(pg_restore(
            target,
            &schema_path,
            "pre-data",
            Workers::Jobs(1),
            options.no_owner,
            list,
        ))
    };
    let t = Instant::now();
    log::info("restoring the schema (pre-data)");
    pre_data(head_list.as_deref())?;
    let pre_data_s = since(t);

    let t = Instant::now();
    let post_data = PostData {
        plan: PostDataPlan::new(&list, &tables),
        target,
        archive: &schema_path,
        staging: staging.path(),
        no_owner: options.no_owner,
    };
    let schema_ready = Gate::default();
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
            let mut opener = Opener {
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
        let schedule = Schedule {
            order: &order,
            schema_ready: &schema_ready,
        };
        let loaded = load_data(
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
    let report_tables = check_row_counts(&tables, &loaded.per_table)?;
    let data_s = since(t);

    let mut session = connect(target, APP)?;
    let large_objects = large_objects::check_count(
        &mut session,
        large_objects::to_restore(manifest, options.no_large_objects),
    )?;
    for s in &manifest.sequences {
        let name = format!("{}.{}", quote_ident(&s.schema), quote_ident(&s.name));
        session
            .client
            .batch_execute(&format!(
                "SELECT pg_catalog.setval({}, {}, {})",
                quote_literal(&name),
                s.last_value,
                s.is_called
            ))
            .map_err(|e| Error::query(format!("restoring sequence {name}"), &e))?;
    }

    let t = Instant::now();
    log::info("building indexes, constraints and triggers (post-data)");
    post_data.run_rest(&loaded.early, jobs)?;
    refresh_materialized_views(&mut session, manifest)?;
    let post_data_s = since(t);

    let t = Instant::now();
    let analyzed: Vec<&ManifestTable> = loaded.early.iter().map(|&i| tables[i]).collect();
    analyze_all_but(&mut session, &analyzed)?;
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

/// Post-data of the schema archive, run in two passes (see [`crate::archive::load::post_data`]).
struct PostData<'a> {
    plan: PostDataPlan,
    target: &'a ConnectionSettings,
    archive: &'a std::path::Path,
    staging: &'a std::path::Path,
    no_owner: bool,
}

impl PostData<'_> {
    /// While other tables still load: the indexes and keys of the loaded `tables` (by
    /// index into `all`), then ANALYZE of them, on `session`, in batches of about an
    /// eighth of their rows, largest tables first. Before each batch it asks
    /// `loading_over`: once every table is loaded, the rest is left to the final pass,
    /// which runs with all `--jobs`, so the last load never waits long for this one
    /// session. Returns the tables it did.
    fn run_early(
        &self,
        session: &mut Session,
        all: &[&ManifestTable],
        tables: &[usize],
        loading_over: impl Fn() -> bool,
    ) -> Result<Vec<usize>> {
        let items: usize = tables.iter().map(|&i| self.plan.early_count(i)).sum();
        log::info(&format!(
            "building {items} index(es) and key(s) of {} loaded table(s) while the rest loads",
            tables.len()
        ));
        let rows: Vec<(usize, u64)> = tables.iter().map(|&i| (i, all[i].rows)).collect();
        let mut built = Vec::new();
        for batch in early_batches(&rows) {
            if loading_over() {
                break;
            }
            if batch.iter().any(|&i| self.plan.early_count(i) > 0) {
                let list = self.write_list("early.list", &self.plan.early_list(&batch))?;
                run(pg_restore(
                    self.target,
                    self.archive,
                    "post-data",
                    Workers::Alone,
                    self.no_owner,
                    Some(&list),
                ))?;
            }
            let names: Vec<String> = batch.iter().map(|&i| all[i].qualified()).collect();
            session
                .client
                .batch_execute(&format!("ANALYZE {}", names.join(", ")))
                .map_err(|e| Error::query("running ANALYZE", &e))?;
            built.extend(batch);
        }
        Ok(built)
    }

    /// After all data: every post-data entry the early pass (over `early`) did not run;
    /// index attachments of partitioned indexes, and what depends on them, last on one
    /// session.
    fn run_rest(&self, early: &[usize], jobs: usize) -> Result<()> {
        let (parallel, attachments) = self.plan.remaining_lists(early);
        let list = self.write_list("rest.list", &parallel)?;
        run(pg_restore(
            self.target,
            self.archive,
            "post-data",
            Workers::Jobs(jobs),
            self.no_owner,
            Some(&list),
        ))?;
        if attachments.is_empty() {
            return Ok(());
        }
        // One session: see `PostDataPlan::remaining_lists`.
        let list = self.write_list("attachments.list", &attachments)?;
        run(pg_restore(
            self.target,
            self.archive,
            "post-data",
            Workers::Jobs(1),
            self.no_owner,
            Some(&list),
        ))
    }

    fn write_list(&self, name: &str, text: &str) -> Result<std::path::PathBuf> {
        write_list(self.staging, name, text)
    }
}

/// Writes a pg_restore `--use-list` file `name` into `dir` (created new: never written
/// through a file or link already there).
fn write_list(dir: &std::path::Path, name: &str, text: &str) -> Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::io("write", &path, e))?;
    Ok(path)
}

/// ANALYZE of every table and materialized view outside the system schemas except
/// `done` (analyzed while the rest loaded).
fn analyze_all_but(session: &mut Session, done: &[&ManifestTable]) -> Result<()> {
    let done: std::collections::HashSet<(&str, &str)> = done
        .iter()
        .map(|t| (t.schema.as_str(), t.name.as_str()))
        .collect();
    let rows = session
        .client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'm') AND c.relpersistence <> 't' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
             ORDER BY 1, 2",
            &[],
        )
        .map_err(|e| Error::query("listing the tables to ANALYZE", &e))?;
    let names: Vec<String> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|(s, n)| !done.contains(&(s.as_str(), n.as_str())))
        .map(|(s, n)| format!("{}.{}", quote_ident(&s), quote_ident(&n)))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    session
        .client
        .batch_execute(&format!("ANALYZE {}", names.join(", ")))
        .map_err(|e| Error::query("running ANALYZE", &e))
}

fn tempfile_dir() -> Result<TempDir> {
    let base = std::env::temp_dir().join(format!(
        "pgward-restore-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&base)
        .map_err(|e| Error::io("create", &base, e))?;
    Ok(TempDir(base))
}

use std::os::unix::fs::DirBuilderExt;

/// A staging folder removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

/// What loading one table did.
#[derive(Debug, Clone, Copy, Default)]
struct TableLoaded {
    rows: u64,
    seconds: f64,
    frozen: bool,
}

/// What [`load_data`] did.
struct Loaded {
    /// Per table index of `tables`.
    per_table: Vec<TableLoaded>,
    /// The tables whose early post-data and ANALYZE ran while others loaded.
    early: Vec<usize>,
}

/// Loads the data of `tables`.
///
/// Each table is loaded by one session in one transaction that truncates it first: the
/// table's storage is then new in that transaction, so with `wal_level = minimal`
/// PostgreSQL writes no WAL for its rows, and `COPY ... FREEZE` stores them frozen, so
/// no later read (the index builds, ANALYZE, the first VACUUM) rewrites every page to set
/// hint bits or freeze rows. A table is thus loaded whole or not at all. Loading one
/// table's chunks from all sessions at once measured no faster overall on PostgreSQL 15:
/// they contend for the table's extension lock, write WAL, and leave pages to rewrite.
///
/// Tables are handed out largest first. The first session to find nothing left to load
/// while others still load builds the indexes and keys of the tables loaded so far and
/// analyzes them, so that the tail, where one session loads the largest table, does not
/// leave the others idle.
fn load_data(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    target: &ConnectionSettings,
    tables: &[&ManifestTable],
    jobs: usize,
    post_data: &PostData,
    schedule: Schedule,
) -> Result<Loaded> {
    let Schedule {
        order,
        schema_ready,
    } = schedule;
    let total: u64 = tables.iter().map(|t| table_bytes(manifest, t)).sum();
    let progress = Progress::start("restore", total);
    let mut sessions = Vec::new();
    for _ in 0..jobs.min(order.len()).max(1) {
        let mut s = connect(target, APP)?;
        // Restored data is checked afterwards; there is no point waiting for WAL flushes.
        s.client
            .batch_execute(&format!(
                "SET synchronous_commit = off; {READ_EVERY_ROW}; {EXACT_COPY_SETTINGS}"
            ))
            .map_err(|e| Error::query("preparing a loader session", &e))?;
        sessions.push(s);
    }
    let tail = Tail::new(order.len());
    let early: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let loaded = workers::try_queue(sessions, order, |session, &i| {
        // The first table handed out is the one pre-data was split around.
        if Some(&i) != order.first() && !schema_ready.wait() {
            return Err(Error::ExternalTool {
                tool: "pg_restore".into(),
                reason: "the rest of the schema (pre-data) was not restored".into(),
                hint: "see pg_restore's message above".into(),
            });
        }
        tail.start();
        let started = Instant::now();
        interrupt::check()?;
        let (rows, frozen) = load_table(storage, manifest, session, tables[i], &progress)?;
        let seconds = started.elapsed().as_secs_f64();
        if let Some(done) = tail.finish(i) {
            let built = post_data.run_early(session, tables, &done, || tail.all_finished())?;
            *early.lock().unwrap_or_else(|e| e.into_inner()) = built;
        }
        Ok((
            i,
            TableLoaded {
                rows,
                seconds,
                frozen,
            },
        ))
    });
    progress.finish();
    let mut per_table = vec![TableLoaded::default(); tables.len()];
    for (i, table) in loaded? {
        per_table[i] = table;
    }
    Ok(Loaded {
        per_table,
        early: early.into_inner().unwrap_or_else(|e| e.into_inner()),
    })
}

/// Stored bytes of `table`'s data files.
fn table_bytes(manifest: &BackupManifest, table: &ManifestTable) -> u64 {
    table
        .chunks
        .iter()
        .filter_map(|c| manifest.file(&c.file))
        .map(|f| f.size)
        .sum()
}

/// The order tables are handed to loader sessions (indexes into `tables`): largest first,
/// so that the one the restore waits on longest starts first.
fn load_order(manifest: &BackupManifest, tables: &[&ManifestTable]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(table_bytes(manifest, tables[i])), i));
    order
}

/// The order tables are loaded in (see [`load_order`]), and the gate every table but the
/// first waits at until the rest of pre-data is restored.
#[derive(Clone, Copy)]
struct Schedule<'a> {
    order: &'a [usize],
    schema_ready: &'a Gate,
}

/// Lets loader sessions wait until the rest of pre-data is restored.
#[derive(Default)]
struct Gate {
    /// `Some(passed)` once open.
    state: Mutex<Option<bool>>,
    opened: std::sync::Condvar,
}

impl Gate {
    fn open(&self, passed: bool) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(passed);
        self.opened.notify_all();
    }

    /// Waits until the gate opens: whether what it waited for passed.
    fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(passed) = *state {
                return passed;
            }
            state = self.opened.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Opens its gate when dropped, as failed unless `passed` was set first: an error or a
/// panic on the way never leaves loader sessions waiting.
struct Opener<'g> {
    gate: &'g Gate,
    passed: bool,
}

impl Drop for Opener<'_> {
    fn drop(&mut self) {
        self.gate.open(self.passed);
    }
}

/// Tells the first loader session that finds nothing left to load, while others still
/// load, that the tail has begun, and which tables are loaded by then.
struct Tail {
    tables: usize,
    started: AtomicUsize,
    finished: Mutex<Vec<usize>>,
    claimed: AtomicBool,
}

impl Tail {
    fn new(tables: usize) -> Tail {
        Tail {
            tables,
            started: AtomicUsize::new(0),
            finished: Mutex::new(Vec::new()),
            claimed: AtomicBool::new(false),
        }
    }

    /// A session took a table.
    fn start(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }

    /// A session loaded table `table`: the tables loaded so far if that session is the
    /// first to have nothing left to load while another still loads.
    fn finish(&self, table: usize) -> Option<Vec<usize>> {
        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        finished.push(table);
        let nothing_left = self.started.load(Ordering::SeqCst) == self.tables;
        (nothing_left && finished.len() < self.tables && !self.claimed.swap(true, Ordering::SeqCst))
            .then(|| finished.clone())
    }

    /// Whether every table is loaded.
    fn all_finished(&self) -> bool {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
            == self.tables
    }
}

/// `tables` (index, rows) in batches for the early post-data pass: largest first, each
/// batch closed once it holds an eighth of all their rows (so at most about eight
/// batches, and a table of more than an eighth is a batch of its own).
fn early_batches(tables: &[(usize, u64)]) -> Vec<Vec<usize>> {
    let mut by_rows = tables.to_vec();
    by_rows.sort_by_key(|&(i, rows)| (std::cmp::Reverse(rows), i));
    let eighth = (by_rows.iter().map(|&(_, rows)| rows).sum::<u64>() / 8).max(1);
    let mut batches = Vec::new();
    let (mut batch, mut rows) = (Vec::new(), 0);
    for (i, r) in by_rows {
        batch.push(i);
        rows += r;
        if rows >= eighth {
            batches.push(std::mem::take(&mut batch));
            rows = 0;
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// Loads every chunk of `table` in one transaction that truncates it first (see
/// [`load_data`]); the rows COPY reported, and whether they were stored frozen.
fn load_table(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    session: &mut Session,
    table: &ManifestTable,
    progress: &Progress,
) -> Result<(u64, bool)> {
    let name = table.qualified();
    // A role that may insert but not truncate (the tables keep their owners) loads
    // without FREEZE, as plain COPY. So does an extension's configuration table: CREATE
    // EXTENSION filled it with the extension's own rows, which the backup left out.
    let truncate = if manifest.is_extension_config(table) {
        "BEGIN".to_string()
    } else {
        format!("BEGIN; TRUNCATE ONLY {name}")
    };
    let freeze = match session.client.batch_execute(&truncate) {
        Ok(()) if manifest.is_extension_config(table) => false,
        Ok(()) => true,
        Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            session
                .client
                .batch_execute("ROLLBACK; BEGIN")
                .map_err(|e| Error::query(format!("loading {name}"), &e))?;
            false
        }
        Err(e) => return Err(Error::query(format!("truncating {name} to load it"), &e)),
    };
    // The column list is quoted here from the names, never spliced from the manifest
    // (read_backup has already refused a manifest whose columns are not identifiers); a
    // table without columns has none (`COPY t () ...` is a syntax error).
    let columns = table.column_list().map_err(|problem| {
        crate::archive::verify::corrupt(
            &manifest.id,
            crate::archive::manifest::MANIFEST_FILE,
            &problem,
        )
    })?;
    let columns = if columns.is_empty() {
        String::new()
    } else {
        format!(" ({columns})")
    };
    let sql = format!(
        "COPY {name}{columns} FROM STDIN{}",
        table
            .copy_format
            .copy_options(if freeze { &["FREEZE"] } else { &[] })
    );
    let committed = table
        .chunks
        .iter()
        .try_fold(0u64, |rows, chunk| {
            load_chunk(
                storage,
                manifest,
                session,
                &name,
                &sql,
                &chunk.file,
                progress,
            )
            .map(|n| rows + n)
        })
        .and_then(|rows| {
            session
                .client
                .batch_execute("COMMIT")
                .map_err(|e| Error::query(format!("loading {name}"), &e))
                .map(|()| (rows, freeze))
        });
    if committed.is_err() {
        // Leaves the session usable; the restore as a whole has failed anyway.
        let _ = session.client.batch_execute("ROLLBACK");
    }
    committed
}

/// Loads one chunk file of `manifest` with COPY `sql`: the rows COPY reported. The file is
/// checked against the manifest as it streams (size, SHA-256, zstd's content checksums),
/// and the COPY is committed to only when it matches; when loading fails for any reason,
/// the file is read again whole, and if it does not check out, the backup is blamed (exit
/// 5, naming the file) rather than the database.
fn load_chunk(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    session: &mut Session,
    name: &str,
    sql: &str,
    file: &str,
    progress: &Progress,
) -> Result<u64> {
    let entry = manifest.file(file).ok_or_else(|| {
        crate::archive::verify::corrupt(&manifest.id, file, "not in the manifest")
    })?;
    copy_chunk(storage, &manifest.id, entry, session, name, sql, progress).map_err(|e| match e {
        Error::BackupCorrupt { .. } | Error::Interrupted => e,
        e => crate::archive::verify::blame(storage, &manifest.id, entry).unwrap_or(e),
    })
}

fn copy_chunk(
    storage: &dyn Storage,
    id: &str,
    file: &ManifestFile,
    session: &mut Session,
    name: &str,
    sql: &str,
    progress: &Progress,
) -> Result<u64> {
    let path = file.path.as_str();
    // Progress counts stored (compressed) bytes, as its total does.
    let reader = HashingReader::new(CountingReader {
        inner: storage.open(id, path)?,
        progress,
    });
    let mut decoder = zstd::Decoder::new(reader).map_err(|e| Error::io("decompress", path, e))?;
    let mut writer = session
        .client
        .copy_in(sql)
        .map_err(|e| Error::query(format!("loading {name}"), &e))?;
    let mut buf = vec![0u8; 1 << 18];
    loop {
        let n = decoder
            .read(&mut buf)
            .map_err(|e| Error::io("decompress", path, e))?;
        if n == 0 {
            break;
        }
        writer.write_all(&buf[..n]).map_err(|e| Error::Query {
            context: format!("loading {name}"),
            sqlstate: None,
            message: e.to_string(),
        })?;
    }
    // The bytes the decoder's buffer holds were hashed when it read them; `finish` reads
    // and hashes whatever is left unread. A mismatch returns before the writer's
    // `finish`: the dropped writer aborts the COPY.
    let (size, sha256) = decoder
        .finish()
        .into_inner()
        .finish()
        .map_err(|e| Error::io("read", path, e))?;
    if let Some(problem) = crate::archive::verify::mismatch(file, size, &sha256) {
        return Err(crate::archive::verify::corrupt(id, path, &problem));
    }
    let rows = writer
        .finish()
        .map_err(|e| Error::query(format!("loading {name}"), &e))?;
    progress.add_rows(rows);
    Ok(rows)
}

/// Adds the bytes read through it to the progress.
struct CountingReader<'p, R> {
    inner: R,
    progress: &'p Progress,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add_bytes(n as u64);
        Ok(n)
    }
}

/// How many server processes a pg_restore run may keep busy.
#[derive(Debug, Clone, Copy)]
enum Workers {
    /// `--jobs` sessions, each free to use the server's parallel workers.
    Jobs(usize),
    /// One session and no parallel workers (`max_parallel_maintenance_workers = 0`): the
    /// early post-data pass runs while other sessions still load, and an index build that
    /// started two more workers there would take CPU from the load the restore waits on.
    Alone,
}

/// Runs a [`pg_restore`] command to its end.
fn run(mut pg_restore: std::process::Command) -> Result<()> {
    let out = pg_restore
        .output()
        .map_err(|e| pgtools::not_started("pg_restore", e))?;
    pgtools::check_status("pg_restore", out.status, &out.stderr)
}

/// The pg_restore command that restores `section` of archive `file` into `target`.
fn pg_restore(
    target: &ConnectionSettings,
    file: &std::path::Path,
    section: &str,
    workers: Workers,
    no_owner: bool,
    use_list: Option<&std::path::Path>,
) -> std::process::Command {
    let mut cmd = pg_restore_command(target, no_owner);
    match workers {
        Workers::Jobs(jobs) if jobs > 1 => {
            cmd.arg(format!("--jobs={jobs}"));
        }
        Workers::Jobs(_) => {}
        // `pgtools::command` clears the caller's PGOPTIONS; nothing else is set there.
        Workers::Alone => {
            cmd.env("PGOPTIONS", "-c max_parallel_maintenance_workers=0");
        }
    }
    cmd.arg(format!("--section={section}"));
    if let Some(list) = use_list {
        cmd.arg("--use-list").arg(list);
    }
    cmd.arg(file);
    cmd
}

/// pg_restore into `target`, stopping at the first error, its output discarded and its
/// messages kept; without ownership and privileges when `no_owner`. The archive and what
/// to restore of it are the caller's to add.
pub(crate) fn pg_restore_command(
    target: &ConnectionSettings,
    no_owner: bool,
) -> std::process::Command {
    let mut cmd = pgtools::command("pg_restore", target);
    cmd.arg("--exit-on-error")
        .arg("--no-password")
        .arg(libpq_dbname_arg(&target.dbname))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if no_owner {
        cmd.args(["--no-owner", "--no-privileges"]);
    }
    cmd
}

/// The archive's table of contents with each entry's dependencies
/// (`pg_restore --list --verbose`).
fn pg_restore_list(target: &ConnectionSettings, file: &std::path::Path) -> Result<String> {
    let out = pgtools::command("pg_restore", target)
        .args(["--list", "--verbose"])
        .arg(file)
        .output()
        .map_err(|e| pgtools::not_started("pg_restore", e))?;
    pgtools::check_status("pg_restore", out.status, &out.stderr)?;
    String::from_utf8(out.stdout).map_err(|_| Error::ExternalTool {
        tool: "pg_restore".into(),
        reason: "its --list output is not UTF-8".into(),
        hint: format!(
            "check the pg_restore on PATH, or set {}",
            pgtools::BINDIR_ENV
        ),
    })
}

/// pg_dump --schema-only leaves materialized views empty; fill those that held rows at
/// backup time in dependency order (retrying those that depend on a not yet refreshed
/// one). One that was empty (created `WITH NO DATA` and never refreshed) stays empty, as
/// pg_restore leaves it: refreshing it would run a query its owner never ran, and reading
/// it fails until someone refreshes it, as it did before. A manifest of an older version
/// does not say which were populated: every view is refreshed then.
fn refresh_materialized_views(session: &mut Session, manifest: &BackupManifest) -> Result<()> {
    let views: Vec<String> = session
        .client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'm' AND NOT c.relispopulated ORDER BY c.oid",
            &[],
        )
        .map_err(|e| Error::query("listing materialized views", &e))?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|(schema, name)| match &manifest.materialized_views {
            Some(views) => views
                .iter()
                .any(|v| v.populated && &v.schema == schema && &v.name == name),
            None => true,
        })
        .map(|(schema, name)| format!("{}.{}", quote_ident(&schema), quote_ident(&name)))
        .collect();
    let mut pending = views;
    for _round in 0..3 {
        let mut failed = Vec::new();
        for v in pending {
            if session
                .client
                .batch_execute(&format!("REFRESH MATERIALIZED VIEW {v}"))
                .is_err()
            {
                failed.push(v);
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        pending = failed;
    }
    Err(Error::Query {
        context: "refreshing materialized views".into(),
        sqlstate: None,
        message: format!("cannot refresh {}", pending.join(", ")),
    })
}

/// Compares the rows COPY loaded into each table with the manifest's count.
fn check_row_counts(tables: &[&ManifestTable], loaded: &[TableLoaded]) -> Result<Vec<TableLoad>> {
    let mut report = Vec::new();
    let mut mismatches = Vec::new();
    for (t, l) in tables.iter().zip(loaded) {
        let n = l.rows;
        if n != t.rows {
            mismatches.push(format!(
                "{}.{}: {n} restored, {} in the backup",
                t.schema, t.name, t.rows
            ));
        }
        report.push(TableLoad {
            table: format!("{}.{}", t.schema, t.name),
            rows: n,
            expected_rows: t.rows,
            seconds: (l.seconds * 1000.0).round() / 1000.0,
            frozen: l.frozen,
        });
    }
    if !mismatches.is_empty() {
        return Err(Error::RowCountMismatch {
            tables: mismatches.join("; "),
        });
    }
    Ok(report)
}

/// A `--format sql` backup: decompressed into psql, as a user would without pgward, but
/// never trusted as a script:
///
/// - psql runs it as one transaction (`--single-transaction -f -`, `ON_ERROR_STOP`), in
///   psql's restricted mode (`\restrict` with a key of our own as its first line), so no
///   meta-command (`\!`, `\o`, `\copy`, `\connect`...) runs, wherever it sits in a line;
/// - every line that begins with a backslash outside COPY data is checked before psql sees
///   it: pg_dump's own `\restrict`/`\unrestrict` are dropped (the restriction is ours),
///   and anything else stops the load with [`Error::UnsafeSqlBackup`];
/// - the stored bytes are hashed as they stream, and psql's input is closed (which commits)
///   only once size and SHA-256 match the manifest: on a mismatch, a refused line or a
///   decompression error, psql is killed before it reads the end of its input, so its
///   transaction is never committed.
fn load_sql(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    target: &ConnectionSettings,
) -> Result<LoadReport> {
    let t = Instant::now();
    let entry = manifest.file(SQL_FILE).ok_or_else(|| {
        crate::archive::verify::corrupt(&manifest.id, SQL_FILE, "not in the manifest")
    })?;
    let psql = pgtools::version("psql")?;
    if !psql.has_restricted_mode() {
        return Err(Error::ExternalTool {
            tool: "psql".into(),
            reason: format!("{} has no restricted mode (\\restrict), so it would obey any meta-command a SQL backup holds", psql.text),
            hint: format!("install a newer PostgreSQL client (13.22, 14.19, 15.14, 16.10, 17.6 or later) and put it first on PATH, or set {}", pgtools::BINDIR_ENV),
        });
    }
    let mut cmd = pgtools::command("psql", target);
    cmd.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "--no-password",
        "--single-transaction",
    ])
    .arg(libpq_dbname_arg(&target.dbname))
    .args(["-f", "-"])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| pgtools::not_started("psql", e))?;
    let stderr_reader = pgtools::stderr_reader(&mut child);
    let fed = match child.stdin.take() {
        Some(mut stdin) => {
            let fed = feed_sql(storage, manifest, entry, &mut stdin);
            if fed.is_err() {
                // Killed while its input is still open: psql never reads the end of the
                // file, so its one transaction never commits.
                let _ = child.kill();
            }
            // The end of psql's input, only now.
            drop(stdin);
            fed
        }
        None => Err(SqlFeed::Psql(std::io::Error::other("no stdin"))),
    };
    let status = child.wait().map_err(|e| Error::io("wait for", "psql", e))?;
    let stderr = stderr_reader.join().unwrap_or_default();
    match fed {
        Err(SqlFeed::Refused(e)) => return Err(e),
        // psql stopped reading: its own error says why.
        Err(SqlFeed::Psql(write)) => {
            pgtools::check_status("psql", status, &stderr)?;
            return Err(Error::io("write to", "psql", write));
        }
        Ok(()) => pgtools::check_status("psql", status, &stderr)?,
    }
    let large_objects = large_objects::check_count(
        &mut connect(target, APP)?,
        large_objects::to_restore(manifest, false),
    )?;
    Ok(LoadReport {
        tables: Vec::new(),
        pre_data_s: 0.0,
        data_s: since(t),
        post_data_early_items: 0,
        post_data_s: 0.0,
        verify_and_analyze_s: 0.0,
        large_objects,
    })
}

/// Why feeding psql stopped.
enum SqlFeed {
    /// The backup: a refused line, a mismatch, a decompression or storage error.
    Refused(Error),
    /// psql stopped reading its input.
    Psql(std::io::Error),
}

/// Streams `entry` of the backup into psql's `stdin` through [`SqlGuard`]; `Ok` only when
/// every byte matched the manifest. The caller closes psql's input (psql then commits),
/// and on an error kills psql first, its input still open.
fn feed_sql(
    storage: &dyn Storage,
    manifest: &BackupManifest,
    entry: &ManifestFile,
    stdin: &mut std::process::ChildStdin,
) -> std::result::Result<(), SqlFeed> {
    let refused = SqlFeed::Refused;
    let reader = HashingReader::new(storage.open(&manifest.id, SQL_FILE).map_err(refused)?);
    let decode_error = |e: std::io::Error| {
        SqlFeed::Refused(crate::archive::verify::corrupt(
            &manifest.id,
            SQL_FILE,
            &format!("does not decompress: {e}"),
        ))
    };
    let mut decoder = std::io::BufReader::with_capacity(
        1 << 20,
        zstd::Decoder::new(reader).map_err(decode_error)?,
    );
    let key = restrict_key();
    stdin
        .write_all(format!("\\restrict {key}\n").as_bytes())
        .map_err(SqlFeed::Psql)?;
    let mut guard = SqlGuard::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n =
            std::io::BufRead::read_until(&mut decoder, b'\n', &mut line).map_err(decode_error)?;
        if n == 0 {
            break;
        }
        match guard.check(&line) {
            Ok(true) => stdin.write_all(&line).map_err(SqlFeed::Psql)?,
            Ok(false) => {}
            Err(text) => {
                return Err(SqlFeed::Refused(Error::UnsafeSqlBackup {
                    id: manifest.id.clone(),
                    file: SQL_FILE.into(),
                    line: guard.line,
                    text,
                }))
            }
        }
    }
    let (size, sha256) = decoder
        .into_inner()
        .finish()
        .into_inner()
        .finish()
        .map_err(|e| SqlFeed::Refused(Error::io("read", SQL_FILE, e)))?;
    if let Some(problem) = crate::archive::verify::mismatch(entry, size, &sha256) {
        return Err(SqlFeed::Refused(crate::archive::verify::corrupt(
            &manifest.id,
            SQL_FILE,
            &problem,
        )));
    }
    // The caller closes psql's input, which lets it reach the end and commit.
    Ok(())
}

/// A fresh key for psql's restricted mode: random, so that nothing in the backup can
/// name it in an `\unrestrict`.
fn restrict_key() -> String {
    let mut bytes = [0u8; 24];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            ^ u128::from(std::process::id());
        bytes[..16].copy_from_slice(&seed.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates database `name` with the backup's encoding and locale (from template0, so it is
/// empty), using a session on another database of the same server.
pub fn create_database(
    admin: &mut postgres::Client,
    name: &str,
    manifest: &BackupManifest,
) -> Result<()> {
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            quote_ident(name),
            quote_literal(&manifest.encoding),
            quote_literal(&manifest.lc_collate),
            quote_literal(&manifest.lc_ctype)
        ))
        .map_err(|e| Error::query(format!("creating database {name}"), &e))
}

/// Drops database `name`, ending its sessions first (PostgreSQL 13's `WITH (FORCE)`).
pub fn drop_database(admin: &mut postgres::Client, name: &str) -> Result<()> {
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .map_err(|e| Error::query(format!("dropping database {name}"), &e))
}

#[cfg(test)]
mod tests {
    use super::{early_batches, pg_restore, Tail, Workers};

    use crate::connect::dburl::ConnectionSettings;

    #[test]
    fn the_early_pass_keeps_the_servers_parallel_workers_off_the_loading_cpus() {
        let target = ConnectionSettings::from_url("postgresql://u@localhost:5432/db").unwrap();
        let file = std::path::Path::new("schema.dump");
        let pgoptions = |cmd: &std::process::Command| {
            cmd.get_envs()
                .find(|(k, _)| *k == "PGOPTIONS")
                .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        };
        let args = |cmd: &std::process::Command| -> Vec<String> {
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let early = pg_restore(&target, file, "post-data", Workers::Alone, false, None);
        assert_eq!(
            pgoptions(&early).as_deref(),
            Some("-c max_parallel_maintenance_workers=0"),
            "set by pgward; the caller's PGOPTIONS is cleared"
        );
        assert!(!args(&early).iter().any(|a| a.starts_with("--jobs")));
        let last = pg_restore(&target, file, "post-data", Workers::Jobs(2), false, None);
        assert_eq!(pgoptions(&last), None, "cleared: the server's defaults");
        assert!(args(&last).contains(&"--jobs=2".to_string()));
        let pre = pg_restore(&target, file, "pre-data", Workers::Jobs(1), false, None);
        assert!(!args(&pre).iter().any(|a| a.starts_with("--jobs")));
    }

    #[test]
    fn early_batches_go_largest_first_in_eighths() {
        // pgbench_accounts-like, three mid tables, and many small ones.
        let mut tables = vec![(0, 5_000_000), (1, 600_000), (2, 500_000), (3, 400_000)];
        tables.extend((4..304).map(|i| (i, 200)));
        let batches = early_batches(&tables);
        assert_eq!(batches[0], vec![0], "the largest table alone, first");
        assert_eq!(batches[1], vec![1, 2], "closed at an eighth of all rows");
        assert_eq!(batches.len(), 3, "the rest together: {batches:?}");
        assert_eq!(batches[2][0], 3);
        assert_eq!(batches[2].len(), 301);
        assert_eq!(early_batches(&[(7, 0)]), vec![vec![7]], "empty tables too");
        assert!(early_batches(&[]).is_empty());
    }

    #[test]
    fn the_tail_begins_once_for_the_first_session_left_without_work() {
        let tail = Tail::new(3);
        tail.start();
        tail.start();
        assert_eq!(tail.finish(0), None, "table 2 is still to be handed out");
        tail.start();
        assert_eq!(tail.finish(1), Some(vec![0, 1]), "table 2 still loads");
        assert_eq!(tail.finish(2), None, "the tail began already");

        assert!(tail.all_finished());

        let alone = Tail::new(1);
        alone.start();
        assert_eq!(
            alone.finish(0),
            None,
            "nothing else loads: post-data runs after"
        );
    }
}
