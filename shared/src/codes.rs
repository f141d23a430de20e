//! The catalogue of the output contract: every error code (with its exit code) and every
//! warning code any pgward binary prints, each once, with what it means.
//!
//! The JSON envelope carries `error.code` and `warnings[].code` as plain strings; the
//! strings are written here and nowhere else. An [`Error`](crate::Error) variant names
//! its [`ErrorCode`] (which gives its exit code, so code and exit class cannot disagree),
//! and [`Context::warn`](crate::output::Context::warn) takes a [`WarningCode`].
//! `docs/errors.md` documents both tables; `tests/tests/output_catalogue.rs` fails when it
//! lacks a code of the catalogue or lists one the catalogue no longer has.
//!
//! The result types of the commands (the envelope's `result`) are listed in
//! [`crate::output`].

use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::Exit;

/// Defines a code enum: each variant with its code string, its meaning (the variant's doc
/// comment) and, for errors, its exit code.
macro_rules! catalogue {
    (
        $(#[$enum_doc:meta])*
        $name:ident {
            $( $(#[doc = $doc:literal])+ $variant:ident = $code:literal $(, $exit:ident)?; )+
        }
    ) => {
        $(#[$enum_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl $name {
            /// Every code of the catalogue, in its order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable SCREAMING_SNAKE string printed in the JSON.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// What the code means (its doc comment), on one line.
            pub fn meaning(self) -> String {
                let text = match self {
                    $($name::$variant => concat!($($doc, "\n"),+),)+
                };
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            }

            /// The code whose string is `code`.
            pub fn parse(code: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|c| c.as_str() == code)
            }

            catalogue!(@exit $name { $($variant $(, $exit)?;)+ });
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
    (@exit $name:ident { $($variant:ident, $exit:ident;)+ }) => {
        /// The process exit code an error of this code ends with.
        pub const fn exit(self) -> Exit {
            match self {
                $($name::$variant => Exit::$exit,)+
            }
        }
    };
    (@exit $name:ident { $($variant:ident;)+ }) => {};
}

catalogue! {
    /// Every `error.code`, with the exit code it ends the process with.
    ErrorCode {
        /// Bad flags or flag values (clap's message is on stderr).
        Usage = "USAGE", Usage;
        /// The database URL cannot be parsed, or is a libpq key=value string.
        InvalidDatabaseUrl = "INVALID_DATABASE_URL", Usage;
        /// No --database-url, DATABASE_URL, environment or PG* variables.
        NoDatabaseUrl = "NO_DATABASE_URL", Usage;
        /// pgward.toml is unreadable or invalid.
        ConfigInvalid = "CONFIG_INVALID", Usage;
        /// --env / PGWARD_ENV names no [env.NAME] of pgward.toml.
        UnknownEnv = "UNKNOWN_ENV", Usage;
        /// The environment's database_url_env variable is not set.
        EnvUrlUnset = "ENV_URL_UNSET", Usage;
        /// The migrations folder does not exist.
        MigrationsDirMissing = "MIGRATIONS_DIR_MISSING", Usage;
        /// The migrations folder holds no migration.
        MigrationsDirEmpty = "MIGRATIONS_DIR_EMPTY", Usage;
        /// A migration folder without migration.sql (Prisma P3015).
        MigrationSqlMissing = "MIGRATION_SQL_MISSING", Usage;
        /// A migration file is not valid UTF-8.
        MigrationNotUtf8 = "MIGRATION_NOT_UTF8", Usage;
        /// migration_lock.toml names another provider (Prisma P3019).
        ProviderMismatch = "PROVIDER_MISMATCH", Usage;
        /// The server is unreachable, refused or timed out, or the database is missing.
        ConnectionFailed = "CONNECTION_FAILED", Connect;
        /// The server refused the credentials.
        AuthenticationFailed = "AUTHENTICATION_FAILED", Connect;
        /// TLS could not be set up or the server certificate was not trusted.
        TlsFailed = "TLS_FAILED", Connect;
        /// A query pgward itself runs failed.
        QueryFailed = "QUERY_FAILED", Failed;
        /// A migration failed to apply (Prisma P3018).
        MigrationFailed = "MIGRATION_FAILED", Failed;
        /// A down.sql failed; its transaction was rolled back.
        RollbackFailed = "ROLLBACK_FAILED", Failed;
        /// A seed file failed; its transaction was rolled back.
        SeedFailed = "SEED_FAILED", Failed;
        /// A resolve or rollback request that does not fit the history (Prisma P3008,
        /// P3011, P3012, P3017).
        InvalidHistoryAction = "INVALID_HISTORY_ACTION", Failed;
        /// Rollback reached a migration without down.sql; nothing was changed.
        NoDownSql = "NO_DOWN_SQL", Failed;
        /// A failed migration in the history blocks deploy (Prisma P3009).
        FailedMigrations = "FAILED_MIGRATIONS", Integrity;
        /// Applied migrations edited since or missing from the folder.
        HistoryDiverged = "HISTORY_DIVERGED", Integrity;
        /// The schema has objects but no migration history (Prisma P3005).
        SchemaNotEmpty = "SCHEMA_NOT_EMPTY", Refused;
        /// The migration advisory lock stayed held past --lock-wait (Prisma P1002).
        LockHeld = "LOCK_HELD", Refused;
        /// A destructive action in a protected environment without --force.
        ProtectedNeedsForce = "PROTECTED_NEEDS_FORCE", Refused;
        /// Deploy in a protected environment without --yes.
        ProtectedNeedsYes = "PROTECTED_NEEDS_YES", Refused;
        /// Something a protected environment never allows (seeding).
        ProtectedForbidden = "PROTECTED_FORBIDDEN", Refused;
        /// pgward-validate found errors.
        ChecksFailed = "CHECKS_FAILED", Failed;
        /// The application's health URL did not answer healthy after a deploy
        /// (`pgward-report app-health`).
        AppUnhealthy = "APP_UNHEALTHY", Failed;
        /// pg_dump (or psql) failed, is missing, or is older than the server.
        PgDumpFailed = "PG_DUMP_FAILED", Failed;
        /// pg_restore failed.
        PgRestoreFailed = "PG_RESTORE_FAILED", Failed;
        /// No backup with that id, or none of the database in question, at the location.
        BackupNotFound = "BACKUP_NOT_FOUND", Usage;
        /// The backup lost files while it was written: nothing was published.
        BackupRemovedWhileWriting = "BACKUP_REMOVED_WHILE_WRITING", Integrity;
        /// A backup is complete in its first location, but a copy to another failed.
        BackupCopyFailed = "BACKUP_COPY_FAILED", Storage;
        /// One of the backup's locations holds no complete copy of it (verify).
        BackupCopyMissing = "BACKUP_COPY_MISSING", Integrity;
        /// A --backup-format sql backup holds a psql meta-command pg_dump never writes.
        UnsafeSqlBackup = "UNSAFE_SQL_BACKUP", Integrity;
        /// A backup file is missing, truncated, altered or undecodable, or the manifest is.
        BackupCorrupt = "BACKUP_CORRUPT", Integrity;
        /// The backup is encrypted (age) and no identity was given.
        BackupNeedsKey = "BACKUP_NEEDS_KEY", Usage;
        /// The identity given does not decrypt the backup; nothing was touched.
        BackupKeyMismatch = "BACKUP_KEY_MISMATCH", Integrity;
        /// Restored row counts differ from the manifest.
        RowCountMismatch = "ROW_COUNT_MISMATCH", Integrity;
        /// A table could not be locked for the backup within --lock-timeout.
        TableLocked = "TABLE_LOCKED", Refused;
        /// validate drift --shadow-url names a database that is not empty.
        ShadowNotEmpty = "SHADOW_NOT_EMPTY", Refused;
        /// A migration failed while drift replayed it into the shadow database (or lint
        /// --trace ran it there).
        ShadowMigrationFailed = "SHADOW_MIGRATION_FAILED", Failed;
        /// Drift would replay statements that act on the whole server or on other servers.
        ClusterWideReplay = "CLUSTER_WIDE_REPLAY", Refused;
        /// Restore into a non-empty database without --clean.
        TargetNotEmpty = "TARGET_NOT_EMPTY", Refused;
        /// Restore into a server of an older major than the backup's source.
        TargetServerOlder = "TARGET_SERVER_OLDER", Refused;
        /// The backup's role may not read every large object; nothing was written.
        LargeObjectsUnreadable = "LARGE_OBJECTS_UNREADABLE", Refused;
        /// Row-level security would hide rows from the role a backup or a check reads as.
        RowSecurityActive = "ROW_SECURITY_ACTIVE", Refused;
        /// The backup role may not read a sequence's value.
        SequenceNotReadable = "SEQUENCE_NOT_READABLE", Refused;
        /// A local file cannot be read or written.
        IoError = "IO_ERROR", Storage;
        /// A local file cannot be read or written: permission denied.
        PermissionDenied = "PERMISSION_DENIED", Storage;
        /// A local file cannot be written: the disk is full.
        DiskFull = "DISK_FULL", Storage;
        /// The S3 store failed (unreachable, stopped mid-upload, ...).
        StorageError = "STORAGE_ERROR", Storage;
        /// The bucket does not exist.
        BucketNotFound = "BUCKET_NOT_FOUND", Storage;
        /// S3 refused the credentials or the bucket policy.
        S3AccessDenied = "S3_ACCESS_DENIED", Storage;
        /// SIGINT/SIGTERM; the running server query was cancelled.
        Interrupted = "INTERRUPTED", Interrupted;
        /// The envelope itself could not be serialized (a bug; never expected).
        Internal = "INTERNAL", Failed;
    }
}

catalogue! {
    /// Every `warnings[].code`: something worth a look that did not stop the command.
    WarningCode {
        /// Migrations in the folder are not applied yet.
        PendingMigrations = "PENDING_MIGRATIONS";
        /// An applied migration's file was edited since (its checksum differs).
        EditedMigration = "EDITED_MIGRATION";
        /// An applied migration is missing from the migrations folder.
        MissingMigration = "MISSING_MIGRATION";
        /// A migration's latest attempt failed; it blocks deploy until resolved.
        FailedMigration = "FAILED_MIGRATION";
        /// The migrations folder has no migration_lock.toml; the provider is not checked.
        NoMigrationLockFile = "NO_MIGRATION_LOCK_FILE";
        /// The schema has objects but no history: deploy would refuse with P3005.
        NoHistoryNonEmptySchema = "NO_HISTORY_NON_EMPTY_SCHEMA";
        /// The database URL has a parameter pgward does not know; it is ignored.
        UnknownUrlParameter = "UNKNOWN_URL_PARAMETER";
        /// A migration hit lock_timeout and is retried.
        LockTimeoutRetry = "LOCK_TIMEOUT_RETRY";
        /// A migration hit lock_timeout but is not retried.
        LockTimeoutNotRetried = "LOCK_TIMEOUT_NOT_RETRIED";
        /// `deploy --trace --max-lock`: a statement held a lock that blocks writes (or
        /// reads) longer than the budget.
        LockOverBudget = "LOCK_OVER_BUDGET";
        /// The --notify message could not be delivered; the exit code is unchanged.
        NotifyFailed = "NOTIFY_FAILED";
        /// Leftovers of interrupted backups (never restorable; prune removes them).
        IncompleteBackups = "INCOMPLETE_BACKUPS";
        /// Backups whose manifest.json cannot be read (never restored or pruned).
        DamagedBackups = "DAMAGED_BACKUPS";
        /// One of several backup locations could not be read; the others were used.
        BackupCopyUnavailable = "BACKUP_COPY_UNAVAILABLE";
        /// verify failed, but the backup's earlier verified.json could not be removed.
        VerificationRecordKept = "VERIFICATION_RECORD_KEPT";
        /// A restore failed after it began to change the target: what is left, what to do.
        RestoreIncomplete = "RESTORE_INCOMPLETE";
        /// backup --no-large-objects: the database's large objects are not in the backup.
        LargeObjectsExcluded = "LARGE_OBJECTS_EXCLUDED";
        /// A restore leaves large objects out.
        LargeObjectsNotRestored = "LARGE_OBJECTS_NOT_RESTORED";
        /// The backup restored (named by its id) is of another database or environment.
        OtherDatabaseBackup = "OTHER_DATABASE_BACKUP";
        /// --tables given for a --backup-format sql backup, which restores whole.
        TablesIgnored = "TABLES_IGNORED";
        /// A pgward-ignore comment or `[lint] ignore` names a rule that does not exist.
        UnknownLintRule = "UNKNOWN_LINT_RULE";
        /// No migrations folder: what needs one was not checked or compared.
        NoMigrationsDir = "NO_MIGRATIONS_DIR";
        /// validate drift found differences.
        DriftDetected = "DRIFT_DETECTED";
        /// drift: the live database has no migration history.
        NoMigrationHistory = "NO_MIGRATION_HISTORY";
        /// drift could not drop its temporary shadow database.
        ShadowNotDropped = "SHADOW_NOT_DROPPED";
        /// drift could not empty the --shadow-url database.
        ShadowNotEmptied = "SHADOW_NOT_EMPTIED";
        /// drift could not drop a temporary shadow an earlier run left.
        ShadowLeftoverNotDropped = "SHADOW_LEFTOVER_NOT_DROPPED";
        /// report backups: the newest backup is older than --max-age.
        BackupTooOld = "BACKUP_TOO_OLD";
        /// report backups with several locations: one lacks a copy of the newest backup
        /// (its copies failed or stopped), or could not be read.
        BackupCopyBehind = "BACKUP_COPY_BEHIND";
        /// report backups: the location holds no complete backup.
        NoBackups = "NO_BACKUPS";
        /// report health: databases pgward made for its work, left by killed runs.
        WorkDatabasesLeft = "WORK_DATABASES_LEFT";
        /// report health: sessions wait for locks others hold.
        BlockedSessions = "BLOCKED_SESSIONS";
        /// report health: queries or transactions run longer than --long-running.
        LongRunningQueries = "LONG_RUNNING_QUERIES";
        /// report health: a locked table's sizes come from pg_class.
        SizesEstimated = "SIZES_ESTIMATED";
        /// report audit: the audit log does not exist yet.
        AuditLogMissing = "AUDIT_LOG_MISSING";
        /// report audit: lines that are not audit lines were skipped.
        AuditLinesInvalid = "AUDIT_LINES_INVALID";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_screaming_snake_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        let all = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), c.meaning()))
            .chain(WarningCode::ALL.iter().map(|c| (c.as_str(), c.meaning())));
        for (code, meaning) in all {
            assert!(
                code.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{code}"
            );
            assert!(!meaning.is_empty() && !meaning.contains('\n'), "{code}");
            // A warning and an error may not share a string: a reader tells them apart
            // by the field, but a grep of the docs should not.
            assert!(seen.insert(code), "{code} twice");
        }
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(*c));
        }
        for c in WarningCode::ALL {
            assert_eq!(WarningCode::parse(c.as_str()), Some(*c));
        }
        assert_eq!(ErrorCode::BackupNotFound.exit(), Exit::Usage);
        assert_eq!(
            serde_json::to_string(&WarningCode::PendingMigrations).unwrap(),
            "\"PENDING_MIGRATIONS\""
        );
    }
}
