//! The flags more than one command takes, each defined once: one name, one help text, one
//! default. The binaries flatten these groups into their clap definitions (and the engines'
//! options types hold them), so `--dir` or `--jobs` read the same in every `--help`.
//! The flags every command takes (`--env`, `--format`, ...) and the guard flags are in
//! [`crate::config`]; the S3 flags are [`crate::storage::S3Options`] (behind the `storage`
//! feature).
//!
//! The exit-code line of each `--help` is generated here from [`Exit`], so the help can
//! never disagree with the codes the binaries return.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{parse_duration, Settings};
use crate::error::Exit;

/// Parallel sessions when `--jobs` is not given.
pub const DEFAULT_JOBS: usize = 2;

/// `--dir`: the migrations folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct MigrationsDir {
    /// Migrations folder [default: `migrations` of pgward.toml, else prisma/migrations]
    #[arg(long = "dir", value_name = "PATH")]
    pub dir: Option<PathBuf>,
}

impl MigrationsDir {
    /// The folder: the flag, else the environment's, else the config file's, else
    /// `prisma/migrations` (see [`Settings::migrations_dir`]).
    pub fn resolve(&self, settings: &Settings) -> PathBuf {
        settings.migrations_dir(self.dir.as_deref())
    }
}

/// `--jobs`: how many sessions work at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
pub struct Jobs {
    // Kept optional (the default applied by `get`) so that a binary can tell "given" from
    // "not given" (pgward-backup refuses backup flags beside another command).
    #[arg(long = "jobs", value_name = "N", help = format!(
        "Parallel sessions (readers, loaders or checks), one connection each [default: {DEFAULT_JOBS}]"
    ))]
    pub jobs: Option<usize>,
}

impl Jobs {
    /// The number of sessions: the flag, else [`DEFAULT_JOBS`].
    pub fn get(self) -> usize {
        self.jobs.unwrap_or(DEFAULT_JOBS)
    }
}

/// The help of every backup-location flag (`--to`, `--from`, preflight's `--backups`).
pub const LOCATION_HELP: &str =
    "Folder or s3://bucket/prefix; repeat it for every copy (the backup is written to the first, copied to the others) [default: the environment's `backups`]";

/// How old the newest backup may be, without `--max-age` (report backups) or
/// `--max-backup-age` (validate preflight): a daily backup with two hours to spare.
pub const DEFAULT_MAX_BACKUP_AGE: &str = "26h";

/// `--from LOCATION...`: where backups are read (every copy).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct FromLocation {
    #[arg(long = "from", value_name = "LOCATION", help = LOCATION_HELP)]
    pub from: Vec<String>,
}

impl FromLocation {
    /// The locations given, in order (none: the environment's `backups` apply).
    pub fn locations(&self) -> &[String] {
        &self.from
    }
}

/// `--to LOCATION...`: where a backup is written (the first) and copied (the others).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ToLocation {
    #[arg(long = "to", value_name = "LOCATION", help = LOCATION_HELP)]
    pub to: Vec<String>,
}

impl ToLocation {
    /// The locations given, in order (none: the environment's `backups` apply).
    pub fn locations(&self) -> &[String] {
        &self.to
    }
}

/// `--tables PATTERN...` (also spelled `--table`): the tables whose data is backed up or
/// restored.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct Tables {
    /// Only the data of tables matching (schema.table or table, * wildcards); repeatable
    #[arg(long = "tables", visible_alias = "table", value_name = "PATTERN", num_args = 1..)]
    pub tables: Vec<String>,
}

/// A backup's `lock_timeout` without `--lock-timeout`: it must not wait forever behind a
/// migration's lock. A deploy without the flag leaves the server's setting alone.
pub const BACKUP_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// `--lock-timeout DURATION`: the session's `lock_timeout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
pub struct LockTimeout {
    #[arg(long = "lock-timeout", value_name = "DURATION", value_parser = parse_duration,
        help = format!(
            "How long a statement waits for a table lock before it fails: SET lock_timeout \
             on the session (e.g. 5s) [default: deploy: the server's; backup: {}s]",
            BACKUP_LOCK_TIMEOUT.as_secs()
        ))]
    pub lock_timeout: Option<Duration>,
}

/// A user check's `statement_timeout` (`pgward-validate data`) without
/// `--statement-timeout`. A deploy without the flag leaves the server's setting alone.
pub const CHECK_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `--statement-timeout DURATION`: the session's `statement_timeout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
pub struct StatementTimeout {
    #[arg(long = "statement-timeout", value_name = "DURATION", value_parser = parse_duration,
        help = format!(
            "How long one statement may run before the server cancels it: SET \
             statement_timeout on the session (e.g. 15min) [default: deploy: the server's; \
             validate data: {}s for each check]",
            CHECK_STATEMENT_TIMEOUT.as_secs()
        ))]
    pub statement_timeout: Option<Duration>,
}

/// `--shadow-url URL`: the database `validate drift` and `validate lint --trace` run the
/// migrations in, instead of a temporary one they create beside the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ShadowUrl {
    /// Use this (empty) database as the shadow instead of a temporary one on the same server
    #[arg(long = "shadow-url", value_name = "URL")]
    pub shadow_url: Option<String>,
}

/// The help of `--dry-run`, wherever a command takes it.
pub const DRY_RUN_HELP: &str = "Show what would be done; change nothing";

/// The help of `--no-large-objects`, of backup and of restore.
pub const NO_LARGE_OBJECTS_HELP: &str =
    "Leave the large objects out (a backup's manifest records it; a restore says so)";

/// The help of `--strict`, wherever a check command takes it.
pub const STRICT_HELP: &str = "Fail (exit 3) on warnings too";

/// The exit-code line of a `--help`: "Exit codes: 0 ok, 1 failed, ..." for the classes a
/// binary (or command) can end with, each described by [`Exit::summary`].
pub fn exit_codes(classes: &[Exit]) -> String {
    exit_codes_noted(classes, &[])
}

/// [`exit_codes`] with what some classes mean for one command, in parentheses:
/// "3 needs attention (pending)".
pub fn exit_codes_noted(classes: &[Exit], notes: &[(Exit, &str)]) -> String {
    let items: Vec<String> = classes
        .iter()
        .map(|&class| {
            let note = notes
                .iter()
                .find(|(c, _)| *c == class)
                .map(|(_, note)| format!(" ({note})"))
                .unwrap_or_default();
            format!("{} {}{note}", class.code(), class.summary())
        })
        .collect();
    format!("Exit codes: {}.", items.join(", "))
}

/// The classes every binary can end with: success, a usage error, no connection, an
/// interrupt.
pub const EVERY_BINARY: [Exit; 4] = [Exit::Success, Exit::Usage, Exit::Connect, Exit::Interrupted];

/// A binary's long description followed by its exit-code line: the classes
/// [`EVERY_BINARY`] ends with and the binary's own (`classes`), in the order of their codes.
pub fn about_with_exit_codes(about: &str, classes: &[Exit]) -> String {
    let mut all: Vec<Exit> = EVERY_BINARY.iter().chain(classes).copied().collect();
    all.sort_by_key(|class| class.code());
    all.dedup();
    format!("{about}\n\n{}", exit_codes(&all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_line_lists_each_class_with_its_summary() {
        assert_eq!(
            exit_codes_noted(
                &[Exit::Success, Exit::Attention, Exit::Interrupted],
                &[(Exit::Attention, "pending")]
            ),
            format!(
                "Exit codes: 0 {}, 3 {} (pending), 130 {}.",
                Exit::Success.summary(),
                Exit::Attention.summary(),
                Exit::Interrupted.summary()
            )
        );
    }
}
