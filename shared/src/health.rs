//! The result of `pgward-report health`: sizes, dead rows, maintenance due, unused
//! indexes, connections, long-running queries and who blocks whom, as the statistics views
//! tell them. The report binary reads them from the server; the renderers (charts,
//! Prometheus) read them back from any saved document, so they deserialize too. Fields a
//! document of an older version lacks read as empty or zero.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableHealth {
    /// Schema.
    pub schema: String,
    /// Table.
    pub name: String,
    /// Heap and TOAST bytes.
    pub table_bytes: i64,
    /// Bytes of its indexes.
    pub index_bytes: i64,
    /// Both.
    pub total_bytes: i64,
    /// Estimated live rows.
    pub live_rows: i64,
    /// Estimated dead rows.
    pub dead_rows: i64,
    /// dead / (live + dead); none for an empty table.
    pub dead_ratio: Option<f64>,
    /// Last manual VACUUM.
    pub last_vacuum: Option<DateTime<Utc>>,
    /// Last autovacuum.
    pub last_autovacuum: Option<DateTime<Utc>>,
    /// Last manual ANALYZE.
    pub last_analyze: Option<DateTime<Utc>>,
    /// Last autoanalyze.
    pub last_autoanalyze: Option<DateTime<Utc>>,
    /// Sequential scans.
    pub seq_scan: i64,
    /// Index scans.
    pub idx_scan: Option<i64>,
    /// Dead rows above autovacuum's threshold for it.
    pub vacuum_due: bool,
    /// Changes since the last analyze above autoanalyze's threshold, or never analyzed.
    pub analyze_due: bool,
    /// The sizes are pg_class's estimates: someone holds (or waits for) an ACCESS
    /// EXCLUSIVE lock on it, which the exact size functions would wait behind.
    pub size_estimated: bool,
}

/// One index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexHealth {
    /// Schema.
    pub schema: String,
    /// Its table.
    pub table: String,
    /// Index.
    pub name: String,
    /// Size.
    pub bytes: i64,
    /// Scans since the statistics were reset.
    pub idx_scan: i64,
    /// Enforces a primary key, unique or exclusion constraint (then never "unused").
    pub enforces_constraint: bool,
    /// False for an index a failed CREATE INDEX CONCURRENTLY left behind.
    pub valid: bool,
    /// The size is pg_class's estimate (see [`TableHealth::size_estimated`]).
    pub size_estimated: bool,
}

/// A table autovacuum's thresholds call for maintenance on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaintenanceDue {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// VACUUM is due.
    pub vacuum: bool,
    /// ANALYZE is due.
    pub analyze: bool,
    /// Dead rows.
    pub dead_rows: i64,
    /// Rows changed since the last analyze.
    pub modified_since_analyze: i64,
}

/// Connections in one state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionCount {
    /// `active`, `idle`, `idle in transaction`, ...
    pub state: String,
    /// Client connections in it, on the whole server.
    pub count: i64,
}

/// A query or transaction running for long.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LongRunning {
    /// Backend pid.
    pub pid: i32,
    /// Database.
    pub datname: Option<String>,
    /// Role.
    pub user: Option<String>,
    /// application_name.
    pub application_name: Option<String>,
    /// State.
    pub state: Option<String>,
    /// How long the current query has run.
    pub query_s: Option<f64>,
    /// How long the transaction has been open.
    pub transaction_s: Option<f64>,
    /// What it waits for, if anything.
    pub wait_event: Option<String>,
    /// The query (shortened, secrets redacted).
    pub query: Option<String>,
}

/// A session that holds a lock another one waits for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Blocker {
    /// Backend pid.
    pub pid: i32,
    /// Role.
    pub user: Option<String>,
    /// application_name.
    pub application_name: Option<String>,
    /// State (`idle in transaction` is the classic culprit).
    pub state: Option<String>,
    /// How long its transaction has been open.
    pub transaction_s: Option<f64>,
    /// Its current or last query.
    pub query: Option<String>,
}

/// A session waiting for a lock, and who holds it (`pg_blocking_pids`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockedSession {
    /// Backend pid.
    pub pid: i32,
    /// Database.
    pub datname: Option<String>,
    /// Role.
    pub user: Option<String>,
    /// application_name.
    pub application_name: Option<String>,
    /// How long its query has been waiting.
    pub waiting_s: Option<f64>,
    /// The waiting query.
    pub query: Option<String>,
    /// The sessions it waits for.
    pub blocked_by: Vec<Blocker>,
}

/// Sums over every table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HealthTotals {
    /// User tables.
    pub tables: usize,
    /// User indexes.
    pub indexes: usize,
    /// Heap and TOAST bytes.
    pub table_bytes: i64,
    /// Index bytes.
    pub index_bytes: i64,
    /// Estimated live rows.
    pub live_rows: i64,
    /// Estimated dead rows.
    pub dead_rows: i64,
}

/// health's `result`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthReport {
    /// `server_version`.
    pub server_version: String,
    /// `pg_database_size`.
    pub database_bytes: i64,
    /// Since when the statistics count (null: since the cluster started).
    pub stats_reset: Option<DateTime<Utc>>,
    /// blks_hit / (blks_hit + blks_read) of this database; none before any read.
    pub cache_hit_ratio: Option<f64>,
    /// Sums over every table and index.
    pub totals: HealthTotals,
    /// How many of the largest tables and indexes are listed.
    pub limit: usize,
    /// The largest tables, largest first.
    pub tables: Vec<TableHealth>,
    /// The largest indexes, largest first.
    pub indexes: Vec<IndexHealth>,
    /// Valid indexes never scanned that enforce no constraint: candidates to drop.
    pub unused_indexes: Vec<IndexHealth>,
    /// Tables autovacuum's thresholds call for VACUUM or ANALYZE on.
    pub maintenance_due: Vec<MaintenanceDue>,
    /// `max_connections`.
    pub max_connections: i64,
    /// Client connections by state, on the whole server.
    pub connections: Vec<ConnectionCount>,
    /// The threshold for `long_running`.
    pub long_running_threshold_s: f64,
    /// Queries and transactions running longer than the threshold, longest first.
    pub long_running: Vec<LongRunning>,
    /// Sessions waiting for locks, with who holds them.
    pub blocking: Vec<BlockedSession>,
    /// Databases on the server that pgward created for its work (a restore still loading,
    /// a `verify --deep` scratch database, a drift shadow); one without a session whose
    /// creator is gone was left by a killed run.
    pub work_databases: Vec<crate::workdb::WorkDatabase>,
}
