//! The warnings a migration state deserves: pending, failed, edited and missing
//! migrations, written once for every command that compares the folder with the history
//! (`pgward-migrate status` and `deploy`, `pgward-report migrations`, `pgward-validate
//! drift`). Each command names itself: which states are warnings depends on it (a failed
//! migration is deploy's error but a report's warning), and so does what a state means
//! for it (an edited migration is replayed as it is now by drift).

use crate::codes::WarningCode;
use crate::migrations::state::MigrationState;

/// The command that reads the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateReader {
    /// `pgward-migrate status`: failed, edited and missing migrations are its errors;
    /// pending ones are a warning (exit 3).
    Status,
    /// `pgward-migrate deploy`: a failed migration is its error and pending ones are what
    /// it applies; edited and missing ones are warnings (it goes on, as Prisma does).
    Deploy,
    /// `pgward-report migrations`: a report, so every state is a warning.
    Report,
    /// `pgward-validate drift`: failed migrations are not replayed and edited ones are
    /// replayed as they are now; missing ones are differences in its result.
    Drift,
}

/// The warnings `state` deserves when `reader` reads it, `(code, message)`: failed
/// migrations first, then pending, edited and missing ones.
pub fn state_warnings(state: &MigrationState, reader: StateReader) -> Vec<(WarningCode, String)> {
    use StateReader::*;
    let mut warnings = Vec::new();
    let failed_means = match reader {
        Report => Some("; it blocks deploy until resolved (`pgward-migrate status` shows its logs)"),
        Drift => Some(" in the database and is not replayed; what it did before failing shows up as differences"),
        Status | Deploy => None,
    };
    if let Some(means) = failed_means {
        for f in &state.failed {
            warnings.push((
                WarningCode::FailedMigration,
                format!("migration `{}` failed{means}", f.name),
            ));
        }
    }
    if matches!(reader, Status | Report) && !state.pending.is_empty() {
        warnings.push((
            WarningCode::PendingMigrations,
            format!(
                "{} migration(s) pending: {}",
                state.pending.len(),
                state.pending.join(", ")
            ),
        ));
    }
    let edited_means = match reader {
        Deploy | Report => Some(" (checksum differs)"),
        Drift => Some("; the shadow replays the file as it is now"),
        Status => None,
    };
    if let Some(means) = edited_means {
        for e in &state.edited {
            warnings.push((
                WarningCode::EditedMigration,
                format!(
                    "migration `{}` was edited after it was applied{means}",
                    e.name
                ),
            ));
        }
    }
    if matches!(reader, Deploy | Report) {
        for name in &state.missing_locally {
            warnings.push((
                WarningCode::MissingMigration,
                format!("migration `{name}` is applied but missing from the migrations folder"),
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::state::{EditedMigration, FailedMigration};

    fn state() -> MigrationState {
        MigrationState {
            applied: Vec::new(),
            pending: vec!["3_c".into(), "4_d".into()],
            failed: vec![FailedMigration {
                name: "2_b".into(),
                started_at: chrono::DateTime::UNIX_EPOCH,
                applied_steps_count: 0,
                logs: None,
            }],
            edited: vec![EditedMigration {
                name: "1_a".into(),
                recorded_checksum: "x".into(),
                local_checksum: "y".into(),
            }],
            missing_locally: vec!["0_gone".into()],
        }
    }

    fn codes(reader: StateReader) -> Vec<&'static str> {
        state_warnings(&state(), reader)
            .iter()
            .map(|(c, _)| c.as_str())
            .collect()
    }

    #[test]
    fn each_command_gets_the_states_that_are_warnings_for_it() {
        assert_eq!(codes(StateReader::Status), ["PENDING_MIGRATIONS"]);
        assert_eq!(
            codes(StateReader::Deploy),
            ["EDITED_MIGRATION", "MISSING_MIGRATION"]
        );
        assert_eq!(
            codes(StateReader::Report),
            [
                "FAILED_MIGRATION",
                "PENDING_MIGRATIONS",
                "EDITED_MIGRATION",
                "MISSING_MIGRATION"
            ]
        );
        assert_eq!(
            codes(StateReader::Drift),
            ["FAILED_MIGRATION", "EDITED_MIGRATION"]
        );
        let status = state_warnings(&state(), StateReader::Status);
        assert_eq!(status[0].1, "2 migration(s) pending: 3_c, 4_d");
        let drift = state_warnings(&state(), StateReader::Drift);
        assert_eq!(
            drift[1].1,
            "migration `1_a` was edited after it was applied; the shadow replays the file as it is now"
        );
        assert!(state_warnings(&MigrationState::default(), StateReader::Report).is_empty());
    }
}
