//! `deploy --trace`: what each statement of a migration did, measured on the server.
//!
//! For every statement the engine runs, the tracer records its wall time, the rows it
//! reported, whether it ran inside the migration's transaction, the table locks it took
//! and how long each was then held, and which tables and indexes it rewrote.
//!
//! - Locks of a statement that runs in a transaction are read from `pg_locks` of the
//!   migration's own session right after the statement, while its transaction is still
//!   open: the locks held then that were not held before it are the statement's. Each is
//!   held from the statement's start until its transaction ends (COMMIT or ROLLBACK), and
//!   that span is what `held_ms` reports: what other sessions could have waited for.
//! - A statement that cannot run in a transaction (CREATE INDEX CONCURRENTLY, ...)
//!   releases its locks when it ends, so a second session (the observer) samples
//!   `pg_locks` of the migration's session every [`SAMPLE_EVERY`] while it runs; such a
//!   lock is held for the statement's duration. A statement shorter than one sample may
//!   show no lock.
//! - A rewrite is a table, materialized view or index whose `relfilenode` changed: the
//!   statement wrote a new copy of it (ALTER COLUMN TYPE, VACUUM FULL, a volatile
//!   default, REINDEX, ...).
//!
//! Only relations outside `pg_catalog`, `information_schema` and the TOAST schemas count;
//! the tracer's own catalog reads lock catalogs only.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::{Client, SimpleQueryMessage};
use serde::Serialize;

use crate::error::SqlPosition;
use crate::locks::{Blocks, LockMode};

/// How often the observer samples the locks of a statement run outside a transaction.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// What one statement did.
#[derive(Debug, Clone, Serialize)]
pub struct StatementTrace {
    /// Where it starts in the file.
    pub position: SqlPosition,
    /// The statement (its first 300 characters).
    pub statement: String,
    /// Wall time of the statement alone, in milliseconds.
    pub duration_ms: f64,
    /// The row count the server reported for it (0 for most DDL).
    pub rows: u64,
    /// Whether it ran inside a transaction (the migration's, or the file's own block);
    /// false for statements that cannot (CREATE INDEX CONCURRENTLY, VACUUM, ...).
    pub in_transaction: bool,
    /// The table locks it took.
    pub locks: Vec<LockTrace>,
    /// The tables, materialized views and indexes it rewrote.
    pub rewrites: Vec<String>,
}

/// A table lock a statement took.
#[derive(Debug, Clone, Serialize)]
pub struct LockTrace {
    /// The relation, schema-qualified where it is not on the search path.
    pub relation: String,
    /// The mode.
    pub mode: LockMode,
    /// From the statement's start until the lock was released: the end of its
    /// transaction, or of the statement itself when it ran outside one.
    pub held_ms: f64,
    /// What other sessions wait for while it is held.
    pub blocks: Blocks,
}

/// Per relation, over a migration (or a whole deploy): the strongest lock taken.
#[derive(Debug, Clone, Serialize)]
pub struct RelationSummary {
    /// The relation.
    pub relation: String,
    /// The strongest mode taken on it.
    pub strongest: LockMode,
    /// The longest a lock of that mode was held.
    pub held_ms: f64,
    /// What other sessions waited for meanwhile.
    pub blocks: Blocks,
    /// Whether it was rewritten.
    pub rewritten: bool,
}

/// What a migration's statements did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScriptTrace {
    /// Every statement the engine ran, in order (transaction control excluded).
    pub statements: Vec<StatementTrace>,
    /// Per relation, strongest lock first.
    pub relations: Vec<RelationSummary>,
}

/// Records statements as the engine runs them.
pub struct Tracer<'o> {
    observer: &'o mut Client,
    pid: i32,
    trace: ScriptTrace,
    /// Locks of the open transaction, not yet released: (statement, lock, its start).
    open: Vec<(usize, usize, Instant)>,
}

/// A relation as `pg_class` has it now: its name and file.
type Relations = HashMap<u32, (String, u32)>;

/// Every relation outside the system schemas: its name, and its file (0 for those
/// without storage: partitioned tables and indexes, views).
const RELATIONS_SQL: &str = "SELECT c.oid, c.oid::pg_catalog.regclass::text, c.relfilenode \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// The granted relation locks of backend `$1` outside the system schemas; the name is
/// NULL for a relation no longer in `pg_class` (dropped in the open transaction, or a
/// transient one a rewrite made and dropped).
const LOCKS_SQL: &str = "SELECT l.relation, CASE WHEN c.oid IS NOT NULL THEN c.oid::pg_catalog.regclass::text END, l.mode \
     FROM pg_catalog.pg_locks l \
     LEFT JOIN pg_catalog.pg_class c ON c.oid = l.relation \
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE l.pid = $1 AND l.locktype = 'relation' AND l.granted \
       AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) \
       AND coalesce(n.nspname NOT IN ('pg_catalog', 'information_schema') \
                    AND n.nspname NOT LIKE 'pg\\_toast%', true)";

/// (oid, name, mode) of each lock.
type Locks = Vec<(u32, String, LockMode)>;

fn relations(client: &mut Client) -> Result<Relations, postgres::Error> {
    Ok(client
        .query(RELATIONS_SQL, &[])?
        .iter()
        .map(|r| (r.get::<_, u32>(0), (r.get(1), r.get(2))))
        .collect())
}

/// The locks of backend `pid`, the strongest mode per relation, named by `known` where
/// `pg_class` no longer has them (a table the transaction dropped); a relation unknown to
/// both (a rewrite's transient table) is left out.
fn locks_of(client: &mut Client, pid: i32, known: &Relations) -> Result<Locks, postgres::Error> {
    let mut strongest: HashMap<u32, (String, LockMode)> = HashMap::new();
    for r in client.query(LOCKS_SQL, &[&pid])? {
        let Some(mode) = LockMode::from_pg_locks_name(r.get(2)) else {
            continue;
        };
        let oid: u32 = r.get(0);
        let Some(name) = r
            .get::<_, Option<String>>(1)
            .or_else(|| known.get(&oid).map(|(n, _)| n.clone()))
        else {
            continue;
        };
        let entry = strongest.entry(oid).or_insert((name, mode));
        entry.1 = entry.1.max(mode);
    }
    let mut out: Locks = strongest.into_iter().map(|(o, (n, m))| (o, n, m)).collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Samples the locks of backend `pid` on `observer` until `done`; the strongest mode
/// seen per relation.
fn sample(observer: &mut Client, pid: i32, known: &Relations, done: &AtomicBool) -> Locks {
    let mut seen: HashMap<u32, (String, LockMode)> = HashMap::new();
    loop {
        // A failed sample (the observer lost) ends sampling; the statement goes on.
        let Ok(locks) = locks_of(observer, pid, known) else {
            break;
        };
        for (oid, name, mode) in locks {
            let entry = seen.entry(oid).or_insert((name, mode));
            entry.1 = entry.1.max(mode);
        }
        if done.load(Ordering::Acquire) {
            break;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    let mut out: Locks = seen.into_iter().map(|(o, (n, m))| (o, n, m)).collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

impl<'o> Tracer<'o> {
    /// A tracer for statements run on `client`; `observer` is a second session to the
    /// same database, which samples the locks of statements run outside a transaction.
    pub fn new(
        client: &mut Client,
        observer: &'o mut Client,
    ) -> Result<Tracer<'o>, postgres::Error> {
        let pid: i32 = client
            .query_one("SELECT pg_catalog.pg_backend_pid()", &[])?
            .get(0);
        Ok(Tracer {
            observer,
            pid,
            trace: ScriptTrace::default(),
            open: Vec::new(),
        })
    }

    /// Runs `sql` on `client`, recording what it did.
    pub(crate) fn run(
        &mut self,
        client: &mut Client,
        sql: &str,
        position: SqlPosition,
        excerpt: String,
        in_transaction: bool,
    ) -> Result<(), postgres::Error> {
        let pid = self.pid;
        let before_relations = relations(client)?;
        let held_before: HashSet<(u32, LockMode)> = if in_transaction {
            locks_of(client, pid, &before_relations)?
                .into_iter()
                .map(|(oid, _, mode)| (oid, mode))
                .collect()
        } else {
            HashSet::new()
        };
        let observer = &mut *self.observer;
        let started = Instant::now();
        let done = AtomicBool::new(false);
        let (result, sampled) = std::thread::scope(|s| {
            let sampler = (!in_transaction)
                .then(|| s.spawn(|| sample(observer, pid, &before_relations, &done)));
            let result = client.simple_query(sql);
            done.store(true, Ordering::Release);
            let sampled = sampler.map(|h| h.join().unwrap_or_default());
            (result, sampled)
        });
        let duration = started.elapsed();
        let messages = result?;
        let rows = messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            })
            .next_back()
            .unwrap_or(0);
        let taken: Locks = if in_transaction {
            locks_of(client, pid, &before_relations)?
                .into_iter()
                .filter(|(oid, _, mode)| !held_before.contains(&(*oid, *mode)))
                .collect()
        } else {
            sampled.unwrap_or_default()
        };
        let after_relations = relations(client)?;
        let mut rewrites: Vec<String> = after_relations
            .iter()
            .filter(|(oid, (_, file))| {
                *file != 0
                    && before_relations
                        .get(oid)
                        .is_some_and(|(_, before)| *before != 0 && before != file)
            })
            .map(|(_, (name, _))| name.clone())
            .collect();
        rewrites.sort();
        let index = self.trace.statements.len();
        let locks = taken
            .into_iter()
            .map(|(_, relation, mode)| LockTrace {
                relation,
                mode,
                held_ms: ms(duration),
                blocks: mode.blocks(),
            })
            .collect::<Vec<_>>();
        if in_transaction {
            self.open
                .extend((0..locks.len()).map(|lock| (index, lock, started)));
        }
        self.trace.statements.push(StatementTrace {
            position,
            statement: excerpt,
            duration_ms: ms(duration),
            rows,
            in_transaction,
            locks,
            rewrites,
        });
        Ok(())
    }

    /// The open transaction ended (COMMIT or ROLLBACK): its locks are released now.
    pub(crate) fn transaction_ended(&mut self) {
        let now = Instant::now();
        for (statement, lock, started) in self.open.drain(..) {
            self.trace.statements[statement].locks[lock].held_ms = ms(now - started);
        }
    }

    /// The trace, with its per-relation summary.
    pub fn finish(mut self) -> ScriptTrace {
        self.transaction_ended();
        self.trace.relations = summarize(std::slice::from_ref(&self.trace));
        self.trace
    }
}

/// Per relation over `traces`: the strongest lock, the longest it was held, and whether
/// the relation was rewritten; strongest and longest first.
pub fn summarize(traces: &[ScriptTrace]) -> Vec<RelationSummary> {
    let mut by_relation: HashMap<&str, RelationSummary> = HashMap::new();
    let statements = traces.iter().flat_map(|t| &t.statements);
    for statement in statements.clone() {
        for lock in &statement.locks {
            let entry = by_relation
                .entry(&lock.relation)
                .or_insert_with(|| RelationSummary {
                    relation: lock.relation.clone(),
                    strongest: lock.mode,
                    held_ms: 0.0,
                    blocks: lock.blocks,
                    rewritten: false,
                });
            if lock.mode > entry.strongest {
                entry.strongest = lock.mode;
                entry.blocks = lock.blocks;
                entry.held_ms = lock.held_ms;
            } else if lock.mode == entry.strongest {
                entry.held_ms = entry.held_ms.max(lock.held_ms);
            }
        }
    }
    for statement in statements {
        for relation in &statement.rewrites {
            if let Some(entry) = by_relation.get_mut(relation.as_str()) {
                entry.rewritten = true;
            }
        }
    }
    let mut out: Vec<RelationSummary> = by_relation.into_values().collect();
    out.sort_by(|a, b| {
        b.strongest
            .cmp(&a.strongest)
            .then(b.held_ms.total_cmp(&a.held_ms))
            .then(a.relation.cmp(&b.relation))
    });
    out
}
