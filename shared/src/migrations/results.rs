//! The results of pgward-migrate's commands (the envelope's `result`), in one place: what
//! deploy, status, resolve, rollback, new and seed print, for the binaries that print them
//! and for whatever reads their documents back.

use serde::{Deserialize, Serialize};

use crate::error::LockHolder;
use crate::migrations::engine::RunMode;
use crate::migrations::state::MigrationState;
use crate::migrations::trace::{OverBudget, RelationSummary, ScriptTrace};

/// One migration deploy applied (or, dry-run, would apply).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployedMigration {
    /// Folder name.
    pub name: String,
    /// How it ran (or would run).
    #[serde(flatten)]
    pub mode: RunMode,
    /// Statements in the file.
    pub statements: usize,
    /// Wall time, null in a dry run.
    pub duration_ms: Option<u64>,
    /// Lock-timeout retries it needed.
    pub retries: u32,
    /// With `--trace`: what each statement did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<ScriptTrace>,
}

/// deploy's `result`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployResult {
    /// The migrations folder.
    pub migrations_dir: String,
    /// The schema holding `_prisma_migrations`.
    pub schema: String,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Applied by this run, in order (dry run: would be applied).
    pub applied: Vec<DeployedMigration>,
    /// Applied before this run.
    pub already_applied: usize,
    /// Still pending after this run (because of `--to`).
    pub still_pending: Vec<String>,
    /// With `--trace`: per relation over every migration applied, the strongest lock
    /// taken and how long it was held, strongest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relations: Option<Vec<RelationSummary>>,
    /// With `--max-lock`: the locks held longer than the budget, longest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_budget: Option<Vec<OverBudget>>,
}

/// status's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusResult {
    /// The migrations folder.
    pub migrations_dir: String,
    /// The schema holding `_prisma_migrations`.
    pub schema: String,
    /// Whether `_prisma_migrations` exists.
    pub history_table: bool,
    /// Migrations in the folder.
    pub local_migrations: usize,
    /// The comparison.
    #[serde(flatten)]
    pub state: MigrationState,
    /// Whether everything local is applied and nothing is broken.
    pub up_to_date: bool,
    /// Who holds the migration lock right now.
    pub lock_holder: Option<LockHolder>,
}

/// What resolve records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// `--applied`: the migration was applied by hand; record it finished.
    Applied,
    /// `--rolled-back`: the failed attempt was undone by hand; it no longer blocks.
    RolledBack,
}

/// resolve's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ResolveResult {
    /// The migration.
    pub migration: String,
    /// What was recorded.
    pub resolution: Resolution,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// History rows changed or added.
    pub rows_changed: u64,
}

/// One migration rolled back (or, dry-run, to be).
#[derive(Debug, Serialize, Deserialize)]
pub struct RolledBack {
    /// Folder name.
    pub name: String,
    /// How down.sql ran (or would run).
    #[serde(flatten)]
    pub mode: RunMode,
    /// Statements in down.sql.
    pub statements: usize,
    /// Wall time, null in a dry run.
    pub duration_ms: Option<u64>,
}

/// rollback's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RollbackResult {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Rolled back, newest first.
    pub rolled_back: Vec<RolledBack>,
}

/// rollback's `result` when it refuses before changing anything (a target without
/// down.sql): what it would have rolled back.
#[derive(Debug, Serialize, Deserialize)]
pub struct RollbackRefused {
    /// The migrations it was asked to roll back, newest first.
    pub would_roll_back: Vec<String>,
}

/// new's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NewResult {
    /// The folder name (the migration's name).
    pub name: String,
    /// The files created (or, dry-run, to be created).
    pub files: Vec<String>,
    /// Whether nothing was written.
    pub dry_run: bool,
}

/// One seed file run (or, dry-run, to be run).
#[derive(Debug, Serialize, Deserialize)]
pub struct SeededFile {
    /// The file.
    pub file: String,
    /// How it ran.
    #[serde(flatten)]
    pub mode: RunMode,
    /// Statements in it.
    pub statements: usize,
    /// Wall time, null in a dry run.
    pub duration_ms: Option<u64>,
}

/// seed's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SeedResult {
    /// The seeds folder.
    pub seeds_dir: String,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// The files, in order.
    pub files: Vec<SeededFile>,
}
