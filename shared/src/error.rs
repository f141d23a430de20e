//! The one error type every pgward binary reports, and the exit codes it maps to.
//!
//! Every variant names its entry of the catalogue ([`ErrorCode`], in [`crate::codes`]):
//! the stable SCREAMING_SNAKE code (the JSON `error.code`) and the exit class
//! (docs/contract.md §1 "Exit codes") that goes with it; and a hint that tells the user
//! what to do next. Where the meaning matches a Prisma error, the message carries the
//! Prisma code too (P3005, P3009, P3018, ...), so Prisma users recognise it. The table in
//! `docs/errors.md` lists them all.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;

/// The process exit codes, shared by every binary (docs/contract.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[repr(i32)]
pub enum Exit {
    /// Success; for checks: all clear.
    Success = 0,
    /// The operation ran and failed, or checks found errors.
    Failed = 1,
    /// Bad flags or bad configuration.
    Usage = 2,
    /// Needs attention, nothing broken (pending migrations, drift, old backup).
    Attention = 3,
    /// Cannot connect: network, authentication, TLS.
    Connect = 4,
    /// Integrity: checksum mismatch, edited or missing applied migration, failed migration.
    Integrity = 5,
    /// Refused by a safety guard.
    Refused = 6,
    /// Storage: disk full, permission denied, S3 error.
    Storage = 7,
    /// Interrupted by SIGINT or SIGTERM, after cleanup.
    Interrupted = 130,
}

impl Exit {
    /// The numeric process exit code.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Every class, in the order of their codes.
    pub const ALL: [Exit; 9] = [
        Exit::Success,
        Exit::Failed,
        Exit::Usage,
        Exit::Attention,
        Exit::Connect,
        Exit::Integrity,
        Exit::Refused,
        Exit::Storage,
        Exit::Interrupted,
    ];

    /// The class in a few words, as each `--help` lists it ("3 needs attention").
    pub fn summary(self) -> &'static str {
        match self {
            Exit::Success => "ok",
            Exit::Failed => "failed",
            Exit::Usage => "usage",
            Exit::Attention => "needs attention",
            Exit::Connect => "cannot connect",
            Exit::Integrity => "integrity",
            Exit::Refused => "refused",
            Exit::Storage => "storage",
            Exit::Interrupted => "interrupted",
        }
    }
}

/// Who holds the migration advisory lock, as far as the server tells.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockHolder {
    /// Backend process id of the holding session.
    pub pid: i32,
    /// `application_name` of the holding session.
    pub application_name: String,
    /// The last query the holding session ran.
    pub query: String,
    /// State of the holding session (`active`, `idle`, ...).
    pub state: String,
}

/// Where a failing statement sits in a migration file (1-based).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SqlPosition {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// A statement of a script that the server rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedStatement {
    /// The server's SQLSTATE.
    pub sqlstate: Option<String>,
    /// The server's message (with detail).
    pub message: String,
    /// The failing statement's position in the script.
    pub position: Option<SqlPosition>,
    /// The failing statement's text (shortened).
    pub statement: Option<String>,
}

impl FailedStatement {
    fn at(&self) -> String {
        self.position
            .as_ref()
            .map(|p| format!(" at line {}, column {}", p.line, p.column))
            .unwrap_or_default()
    }

    fn details(&self, script_key: &str, script: &str) -> serde_json::Value {
        serde_json::json!({
            script_key: script,
            "sqlstate": self.sqlstate,
            "line": self.position.as_ref().map(|p| p.line),
            "column": self.position.as_ref().map(|p| p.column),
            "statement": self.statement,
        })
    }
}

/// Every error a pgward binary reports to its user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags or flag combinations.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do instead.
        hint: String,
    },
    /// The database URL cannot be understood.
    #[error("the database URL is not valid: {reason}")]
    InvalidUrl {
        /// Why it cannot be parsed (never containing the password).
        reason: String,
    },
    /// No database URL from flags, environment or config.
    #[error("no database to connect to: neither --database-url, DATABASE_URL nor PGHOST/PGDATABASE is set")]
    NoDatabaseUrl,
    /// `pgward.toml` is unreadable or invalid.
    #[error("the config file {path} is not valid: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `--env` names an environment the config does not define.
    #[error("the environment `{name}` is not defined in {path}")]
    UnknownEnv {
        /// The requested environment.
        name: String,
        /// The config file looked in, or "no pgward.toml".
        path: String,
        /// The environments the file does define.
        known: Vec<String>,
    },
    /// The variable an environment names for its URL is not set.
    #[error("the environment `{env}` reads its database URL from ${var}, which is not set")]
    EnvUrlUnset {
        /// The environment.
        env: String,
        /// The variable it names.
        var: String,
    },
    /// The server cannot be reached (network, DNS, refused, timeout).
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// host:port/database, without secrets.
        target: String,
        /// Why.
        reason: String,
    },
    /// The server refused the credentials.
    #[error("authentication failed for {target}: {reason}")]
    Auth {
        /// host:port/database, without secrets.
        target: String,
        /// The server's message.
        reason: String,
    },
    /// TLS could not be set up or the server certificate was not trusted.
    #[error("TLS with {target} failed: {reason}")]
    Tls {
        /// host:port/database, without secrets.
        target: String,
        /// Why (unknown CA, wrong host name, server without TLS, ...).
        reason: String,
    },
    /// A query pgward itself runs failed.
    #[error("{context}: {message}")]
    Query {
        /// What pgward was doing.
        context: String,
        /// The server's SQLSTATE, if any.
        sqlstate: Option<String>,
        /// The server's message.
        message: String,
    },
    /// The migrations folder does not exist.
    #[error("the migrations folder {path} does not exist")]
    MigrationsDirMissing {
        /// The folder looked for.
        path: PathBuf,
    },
    /// The migrations folder holds no migration.
    #[error("the migrations folder {path} holds no migration")]
    MigrationsDirEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// A migration folder lacks its migration.sql (Prisma P3015).
    #[error("P3015: could not find the migration file at {path}")]
    MigrationSqlMissing {
        /// The expected file.
        path: PathBuf,
    },
    /// A migration file is not valid UTF-8.
    #[error("the migration file {path} is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// migration_lock.toml names another provider (Prisma P3019).
    #[error(
        "P3019: the migrations in {path} were written for provider `{provider}`, not postgresql"
    )]
    ProviderMismatch {
        /// The lock file.
        path: PathBuf,
        /// The provider it names.
        provider: String,
    },
    /// A local file cannot be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read", "write", "create", ...
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A migration failed to apply (Prisma P3018).
    #[error("P3018: migration `{migration}` failed to apply{}: {}", failure.at(), failure.message)]
    MigrationFailed {
        /// The migration folder name.
        migration: String,
        /// What the server rejected.
        failure: Box<FailedStatement>,
        /// Whether statements of it were committed before the failure (statement mode,
        /// or a file that commits a block itself): then a plain re-deploy would repeat them.
        /// The one source of truth for "the database holds part of this migration":
        /// `error.details.partly_committed`, which scripts/migrate.sh reads.
        partly_committed: bool,
        /// INVALID indexes its failed CREATE INDEX CONCURRENTLY left and pgward could not
        /// drop (the lock it needs was still held).
        left_behind: Vec<String>,
    },
    /// A failed migration in the history blocks deploy (Prisma P3009).
    #[error("P3009: migrate found failed migrations in the target database, new migrations will not be applied: {}", names.join(", "))]
    FailedMigrations {
        /// The failed migrations.
        names: Vec<String>,
    },
    /// The history no longer matches the folder (edited or missing applied migrations).
    #[error("the migration history does not match the migrations folder: {summary}")]
    HistoryDiverged {
        /// What differs.
        summary: String,
    },
    /// A non-empty schema without migration history (Prisma P3005).
    #[error("P3005: the database schema `{schema}` is not empty and has no migration history")]
    SchemaNotEmpty {
        /// The schema.
        schema: String,
        /// The first local migration, for the baseline hint.
        first_migration: Option<String>,
    },
    /// `--shadow-url` names a database that is not empty; drift would mix the migrations
    /// into what is there.
    #[error("the shadow database `{database}` is not empty: it holds {}", describe_objects(objects, *total))]
    ShadowNotEmpty {
        /// The shadow database.
        database: String,
        /// The first objects found (`table public.users`, `extension citext`).
        objects: Vec<String>,
        /// How many objects it holds in all.
        total: usize,
    },
    /// drift would replay statements that act on the whole server into a shadow database
    /// on the live server, running them on the live server again.
    #[error("drift refuses to replay the migrations: {} act beyond one database ({})", describe_objects(statements, statements.len()), shadow)]
    ClusterWideReplay {
        /// `migration line N: ALTER ROLE`, each statement found.
        statements: Vec<String>,
        /// Why replaying them here would reach production (`the shadow database ... would
        /// be a temporary database on the live server`).
        shadow: String,
        /// Whether they reach other servers (subscriptions, dblink): then no shadow helps.
        other_servers: bool,
    },
    /// The migration advisory lock is held by another session (Prisma P1002).
    #[error("P1002: timed out after {waited_ms} ms waiting for the migration lock (pg_advisory_lock(72707369)){}", holder.as_ref().map(|h| format!(", held by pid {} ({})", h.pid, if h.application_name.is_empty() { "no application_name" } else { h.application_name.as_str() })).unwrap_or_default())]
    LockHeld {
        /// How long pgward waited.
        waited_ms: u64,
        /// The holder, when the server names one.
        holder: Option<LockHolder>,
    },
    /// A destructive action in a protected environment without `--force`.
    #[error("`{action}` on {target} is destructive and the environment `{env}` is protected")]
    NeedsForce {
        /// The action.
        action: String,
        /// The database.
        target: String,
        /// The protected environment.
        env: String,
    },
    /// A deploy in a protected environment without `--yes`.
    #[error("deploy to {target} needs approval: the environment `{env}` is protected")]
    NeedsYes {
        /// The database.
        target: String,
        /// The protected environment.
        env: String,
    },
    /// Something a protected environment never allows (seeding).
    #[error("`{action}` is never allowed in the protected environment `{env}`")]
    ProtectedForbidden {
        /// The action.
        action: String,
        /// The environment.
        env: String,
    },
    /// A resolve or rollback request that does not fit the history (Prisma P3008/P3011/P3012/P3017).
    #[error("{message}")]
    InvalidHistoryAction {
        /// The Prisma-style message, code included.
        message: String,
        /// What to do instead.
        hint: String,
    },
    /// Rollback reached a migration without down.sql.
    #[error("migration `{migration}` has no down.sql, so it cannot be rolled back by pgward")]
    NoDownSql {
        /// The migration.
        migration: String,
    },
    /// A down.sql or seed file failed; its transaction was rolled back.
    #[error("{what} failed{}: {}", failure.at(), failure.message)]
    ScriptFailed {
        /// Which one: [`ErrorCode::RollbackFailed`], [`ErrorCode::SeedFailed`] or
        /// [`ErrorCode::ShadowMigrationFailed`].
        code: ErrorCode,
        /// Which script ("down.sql of 2024..._x", "seed file 01_users.sql").
        what: String,
        /// What the server rejected.
        failure: Box<FailedStatement>,
        /// What to do next.
        hint: String,
    },
    /// The backup storage failed (S3 error, bucket missing, credentials refused).
    #[error("storage {location}: cannot {action}: {reason}")]
    Storage {
        /// The location (`s3://bucket/prefix` or a folder).
        location: String,
        /// What pgward was doing.
        action: String,
        /// The S3 error code (`NoSuchBucket`, `AccessDenied`, ...), when there is one.
        s3_code: Option<String>,
        /// The store's message.
        reason: String,
    },
    /// No backup with this id (or none at all) at the location.
    #[error("no backup {id} in {location}")]
    BackupNotFound {
        /// The id asked for (`latest` included).
        id: String,
        /// The location.
        location: String,
    },
    /// `latest` or `--before-migration` found no backup of the database (and environment)
    /// in question; backups of other databases are never candidates.
    #[error("no backup {what} of {wanted} in {location}{}", if others.is_empty() { String::new() } else { format!(" (it holds backups of {})", others.join(", ")) })]
    NoBackupOfSource {
        /// `latest`, or "taken before migration X".
        what: String,
        /// The database and environment whose backup was wanted.
        wanted: String,
        /// The location.
        location: String,
        /// The databases and environments it does hold backups of.
        others: Vec<String>,
    },
    /// A backup's files disappeared while it was written (a prune, a cleanup job): nothing
    /// was published.
    #[error("backup {id} in {location} lost its files while it was written ({reason}): it was not published")]
    BackupRemovedWhileWriting {
        /// The backup being written.
        id: String,
        /// The location.
        location: String,
        /// What was found missing.
        reason: String,
    },
    /// A complete backup could not be copied to another of its locations: that copy was
    /// removed, the backup stays complete where it was read from.
    #[error("backup {id} is complete in {from}, but its copy to {location} failed: {reason}")]
    BackupCopyFailed {
        /// The backup.
        id: String,
        /// The location holding it complete.
        from: String,
        /// The location the copy was for.
        location: String,
        /// What stopped the copy.
        reason: String,
    },
    /// A location of the backup's copies holds no complete copy of it.
    #[error("backup {id} has no complete copy in {location}, one of its locations")]
    BackupCopyMissing {
        /// The backup.
        id: String,
        /// The location without it.
        location: String,
        /// A location that holds it complete.
        held_in: String,
    },
    /// A `--backup-format sql` backup holds a psql meta-command pg_dump never writes.
    #[error(
        "backup {id}: {file} line {line} is a psql meta-command pgward does not run: `{text}`"
    )]
    UnsafeSqlBackup {
        /// The backup.
        id: String,
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// The line, shortened.
        text: String,
    },
    /// A backup failed verification: a file is missing, truncated, altered or undecodable,
    /// or the manifest is missing or unreadable.
    /// The backup's files are encrypted (age) and no identity was given to decrypt them.
    #[error(
        "backup {id} is encrypted (age, to {recipients}) and no identity was given to decrypt it"
    )]
    BackupNeedsKey {
        /// The backup.
        id: String,
        /// The recipients its manifest names.
        recipients: String,
    },
    /// The identity given is not one the backup was encrypted to, or a file does not
    /// decrypt with it.
    #[error("backup {id} does not decrypt with the identity given: {reason}")]
    BackupKeyMismatch {
        /// The backup.
        id: String,
        /// What did not match.
        reason: String,
    },
    /// One copy of a backup held in several locations is damaged, and another one verified.
    #[error("the copy of backup {id} in {location} is corrupt or incomplete: {problems}")]
    BackupCopyDamaged {
        /// The backup.
        id: String,
        /// The location of the damaged copy.
        location: String,
        /// What is wrong, naming the files.
        problems: String,
        /// The files that failed.
        files: Vec<String>,
        /// A location whose copy verified.
        good_in: String,
    },
    #[error("backup {id} is corrupt or incomplete: {problems}")]
    BackupCorrupt {
        /// The backup.
        id: String,
        /// What is wrong, naming the files.
        problems: String,
        /// The files that failed.
        files: Vec<String>,
    },
    /// A table could not be locked for the backup within the lock timeout.
    #[error("cannot lock table {table} for the backup within {timeout_ms} ms{}", holder.as_ref().map(|h| format!(": pid {} ({}) holds a conflicting lock", h.pid, h.application_name)).unwrap_or_default())]
    TableLocked {
        /// The table.
        table: String,
        /// How long pgward waited.
        timeout_ms: u64,
        /// The session holding the conflicting lock, when found.
        holder: Option<LockHolder>,
    },
    /// pg_dump or pg_restore failed, is missing, or is too old for the server.
    #[error("{tool} failed: {reason}")]
    ExternalTool {
        /// `pg_dump` or `pg_restore`.
        tool: String,
        /// What it said.
        reason: String,
        /// What to do.
        hint: String,
    },
    /// The backup's role may not read every large object: a backup without them would be
    /// incomplete, so none is written.
    #[error("cannot back up the large objects of {database}: {reason}")]
    LargeObjectsUnreadable {
        /// The database.
        database: String,
        /// The server's message (`permission denied for large object 16385`).
        reason: String,
        /// Whether it was the safety backup `restore --clean` takes of its target.
        safety_backup: bool,
    },
    /// A restore target holds data and `--clean` was not given.
    #[error("the target database {database} is not empty ({objects} objects)")]
    TargetNotEmpty {
        /// The database.
        database: String,
        /// How many user objects it holds.
        objects: i64,
    },
    /// A restore target runs an older PostgreSQL major than the backup needs: pg_dump's
    /// output is only meant to load into the source's major or a newer one, and that of
    /// pg_dump 17 or later into 17 or later.
    #[error("{}", target_server_older(id, *backup_major, pg_dump_major, *target_major))]
    TargetServerOlder {
        /// The backup.
        id: String,
        /// The oldest major the backup restores into.
        backup_major: u32,
        /// The major of the pg_dump that wrote it, when that is what sets `backup_major`.
        pg_dump_major: Option<u32>,
        /// The target's major.
        target_major: u32,
    },
    /// Row-level security would hide rows from a read that must see them all (a backup,
    /// a data check): pgward reads with `row_security = off`, as pg_dump does, and
    /// refuses rather than back up or check only the rows the policies show.
    #[error("row-level security would hide rows of {} from {}: reading only the rows its policies show would make an incomplete backup (or a check that proves nothing), so pgward reads with row_security = off and refuses", tables.join(", "), role.as_deref().map(|r| format!("role {r}")).unwrap_or_else(|| "the connecting role".into()))]
    RowSecurity {
        /// The role pgward connected as, when known.
        role: Option<String>,
        /// The tables, `schema.table`.
        tables: Vec<String>,
    },
    /// Sequences whose value the backup role may not read: a backup without them would
    /// restore them at their start and the next insert would collide with existing keys.
    #[error("role {role} may not read the value of sequence(s) {}: a backup without them would restore them at their start value", sequences.join(", "))]
    SequenceUnreadable {
        /// The role pgward connected as.
        role: String,
        /// The sequences, `schema.sequence`.
        sequences: Vec<String>,
    },
    /// Restored row counts differ from the manifest.
    #[error("restored row counts differ from the backup's manifest: {tables}")]
    RowCountMismatch {
        /// `table: restored vs expected`, joined.
        tables: String,
    },
    /// Checks ran and found errors (lint, schema, data, preflight).
    #[error("{what} found {errors} error(s) and {warnings} warning(s)")]
    ChecksFailed {
        /// Which checks (`lint`, `schema checks`, ...).
        what: String,
        /// Findings of severity error.
        errors: usize,
        /// Findings of severity warning.
        warnings: usize,
    },
    /// The application's health URL did not answer the expected status in time
    /// (`pgward-report app-health`, scripts/migrate.sh after a deploy).
    #[error("the application is unhealthy: {url} did not answer {expected} in {attempts} attempt(s) within {waited_s} s; the last answer: {last}")]
    AppUnhealthy {
        /// The health URL (credentials masked).
        url: String,
        /// The status a healthy application answers.
        expected: u16,
        /// GETs made.
        attempts: u32,
        /// Seconds spent.
        waited_s: u64,
        /// The last status or error.
        last: String,
    },
    /// A fleet's targets failed: the fleet reports its most serious target's error code
    /// (so its exit code), with how many failed.
    #[error("{message}")]
    Fleet {
        /// The most serious target's error code.
        code: ErrorCode,
        /// How many failed, and that target's message.
        message: String,
        /// That target's hint, and where every target's outcome is.
        hint: String,
        /// That target's index in the list.
        index: usize,
        /// That target, password masked.
        target: String,
    },
    /// SIGINT or SIGTERM arrived; cleanup is done.
    #[error("interrupted; the running query was cancelled and nothing half-done was recorded")]
    Interrupted,
}

impl Error {
    /// The catalogue entry of this error: its code and exit code.
    pub fn kind(&self) -> ErrorCode {
        match self {
            Error::Usage { .. } => ErrorCode::Usage,
            Error::InvalidUrl { .. } => ErrorCode::InvalidDatabaseUrl,
            Error::NoDatabaseUrl => ErrorCode::NoDatabaseUrl,
            Error::Config { .. } => ErrorCode::ConfigInvalid,
            Error::UnknownEnv { .. } => ErrorCode::UnknownEnv,
            Error::EnvUrlUnset { .. } => ErrorCode::EnvUrlUnset,
            Error::Connect { .. } => ErrorCode::ConnectionFailed,
            Error::Auth { .. } => ErrorCode::AuthenticationFailed,
            Error::Tls { .. } => ErrorCode::TlsFailed,
            Error::Query { .. } => ErrorCode::QueryFailed,
            Error::MigrationsDirMissing { .. } => ErrorCode::MigrationsDirMissing,
            Error::MigrationsDirEmpty { .. } => ErrorCode::MigrationsDirEmpty,
            Error::MigrationSqlMissing { .. } => ErrorCode::MigrationSqlMissing,
            Error::NotUtf8 { .. } => ErrorCode::MigrationNotUtf8,
            Error::ProviderMismatch { .. } => ErrorCode::ProviderMismatch,
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
                std::io::ErrorKind::StorageFull => ErrorCode::DiskFull,
                _ => ErrorCode::IoError,
            },
            Error::MigrationFailed { .. } => ErrorCode::MigrationFailed,
            Error::FailedMigrations { .. } => ErrorCode::FailedMigrations,
            Error::HistoryDiverged { .. } => ErrorCode::HistoryDiverged,
            Error::SchemaNotEmpty { .. } => ErrorCode::SchemaNotEmpty,
            Error::ShadowNotEmpty { .. } => ErrorCode::ShadowNotEmpty,
            Error::ClusterWideReplay { .. } => ErrorCode::ClusterWideReplay,
            Error::LockHeld { .. } => ErrorCode::LockHeld,
            Error::NeedsForce { .. } => ErrorCode::ProtectedNeedsForce,
            Error::NeedsYes { .. } => ErrorCode::ProtectedNeedsYes,
            Error::ProtectedForbidden { .. } => ErrorCode::ProtectedForbidden,
            Error::InvalidHistoryAction { .. } => ErrorCode::InvalidHistoryAction,
            Error::NoDownSql { .. } => ErrorCode::NoDownSql,
            Error::ScriptFailed { code, .. } | Error::Fleet { code, .. } => *code,
            Error::ChecksFailed { .. } => ErrorCode::ChecksFailed,
            Error::AppUnhealthy { .. } => ErrorCode::AppUnhealthy,
            Error::BackupNotFound { .. } | Error::NoBackupOfSource { .. } => {
                ErrorCode::BackupNotFound
            }
            Error::BackupRemovedWhileWriting { .. } => ErrorCode::BackupRemovedWhileWriting,
            Error::BackupCopyFailed { .. } => ErrorCode::BackupCopyFailed,
            Error::BackupCopyMissing { .. } => ErrorCode::BackupCopyMissing,
            Error::UnsafeSqlBackup { .. } => ErrorCode::UnsafeSqlBackup,
            Error::BackupCorrupt { .. } | Error::BackupCopyDamaged { .. } => {
                ErrorCode::BackupCorrupt
            }
            Error::BackupNeedsKey { .. } => ErrorCode::BackupNeedsKey,
            Error::BackupKeyMismatch { .. } => ErrorCode::BackupKeyMismatch,
            Error::TableLocked { .. } => ErrorCode::TableLocked,
            Error::ExternalTool { tool, .. } if tool == "pg_restore" => ErrorCode::PgRestoreFailed,
            Error::ExternalTool { .. } => ErrorCode::PgDumpFailed,
            Error::TargetNotEmpty { .. } => ErrorCode::TargetNotEmpty,
            Error::TargetServerOlder { .. } => ErrorCode::TargetServerOlder,
            Error::LargeObjectsUnreadable { .. } => ErrorCode::LargeObjectsUnreadable,
            Error::RowCountMismatch { .. } => ErrorCode::RowCountMismatch,
            Error::RowSecurity { .. } => ErrorCode::RowSecurityActive,
            Error::SequenceUnreadable { .. } => ErrorCode::SequenceNotReadable,
            Error::Storage { s3_code, .. } => match s3_code.as_deref() {
                Some("NoSuchBucket") => ErrorCode::BucketNotFound,
                Some(
                    "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken"
                    | "ExpiredToken",
                ) => ErrorCode::S3AccessDenied,
                _ => ErrorCode::StorageError,
            },
            Error::Interrupted => ErrorCode::Interrupted,
        }
    }

    /// The stable code printed in the JSON `error.code`.
    pub fn code(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The exit class of this error (the catalogue's, by its code).
    pub fn exit(&self) -> Exit {
        self.kind().exit()
    }

    /// What the user should do next.
    pub fn hint(&self) -> String {
        match self {
            Error::Usage { hint, .. }
            | Error::InvalidHistoryAction { hint, .. }
            | Error::ScriptFailed { hint, .. }
            | Error::Fleet { hint, .. }
            | Error::ExternalTool { hint, .. } => hint.clone(),
            Error::BackupNotFound { .. } => "`pgward-backup list --from LOCATION` shows the complete backups and their ids".into(),
            Error::NoBackupOfSource { others, location, .. } => if others.is_empty() {
                format!("take one first: pgward-backup backup --to {location}")
            } else {
                format!("a backup of another database is restored only when named by its id (`pgward-backup list --from {location}` shows them); or select its database with --database-url / DATABASE_URL and --env")
            },
            Error::BackupRemovedWhileWriting { .. } => "something deleted the backup while it was being written (a prune or cleanup job of another tool or an older pgward): run the backup again, and keep cleanup jobs away from backups being written".into(),
            Error::BackupCopyFailed { id, from, location, .. } => format!(
                "the backup in {from} is complete and restorable; nothing was published in {location}. Fix what stopped the copy, then copy it: pgward-backup copy {id} --from {from} --to {location}"
            ),
            Error::BackupCopyMissing { id, location, held_in } => format!(
                "its copy there failed or was removed (or the backup was taken before that location was added); copy it: pgward-backup copy {id} --from {held_in} --to {location}"
            ),
            Error::UnsafeSqlBackup { .. } => "pgward's SQL backups hold only what pg_dump writes: this file was altered or was not written by pgward. Do not restore it; inspect it (zstd -dc FILE | less) and restore an older backup".into(),
            Error::BackupNeedsKey { .. } => "give the age identity file it was encrypted for: --identity FILE, PGWARD_AGE_IDENTITY=FILE, or age_identity in the environment of pgward.toml".into(),
            Error::BackupKeyMismatch { .. } => "give the identity whose public key is one of the recipients in the backup's manifest.json (`encryption.recipients`); nothing was touched".into(),
            Error::BackupCorrupt { .. } => "do not restore this backup; restore an older one (`pgward-backup list`) and take a new backup".into(),
            Error::BackupCopyDamaged { id, location, good_in, .. } => format!(
                "the copy in {good_in} verified, and restore reads it when this one fails its checks; replace the damaged copy from it: pgward-backup copy {id} --from {good_in} --to {location} --replace-damaged"
            ),
            Error::TableLocked { .. } => "another session holds a lock that conflicts with reading (an ALTER TABLE, a deploy?): wait for it or raise --lock-timeout; backups and deploys should not overlap".into(),
            Error::LargeObjectsUnreadable { database, safety_backup: true, .. } => format!(
                "the safety backup of {database} taken before it is replaced must hold its large objects, and nothing was changed: restore as a role that may read every one (a superuser, their owner), or, if another backup holds {database}'s large objects, pass --no-safety-backup"
            ),
            Error::LargeObjectsUnreadable { .. } => "back up as a role that may read every large object (a superuser, their owner, or one granted it: GRANT SELECT ON LARGE OBJECT <oid> TO <role>), or leave them all out with pgward-backup backup --no-large-objects (the manifest records it, and a restore of that backup says so)".into(),
            Error::TargetServerOlder { backup_major, pg_dump_major: None, .. } => format!("restore into a server of PostgreSQL {backup_major} or newer (a backup is also the way to upgrade: take it on the old major, restore it on the new one)"),
            Error::TargetServerOlder { backup_major, .. } => format!("restore into a server of PostgreSQL {backup_major} or newer; for this major, take the backup with the pg_dump of the source's major (install it, or set PGWARD_PG_BINDIR to its bin folder)"),
            Error::TargetNotEmpty { .. } => "restore into an empty database (--target-db NEW --create), or replace it with --clean (a safety backup of it is taken first)".into(),
            Error::RowSecurity { role, tables } => {
                let role = role.as_deref().unwrap_or("ROLE");
                format!(
                    "connect as a role that bypasses row-level security (a superuser, or ALTER ROLE {role} BYPASSRLS run by one); if {role} owns the table and FORCE ROW LEVEL SECURITY is what applies the policies to it, ALTER TABLE {} NO FORCE ROW LEVEL SECURITY lets its owner read every row",
                    tables.first().map(String::as_str).unwrap_or("TABLE")
                )
            }
            Error::SequenceUnreadable { role, sequences } => format!(
                "GRANT SELECT ON SEQUENCE {} TO {role} (with USAGE on its schema; USAGE on the sequence alone does not let it read the value), or back up as the sequences' owner or a superuser",
                sequences.join(", ")
            ),
            Error::RowCountMismatch { .. } => "the restored database does not match the backup; do not use it: check the server log, then restore again".into(),
            Error::InvalidUrl { .. } => "the form is postgresql:// followed by USER:PASSWORD@HOST:PORT/DATABASE?schema=public; percent-encode special characters in the password (@ is %40, / is %2F)".into(),
            Error::NoDatabaseUrl => "pass --database-url, set DATABASE_URL, or select an environment of pgward.toml with --env".into(),
            Error::Config { .. } => "fix the file (see docs/config.md), or point --config at another one".into(),
            Error::UnknownEnv { known, .. } => if known.is_empty() {
                "define it as [env.NAME] in pgward.toml, or drop --env / PGWARD_ENV".into()
            } else {
                format!("use one of: {}", known.join(", "))
            },
            Error::EnvUrlUnset { var, .. } => format!("export {var} with the database URL of that environment"),
            Error::Connect { .. } => "check that the server runs and that host, port and firewall allow the connection; raise connect_timeout=SECONDS in the URL for slow networks".into(),
            Error::Auth { .. } => "check the user name and password (percent-encoded in the URL) and pg_hba.conf on the server".into(),
            Error::Tls { .. } => "check sslmode and sslrootcert: verify-full needs the CA that signed the server certificate and a host name the certificate names; use sslmode=require to encrypt without verifying".into(),
            Error::Query { .. } => "see the server's message; rerun with the same arguments once the cause is fixed".into(),
            Error::MigrationsDirMissing { .. } => "pass the folder with --dir, set `migrations` in pgward.toml, or create the first migration with `pgward-migrate new NAME`".into(),
            Error::MigrationsDirEmpty { .. } => "create the first migration with `pgward-migrate new NAME`, or point --dir at the folder that holds them".into(),
            Error::MigrationSqlMissing { .. } => "restore the migration.sql file, or delete the folder if the migration was never meant to exist".into(),
            Error::NotUtf8 { .. } => "save the file as UTF-8 (PostgreSQL receives migrations as UTF-8 text)".into(),
            Error::ProviderMismatch { .. } => "these migrations are not for PostgreSQL; point --dir at the PostgreSQL migrations".into(),
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied => "check the file's permissions and the user pgward runs as".into(),
                std::io::ErrorKind::StorageFull => "free disk space, then run again".into(),
                _ => "check that the path exists and is readable".into(),
            },
            Error::MigrationFailed { migration, partly_committed, left_behind, .. } => {
                let mut hint = if *partly_committed {
                    format!("statements before the failing one were committed and stay applied (`pgward-migrate status` shows the attempt's logs); revert them by hand and run `pgward-migrate resolve --rolled-back {migration}` before deploying the fixed migration again, or finish it by hand and run `resolve --applied {migration}`")
                } else {
                    format!("nothing of the failing transaction was kept; fix the migration, then run `pgward-migrate resolve --rolled-back {migration}` and deploy again (or `resolve --applied {migration}` if you applied it by hand)")
                };
                if !left_behind.is_empty() {
                    hint = format!(
                        "its failed CREATE INDEX CONCURRENTLY left the INVALID index {list}, which could not be dropped (another session still holds a lock on the table): drop it first with DROP INDEX CONCURRENTLY {list}; then {hint}",
                        list = left_behind.join(", ")
                    );
                }
                hint
            }
            Error::FailedMigrations { names } => format!(
                "inspect the failure with `pgward-migrate status`; after fixing the database, mark it with `pgward-migrate resolve --rolled-back {}` (or `--applied` if you finished it by hand)",
                names.first().map(String::as_str).unwrap_or("NAME")
            ),
            Error::HistoryDiverged { .. } => "restore the edited or missing migration files from version control; `pgward-migrate status` lists them".into(),
            Error::SchemaNotEmpty { first_migration, .. } => format!(
                "baseline the existing database: mark the migrations it already contains as applied with `pgward-migrate resolve --applied {}`",
                first_migration.as_deref().unwrap_or("<first migration>")
            ),
            Error::ShadowNotEmpty { .. } => "drift applies the migrations to the shadow database and needs it empty: pass the URL of a new, empty database (CREATE DATABASE ... TEMPLATE template0), or omit --shadow-url to let drift create and drop a temporary one".into(),
            Error::ClusterWideReplay { other_servers: false, .. } => "replaying these statements beside the live database would run them on the live server again: pass --shadow-url with an empty database on a separate PostgreSQL server (a throwaway one, e.g. CI's service container), or skip drift (scripts/migrate.sh --no-drift) and lint without --trace".into(),
            Error::ClusterWideReplay { other_servers: true, .. } => "replaying these statements would act on the servers they connect to (a subscription's publisher, a dblink target) from any shadow database: drift and lint --trace cannot check this history; skip them (scripts/migrate.sh --no-drift; lint without --trace), or move such statements out of the migrations".into(),
            Error::LockHeld { .. } => "another deploy or resolve is running; wait for it, raise --lock-wait, or end the holding session (pg_terminate_backend(pid)) if it is stuck".into(),
            Error::NeedsForce { action, target, .. } => format!("rerun with --force to {action} on {target}"),
            Error::NeedsYes { .. } => "rerun with --yes to approve the deploy (or run it on a terminal to be asked)".into(),
            Error::ProtectedForbidden { .. } => "seed a non-protected environment (a copy or a staging database) instead".into(),
            Error::NoDownSql { migration } => format!(
                "restore the backup taken before it: `pgward-restore --before-migration {migration} --clean` (or write {migration}/down.sql)"
            ),
            Error::Storage { s3_code, .. } => match s3_code.as_deref() {
                Some("NoSuchBucket") => "create the bucket, or fix the name in --to/--from or `backups` of pgward.toml".into(),
                Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken") => "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) and the bucket policy".into(),
                _ => "check that the store is reachable (AWS_ENDPOINT_URL / --s3-endpoint) and has room; nothing incomplete is listed as a backup".into(),
            },
            Error::AppUnhealthy { .. } => "look at the application's logs and at what its health endpoint checks; raise health_retries or health_timeout in pgward.toml if it only needs longer to start".into(),
            Error::ChecksFailed { .. } => "each finding in result.findings says why it is dangerous and the safe alternative (`fix`); suppress a reviewed lint finding with `-- pgward-ignore RULE` on the line before".into(),
            Error::Interrupted => "run the command again when ready; `pgward-migrate status` shows the state".into(),
        }
    }

    /// Extra machine-readable details for the JSON `error.details`.
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            Error::MigrationFailed {
                migration,
                failure,
                partly_committed,
                left_behind,
            } => {
                let mut details = failure.details("migration", migration);
                details["partly_committed"] = serde_json::json!(partly_committed);
                details["left_behind"] = serde_json::json!(left_behind);
                Some(details)
            }
            Error::ScriptFailed { what, failure, .. } => Some(failure.details("script", what)),
            Error::Query { sqlstate, .. } => Some(serde_json::json!({ "sqlstate": sqlstate })),
            Error::LockHeld { holder, waited_ms } => {
                Some(serde_json::json!({ "waited_ms": waited_ms, "holder": holder }))
            }
            Error::FailedMigrations { names } => Some(serde_json::json!({ "migrations": names })),
            Error::ShadowNotEmpty {
                database,
                objects,
                total,
            } => Some(
                serde_json::json!({ "database": database, "objects": objects, "total": total }),
            ),
            Error::NoDownSql { migration } => Some(serde_json::json!({ "migration": migration })),
            Error::Fleet { index, target, .. } => {
                Some(serde_json::json!({ "index": index, "target": target }))
            }
            Error::ClusterWideReplay {
                statements,
                shadow,
                other_servers,
            } => Some(
                serde_json::json!({ "statements": statements, "shadow": shadow, "other_servers": other_servers }),
            ),
            Error::BackupCorrupt { id, files, .. } => {
                Some(serde_json::json!({ "backup": id, "files": files }))
            }
            Error::BackupCopyDamaged {
                id,
                location,
                files,
                good_in,
                ..
            } => Some(serde_json::json!({
                "backup": id,
                "files": files,
                "location": location,
                "verified_in": good_in
            })),
            Error::BackupNeedsKey { id, .. } | Error::BackupKeyMismatch { id, .. } => {
                Some(serde_json::json!({ "backup": id }))
            }
            Error::NoBackupOfSource { wanted, others, .. } => {
                Some(serde_json::json!({ "source": wanted, "others": others }))
            }
            Error::UnsafeSqlBackup { id, file, line, .. } => {
                Some(serde_json::json!({ "backup": id, "file": file, "line": line }))
            }
            Error::TargetServerOlder {
                id,
                backup_major,
                pg_dump_major,
                target_major,
            } => Some(
                serde_json::json!({ "backup": id, "backup_major": backup_major, "pg_dump_major": pg_dump_major, "target_major": target_major }),
            ),
            Error::TableLocked { table, holder, .. } => {
                Some(serde_json::json!({ "table": table, "holder": holder }))
            }
            Error::RowSecurity { role, tables } => {
                Some(serde_json::json!({ "role": role, "tables": tables }))
            }
            Error::SequenceUnreadable { role, sequences } => {
                Some(serde_json::json!({ "role": role, "sequences": sequences }))
            }
            Error::NotUtf8 { path, offset } => {
                Some(serde_json::json!({ "path": path, "offset": offset }))
            }
            Error::MigrationSqlMissing { path } | Error::MigrationsDirMissing { path } => {
                Some(serde_json::json!({ "path": path }))
            }
            _ => None,
        }
    }

    /// Shorthand for a usage error.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Shorthand for a failed query pgward ran itself; an interrupted run becomes
    /// [`Error::Interrupted`].
    pub fn query(context: impl Into<String>, err: &postgres::Error) -> Error {
        if crate::interrupt::requested() {
            return Error::Interrupted;
        }
        if let Some(table) = row_security_table(err) {
            return Error::RowSecurity {
                role: None,
                tables: vec![table],
            };
        }
        let (sqlstate, message) = describe_pg_error(err);
        Error::Query {
            context: context.into(),
            sqlstate,
            message,
        }
    }

    /// Shorthand for a local file error.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// `table public.a, schema b and 3 more object(s)`.
fn describe_objects(objects: &[String], total: usize) -> String {
    let more = total.saturating_sub(objects.len());
    if more == 0 {
        objects.join(", ")
    } else {
        format!("{} and {more} more object(s)", objects.join(", "))
    }
}

/// The SQLSTATE and a one-paragraph message (with DETAIL and HINT) of a server error.
pub fn describe_pg_error(err: &postgres::Error) -> (Option<String>, String) {
    match err.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_string();
            if let Some(detail) = db.detail() {
                message.push_str(&format!(" (DETAIL: {detail})"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!(" (HINT: {hint})"));
            }
            (Some(db.code().code().to_string()), message)
        }
        None => (
            err.code().map(|c| c.code().to_string()),
            crate::redact::scrub(&error_chain(err)),
        ),
    }
}

/// The table a server error names when a session with `row_security = off` read a table
/// whose policies apply to its role (SQLSTATE 42501, "query would be affected by
/// row-level security policy for table \"t\""): such a read would otherwise have seen only
/// the rows the policies show.
pub fn row_security_table(err: &postgres::Error) -> Option<String> {
    let db = err.as_db_error()?;
    if db.code() != &postgres::error::SqlState::INSUFFICIENT_PRIVILEGE {
        return None;
    }
    let rest = db
        .message()
        .strip_prefix("query would be affected by row-level security policy for table ")?;
    Some(rest.trim_matches('"').to_string())
}

/// An error and its sources, joined with ": ".
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The result type of every pgward library function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// [`Error::TargetServerOlder`]'s message: why the target is too old for the backup.
fn target_server_older(
    id: &str,
    backup_major: u32,
    pg_dump_major: &Option<u32>,
    target_major: u32,
) -> String {
    match pg_dump_major {
        Some(dump) => format!("the backup {id} was written by pg_dump {dump}, and the target server runs PostgreSQL {target_major}: pg_dump and pg_restore 17 and later set transaction_timeout, which servers before 17 do not have, so it only restores into PostgreSQL {backup_major} or newer"),
        None => format!("the backup {id} was taken from PostgreSQL {backup_major}, and the target server runs PostgreSQL {target_major}, an older major: a dump only loads into the same major or a newer one (it may use syntax, catalogs and defaults the older server lacks)"),
    }
}
