//! `pgward-backup backup`: the schema by pg_dump and every table's rows as zstd-compressed
//! COPY streams, all from one snapshot, written by a pool of `--jobs` workers; large tables
//! are cut into ctid ranges so that one huge table is read by every worker.
//!
//! Nothing is visible as a backup until the manifest is written last; any failure or
//! interrupt aborts the writer, which removes what was written.

pub mod copy_rows;
pub mod snapshot;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::archive::manifest::{
    backup_id, BackupFormat, BackupManifest, CopyFormat, ManifestChunk, ManifestFile,
    ManifestLargeObjects, ManifestRelation, ManifestTable, LARGE_OBJECTS_FILE,
    MANIFEST_FORMAT_VERSION, MIGRATIONS_FILE, SCHEMA_FILE, SQL_FILE,
};
use crate::connect::dburl::ConnectionSettings;
use crate::connect::CopySession;
use crate::error::{Error, Result};
use crate::output::VERSION;
use crate::progress::Progress;
use crate::storage::{write_error, BackupWriter, FileWriter, Storage};
use crate::{interrupt, log};
use chrono::Utc;
use serde::Serialize;

use crate::archive::workers::{self, TablePatterns};
use crate::pgtools;
use copy_rows::RowCounter;
use snapshot::{Coordinator, TableInfo};

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
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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
    pub large_objects: ManifestLargeObjects,
}

/// One unit of work: a ctid range of a table.
struct ChunkPlan {
    table: usize,
    format: CopyFormat,
    index: usize,
    first_page: u64,
    end_page: Option<u64>,
    file: String,
    sql: String,
    bytes: u64,
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
    let writer = storage.begin(&backup_id(
        &db.dbname,
        options.env.as_deref(),
        coordinator.snapshot_time,
    ))?;
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
        format_version: MANIFEST_FORMAT_VERSION,
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

/// Cuts tables into ctid ranges of about `chunk_bytes`; the last range of each table is
/// open-ended so rows on pages beyond the size read at planning time are not missed.
fn plan_chunks(tables: &[TableInfo], chunk_bytes: u64, block_size: u64) -> Vec<ChunkPlan> {
    let chunk_pages = (chunk_bytes / block_size.max(1)).max(1);
    let mut plans = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let columns = t.columns.join(", ");
        let pages = t.bytes.div_ceil(block_size.max(1));
        // An extension's configuration table is read whole through its filter.
        let count = if t.extension_filter.is_some() {
            1
        } else {
            pages.div_ceil(chunk_pages).max(1)
        };
        for ci in 0..count {
            let first = ci * chunk_pages;
            let end = (ci + 1 < count).then_some((ci + 1) * chunk_pages);
            let options = t.copy_format.copy_options(&[]);
            let sql = if let Some(filter) = &t.extension_filter {
                format!(
                    "COPY (SELECT {columns} FROM ONLY {} {filter}) TO STDOUT{options}",
                    t.qualified()
                )
            } else if count == 1 {
                // A table without columns still has rows: `COPY t TO STDOUT` writes an
                // empty line for each (`COPY t () ...` is a syntax error).
                let list = if columns.is_empty() {
                    String::new()
                } else {
                    format!(" ({columns})")
                };
                format!("COPY {}{list} TO STDOUT{options}", t.qualified())
            } else {
                let upper = end
                    .map(|e| format!(" AND ctid < '({e},0)'::tid"))
                    .unwrap_or_default();
                format!(
                    "COPY (SELECT {columns} FROM ONLY {} WHERE ctid >= '({first},0)'::tid{upper}) TO STDOUT{options}",
                    t.qualified()
                )
            };
            let bytes = end
                .map(|e| (e - first) * block_size)
                .unwrap_or_else(|| t.bytes.saturating_sub(first * block_size));
            plans.push(ChunkPlan {
                table: ti,
                format: t.copy_format,
                index: ci as usize,
                first_page: first,
                end_page: end,
                file: format!("data/t{ti:05}.{ci:05}.copy.zst"),
                sql,
                bytes,
            });
        }
    }
    // Largest first keeps every worker busy to the end.
    plans.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(a.table.cmp(&b.table))
            .then(a.index.cmp(&b.index))
    });
    plans
}

/// Rows are gathered into frames of about this many bytes, each compressed whole: one
/// contiguous input keeps zstd on its fast path (a streaming encoder's ring buffer makes
/// it match across two segments, at about half the speed), and concatenated frames are
/// one valid zstd stream for every reader, `zstd -dc` included.
const FRAME_BYTES: usize = 8 << 20;

/// zstd's settings for `level`. Levels 2 and 3 keep zstd's own search but with smaller
/// match tables: 64 Ki long-hash and 16 Ki short-hash entries (`hashLog` 16, `chainLog`
/// 14) instead of level 3's 128 Ki and 64 Ki. The tables then stay in a core's L2 cache
/// and compression of table rows is about 1.3 times as fast at the same ratio (on the
/// benchmark's binary rows 0.2% smaller, on text such as source code or prose up to 1.2%
/// larger); docs/backup.md has the figures. Level 1 and below already use smaller tables,
/// and levels from 4 search differently: those keep zstd's own settings.
fn compression_parameters(level: i32) -> Vec<zstd::zstd_safe::CParameter> {
    use zstd::zstd_safe::CParameter;
    let mut parameters = vec![
        CParameter::CompressionLevel(level),
        CParameter::ChecksumFlag(true),
    ];
    if (2..=3).contains(&level) {
        parameters.extend([CParameter::HashLog(16), CParameter::ChainLog(14)]);
    }
    parameters
}

/// A bulk compressor with [`compression_parameters`].
fn compressor(level: i32) -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    for parameter in compression_parameters(level) {
        compressor.set_parameter(parameter)?;
    }
    Ok(compressor)
}

/// A backup worker: its snapshot session, and the buffers and compressor it reuses from
/// chunk to chunk. Fresh 8 MiB buffers for every chunk left the allocator holding freed
/// ones, so that peak RSS grew with the number of chunks (79 MB against 52 MB on the
/// benchmark); reused, a worker's memory is what one chunk needs.
struct Worker {
    session: CopySession,
    /// The frame buffers between reader and compressor, back after each chunk.
    buffers: Vec<Vec<u8>>,
    compressor: zstd::bulk::Compressor<'static>,
    compressed: Vec<u8>,
}

impl Worker {
    fn new(session: CopySession, level: i32) -> Result<Self> {
        Ok(Self {
            session,
            buffers: Vec::new(),
            compressor: compressor(level).map_err(|e| write_error("data", e))?,
            compressed: Vec::new(),
        })
    }
}

/// Compresses frames into a chunk's file.
struct FrameWriter<'w> {
    file: FileWriter,
    path: &'w str,
    compressor: &'w mut zstd::bulk::Compressor<'static>,
    compressed: &'w mut Vec<u8>,
    frames: usize,
}

impl FrameWriter<'_> {
    fn frame(&mut self, data: &[u8]) -> Result<()> {
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(data.len()));
        self.compressor
            .compress_to_buffer(data, self.compressed)
            .map_err(|e| write_error(self.path, e))?;
        self.file
            .write_all(self.compressed)
            .map_err(|e| write_error(self.path, e))?;
        self.frames += 1;
        Ok(())
    }

    /// Hands back the file; a chunk without rows gets one empty frame, so that every
    /// file is a valid zstd stream.
    fn finish(mut self) -> Result<FileWriter> {
        if self.frames == 0 {
            self.frame(&[])?;
        }
        Ok(self.file)
    }
}

/// Streams one chunk: COPY out, count rows, compress, hash, store. Reading and
/// compressing run on two threads with two frame buffers between them, so the server
/// keeps sending while a frame is compressed.
fn dump_chunk(
    worker: &mut Worker,
    plan: &ChunkPlan,
    writer: &dyn BackupWriter,
    progress: &Progress,
) -> Result<(ManifestChunk, ManifestFile)> {
    let Worker {
        session,
        buffers,
        compressor,
        compressed,
    } = worker;
    let mut frames = FrameWriter {
        file: writer.create(&plan.file)?,
        path: &plan.file,
        compressor,
        compressed,
        frames: 0,
    };
    let mut reader = session
        .copy_out(plan.sql.as_str())
        .map_err(|e| Error::query(format!("reading {}", plan.file), &e))?;
    let row_error = |message: String| Error::Query {
        context: format!("reading the rows of {}", plan.file),
        sqlstate: None,
        message,
    };
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    // Two buffers: one filling while the other is compressed. (A failed chunk may have
    // kept one.)
    while buffers.len() < 2 {
        buffers.push(Vec::with_capacity(FRAME_BYTES));
    }
    for buffer in buffers.drain(..) {
        let _ = empty_tx.send(buffer);
    }
    // The reader's last buffer when the stream ends empty-handed.
    let mut spare = None;
    let (read, compressed) = std::thread::scope(|scope| {
        let compressor = scope.spawn(move || {
            for mut buffer in full_rx {
                frames.frame(&buffer)?;
                buffer.clear();
                let _ = empty_tx.send(buffer);
            }
            frames.finish()
        });
        let read = (|| {
            let mut rows = RowCounter::new(plan.format);
            // Stops early only when the compressor has failed; its error then wins.
            let Ok(mut buffer) = empty_rx.recv() else {
                return Ok(rows);
            };
            loop {
                let (mut began, before) = (0, buffer.len());
                let more = reader.fill(&mut buffer, FRAME_BYTES, |piece| {
                    began += rows.feed(piece).map_err(std::io::Error::other)?;
                    Ok(())
                });
                progress.add_rows(began);
                progress.add_bytes((buffer.len() - before) as u64);
                match more {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) if interrupt::requested() => return Err(Error::Interrupted),
                    Err(e) => return Err(row_error(e.to_string())),
                }
                if full_tx.send(buffer).is_err() {
                    return Ok(rows);
                }
                let Ok(next) = empty_rx.recv() else {
                    return Ok(rows);
                };
                buffer = next;
            }
            if buffer.is_empty() {
                spare = Some(buffer);
            } else {
                let _ = full_tx.send(buffer);
            }
            Ok(rows)
        })();
        drop(full_tx);
        let compressed = compressor.join().unwrap_or_else(|_| {
            Err(write_error(
                &plan.file,
                std::io::Error::other("the compressing thread panicked"),
            ))
        });
        (read, compressed)
    });
    drop(reader);
    buffers.extend(spare);
    buffers.extend(empty_rx.try_iter());
    // A failed compressor (a full disk, a lost S3 connection) stops the reader early, so
    // its error is the cause; a failed read never fails the compressor.
    let file = compressed?;
    let rows = read?.finish().map_err(row_error)?;
    let entry = file.finish()?;
    Ok((
        ManifestChunk {
            file: plan.file.clone(),
            rows,
            first_page: plan.first_page,
            end_page: plan.end_page,
        },
        entry,
    ))
}

/// Runs pg_dump on the snapshot and stores its output as `path` (zstd-compressed when
/// `level` is given).
fn run_pg_dump(
    db: &ConnectionSettings,
    snapshot_id: &str,
    writer: &dyn BackupWriter,
    path: &str,
    args: &[&str],
    level: Option<i32>,
    lock_timeout: Duration,
) -> Result<ManifestFile> {
    let mut cmd = pgtools::command("pg_dump", db);
    cmd.args(args)
        .arg(format!("--snapshot={snapshot_id}"))
        .arg(format!(
            "--lock-wait-timeout={}",
            lock_timeout.as_millis().max(1)
        ))
        .arg("--no-password")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| pgtools::not_started("pg_dump", e))?;
    let end_on_interrupt = pgtools::EndOnInterrupt::new(&child);
    let stderr_reader = pgtools::stderr_reader(&mut child);
    let mut stdout = child.stdout.take().ok_or_else(|| Error::ExternalTool {
        tool: "pg_dump".into(),
        reason: "no output pipe".into(),
        hint: "report this as a bug".into(),
    })?;
    let file = writer.create(path)?;
    let copy_result: Result<FileWriter> = match level {
        Some(level) => (|| {
            let mut encoder = zstd::Encoder::new(file, level).map_err(|e| write_error(path, e))?;
            for parameter in compression_parameters(level) {
                encoder
                    .set_parameter(parameter)
                    .map_err(|e| write_error(path, e))?;
            }
            std::io::copy(&mut pgtools::Interruptible(&mut stdout), &mut encoder)
                .map_err(|e| write_error(path, e))?;
            encoder.finish().map_err(|e| write_error(path, e))
        })(),
        None => {
            let mut file = file;
            std::io::copy(&mut pgtools::Interruptible(&mut stdout), &mut file)
                .map(|_| file)
                .map_err(|e| write_error(path, e))
        }
    };
    if copy_result.is_err() {
        let _ = child.kill();
    }
    let status = end_on_interrupt
        .wait(&mut child)
        .map_err(|e| Error::io("wait for", "pg_dump", e))?;
    let stderr = stderr_reader.join().unwrap_or_default();
    let file = copy_result?;
    pgtools::check_status("pg_dump", status, &stderr)?;
    file.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_logs(level: i32) -> (Option<u32>, Option<u32>) {
        use zstd::zstd_safe::CParameter;
        let mut logs = (None, None);
        for parameter in compression_parameters(level) {
            match parameter {
                CParameter::HashLog(h) => logs.0 = Some(h),
                CParameter::ChainLog(c) => logs.1 = Some(c),
                _ => {}
            }
        }
        logs
    }

    #[test]
    fn the_default_levels_use_match_tables_that_fit_a_cores_cache_and_others_zstds_own() {
        assert_eq!(table_logs(3), (Some(16), Some(14)));
        assert_eq!(table_logs(2), (Some(16), Some(14)));
        assert_eq!(table_logs(1), (None, None));
        assert_eq!(table_logs(4), (None, None));
        assert_eq!(table_logs(19), (None, None));
    }

    #[test]
    fn frames_compressed_with_the_capped_tables_decode_with_their_checksums() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| format!("{i}\trow {}\n", i % 977).into_bytes())
            .collect();
        let compressed = compressor(3).unwrap().compress(&data).unwrap();
        assert!(compressed.len() < data.len() / 4);
        // The frame carries a content checksum: a flipped byte inside is caught.
        let mut damaged = compressed.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x40;
        assert!(zstd::decode_all(&damaged[..])
            .map(|d| d != data)
            .unwrap_or(true));
        assert_eq!(zstd::decode_all(&compressed[..]).unwrap(), data);
    }
}
