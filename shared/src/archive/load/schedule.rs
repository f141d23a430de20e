//! Handing the tables to loader sessions: largest first, every table but the first
//! waiting at a gate until the rest of pre-data is restored, and the first session left
//! without work running the early post-data pass (indexes and ANALYZE of the tables
//! loaded so far) while the others finish.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::archive::load::copy::load_table;
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
pub(super) fn load_order(manifest: &BackupManifest, tables: &[&ManifestTable]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(table_bytes(manifest, tables[i])), i));
    order
}

/// The order tables are loaded in (see [`load_order`]), and the gate every table but the
/// first waits at until the rest of pre-data is restored.
#[derive(Clone, Copy)]
pub(super) struct Schedule<'a> {
    pub(super) order: &'a [usize],
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
/// load, that the tail has begun, and which tables are loaded by then.
pub(super) struct Tail {
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

#[cfg(test)]
mod tests {
    use super::Tail;

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
