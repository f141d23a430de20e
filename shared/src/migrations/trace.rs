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
use serde::{Deserialize, Serialize};

use crate::error::SqlPosition;
use crate::locks::{Blocks, LockMode};
use crate::render::{human_bytes, human_seconds};

/// How often the observer samples the locks of a statement run outside a transaction.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// What one statement did.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub rewrites: Vec<Rewrite>,
}

/// A relation a statement wrote anew.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rewrite {
    /// The relation.
    pub relation: String,
    /// Its size after the rewrite (`pg_relation_size`), in bytes.
    pub bytes: i64,
}

/// A table lock a statement took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockTrace {
    /// The relation, schema-qualified where it is not on the search path.
    pub relation: String,
    /// What it is: `table`, `index`, `partitioned table`, `materialized view`, ...
    pub kind: String,
    /// The mode.
    pub mode: LockMode,
    /// From the statement's start until the lock was released: the end of its
    /// transaction, or of the statement itself when it ran outside one.
    pub held_ms: f64,
    /// What other sessions wait for while it is held.
    pub blocks: Blocks,
}

/// Per relation, over a migration (or a whole deploy): the strongest lock taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Relations the open transaction created: no other session sees them before it
    /// commits, so their locks block nobody and are left out.
    created: HashSet<u32>,
}

/// A relation as `pg_class` has it.
struct Relation {
    name: String,
    /// Its file; 0 for relations without storage.
    file: u32,
    kind: &'static str,
}

/// The relations outside the system schemas, by oid.
type Relations = HashMap<u32, Relation>;

/// `pg_class.relkind` in words.
fn kind_name(relkind: &str) -> &'static str {
    match relkind {
        "r" => "table",
        "p" => "partitioned table",
        "i" => "index",
        "I" => "partitioned index",
        "m" => "materialized view",
        "S" => "sequence",
        "v" => "view",
        "f" => "foreign table",
        "t" => "TOAST table",
        _ => "relation",
    }
}

fn is_index(kind: &str) -> bool {
    kind == "index" || kind == "partitioned index"
}

/// Every relation outside the system schemas: its name, and its file (0 for those
/// without storage: partitioned tables and indexes, views).
const RELATIONS_SQL: &str =
    "SELECT c.oid, c.oid::pg_catalog.regclass::text, c.relfilenode, c.relkind::text \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// The granted relation locks of backend `$1` outside the system schemas; the name is
/// NULL for a relation no longer in `pg_class` (dropped in the open transaction, or a
/// transient one a rewrite made and dropped).
const LOCKS_SQL: &str = "SELECT l.relation, CASE WHEN c.oid IS NOT NULL THEN c.oid::pg_catalog.regclass::text END, l.mode, c.relkind::text \
     FROM pg_catalog.pg_locks l \
     LEFT JOIN pg_catalog.pg_class c ON c.oid = l.relation \
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE l.pid = $1 AND l.locktype = 'relation' AND l.granted \
       AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) \
       AND coalesce(n.nspname NOT IN ('pg_catalog', 'information_schema') \
                    AND n.nspname NOT LIKE 'pg\\_toast%', true)";

/// A lock: the relation's oid, name and kind, and the mode.
struct Held {
    oid: u32,
    name: String,
    kind: &'static str,
    mode: LockMode,
}

fn relations(client: &mut Client) -> Result<Relations, postgres::Error> {
    Ok(client
        .query(RELATIONS_SQL, &[])?
        .iter()
        .map(|r| {
            let relation = Relation {
                name: r.get(1),
                file: r.get(2),
                kind: kind_name(r.get(3)),
            };
            (r.get::<_, u32>(0), relation)
        })
        .collect())
}

/// The locks of backend `pid`, the strongest mode per relation, named by `known` where
/// `pg_class` no longer has them (a table the transaction dropped); a relation unknown to
/// both (a rewrite's transient table) is left out.
fn locks_of(
    client: &mut Client,
    pid: i32,
    known: &Relations,
) -> Result<Vec<Held>, postgres::Error> {
    let mut strongest: HashMap<u32, Held> = HashMap::new();
    for r in client.query(LOCKS_SQL, &[&pid])? {
        let Some(mode) = LockMode::from_pg_locks_name(r.get(2)) else {
            continue;
        };
        let oid: u32 = r.get(0);
        let now = r
            .get::<_, Option<String>>(1)
            .zip(r.get::<_, Option<&str>>(3).map(kind_name));
        let Some((name, kind)) = now.or_else(|| known.get(&oid).map(|k| (k.name.clone(), k.kind)))
        else {
            continue;
        };
        let entry = strongest.entry(oid).or_insert(Held {
            oid,
            name,
            kind,
            mode,
        });
        entry.mode = entry.mode.max(mode);
    }
    let mut out: Vec<Held> = strongest.into_values().collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Samples the locks of backend `pid` on `observer` until `done`; the strongest mode
/// seen per relation.
fn sample(observer: &mut Client, pid: i32, known: &Relations, done: &AtomicBool) -> Vec<Held> {
    let mut seen: HashMap<u32, Held> = HashMap::new();
    loop {
        // A failed sample (the observer lost) ends sampling; the statement goes on.
        let Ok(locks) = locks_of(observer, pid, known) else {
            break;
        };
        for held in locks {
            let entry = seen.entry(held.oid).or_insert(Held { ..held });
            entry.mode = entry.mode.max(held.mode);
        }
        if done.load(Ordering::Acquire) {
            break;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    let mut out: Vec<Held> = seen.into_values().collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
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
            created: HashSet::new(),
        })
    }

    /// Runs `sql` on `client`, recording what it did; unless, right before it would be
    /// sent, the session no longer reads it as `reading` says: then why, and nothing sent.
    pub(crate) fn run(
        &mut self,
        client: &mut Client,
        sql: &str,
        position: SqlPosition,
        excerpt: String,
        in_transaction: bool,
        reading: crate::migrations::engine::Reading,
    ) -> Result<Option<String>, postgres::Error> {
        let pid = self.pid;
        let before_relations = relations(client)?;
        let held_before: HashSet<(u32, LockMode)> = if in_transaction {
            locks_of(client, pid, &before_relations)?
                .into_iter()
                .map(|h| (h.oid, h.mode))
                .collect()
        } else {
            HashSet::new()
        };
        if let Some(why) = reading.refusal(client)? {
            return Ok(Some(why));
        }
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
        let after_relations = relations(client)?;
        if in_transaction {
            self.created.extend(
                after_relations
                    .keys()
                    .filter(|oid| !before_relations.contains_key(oid)),
            );
        }
        let taken: Vec<Held> = if in_transaction {
            locks_of(client, pid, &before_relations)?
                .into_iter()
                .filter(|h| !held_before.contains(&(h.oid, h.mode)))
                .filter(|h| !self.created.contains(&h.oid))
                .collect()
        } else {
            // Outside a transaction a relation is visible as soon as it is created (the
            // concurrent build's index): its lock counts.
            sampled.unwrap_or_default()
        };
        let mut rewrites = Vec::new();
        for (oid, relation) in &after_relations {
            let file = relation.file;
            let rewritten = file != 0
                && before_relations
                    .get(oid)
                    .is_some_and(|before| before.file != 0 && before.file != file);
            if rewritten {
                let bytes: i64 = client
                    .query_one("SELECT pg_catalog.pg_relation_size($1::oid)", &[oid])?
                    .get(0);
                rewrites.push(Rewrite {
                    relation: relation.name.clone(),
                    bytes,
                });
            }
        }
        rewrites.sort_by(|a, b| a.relation.cmp(&b.relation));
        let index = self.trace.statements.len();
        let locks = taken
            .into_iter()
            .map(|h| LockTrace {
                relation: h.name,
                kind: h.kind.to_string(),
                mode: h.mode,
                held_ms: ms(duration),
                blocks: h.mode.blocks(),
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
        Ok(None)
    }

    /// The open transaction ended (COMMIT or ROLLBACK): its locks are released now.
    pub(crate) fn transaction_ended(&mut self) {
        self.created.clear();
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
        for rewrite in &statement.rewrites {
            if let Some(entry) = by_relation.get_mut(rewrite.relation.as_str()) {
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

/// A lock that blocked writes (or reads) for longer than the budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverBudget {
    /// Where the statement is: `<migration>/migration.sql`, and its position there.
    pub file: String,
    /// Where the statement starts in the file.
    pub position: SqlPosition,
    /// The statement.
    pub statement: String,
    /// The lock.
    #[serde(flatten)]
    pub lock: LockTrace,
    /// The relation's rewrite by the same statement, if it rewrote it.
    pub rewrite: Option<Rewrite>,
}

impl OverBudget {
    /// One line a person reads in ten seconds: `20240612_add_status/migration.sql:3:
    /// ALTER TABLE orders ADD COLUMN … holds ACCESS EXCLUSIVE on orders for 41.2 s (rewrite
    /// of 1.8 GB); blocks reads and writes`.
    pub fn line(&self) -> String {
        let first_line = self.statement.lines().next().unwrap_or_default();
        let statement =
            if first_line.chars().count() > 60 || self.statement.lines().nth(1).is_some() {
                format!(
                    "{} …",
                    first_line.chars().take(60).collect::<String>().trim_end()
                )
            } else {
                first_line.to_string()
            };
        let rewrite = self
            .rewrite
            .as_ref()
            .map(|r| format!(" (rewrite of {})", human_bytes(r.bytes as f64)))
            .unwrap_or_default();
        let blocks = self.lock.blocks.words();
        format!(
            "{}:{}: {statement} holds {} on {} for {}{rewrite}; blocks {blocks}",
            self.file,
            self.position.line,
            self.lock.mode.name(),
            self.lock.relation,
            human_seconds(self.lock.held_ms / 1000.0),
        )
    }
}

/// The locks of `trace` (migration `name`) that block writes or reads and were held
/// longer than `budget`, longest first.
pub fn over_budget(name: &str, trace: &ScriptTrace, budget: Duration) -> Vec<OverBudget> {
    let budget_ms = budget.as_secs_f64() * 1000.0;
    let mut out: Vec<OverBudget> = trace
        .statements
        .iter()
        .flat_map(|s| {
            // An index's lock is named only when no table lock of the statement blocks
            // as much: a rewrite's ACCESS EXCLUSIVE on the table says it all.
            let table_blocks = s
                .locks
                .iter()
                .filter(|l| !is_index(&l.kind))
                .map(|l| l.blocks)
                .max()
                .unwrap_or(Blocks::Nothing);
            s.locks
                .iter()
                .filter(move |l| l.blocks != Blocks::Nothing && l.held_ms > budget_ms)
                .filter(move |l| !is_index(&l.kind) || l.blocks > table_blocks)
                .map(move |l| OverBudget {
                    file: format!("{name}/migration.sql"),
                    position: s.position.clone(),
                    statement: s.statement.clone(),
                    lock: l.clone(),
                    rewrite: s
                        .rewrites
                        .iter()
                        .find(|r| r.relation == l.relation)
                        .cloned(),
                })
        })
        .collect();
    out.sort_by(|a, b| b.lock.held_ms.total_cmp(&a.lock.held_ms));
    out
}
