//! Handing the tables to loader sessions: largest first, every table but the first
//! waiting at a gate until the rest of pre-data is restored, with four sessions or more a
//! table that is most of the data split across them chunk by chunk (see [`plan`]), and
//! the first session left without work running the early post-data pass (indexes and
//! ANALYZE of the tables loaded so far) while the others finish.
//!
//! # A table loaded by several sessions
//!
//! A table loaded whole is loaded by one session in one transaction: whole or not at
//! all. A split table is loaded one chunk per transaction, so a restore that fails (or is
//! killed) while loading it can leave some of its chunks committed. That breaks none of
//! restore's promises, because no such database is ever trusted:
//!
//! - a new target (`--create`) and a replaced one (`--clean`) are loaded into a database
//!   of another name, marked as pgward's work, that is renamed to the target only after
//!   every table is loaded, every file's checksum matched and every row count agrees
//!   with the manifest. A failed restore drops it; after a kill, the next restore into
//!   that target drops it before loading (`prepare_partial` in pgward-restore);
//! - an existing empty target is loaded in place only after every file's checksum was
//!   read and matched, so a corrupt chunk fails the restore before the target is
//!   touched. What can still fail mid-load (the server, a kill) leaves the target partly
//!   restored, as it does with whole tables (each is committed on its own, and the
//!   schema before them): the restore says so, and the target is no longer empty, so
//!   the next restore refuses it without `--clean`;
//! - `verify --deep` loads into a scratch database it always drops.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::archive::load::copy::{load_part, load_table};
use crate::archive::load::pg_restore::PostData;
use crate::archive::load::APP;
use crate::archive::manifest::{BackupManifest, ManifestTable};
use crate::archive::workers;
use crate::connect::dburl::ConnectionSettings;
use crate::connect::{connect, EXACT_COPY_SETTINGS, READ_EVERY_ROW};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::progress::Progress;
use crate::storage::Storage;

/// What loading one table did.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TableLoaded {
    pub(super) rows: u64,
    pub(super) seconds: f64,
    pub(super) frozen: bool,
}

/// What [`load_data`] did.
pub(super) struct Loaded {
    /// Per table index of `tables`.
    pub(super) per_table: Vec<TableLoaded>,
    /// The tables whose early post-data and ANALYZE ran while others loaded.
    pub(super) early: Vec<usize>,
}

/// Loads the data of `tables`.
///
/// A table loaded whole is loaded by one session in one transaction that truncates it
/// first: the table's storage is then new in that transaction, so with `wal_level =
/// minimal` PostgreSQL writes no WAL for its rows, and `COPY ... FREEZE` stores them
/// frozen, so no later read (the index builds, ANALYZE, the first VACUUM) rewrites every
/// page to set hint bits or freeze rows. With enough sessions, a table that is most of
/// the data is split instead (see [`plan`]): each of its chunks is a plain COPY of its
/// own, taken by whichever session is free, so that every session (every core) loads it
/// rather than one session loading it while the others wait.
///
/// Work is handed out largest table first. The first session to find nothing left to
/// load while others still load builds the indexes and keys of the tables loaded so far
/// and analyzes them, so that the tail, where one session loads the last table, does not
/// leave the others idle.
pub(super) fn load_data(
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
    let first = order.first().map(|w| w.table);
    let tail = Tail::new(tables.len(), order);
    let early: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let loaded = workers::try_queue(sessions, order, |session, work| {
        // The first table handed out is the one pre-data was split around.
        if Some(work.table) != first && !schema_ready.wait() {
            return Err(Error::ExternalTool {
                tool: "pg_restore".into(),
                reason: "the rest of the schema (pre-data) was not restored".into(),
                hint: "see pg_restore's message above".into(),
            });
        }
        tail.start();
        let started = Instant::now();
        interrupt::check()?;
        let table = tables[work.table];
        let (rows, frozen) = match work.chunk {
            None => load_table(storage, manifest, session, table, &progress)?,
            Some(chunk) => (
                load_part(storage, manifest, session, table, chunk, &progress)?,
                false,
            ),
        };
        let seconds = started.elapsed().as_secs_f64();
        if let Some(done) = tail.finish(work.table) {
            let built = post_data.run_early(session, tables, &done, || tail.all_finished())?;
            *early.lock().unwrap_or_else(|e| e.into_inner()) = built;
        }
        Ok((
            work.table,
            TableLoaded {
                rows,
                seconds,
                frozen,
            },
        ))
    });
    progress.finish();
    let mut per_table = vec![TableLoaded::default(); tables.len()];
    for (i, part) in loaded? {
        // A split table's parts add up; it was stored frozen only if loaded whole.
        let t = &mut per_table[i];
        t.rows += part.rows;
        t.seconds += part.seconds;
        t.frozen = part.frozen;
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

/// One unit of loading work: a table of `tables` loaded whole, or one chunk of a split
/// table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Work {
    /// Index into `tables`.
    pub(super) table: usize,
    /// The chunk (index into the table's chunks) when the table is split.
    pub(super) chunk: Option<usize>,
}

/// The fewest loader sessions (`--jobs`) with which a table is split (see [`plan`]).
///
/// Measured on PostgreSQL 15 with `wal_level = minimal` and two sessions on two cores
/// (`bench/backup.sh`, alternating in one run, on a machine shared with other builds): a
/// split table costs about twice the session-seconds per byte of one loaded whole (its
/// rows are WAL-logged, not frozen, and the sessions contend for its extension lock), and
/// its index builds and ANALYZE then set hint bits on every page. On two sessions,
/// pgbench's 4 M-row table restored in 6.2-7.5 s split against 4.8-6.2 s whole; the mixed
/// data set's 2 M-row table showed no consistent winner (10.4-12.1 s split, 10.2 s whole
/// in the quieter round). Two sessions cannot recover a cost of two; four can, so a
/// table is split from four sessions up. That threshold follows from the measured cost,
/// not from a run on four cores (the benchmark machine has two).
pub(super) const MIN_SPLIT_JOBS: usize = 4;

/// The work handed to loader sessions, in order: tables largest first, so that the one the
/// restore waits on longest starts first, and a table split into its chunks when loading
/// it on one session would take longer than loading everything else on the others: when
/// it holds more than `1 / jobs` of the stored bytes, has more than one chunk, and there
/// are at least [`MIN_SPLIT_JOBS`] sessions to share it. Otherwise every table loads
/// whole, with COPY FREEZE.
pub(super) fn plan(manifest: &BackupManifest, tables: &[&ManifestTable], jobs: usize) -> Vec<Work> {
    let bytes: Vec<u64> = tables.iter().map(|t| table_bytes(manifest, t)).collect();
    let total: u64 = bytes.iter().sum();
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(bytes[i]), i));
    let split = |i: usize| {
        jobs >= MIN_SPLIT_JOBS
            && tables[i].chunks.len() > 1
            && !manifest.is_extension_config(tables[i])
            && u128::from(bytes[i]) * jobs as u128 > u128::from(total)
    };
    order
        .into_iter()
        .flat_map(|i| {
            let chunks: Vec<Option<usize>> = if split(i) {
                (0..tables[i].chunks.len()).map(Some).collect()
            } else {
                vec![None]
            };
            chunks
                .into_iter()
                .map(move |chunk| Work { table: i, chunk })
        })
        .collect()
}

/// The work in the order it is handed out (see [`plan`]), and the gate every table but
/// the first waits at until the rest of pre-data is restored.
#[derive(Clone, Copy)]
pub(super) struct Schedule<'a> {
    pub(super) order: &'a [Work],
    pub(super) schema_ready: &'a Gate,
}

/// Lets loader sessions wait until the rest of pre-data is restored.
#[derive(Default)]
pub(super) struct Gate {
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
pub(super) struct Opener<'g> {
    pub(super) gate: &'g Gate,
    pub(super) passed: bool,
}

impl Drop for Opener<'_> {
    fn drop(&mut self) {
        self.gate.open(self.passed);
    }
}

/// Tells the first loader session that finds nothing left to load, while others still
/// load, that the tail has begun, and which tables are loaded by then (a split table once
/// all its chunks are).
pub(super) struct Tail {
    tables: usize,
    work: usize,
    started: AtomicUsize,
    /// The tables loaded, and the parts each table still has to load.
    finished: Mutex<(Vec<usize>, Vec<usize>)>,
    claimed: AtomicBool,
}

impl Tail {
    fn new(tables: usize, order: &[Work]) -> Tail {
        let mut parts = vec![0; tables];
        for w in order {
            parts[w.table] += 1;
        }
        let tables = parts.iter().filter(|&&n| n > 0).count();
        Tail {
            tables,
            work: order.len(),
            started: AtomicUsize::new(0),
            finished: Mutex::new((Vec::new(), parts)),
            claimed: AtomicBool::new(false),
        }
    }

    /// A session took some work.
    fn start(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }

    /// A session loaded (a part of) table `table`: the tables loaded so far if that
    /// session is the first to have nothing left to load while another still loads.
    fn finish(&self, table: usize) -> Option<Vec<usize>> {
        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        let (done, parts) = &mut *finished;
        parts[table] = parts[table].saturating_sub(1);
        if parts[table] == 0 {
            done.push(table);
        }
        let nothing_left = self.started.load(Ordering::SeqCst) == self.work;
        (nothing_left
            && !done.is_empty()
            && done.len() < self.tables
            && !self.claimed.swap(true, Ordering::SeqCst))
        .then(|| done.clone())
    }

    /// Whether every table is loaded.
    fn all_finished(&self) -> bool {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .len()
            == self.tables
    }
}

#[cfg(test)]
mod tests {
    use super::{plan, Tail, Work, MIN_SPLIT_JOBS};
    use crate::archive::manifest::{BackupManifest, ManifestTable};

    /// A manifest whose tables have chunks of these stored sizes.
    fn manifest(tables: &[(&str, &[u64])]) -> BackupManifest {
        let mut files = Vec::new();
        let mut entries = Vec::new();
        for (name, sizes) in tables {
            let mut chunks = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let file = format!("data/public.{name}.{i:04}.copy.zst");
                files.push(format!(
                    r#"{{"path": "{file}", "size": {size}, "sha256": "00"}}"#
                ));
                chunks.push(format!(
                    r#"{{"file": "{file}", "rows": 1, "first_page": 0, "end_page": null}}"#
                ));
            }
            entries.push(format!(
                r#"{{"schema": "public", "name": "{name}", "columns": ["id"], "rows": 1, "chunks": [{}]}}"#,
                chunks.join(", ")
            ));
        }
        serde_json::from_str(&format!(
            r#"{{"format_version": 1, "id": "app-default-20261122T031300Z", "format": "directory",
                "tool_version": "0.1.0", "database": "app", "env": null, "label": null,
                "server_version": "15", "pg_dump_version": "15", "encoding": "UTF8",
                "lc_collate": "C", "lc_ctype": "C", "snapshot_time": "2026-11-22T03:13:00Z",
                "started_at": "2026-11-22T03:13:00Z", "finished_at": "2026-11-22T03:13:00Z",
                "zstd_level": 3, "migration_head": null, "files": [{}], "tables": [{}],
                "sequences": []}}"#,
            files.join(", "),
            entries.join(", ")
        ))
        .expect("a valid manifest")
    }

    fn work(table: usize, chunk: Option<usize>) -> Work {
        Work { table, chunk }
    }

    #[test]
    fn a_table_is_split_only_from_four_sessions_when_it_is_over_one_sessions_share_with_chunks() {
        // mid is the first table in the manifest, big the largest: 300 of 510 bytes.
        let m = manifest(&[("mid", &[200]), ("big", &[100, 100, 100]), ("tiny", &[10])]);
        let tables: Vec<&ManifestTable> = m.tables.iter().collect();
        let split_big = vec![
            work(1, Some(0)),
            work(1, Some(1)),
            work(1, Some(2)),
            work(0, None),
            work(2, None),
        ];
        assert_eq!(
            plan(&m, &tables, 4),
            split_big,
            "more than a quarter of the data"
        );
        assert_eq!(plan(&m, &tables, 8), split_big, "more than an eighth");
        for jobs in 1..MIN_SPLIT_JOBS {
            assert_eq!(
                plan(&m, &tables, jobs),
                vec![work(1, None), work(0, None), work(2, None)],
                "{jobs} session(s): splitting costs more than it gains"
            );
        }

        // No table more than a quarter: every table whole, largest first.
        let even = manifest(&[
            ("a", &[100, 100]),
            ("b", &[150, 50]),
            ("c", &[200]),
            ("d", &[100, 100]),
            ("e", &[50]),
        ]);
        let tables: Vec<&ManifestTable> = even.tables.iter().collect();
        assert_eq!(
            plan(&even, &tables, 4),
            [0, 1, 2, 3, 4].map(|t| work(t, None)).to_vec()
        );

        // Most of the data in one chunk: nothing to split.
        let one = manifest(&[("a", &[1000]), ("b", &[10])]);
        let tables: Vec<&ManifestTable> = one.tables.iter().collect();
        assert_eq!(plan(&one, &tables, 4), vec![work(0, None), work(1, None)]);
    }

    fn whole(tables: usize) -> Vec<Work> {
        (0..tables).map(|table| work(table, None)).collect()
    }

    #[test]
    fn the_tail_begins_once_for_the_first_session_left_without_work() {
        let tail = Tail::new(3, &whole(3));
        tail.start();
        tail.start();
        assert_eq!(tail.finish(0), None, "table 2 is still to be handed out");
        tail.start();
        assert_eq!(tail.finish(1), Some(vec![0, 1]), "table 2 still loads");
        assert_eq!(tail.finish(2), None, "the tail began already");

        assert!(tail.all_finished());

        let alone = Tail::new(1, &whole(1));
        alone.start();
        assert_eq!(
            alone.finish(0),
            None,
            "nothing else loads: post-data runs after"
        );
    }

    #[test]
    fn a_split_table_counts_as_loaded_once_every_chunk_is() {
        // Table 0 split into three chunks, then table 1 whole.
        let order = [
            Work {
                table: 0,
                chunk: Some(0),
            },
            Work {
                table: 0,
                chunk: Some(1),
            },
            Work {
                table: 0,
                chunk: Some(2),
            },
            Work {
                table: 1,
                chunk: None,
            },
        ];
        let tail = Tail::new(2, &order);
        for _ in 0..4 {
            tail.start();
        }
        assert_eq!(tail.finish(1), Some(vec![1]), "table 0 still loads");
        assert_eq!(tail.finish(0), None);
        assert_eq!(tail.finish(0), None);
        assert!(!tail.all_finished(), "one chunk of table 0 still loads");
        assert_eq!(tail.finish(0), None);
        assert!(tail.all_finished());

        // Only the split table: a session done with its chunk while another chunk loads
        // has no loaded table to build anything for.
        let only = Tail::new(1, &order[..2]);
        only.start();
        only.start();
        assert_eq!(only.finish(0), None);
        assert_eq!(only.finish(0), None);
        assert!(only.all_finished());
    }
}
