//! Where each migration stands: the migrations folder compared with `_prisma_migrations`,
//! by Prisma's rules. `pgward-migrate status`, deploy's checks, `pgward-validate schema`
//! and the reports all read this one comparison.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::migrations::history::HistoryRow;
use crate::migrations::MigrationsFolder;

/// A migration applied and finished.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppliedMigration {
    /// Folder name.
    pub name: String,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A migration whose latest attempt failed (finished_at and rolled_back_at NULL).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailedMigration {
    /// Folder name.
    pub name: String,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// Statements of it that were applied (step-by-step runs).
    pub applied_steps_count: i32,
    /// The recorded error.
    pub logs: Option<String>,
}

/// An applied migration whose file changed since.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EditedMigration {
    /// Folder name.
    pub name: String,
    /// The checksum in the history.
    pub recorded_checksum: String,
    /// The file's checksum now.
    pub local_checksum: String,
}

/// The folder and the history, compared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MigrationState {
    /// Applied and present locally, in folder order.
    pub applied: Vec<AppliedMigration>,
    /// Present locally, never applied (or only rolled back), in folder order.
    pub pending: Vec<String>,
    /// Latest attempt failed; blocks deploy (P3009).
    pub failed: Vec<FailedMigration>,
    /// Applied, but the file changed since (CRLF/LF variants excepted).
    pub edited: Vec<EditedMigration>,
    /// Applied, but the folder no longer has it.
    pub missing_locally: Vec<String>,
}

impl MigrationState {
    /// Compares `folder` with `rows` (all of `_prisma_migrations`, or none when the table
    /// does not exist).
    pub fn compare(folder: &MigrationsFolder, rows: &[HistoryRow]) -> MigrationState {
        let mut state = MigrationState::default();
        for m in &folder.migrations {
            let current: Vec<&HistoryRow> = rows
                .iter()
                .filter(|r| r.migration_name == m.name && r.is_current())
                .collect();
            if let Some(row) = current.iter().rev().find(|r| r.is_applied()) {
                state.applied.push(AppliedMigration {
                    name: m.name.clone(),
                    finished_at: row.finished_at,
                });
                if !m.matches_checksum(&row.checksum) {
                    state.edited.push(EditedMigration {
                        name: m.name.clone(),
                        recorded_checksum: row.checksum.clone(),
                        local_checksum: m.checksum.clone(),
                    });
                }
            } else if current.is_empty() {
                state.pending.push(m.name.clone());
            }
        }
        for row in rows.iter().filter(|r| r.is_failed()) {
            if !state.failed.iter().any(|f| f.name == row.migration_name) {
                state.failed.push(FailedMigration {
                    name: row.migration_name.clone(),
                    started_at: row.started_at,
                    applied_steps_count: row.applied_steps_count,
                    logs: row.logs.clone(),
                });
            }
        }
        for row in rows.iter().filter(|r| r.is_applied()) {
            if folder.get(&row.migration_name).is_none()
                && !state.missing_locally.contains(&row.migration_name)
            {
                state.missing_locally.push(row.migration_name.clone());
            }
        }
        state
    }

    /// Whether the history is broken: failed, edited or missing migrations (exit 5).
    pub fn has_integrity_problems(&self) -> bool {
        !self.failed.is_empty() || !self.edited.is_empty() || !self.missing_locally.is_empty()
    }

    /// A one-line summary of what is wrong, for messages.
    pub fn problem_summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.failed.is_empty() {
            parts.push(format!(
                "failed: {}",
                self.failed
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.edited.is_empty() {
            parts.push(format!(
                "edited after apply: {}",
                self.edited
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.missing_locally.is_empty() {
            parts.push(format!(
                "applied but missing locally: {}",
                self.missing_locally.join(", ")
            ));
        }
        parts.join("; ")
    }
}
