//! The result of `pgward-report migrations`: every attempt of the history joined with the
//! migrations folder. The report binary builds it; the renderers (charts, Prometheus) read
//! it back from any saved document, so it deserializes too. Fields a document of an older
//! version lacks read as empty or zero.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What one attempt (one history row) came to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Finished and counts.
    Applied,
    /// Neither finished nor rolled back: failed, or died mid-way (blocks deploy).
    Failed,
    /// Marked rolled back (`resolve --rolled-back`): no longer counts.
    RolledBack,
}

/// One row of `_prisma_migrations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The migration.
    pub migration: String,
    /// What it came to.
    pub outcome: AttemptOutcome,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished (applied attempts, and rolled-back ones that had finished).
    pub finished_at: Option<DateTime<Utc>>,
    /// When it was marked rolled back.
    pub rolled_back_at: Option<DateTime<Utc>>,
    /// finished_at − started_at.
    pub duration_ms: Option<u64>,
    /// Statements applied.
    #[serde(default)]
    pub applied_steps_count: i32,
    /// The recorded error of a failed attempt.
    pub logs: Option<String>,
}

/// Where a migration stands, by Prisma's rules.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MigrationStatus {
    /// Applied (see `edited` for a file changed since).
    Applied,
    /// Its latest attempt failed.
    Failed,
    /// In the folder, not applied.
    Pending,
    /// Applied, but no longer in the folder.
    MissingLocally,
    /// Only rolled-back attempts, and not in the folder.
    RolledBack,
}

/// One migration, all its attempts taken together.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationSummary {
    /// The folder name.
    pub name: String,
    /// Where it stands.
    pub status: MigrationStatus,
    /// Whether the folder has it.
    pub local: bool,
    /// Whether it has a down.sql (None when not in the folder).
    pub has_down: Option<bool>,
    /// Applied, but migration.sql changed since.
    pub edited: bool,
    /// Rows in the history.
    pub attempts: usize,
    /// Failed attempts (current or rolled back since).
    pub failed_attempts: usize,
    /// Attempts marked rolled back.
    pub rolled_back_attempts: usize,
    /// Applied after an earlier attempt failed or was rolled back.
    pub reapplied: bool,
    /// When the applied attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the applied attempt finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// How long the applied attempt took.
    pub duration_ms: Option<u64>,
    /// The logs of its latest failed attempt.
    pub last_failure_logs: Option<String>,
}

/// Counts over the whole history and folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MigrationTotals {
    /// Migrations in the folder.
    pub local: usize,
    /// Applied.
    pub applied: usize,
    /// Pending.
    pub pending: usize,
    /// Latest attempt failed.
    pub failed: usize,
    /// Applied but edited since.
    pub edited: usize,
    /// Applied but not in the folder.
    pub missing_locally: usize,
    /// History rows.
    pub attempts: usize,
    /// Rows that failed.
    pub failed_attempts: usize,
    /// Rows marked rolled back.
    pub rolled_back_attempts: usize,
    /// Migrations applied after a failed or rolled-back attempt.
    pub reapplied: usize,
    /// Time spent in applied attempts.
    pub total_duration_ms: u64,
}

/// One of the slowest applied attempts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlowAttempt {
    /// The migration.
    pub migration: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
}

/// The most recently finished applied attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastApplied {
    /// The migration.
    pub migration: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
}

/// migrations' `result`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MigrationsReport {
    /// The schema holding `_prisma_migrations`.
    pub schema: String,
    /// Whether `_prisma_migrations` exists.
    pub history_table: bool,
    /// The migrations folder, when there is one.
    pub migrations_dir: Option<String>,
    /// Counts.
    pub totals: MigrationTotals,
    /// Every migration of the folder (in Prisma's order), then those only the history has.
    pub migrations: Vec<MigrationSummary>,
    /// Every history row, oldest first.
    pub attempts: Vec<AttemptRecord>,
    /// The slowest applied attempts, slowest first.
    pub slowest: Vec<SlowAttempt>,
    /// The most recently applied migration.
    pub last_applied: Option<LastApplied>,
}

impl AttemptRecord {
    /// Failed when it ran: no finish recorded (whether rolled back since or not).
    pub fn failed(&self) -> bool {
        self.finished_at.is_none()
    }
}
