//! The `_prisma_migrations` table, byte-compatible with Prisma Migrate, and the advisory
//! lock Prisma takes around it.
//!
//! The table DDL, the row contents and the lock key are Prisma's, so a team can switch
//! between `prisma migrate deploy` and `pgward-migrate deploy` in either direction. pgward's
//! own queries name the table schema-qualified, so a migration that changes search_path
//! cannot send them elsewhere.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, LockHolder, Result};
use postgres::types::{ToSql, Type};

use crate::sql::quote_ident;

/// Prisma Migrate's advisory lock key (`pg_advisory_lock(72707369)`).
pub const PRISMA_LOCK_KEY: i64 = 72707369;

/// The history table's name.
pub const HISTORY_TABLE: &str = "_prisma_migrations";

/// Prisma's DDL for the history table, byte for byte (run with search_path set to the
/// URL's schema, as Prisma does).
pub const CREATE_HISTORY_TABLE_SQL: &str = r#"CREATE TABLE "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
);"#;

/// Prisma honours this variable to skip the advisory lock (any value but "" and "0").
pub const DISABLE_LOCK_ENV: &str = "PRISMA_SCHEMA_DISABLE_ADVISORY_LOCK";

/// One row of `_prisma_migrations`: one attempt to apply one migration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryRow {
    /// UUIDv4 of the attempt.
    pub id: String,
    /// SHA-256 of migration.sql when it was applied.
    pub checksum: String,
    /// When it finished; NULL while running or after a failure.
    pub finished_at: Option<DateTime<Utc>>,
    /// The migration folder's name.
    pub migration_name: String,
    /// The error of a failed attempt.
    pub logs: Option<String>,
    /// Set by `resolve --rolled-back`: the attempt no longer counts.
    pub rolled_back_at: Option<DateTime<Utc>>,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// Statements applied (Prisma writes 1 for a finished script).
    pub applied_steps_count: i32,
}

impl HistoryRow {
    /// Failed (or died mid-way): neither finished nor rolled back. Blocks deploy.
    pub fn is_failed(&self) -> bool {
        self.finished_at.is_none() && self.rolled_back_at.is_none()
    }

    /// Applied: finished and not rolled back.
    pub fn is_applied(&self) -> bool {
        self.finished_at.is_some() && self.rolled_back_at.is_none()
    }

    /// Counts for the migration's state: not rolled back.
    pub fn is_current(&self) -> bool {
        self.rolled_back_at.is_none()
    }
}

/// `"schema"."_prisma_migrations"`.
pub fn qualified_table(schema: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(HISTORY_TABLE))
}

/// Whether the history table exists in `schema`.
pub fn table_exists(client: &mut postgres::Client, schema: &str) -> Result<bool> {
    let row = client
        .query_typed_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))",
            &[(&schema, Type::TEXT), (&HISTORY_TABLE, Type::TEXT)],
        )
        .map_err(|e| Error::query("checking for the _prisma_migrations table", &e))?;
    Ok(row.get(0))
}

/// Whether `schema` exists.
pub fn schema_exists(client: &mut postgres::Client, schema: &str) -> Result<bool> {
    let row = client
        .query_typed_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
            &[(&schema, Type::TEXT)],
        )
        .map_err(|e| Error::query("checking the schema", &e))?;
    Ok(row.get(0))
}

/// Creates `schema` if missing and the history table in it with Prisma's exact DDL.
pub fn create_table(client: &mut postgres::Client, schema: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema_q}; SET search_path TO {schema_q}; {CREATE_HISTORY_TABLE_SQL}",
            schema_q = quote_ident(schema)
        ))
        .map_err(|e| Error::query("creating the _prisma_migrations table", &e))
}

/// Every row, oldest attempt first.
pub fn read_rows(client: &mut postgres::Client, schema: &str) -> Result<Vec<HistoryRow>> {
    let rows = client
        .query_typed(
            &format!(
                "SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count \
                 FROM {} ORDER BY started_at, migration_name",
                qualified_table(schema)
            ),
            &[],
        )
        .map_err(|e| Error::query("reading _prisma_migrations", &e))?;
    Ok(rows
        .iter()
        .map(|r| HistoryRow {
            id: r.get(0),
            checksum: r.get(1),
            finished_at: r.get(2),
            migration_name: r.get(3),
            logs: r.get(4),
            rolled_back_at: r.get(5),
            started_at: r.get(6),
            applied_steps_count: r.get(7),
        })
        .collect())
}

/// Every row, or none when the table does not exist (yet).
pub fn read_rows_if_any(client: &mut postgres::Client, schema: &str) -> Result<Vec<HistoryRow>> {
    if table_exists(client, schema)? {
        read_rows(client, schema)
    } else {
        Ok(Vec::new())
    }
}

/// Whether `schema` holds no objects of its own (tables, views, sequences, types,
/// functions), ignoring the history table and what extensions own. Prisma refuses to
/// deploy into a non-empty schema without history (P3005).
pub fn schema_is_empty(client: &mut postgres::Client, schema: &str) -> Result<bool> {
    let row = client
        .query_typed_one(
            "WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1), \
             ext AS (SELECT objid FROM pg_catalog.pg_depend WHERE deptype = 'e') \
             SELECT (SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns) \
                       AND c.relkind IN ('r','p','v','m','S','f') AND c.relname <> $2 \
                       AND c.oid NOT IN (SELECT objid FROM ext) \
                       AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a','i') \
                                 AND d.refobjid IN (SELECT oid FROM pg_catalog.pg_class WHERE relname = $2 AND relnamespace IN (SELECT oid FROM ns))))) \
                  + (SELECT count(*) FROM pg_catalog.pg_type t WHERE t.typnamespace IN (SELECT oid FROM ns) \
                       AND t.typtype IN ('e','d','r','m') AND t.oid NOT IN (SELECT objid FROM ext)) \
                  + (SELECT count(*) FROM pg_catalog.pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns) \
                       AND p.oid NOT IN (SELECT objid FROM ext))",
            &[(&schema, Type::TEXT), (&HISTORY_TABLE, Type::TEXT)],
        )
        .map_err(|e| Error::query("checking whether the schema is empty", &e))?;
    let count: i64 = row.get(0);
    Ok(count == 0)
}

/// Whether Prisma's lock-disabling variable is set to a value that disables the lock.
pub fn lock_disabled(value: Option<&str>) -> bool {
    matches!(value, Some(v) if !v.is_empty() && v != "0")
}

/// The migration advisory lock, held by one session until released or disconnected.
pub struct MigrationLock {
    held: bool,
}

impl MigrationLock {
    /// Takes `pg_advisory_lock(72707369)`, polling for up to `wait`; on timeout names
    /// the holder. With `disabled` (Prisma's escape hatch) it takes nothing.
    pub fn acquire(
        client: &mut postgres::Client,
        wait: Duration,
        disabled: bool,
    ) -> Result<MigrationLock> {
        if disabled {
            crate::log::warn(&format!(
                "{DISABLE_LOCK_ENV} is set: running without the migration advisory lock"
            ));
            return Ok(MigrationLock { held: false });
        }
        let started = Instant::now();
        let mut announced = false;
        loop {
            crate::interrupt::check()?;
            let got: bool = client
                .query_typed_one(
                    "SELECT pg_try_advisory_lock($1)",
                    &[(&PRISMA_LOCK_KEY, Type::INT8)],
                )
                .map_err(|e| Error::query("taking the migration advisory lock", &e))?
                .get(0);
            if got {
                return Ok(MigrationLock { held: true });
            }
            if started.elapsed() >= wait {
                return Err(Error::LockHeld {
                    waited_ms: started.elapsed().as_millis() as u64,
                    holder: lock_holder(client)?,
                });
            }
            if !announced {
                crate::log::info(&format!(
                    "the migration lock is held by another session; waiting up to {} ms",
                    wait.as_millis()
                ));
                announced = true;
            }
            std::thread::sleep(
                Duration::from_millis(100).min(wait.saturating_sub(started.elapsed())),
            );
        }
    }

    /// Releases the lock (disconnecting releases it too).
    pub fn release(mut self, client: &mut postgres::Client) {
        if self.held {
            // A failed unlock leaves the lock to the session's end, which is near.
            let _ = client.query_typed(
                "SELECT pg_advisory_unlock($1)",
                &[(&PRISMA_LOCK_KEY, Type::INT8)],
            );
            self.held = false;
        }
    }
}

/// The session holding the migration lock (`$1`: its objid) in this database, if any.
/// A bigint advisory key is stored as classid = high 32 bits, objid = low 32 bits,
/// objsubid = 1. pg_stat_get_activity(pid) reads the holder's entry only, where the
/// pg_stat_activity view reads every backend's.
const LOCK_HOLDER_SQL: &str = "SELECT a.pid, coalesce(a.application_name, '') AS application_name, \
     coalesce(a.query, '') AS query, coalesce(a.state, '') AS state \
     FROM pg_catalog.pg_locks l, LATERAL pg_catalog.pg_stat_get_activity(l.pid) a \
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1 \
       AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) \
       AND l.pid <> pg_catalog.pg_backend_pid()";

/// The lock holder in the columns `first..first + 4` of `row`, if there is one.
fn holder_at(row: &postgres::Row, first: usize) -> Option<LockHolder> {
    let pid: Option<i32> = row.get(first);
    pid.map(|pid| LockHolder {
        pid,
        application_name: row.get(first + 1),
        query: crate::redact::scrub(row.get::<_, &str>(first + 2)),
        state: row.get(first + 3),
    })
}

/// The session holding the migration lock in this database, if any.
pub fn lock_holder(client: &mut postgres::Client) -> Result<Option<LockHolder>> {
    let rows = client
        .query_typed(LOCK_HOLDER_SQL, &[(&(PRISMA_LOCK_KEY as u32), Type::OID)])
        .map_err(|e| Error::query("looking up the migration lock holder", &e))?;
    Ok(rows.first().and_then(|r| holder_at(r, 0)))
}

/// [`table_exists`] and [`lock_holder`] in one round trip (`status`).
pub fn table_exists_and_lock_holder(
    client: &mut postgres::Client,
    schema: &str,
) -> Result<(bool, Option<LockHolder>)> {
    let row = client
        .query_typed_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $2 AND c.relname = $3 AND c.relkind IN ('r', 'p')), \
                 h.pid, h.application_name, h.query, h.state \
                 FROM (SELECT 1) one LEFT JOIN LATERAL ({LOCK_HOLDER_SQL} LIMIT 1) h ON true"
            ),
            &[
                (&(PRISMA_LOCK_KEY as u32), Type::OID),
                (&schema, Type::TEXT),
                (&HISTORY_TABLE, Type::TEXT),
            ],
        )
        .map_err(|e| Error::query("checking for the _prisma_migrations table and the migration lock holder", &e))?;
    Ok((row.get(0), holder_at(&row, 1)))
}

/// One write to the history table: SQL with `$n` placeholders and the values bound to
/// them, sent with the extended protocol. History text (migration names, and failure
/// logs that quote statements, server messages and row values) is never spliced into SQL
/// text: in a session with `standard_conforming_strings = off` (a database or role
/// setting, or a migration's own `SET`) a backslash in a quoted literal escapes the
/// closing quote, and the rest of the text would be read as SQL. The one exception is
/// the finish record's literal form for the engine's batched path, built only from
/// values checked to hold no quote or backslash (the name in hex otherwise): batch.rs.
pub struct HistoryWrite {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    /// The same write with its values as checked literals, for the engine's batched path
    /// (`batch.rs` says why that is safe).
    literal: Option<String>,
}

impl HistoryWrite {
    fn new(sql: String) -> HistoryWrite {
        HistoryWrite {
            sql,
            params: Vec::new(),
            literal: None,
        }
    }

    /// The literal form, when the write has one.
    pub fn literal(&self) -> Option<&str> {
        self.literal.as_deref()
    }

    fn bind(mut self, value: impl ToSql + Sync + Send + 'static) -> HistoryWrite {
        self.params.push(Box::new(value));
        self
    }

    /// The SQL, with its placeholders.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Runs it on `client` (a session or a transaction); the rows it touched.
    pub fn execute(
        &self,
        client: &mut impl postgres::GenericClient,
    ) -> std::result::Result<u64, postgres::Error> {
        let params: Vec<&(dyn ToSql + Sync)> = self
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        client.execute(self.sql.as_str(), &params)
    }
}

/// Marks an attempt finished (Prisma writes applied_steps_count = 1). An upsert: a
/// ROLLBACK inside the migration file may have undone the attempt's first row.
pub fn finish_attempt(schema: &str, attempt: &Attempt) -> HistoryWrite {
    let mut write = HistoryWrite::new(format!(
        "INSERT INTO {} (id, checksum, migration_name, started_at, finished_at, applied_steps_count) \
         VALUES ($1, $2, $3, $4, clock_timestamp(), 1) \
         ON CONFLICT (id) DO UPDATE SET finished_at = clock_timestamp(), applied_steps_count = 1",
        qualified_table(schema),
    ))
    .bind(attempt.id.clone())
    .bind(attempt.checksum.clone())
    .bind(attempt.name.clone())
    .bind(attempt.started_at);
    write.literal = crate::migrations::batch::finish_literal(schema, attempt);
    write
}

/// Records how many statements of a step-by-step attempt are applied.
pub fn progress_attempt(schema: &str, attempt: &Attempt, steps: usize) -> HistoryWrite {
    HistoryWrite::new(format!(
        "UPDATE {} SET applied_steps_count = $1 WHERE id = $2",
        qualified_table(schema),
    ))
    .bind(i32::try_from(steps).unwrap_or(i32::MAX))
    .bind(attempt.id.clone())
}

/// Records a failed attempt with its logs (finished_at stays NULL, as Prisma records
/// failures).
pub fn fail_attempt(schema: &str, attempt: &Attempt, logs: &str) -> HistoryWrite {
    HistoryWrite::new(format!(
        "INSERT INTO {} (id, checksum, migration_name, started_at, logs, applied_steps_count) \
         VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (id) DO UPDATE SET logs = EXCLUDED.logs",
        qualified_table(schema),
    ))
    .bind(attempt.id.clone())
    .bind(attempt.checksum.clone())
    .bind(attempt.name.clone())
    .bind(attempt.started_at)
    .bind(logs.to_string())
}

/// Marks every failed attempt of a migration rolled back (`resolve --rolled-back`, and
/// before a lock-timeout retry).
pub fn roll_back_failed(schema: &str, name: &str) -> HistoryWrite {
    HistoryWrite::new(format!(
        "UPDATE {} SET rolled_back_at = now() WHERE migration_name = $1 AND finished_at IS NULL AND rolled_back_at IS NULL",
        qualified_table(schema),
    ))
    .bind(name.to_string())
}

/// Records a migration as applied without running it (`resolve --applied`).
pub fn record_applied(schema: &str, name: &str, checksum: &str) -> HistoryWrite {
    HistoryWrite::new(format!(
        "INSERT INTO {} (id, checksum, migration_name, started_at, finished_at, applied_steps_count) \
         VALUES ($1, $2, $3, now(), now(), 0)",
        qualified_table(schema),
    ))
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(checksum.to_string())
    .bind(name.to_string())
}

/// Deletes every row of a migration (a rollback by its down.sql).
pub fn delete_migration(schema: &str, name: &str) -> HistoryWrite {
    HistoryWrite::new(format!(
        "DELETE FROM {} WHERE migration_name = $1",
        qualified_table(schema),
    ))
    .bind(name.to_string())
}

/// One attempt to apply a migration: the identity of its history row.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// UUIDv4, the row's id.
    pub id: String,
    /// The migration's name.
    pub name: String,
    /// migration.sql's checksum.
    pub checksum: String,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
}

impl Attempt {
    /// A new attempt at `name`.
    pub fn new(name: &str, checksum: &str) -> Attempt {
        Attempt {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            checksum: checksum.to_string(),
            started_at: Utc::now(),
        }
    }

    /// Records this attempt's start (Prisma's row shape).
    pub fn insert(&self, schema: &str) -> HistoryWrite {
        HistoryWrite::new(format!(
            "INSERT INTO {} (id, checksum, migration_name, started_at, applied_steps_count) VALUES ($1, $2, $3, now(), 0)",
            qualified_table(schema),
        ))
        .bind(self.id.clone())
        .bind(self.checksum.clone())
        .bind(self.name.clone())
    }
}
