//! `pgward-backup backup`: the schema by pg_dump and every table's rows as zstd-compressed
//! COPY streams, all from one snapshot, written by a pool of `--jobs` workers; large tables
//! are cut into ctid ranges so that one huge table is read by every worker.
//!
//! Nothing is visible as a backup until the manifest is written last; any failure or
//! interrupt aborts the writer, which removes what was written.
//!
//! One job per module: `snapshot.rs` opens the coordinator's snapshot and reads the
//! catalog, `chunks.rs` cuts tables into ctid ranges, `worker.rs` reads a chunk (COPY out,
//! `copy_rows.rs` counting its rows, compressed in frames), `compression.rs` holds zstd's
//! settings, and `pg_dump.rs` runs pg_dump on the same snapshot.

mod chunks;
mod compression;
pub mod copy_rows;
mod pg_dump;
pub mod snapshot;
mod worker;

use std::io::Write;
use std::time::Duration;

use crate::archive::manifest::{
    backup_id, manifest_version, BackupFormat, BackupManifest, ManifestFile, ManifestLargeObjects,
    ManifestRelation, ManifestTable, LARGE_OBJECTS_FILE, MIGRATIONS_FILE, SCHEMA_FILE, SQL_FILE,
};
use crate::connect::dburl::ConnectionSettings;
use crate::error::{Error, Result};
use crate::output::VERSION;
use crate::progress::Progress;
use crate::storage::{write_error, BackupWriter, Storage};
use crate::{interrupt, log};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::archive::workers::{self, TablePatterns};
use crate::pgtools;
use chunks::plan_chunks;
use pg_dump::run_pg_dump;
use snapshot::{Coordinator, TableInfo};
use worker::{dump_chunk, Worker};

/// What to back up and how.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// Parallel readers.
    pub jobs: usize,
    /// zstd level.
    pub level: i32,
    /// A label kept in the manifest.
    pub label: Option<String>,
    /// Only tables matching these patterns (`schema.table` or `table`, `*` wildcards).
    pub tables: Vec<String>,
    /// Not the tables matching these.
    pub exclude_tables: Vec<String>,
    /// Directory (parallel) or one SQL file.
    pub format: BackupFormat,
    /// Tables larger than this are cut into chunks of about this size.
    pub chunk_bytes: u64,
    /// How long to wait for each table's ACCESS SHARE lock.
    pub lock_timeout: Duration,
    /// Environment name, for the id.
    pub env: Option<String>,
    /// Leave the large objects out (the manifest records it).
    pub no_large_objects: bool,
}

/// zstd level without `--level`.
pub const DEFAULT_LEVEL: i32 = 3;
/// Chunk size, in MiB, without `--chunk-mib`.
pub const DEFAULT_CHUNK_MIB: u64 = 256;

/// The defaults of `pgward-backup` without flags, and of the safety backup a restore with
/// `--clean` takes: every table's data and the large objects, in the directory format.
impl Default for DumpOptions {
    fn default() -> DumpOptions {
        DumpOptions {
            jobs: crate::cli::DEFAULT_JOBS,
            level: DEFAULT_LEVEL,
            label: None,
            tables: Vec::new(),
            exclude_tables: Vec::new(),
            format: BackupFormat::Directory,
            chunk_bytes: DEFAULT_CHUNK_MIB << 20,
            lock_timeout: crate::cli::BACKUP_LOCK_TIMEOUT,
            env: None,
            no_large_objects: false,
        }
    }
}

/// One table as the result reports it.
#[derive(Debug, Serialize, Deserialize)]
pub struct TableReport {
    /// `schema.table`.
    pub table: String,
    /// Rows.
    pub rows: u64,
    /// Chunks read.
    pub chunks: usize,
    /// Compressed bytes written.
    pub bytes: u64,
}

/// backup's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DumpResult {
    /// The new backup's id.
    pub id: String,
    /// Where it is.
    pub location: String,
    /// Its format.
    pub format: BackupFormat,
    /// Total bytes stored.
    pub size_bytes: u64,
    /// Files written, the manifest included.
    pub files: usize,
    /// Rows backed up.
    pub rows: u64,
    /// When the snapshot was taken.
    pub snapshot_time: chrono::DateTime<Utc>,
    /// The newest applied migration at backup time.
    pub migration_head: Option<String>,
    /// Per table.
    pub tables: Vec<TableReport>,
    /// The database's large objects, and whether they were left out.
    #[serde(default)] // absent from older documents (`report render`)
    pub large_objects: ManifestLargeObjects,
    /// Every location of the backup: the one it was written to first, then each copy
    /// (`backups = [...]`, or `--to` repeated) and whether it is complete.
    #[serde(default)] // absent from older documents (`report render`)
    pub copies: Vec<crate::storage::BackupCopy>,
}

/// Takes a backup of `db` into `storage`.
pub fn dump(
    db: &ConnectionSettings,
    storage: &dyn Storage,
    options: &DumpOptions,
) -> Result<(DumpResult, BackupManifest)> {
    let started_at = Utc::now();
    let mut coordinator = Coordinator::open(db)?;
    let pg_dump_version =
        pgtools::check_fits_server("pg_dump", coordinator.source.server_version_num)?;
    let all_tables = coordinator.tables(options.lock_timeout)?;
    let tables = refuse_incomplete(&mut coordinator, all_tables, options)?;
    coordinator.lock(&tables, options.lock_timeout)?;
    let materialized_views = coordinator.materialized_views()?;
    let database_properties = coordinator.database_properties()?;
    let (migrations, migration_head) = coordinator.migrations(db.schema_or_default())?;
    let large_objects = coordinator.large_objects(&db.dbname, options.no_large_objects)?;
    // Another backup of this database in the same second takes the next free id.
    // Every file encrypted to this run's recipients, if it has any (crypt.rs).
    let writer = crate::archive::crypt::seal(storage.begin(&backup_id(
        &db.dbname,
        options.env.as_deref(),
        coordinator.snapshot_time,
    ))?);
    let encryption = crate::archive::crypt::manifest_entry();
    let id = writer.id().to_string();
    log::info(&format!(
        "backing up {} ({} tables) to {}/{id}",
        db.display_target(),
        tables.len(),
        storage.location()
    ));
    let written = write_backup(
        db,
        &mut coordinator,
        writer.as_ref(),
        &tables,
        &migrations,
        &large_objects,
        options,
    );
    let (files, manifest_tables) = match written {
        Ok(w) => w,
        Err(e) => {
            writer.abort();
            coordinator.close();
            return Err(if interrupt::requested() {
                Error::Interrupted
            } else {
                e
            });
        }
    };
    let sequences = match coordinator.sequences() {
        Ok(s) => s,
        Err(e) => {
            writer.abort();
            return Err(e);
        }
    };
    let manifest = BackupManifest {
        format_version: manifest_version(encryption.is_some()),
        id: id.clone(),
        format: options.format,
        tool_version: VERSION.to_string(),
        database: db.dbname.clone(),
        env: options.env.clone(),
        label: options.label.clone(),
        server_version: coordinator.source.server_version.clone(),
        pg_dump_version,
        encoding: coordinator.source.encoding.clone(),
        lc_collate: coordinator.source.lc_collate.clone(),
        lc_ctype: coordinator.source.lc_ctype.clone(),
        snapshot_time: coordinator.snapshot_time,
        started_at,
        finished_at: Utc::now(),
        zstd_level: options.level,
        migration_head: migration_head.clone(),
        files,
        tables: manifest_tables,
        sequences,
        large_objects: Some(large_objects),
        materialized_views: Some(materialized_views),
        database_properties: Some(database_properties),
        extension_config_tables: tables
            .iter()
            .filter(|t| t.extension_filter.is_some())
            .map(|t| ManifestRelation {
                schema: t.schema.clone(),
                name: t.name.clone(),
            })
            .collect(),
        encryption,
        storage_class: storage.storage_class(),
    };
    coordinator.close();
    let bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::io("write", "manifest.json", std::io::Error::other(e)))?;
    interrupt::check()?;
    writer.commit(&manifest.files, &bytes)?;
    let result = DumpResult {
        id,
        location: storage.location(),
        format: manifest.format,
        size_bytes: manifest.size_bytes() + bytes.len() as u64,
        files: manifest.files.len() + 1,
        rows: manifest.tables.iter().map(|t| t.rows).sum(),
        snapshot_time: manifest.snapshot_time,
        migration_head,
        tables: manifest
            .tables
            .iter()
            .map(|t| TableReport {
                table: format!("{}.{}", t.schema, t.name),
                rows: t.rows,
                chunks: t.chunks.len(),
                bytes: t
                    .chunks
                    .iter()
                    .filter_map(|c| manifest.file(&c.file))
                    .map(|f| f.size)
                    .sum(),
            })
            .collect(),
        large_objects: manifest.large_objects.clone().unwrap_or_default(),
        copies: vec![crate::storage::BackupCopy {
            location: storage.location(),
            complete: true,
            seconds: 0.0,
            problem: None,
            replaced_damaged: None,
        }],
    };
    Ok((result, manifest))
}

/// The tables of `all` a backup with `options` reads, once it is sure it can read them
/// whole: row-level security hides no rows of them from its role (in the sql format,
/// none of any table: its pg_dump reads them all, whatever the patterns select) and
/// every sequence's value is readable. `backup --dry-run` asks the same.
pub fn refuse_incomplete(
    coordinator: &mut Coordinator,
    all: Vec<TableInfo>,
    options: &DumpOptions,
) -> Result<Vec<TableInfo>> {
    if options.format == BackupFormat::Sql {
        refuse_hidden_rows(coordinator, &all)?;
    }
    let tables = filter_tables(all, &options.tables, &options.exclude_tables)?;
    refuse_hidden_rows(coordinator, &tables)?;
    coordinator.check_sequences()?;
    Ok(tables)
}

/// Refuses a backup in which row-level security would hide rows of any of `tables` from
/// the backup's role ([`Error::RowSecurity`], naming every such table): the sessions read
/// with `row_security = off` and would fail on the first one anyway, but only after
/// writing files, and naming one table at a time.
fn refuse_hidden_rows(coordinator: &Coordinator, tables: &[TableInfo]) -> Result<()> {
    let hidden: Vec<String> = tables
        .iter()
        .filter(|t| t.row_security)
        .map(TableInfo::qualified)
        .collect();
    if hidden.is_empty() {
        return Ok(());
    }
    Err(Error::RowSecurity {
        role: Some(coordinator.role.clone()),
        tables: hidden,
    })
}

/// Keeps the tables `include` matches (all when empty; each pattern must match one) and
/// `exclude` does not.
fn filter_tables(
    tables: Vec<TableInfo>,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<TableInfo>> {
    let (include, exclude) = (
        TablePatterns::compile(include)?,
        TablePatterns::compile(exclude)?,
    );
    include.require_each_matches(
        tables.iter().map(|t| (t.schema.as_str(), t.name.as_str())),
        "the database",
    )?;
    Ok(tables
        .into_iter()
        .filter(|t| include.is_empty() || include.matches(&t.schema, &t.name))
        .filter(|t| !exclude.matches(&t.schema, &t.name))
        .collect())
}

/// Writes every file; returns their manifest entries and the tables.
fn write_backup(
    db: &ConnectionSettings,
    coordinator: &mut Coordinator,
    writer: &dyn BackupWriter,
    tables: &[TableInfo],
    migrations: &serde_json::Value,
    large_objects: &ManifestLargeObjects,
    options: &DumpOptions,
) -> Result<(Vec<ManifestFile>, Vec<ManifestTable>)> {
    let mut files = Vec::new();
    let mut file = writer.create(MIGRATIONS_FILE)?;
    let json = serde_json::to_vec_pretty(migrations).unwrap_or_default();
    file.write_all(&json)
        .map_err(|e| write_error(MIGRATIONS_FILE, e))?;
    files.push(file.finish()?);

    if options.format == BackupFormat::Sql {
        // A whole-database plain dump carries the large objects; -B leaves them out.
        let args: &[&str] = if large_objects.excluded {
            &["--format=plain", "-B"]
        } else {
            &["--format=plain"]
        };
        files.push(run_pg_dump(
            db,
            &coordinator.snapshot_id,
            writer,
            SQL_FILE,
            args,
            Some(options.level),
            options.lock_timeout,
        )?);
        return Ok((files, Vec::new()));
    }

    let plans = plan_chunks(tables, options.chunk_bytes, coordinator.source.block_size);
    let total_bytes: u64 = tables.iter().map(|t| t.bytes).sum();
    let progress = Progress::start("backup", total_bytes);
    let snapshot_id = coordinator.snapshot_id.clone();
    let jobs = options.jobs.max(1);
    // The workers adopt the snapshot while the coordinator's transaction is open.
    let mut sessions = Vec::with_capacity(jobs);
    for _ in 0..jobs.min(plans.len().max(1)) {
        sessions.push(Worker::new(
            snapshot::worker(db, &snapshot_id, options.lock_timeout)?,
            options.level,
        )?);
    }
    let (schema_file, large_objects_file, chunks) = std::thread::scope(|scope| {
        let schema = scope.spawn(|| {
            run_pg_dump(
                db,
                &snapshot_id,
                writer,
                SCHEMA_FILE,
                &["--schema-only", "--format=custom"],
                None,
                options.lock_timeout,
            )
        });
        // pg_dump --schema-only leaves large objects out (they are data); this second
        // pg_dump of the same snapshot writes nothing but them: every schema excluded, so
        // no table, sequence or lock, and the large objects' owners, privileges,
        // comments and contents, read in pieces and streamed into zstd.
        let large_objects_file = large_objects.held().then(|| {
            scope.spawn(|| {
                run_pg_dump(
                    db,
                    &snapshot_id,
                    writer,
                    LARGE_OBJECTS_FILE,
                    &[
                        "--data-only",
                        "-b",
                        "--exclude-schema=*",
                        "--format=custom",
                        "--compress=0",
                    ],
                    Some(options.level),
                    options.lock_timeout,
                )
            })
        });
        let chunks = workers::try_queue(sessions, &plans, |worker, plan| {
            dump_chunk(worker, plan, writer, &progress)
                .map(|(chunk, file)| (plan.table, chunk, file))
        });
        let joined = |thread: std::thread::ScopedJoinHandle<Result<ManifestFile>>| {
            thread.join().unwrap_or_else(|_| {
                Err(Error::ExternalTool {
                    tool: "pg_dump".into(),
                    reason: "a thread running pg_dump panicked".into(),
                    hint: "report this as a bug".into(),
                })
            })
        };
        (
            joined(schema),
            large_objects_file.map(joined).transpose(),
            chunks,
        )
    });
    progress.finish();
    let chunks = chunks?;
    files.push(schema_file?);
    files.extend(large_objects_file?);
    let mut manifest_tables: Vec<ManifestTable> = tables
        .iter()
        .map(|t| ManifestTable {
            schema: t.schema.clone(),
            name: t.name.clone(),
            columns: t.columns.clone(),
            copy_format: t.copy_format,
            rows: 0,
            chunks: Vec::new(),
        })
        .collect();
    for (table, chunk, file) in chunks {
        manifest_tables[table].rows += chunk.rows;
        manifest_tables[table].chunks.push(chunk);
        files.push(file);
    }
    for t in &mut manifest_tables {
        t.chunks.sort_by_key(|c| c.first_page);
    }
    manifest_tables.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, manifest_tables))
}
