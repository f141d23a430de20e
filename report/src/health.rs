//! `pgward-report health`: what a DBA looks at first, from the statistics views. Sizes of
//! tables and indexes, live and dead rows, when (auto)vacuum and analyze last ran and
//! where autovacuum's own thresholds say they are due, indexes never used, the cache hit
//! ratio, connections by state, long-running queries and who blocks whom.
//!
//! Everything is read from `pg_stat_*` and size functions: nothing is locked and no table
//! is scanned, so it is safe to run against production at any time. The statistics are
//! counted since `stats_reset`, and a standby counts its own.

use std::collections::BTreeMap;
use std::time::Duration;

use pgward_shared::codes::WarningCode;
use pgward_shared::config::parse_duration;
use pgward_shared::error::{Error, Result};
use pgward_shared::health::{
    BlockedSession, Blocker, ConnectionCount, HealthReport, HealthTotals, IndexHealth, LongRunning,
    MaintenanceDue, TableHealth,
};
use pgward_shared::output::{Context, Failure, Outcome};
use pgward_shared::redact::scrub;
use pgward_shared::workdb;
use postgres::Client;

/// How much of a query's text the report shows.
const QUERY_CHARS: i32 = 1000;
/// The session's lock_timeout: the report takes no lock another session's ACCESS
/// EXCLUSIVE lock blocks (see `LOCKED_RELATIONS`), so this only guards against a race.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// health's options: its flags, parsed straight into them.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthOptions {
    /// List this many of the largest tables and indexes (totals cover all)
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    /// List queries and transactions running longer than this
    #[arg(long, value_name = "DURATION", default_value = "1min", value_parser = parse_duration)]
    pub long_running: Duration,
}

/// Runs health.
pub fn health(ctx: &Context, options: &HealthOptions) -> Result<Outcome, Failure> {
    let mut session = ctx.connect()?;
    // Nothing here should wait for a lock; if something still does, fail instead of hanging
    // a cron job behind a migration.
    session
        .client
        .batch_execute(&format!(
            "SET lock_timeout = '{}ms'",
            LOCK_TIMEOUT.as_millis()
        ))
        .map_err(|e| Error::query("setting lock_timeout", &e))?;
    let report = read(&mut session.client, options)?;
    let estimated: Vec<String> = report
        .tables
        .iter()
        .filter(|t| t.size_estimated)
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    if !estimated.is_empty() {
        ctx.warn(
            WarningCode::SizesEstimated,
            format!(
                "{} is locked ACCESS EXCLUSIVE (a migration, VACUUM FULL?): sizes shown are estimates from pg_class",
                estimated.join(", ")
            ),
        );
    }
    if !report.blocking.is_empty() {
        ctx.warn(
            WarningCode::BlockedSessions,
            format!(
                "{} session(s) wait for locks held by others: {}",
                report.blocking.len(),
                report
                    .blocking
                    .iter()
                    .map(|b| format!(
                        "pid {} waits for {}",
                        b.pid,
                        b.blocked_by
                            .iter()
                            .map(|x| x.pid.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        );
    }
    if !report.long_running.is_empty() {
        ctx.warn(
            WarningCode::LongRunningQueries,
            format!(
                "{} quer(ies) or transaction(s) running longer than {} s",
                report.long_running.len(),
                report.long_running_threshold_s
            ),
        );
    }
    let left: Vec<String> = report
        .work_databases
        .iter()
        .filter(|w| w.is_leftover())
        .map(|w| match w.bytes {
            Some(bytes) => format!(
                "{} ({})",
                w.name,
                pgward_shared::render::human_bytes(bytes as f64)
            ),
            None => w.name.clone(),
        })
        .collect();
    if !left.is_empty() {
        ctx.warn(
            WarningCode::WorkDatabasesLeft,
            format!(
                "{} left by interrupted pgward runs (killed restores, verify --deep or drift): the next restore into the same target, the next verify --deep or the next drift drops them; or drop them by hand",
                left.join(", ")
            ),
        );
    }
    Ok(Outcome::ok(report))
}

/// Reads the report from the statistics views.
pub fn read(client: &mut Client, options: &HealthOptions) -> Result<HealthReport> {
    let q = |context: &'static str| move |e: postgres::Error| Error::query(context, &e);
    let db = client
        .query_one(
            "SELECT current_setting('server_version'), pg_database_size(current_database()), \
                    d.stats_reset, d.blks_hit, d.blks_read, current_setting('max_connections')::bigint \
             FROM pg_catalog.pg_stat_database d WHERE d.datname = current_database()",
            &[],
        )
        .map_err(q("reading pg_stat_database"))?;
    let (hit, read): (i64, i64) = (db.get(3), db.get(4));
    let cache_hit_ratio = (hit + read > 0).then(|| hit as f64 / (hit + read) as f64);

    let all_tables = tables(client)?;
    let all_indexes = indexes(client)?;
    let totals = HealthTotals {
        tables: all_tables.len(),
        indexes: all_indexes.len(),
        table_bytes: all_tables.iter().map(|t| t.table_bytes).sum(),
        index_bytes: all_tables.iter().map(|t| t.index_bytes).sum(),
        live_rows: all_tables.iter().map(|t| t.live_rows).sum(),
        dead_rows: all_tables.iter().map(|t| t.dead_rows).sum(),
    };
    let maintenance_due = maintenance_due(client)?;
    let unused_indexes = all_indexes
        .iter()
        .filter(|i| i.idx_scan == 0 && i.valid && !i.enforces_constraint)
        .cloned()
        .collect();
    let connections = client
        .query(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_catalog.pg_stat_activity \
             WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 1",
            &[],
        )
        .map_err(q("counting connections"))?
        .iter()
        .map(|r| ConnectionCount {
            state: r.get(0),
            count: r.get(1),
        })
        .collect();
    let threshold_s = options.long_running.as_secs_f64();
    Ok(HealthReport {
        server_version: db.get(0),
        database_bytes: db.get(1),
        stats_reset: db.get(2),
        cache_hit_ratio,
        totals,
        limit: options.limit,
        tables: all_tables.into_iter().take(options.limit).collect(),
        indexes: all_indexes.into_iter().take(options.limit).collect(),
        unused_indexes,
        maintenance_due,
        max_connections: db.get(5),
        connections,
        long_running_threshold_s: threshold_s,
        long_running: long_running(client, threshold_s)?,
        blocking: blocking(client)?,
        work_databases: workdb::list(client)?,
    })
}

/// Relations someone holds or waits for an ACCESS EXCLUSIVE lock on (a migration's ALTER
/// TABLE, a VACUUM FULL): the size functions would queue behind that lock, so their sizes
/// come from pg_class's page counts instead (as of the last VACUUM or ANALYZE).
const LOCKED_RELATIONS: &str =
    "locked AS (SELECT DISTINCT relation AS oid FROM pg_catalog.pg_locks \
    WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' \
      AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))";

fn tables(client: &mut Client) -> Result<Vec<TableHealth>> {
    let rows = client
        .query(
            &format!(
                "WITH {LOCKED_RELATIONS}, sized AS ( \
                   SELECT s.*, c.reltuples, \
                          c.oid IN (SELECT oid FROM locked) OR c.reltoastrelid IN (SELECT oid FROM locked) \
                            OR EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid \
                                         AND i.indexrelid IN (SELECT oid FROM locked)) AS estimated \
                   FROM pg_catalog.pg_stat_user_tables s JOIN pg_catalog.pg_class c ON c.oid = s.relid), \
                 measured AS ( \
                   SELECT sized.*, \
                          CASE WHEN estimated THEN (SELECT coalesce(sum(r.relpages), 0)::bigint * current_setting('block_size')::bigint \
                                                    FROM pg_catalog.pg_class r WHERE r.oid = relid OR r.oid = (SELECT reltoastrelid FROM pg_catalog.pg_class WHERE oid = relid)) \
                               ELSE pg_table_size(relid) END AS table_bytes, \
                          CASE WHEN estimated THEN (SELECT coalesce(sum(r.relpages), 0)::bigint * current_setting('block_size')::bigint \
                                                    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class r ON r.oid = i.indexrelid WHERE i.indrelid = relid) \
                               ELSE pg_indexes_size(relid) END AS index_bytes \
                   FROM sized) \
                 SELECT schemaname::text, relname::text, table_bytes, index_bytes, \
                        n_live_tup, n_dead_tup, last_vacuum, last_autovacuum, last_analyze, \
                        last_autoanalyze, seq_scan, idx_scan, \
                        n_dead_tup > current_setting('autovacuum_vacuum_threshold')::float8 \
                          + current_setting('autovacuum_vacuum_scale_factor')::float8 * greatest(reltuples, 0), \
                        n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8 \
                          + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(reltuples, 0) \
                          OR (last_analyze IS NULL AND last_autoanalyze IS NULL AND n_live_tup > 0), \
                        estimated \
                 FROM measured ORDER BY table_bytes + index_bytes DESC, 1, 2"
            ),
            &[],
        )
        .map_err(|e| Error::query("reading table statistics", &e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let (table_bytes, index_bytes): (i64, i64) = (r.get(2), r.get(3));
            let (live, dead): (i64, i64) = (r.get(4), r.get(5));
            TableHealth {
                schema: r.get(0),
                name: r.get(1),
                table_bytes,
                index_bytes,
                total_bytes: table_bytes + index_bytes,
                live_rows: live,
                dead_rows: dead,
                dead_ratio: (live + dead > 0).then(|| dead as f64 / (live + dead) as f64),
                last_vacuum: r.get(6),
                last_autovacuum: r.get(7),
                last_analyze: r.get(8),
                last_autoanalyze: r.get(9),
                seq_scan: r.get::<_, Option<i64>>(10).unwrap_or(0),
                idx_scan: r.get(11),
                vacuum_due: r.get::<_, Option<bool>>(12).unwrap_or(false),
                analyze_due: r.get::<_, Option<bool>>(13).unwrap_or(false),
                size_estimated: r.get(14),
            }
        })
        .collect())
}

fn indexes(client: &mut Client) -> Result<Vec<IndexHealth>> {
    let rows = client
        .query(
            &format!(
                "WITH {LOCKED_RELATIONS}, measured AS ( \
                   SELECT s.*, i.indisunique OR i.indisprimary OR i.indisexclusion \
                            OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = s.indexrelid) AS enforces, \
                          i.indisvalid, \
                          s.indexrelid IN (SELECT oid FROM locked) OR s.relid IN (SELECT oid FROM locked) AS estimated, \
                          c.relpages \
                   FROM pg_catalog.pg_stat_user_indexes s JOIN pg_catalog.pg_index i ON i.indexrelid = s.indexrelid \
                   JOIN pg_catalog.pg_class c ON c.oid = s.indexrelid) \
                 SELECT schemaname::text, relname::text, indexrelname::text, \
                        CASE WHEN estimated THEN relpages::bigint * current_setting('block_size')::bigint \
                             ELSE pg_relation_size(indexrelid) END AS bytes, \
                        idx_scan, enforces, indisvalid, estimated \
                 FROM measured ORDER BY bytes DESC, 1, 2, 3"
            ),
            &[],
        )
        .map_err(|e| Error::query("reading index statistics", &e))?;
    Ok(rows
        .iter()
        .map(|r| IndexHealth {
            schema: r.get(0),
            table: r.get(1),
            name: r.get(2),
            bytes: r.get(3),
            idx_scan: r.get::<_, Option<i64>>(4).unwrap_or(0),
            enforces_constraint: r.get(5),
            valid: r.get(6),
            size_estimated: r.get(7),
        })
        .collect())
}

fn maintenance_due(client: &mut Client) -> Result<Vec<MaintenanceDue>> {
    // The thresholds autovacuum itself uses (per-table reloptions aside), so "due" here
    // means "autovacuum should have got to it": a table that stays due is one autovacuum
    // cannot keep up with, or one it is switched off for.
    let rows = client
        .query(
            "SELECT schemaname::text, relname::text, vacuum_due, analyze_due, n_dead_tup, n_mod_since_analyze FROM ( \
               SELECT s.schemaname, s.relname, s.n_dead_tup, s.n_mod_since_analyze, \
                      s.n_dead_tup > current_setting('autovacuum_vacuum_threshold')::float8 \
                        + current_setting('autovacuum_vacuum_scale_factor')::float8 * greatest(c.reltuples, 0) AS vacuum_due, \
                      s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8 \
                        + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0) \
                        OR (s.last_analyze IS NULL AND s.last_autoanalyze IS NULL AND s.n_live_tup > 0) AS analyze_due \
               FROM pg_catalog.pg_stat_user_tables s JOIN pg_catalog.pg_class c ON c.oid = s.relid) t \
             WHERE vacuum_due OR analyze_due ORDER BY n_dead_tup DESC, n_mod_since_analyze DESC, 1, 2",
            &[],
        )
        .map_err(|e| Error::query("checking autovacuum thresholds", &e))?;
    Ok(rows
        .iter()
        .map(|r| MaintenanceDue {
            schema: r.get(0),
            table: r.get(1),
            vacuum: r.get::<_, Option<bool>>(2).unwrap_or(false),
            analyze: r.get::<_, Option<bool>>(3).unwrap_or(false),
            dead_rows: r.get(4),
            modified_since_analyze: r.get(5),
        })
        .collect())
}

fn long_running(client: &mut Client, threshold_s: f64) -> Result<Vec<LongRunning>> {
    let rows = client
        .query(
            "SELECT pid, datname::text, usename::text, application_name, state, \
                    extract(epoch FROM now() - query_start)::float8 AS query_s, \
                    extract(epoch FROM now() - xact_start)::float8 AS xact_s, \
                    CASE WHEN wait_event IS NULL THEN NULL ELSE wait_event_type || ':' || wait_event END, \
                    left(query, $2) \
             FROM pg_catalog.pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle' \
               AND greatest(now() - query_start, now() - xact_start) > make_interval(secs => $1) \
             ORDER BY greatest(now() - query_start, now() - xact_start) DESC, pid",
            &[&threshold_s, &QUERY_CHARS],
        )
        .map_err(|e| Error::query("listing long-running queries", &e))?;
    Ok(rows
        .iter()
        .map(|r| LongRunning {
            pid: r.get(0),
            datname: r.get(1),
            user: r.get(2),
            application_name: r.get(3),
            state: r.get(4),
            query_s: r.get(5),
            transaction_s: r.get(6),
            wait_event: r.get(7),
            query: r.get::<_, Option<String>>(8).map(|q| scrub(&q)),
        })
        .collect())
}

fn blocking(client: &mut Client) -> Result<Vec<BlockedSession>> {
    let rows = client
        .query(
            "SELECT w.pid, w.datname::text, w.usename::text, w.application_name, \
                    extract(epoch FROM now() - w.query_start)::float8, left(w.query, $1), \
                    bp.pid, b.usename::text, b.application_name, b.state, \
                    extract(epoch FROM now() - b.xact_start)::float8, left(b.query, $1) \
             FROM pg_catalog.pg_stat_activity w \
             CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(w.pid)) AS bp(pid) \
             LEFT JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid \
             WHERE w.pid <> pg_backend_pid() \
             ORDER BY w.pid, bp.pid",
            &[&QUERY_CHARS],
        )
        .map_err(|e| Error::query("finding blocked sessions", &e))?;
    let mut sessions: BTreeMap<i32, BlockedSession> = BTreeMap::new();
    for r in &rows {
        let pid: i32 = r.get(0);
        let session = sessions.entry(pid).or_insert_with(|| BlockedSession {
            pid,
            datname: r.get(1),
            user: r.get(2),
            application_name: r.get(3),
            waiting_s: r.get(4),
            query: r.get::<_, Option<String>>(5).map(|q| scrub(&q)),
            blocked_by: Vec::new(),
        });
        session.blocked_by.push(Blocker {
            pid: r.get(6),
            user: r.get(7),
            application_name: r.get(8),
            state: r.get(9),
            transaction_s: r.get(10),
            query: r.get::<_, Option<String>>(11).map(|q| scrub(&q)),
        });
    }
    Ok(sessions.into_values().collect())
}
