//! `pgward-backup`: flags in, one JSON document out. The work lives in the library.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pgward_backup::commands;
use pgward_shared::archive::manifest::BackupFormat;
use pgward_shared::archive::prune::PruneRules;
use pgward_shared::archive::write::DumpOptions;
use pgward_shared::config::{parse_duration, GlobalArgs, GuardArgs};
use pgward_shared::error::Error;
use pgward_shared::output::{parse_args, run};
use pgward_shared::storage::StorageArgs;

const TOOL: &str = "backup";

#[derive(Parser)]
#[command(
    name = "pgward-backup",
    arg_required_else_help = true,
    version,
    about = "Consistent, parallel, zstd-compressed PostgreSQL backups to a folder or S3; list, verify, prune",
    long_about = "One consistent snapshot of the database: the schema by pg_dump, every table's rows as \
zstd-compressed COPY streams read in parallel, manifest.json (sizes, SHA-256, row counts) written last. \
Prints one JSON document on stdout; exit codes: 0 ok, 1 failed, 2 usage, 4 cannot connect, 5 corrupt or \
incomplete backup, 6 refused, 7 storage, 130 interrupted.",
    after_help = "Examples:\n  pgward-backup --to /var/backups/pgward --jobs 4\n  pgward-backup list --from s3://acme-db-backups/prod --format text\n  pgward-backup backup --to s3://acme-db-backups/prod   (the `backup` word is accepted too)"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    backup: BackupArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum FormatArg {
    /// Schema + parallel zstd COPY chunks (restored by pgward-restore)
    Directory,
    /// One backup.sql.zst: `zstd -dc FILE | psql` restores it without pgward
    Sql,
}

/// What to back up, where, and how.
#[derive(Args, Default, PartialEq)]
struct BackupArgs {
    /// Folder or s3://bucket/prefix [default: the environment's `backups`]
    #[arg(long, value_name = "LOCATION")]
    to: Option<String>,
    /// Parallel readers [default: 2]
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// zstd level (1 fast .. 19 small) [default: 3]
    #[arg(long, value_name = "L", value_parser = clap::value_parser!(i32).range(1..=19))]
    level: Option<i32>,
    /// A note kept in the manifest
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
    /// Only the data of tables matching (schema.table or table, * wildcards); repeatable
    #[arg(long = "table", value_name = "PATTERN")]
    tables: Vec<String>,
    /// Not the data of tables matching; repeatable
    #[arg(long = "exclude-table", value_name = "PATTERN")]
    exclude_tables: Vec<String>,
    /// Layout of the backup [default: directory]
    #[arg(long = "backup-format", value_enum)]
    backup_format: Option<FormatArg>,
    /// Leave the database's large objects out (the manifest records it; a restore says so)
    #[arg(long)]
    no_large_objects: bool,
    /// Tables larger than this are split into chunks of about this many MiB [default: 256]
    #[arg(long, value_name = "MIB")]
    chunk_mib: Option<u64>,
    /// How long to wait for each table's ACCESS SHARE lock [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    lock_timeout: Option<Duration>,
    /// List what would be backed up; write nothing
    #[arg(long)]
    dry_run: bool,
}

impl BackupArgs {
    /// Whether any option was given (so that one given beside another command, or on
    /// both sides of the `backup` word, is refused rather than silently ignored): every
    /// field defaults to "not given" (none, false, empty).
    fn given(&self) -> bool {
        *self != BackupArgs::default()
    }

    fn options(&self) -> DumpOptions {
        DumpOptions {
            jobs: self.jobs.unwrap_or(2),
            level: self.level.unwrap_or(3),
            label: self.label.clone(),
            tables: self.tables.clone(),
            exclude_tables: self.exclude_tables.clone(),
            format: match self.backup_format.unwrap_or(FormatArg::Directory) {
                FormatArg::Directory => BackupFormat::Directory,
                FormatArg::Sql => BackupFormat::Sql,
            },
            chunk_bytes: self.chunk_mib.unwrap_or(256).max(1) << 20,
            lock_timeout: self.lock_timeout.unwrap_or(Duration::from_secs(30)),
            env: None,
            no_large_objects: self.no_large_objects,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Take a backup: the same as without the word, kept so that scripts written
    /// `pgward-backup backup --to ...` go on working
    #[command(
        after_help = "Examples:\n  DATABASE_URL=postgresql://app@db/app pgward-backup backup --to /var/backups/pgward\n  pgward-backup backup --env production --label before-release-42 --jobs 4"
    )]
    Backup(BackupArgs),
    /// List complete backups, newest first
    #[command(
        after_help = "Example:\n  pgward-backup list --from /var/backups/pgward --format text"
    )]
    List {
        /// Folder or s3://bucket/prefix [default: the environment's `backups`]
        #[arg(long, value_name = "LOCATION")]
        from: Option<String>,
    },
    /// Check every file's size and SHA-256 and that it decompresses; --deep also restores
    /// into a scratch database and compares row counts
    #[command(
        after_help = "Examples:\n  pgward-backup verify latest --from /var/backups/pgward\n  pgward-backup verify app-prod-20261122T031300Z --deep"
    )]
    Verify {
        /// A backup id, or `latest`
        id: String,
        /// Folder or s3://bucket/prefix [default: the environment's `backups`]
        #[arg(long, value_name = "LOCATION")]
        from: Option<String>,
        /// Restore into a scratch database on the same server and compare row counts
        #[arg(long)]
        deep: bool,
        /// Parallel readers
        #[arg(long, value_name = "N", default_value_t = 2)]
        jobs: usize,
    },
    /// Delete old backups; never the newest verified one
    #[command(
        after_help = "Example (cron):\n  pgward-backup prune --from /var/backups/pgward --keep-last 7 --keep-days 30"
    )]
    Prune {
        /// Folder or s3://bucket/prefix [default: the environment's `backups`]
        #[arg(long, value_name = "LOCATION")]
        from: Option<String>,
        /// Keep the N newest backups
        #[arg(long, value_name = "N")]
        keep_last: Option<usize>,
        /// Keep backups younger than D days
        #[arg(long, value_name = "D")]
        keep_days: Option<u64>,
        /// Remove leftovers of interrupted runs older than this
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
        leftover_age: Duration,
        /// Show what would be deleted
        #[arg(long)]
        dry_run: bool,
        /// Apply the rules to every database's backups in the location, each apart
        /// [default: only the backups of the database in use: the URL's, and --env]
        #[arg(long)]
        all_databases: bool,
        #[command(flatten)]
        guard: GuardArgs,
    },
}

fn main() {
    let cli: Cli = parse_args(TOOL);
    let storage = cli.storage;
    let top = cli.backup;
    // Backup options beside another command, or on both sides of the word, are refused:
    // one of them would be ignored.
    let command = match cli.command {
        Some(_) if top.given() => None,
        None => Some(Command::Backup(top)),
        some => some,
    };
    match command {
        None => run(TOOL, "backup", cli.global, |_| {
            Err(Error::usage(
                "backup options (--to, --jobs, ...) were given with another command, or on both sides of the word `backup`",
                "give them once, to the backup: pgward-backup --to LOCATION ... (or pgward-backup backup --to LOCATION ...)",
            )
            .into())
        }),
        Some(Command::Backup(args)) => run(TOOL, "backup", cli.global, |ctx| {
            commands::backup(
                ctx,
                args.to.as_deref(),
                &storage,
                &args.options(),
                args.dry_run,
            )
        }),
        Some(Command::List { from }) => run(TOOL, "list", cli.global, |ctx| {
            commands::list(ctx, from.as_deref(), &storage)
        }),
        Some(Command::Verify {
            id,
            from,
            deep,
            jobs,
        }) => run(TOOL, "verify", cli.global, |ctx| {
            commands::verify(ctx, from.as_deref(), &id, deep, jobs, &storage)
        }),
        Some(Command::Prune {
            from,
            keep_last,
            keep_days,
            leftover_age,
            dry_run,
            all_databases,
            guard,
        }) => run(TOOL, "prune", cli.global, |ctx| {
            let rules = PruneRules {
                keep_last,
                keep_days,
                leftover_age,
                source: pgward_shared::archive::sources::source_in_use(ctx),
                all_databases,
            };
            commands::prune_command(ctx, from.as_deref(), &storage, &rules, dry_run, guard)
        }),
    }
}
