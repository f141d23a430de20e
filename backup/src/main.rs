//! `pgward-backup`: flags in, one JSON document out. The work lives in the library.

use std::time::Duration;

use clap::{Parser, Subcommand};
use pgward_backup::commands;
use pgward_backup::dump::DumpOptions;
use pgward_backup::prune::PruneRules;
use pgward_shared::config::{parse_duration, GlobalArgs, GuardArgs};
use pgward_shared::manifest::BackupFormat;
use pgward_shared::output::{parse_args, run};
use pgward_shared::storage::StorageArgs;

const TOOL: &str = "backup";

#[derive(Parser)]
#[command(
    name = "pgward-backup",
    version,
    about = "Consistent, parallel, zstd-compressed PostgreSQL backups to a folder or S3; list, verify, prune",
    long_about = "One consistent snapshot of the database: the schema by pg_dump, every table's rows as \
zstd-compressed COPY streams read in parallel, manifest.json (sizes, SHA-256, row counts) written last. \
Prints one JSON document on stdout; exit codes: 0 ok, 1 failed, 2 usage, 4 cannot connect, 5 corrupt or \
incomplete backup, 6 refused, 7 storage, 130 interrupted.",
    after_help = "Examples:\n  pgward-backup backup --to /var/backups/pgward --jobs 4\n  pgward-backup list --from s3://acme-db-backups/prod --format text"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    /// Schema + parallel zstd COPY chunks (restored by pgward-restore)
    Directory,
    /// One backup.sql.zst: `zstd -dc FILE | psql` restores it without pgward
    Sql,
}

#[derive(Subcommand)]
enum Command {
    /// Take a backup
    #[command(
        after_help = "Examples:\n  DATABASE_URL=postgresql://app@db/app pgward-backup backup --to /var/backups/pgward\n  pgward-backup backup --env production --label before-release-42 --jobs 4"
    )]
    Backup {
        /// Folder or s3://bucket/prefix [default: the environment's `backups`]
        #[arg(long, value_name = "LOCATION")]
        to: Option<String>,
        /// Parallel readers
        #[arg(long, value_name = "N", default_value_t = 2)]
        jobs: usize,
        /// zstd level (1 fast .. 19 small)
        #[arg(long, value_name = "L", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
        level: i32,
        /// A note kept in the manifest
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
        /// Only the data of tables matching (schema.table or table, * wildcards); repeatable
        #[arg(long = "table", value_name = "PATTERN")]
        tables: Vec<String>,
        /// Not the data of tables matching; repeatable
        #[arg(long = "exclude-table", value_name = "PATTERN")]
        exclude_tables: Vec<String>,
        /// Layout of the backup
        #[arg(long = "backup-format", value_enum, default_value = "directory")]
        backup_format: FormatArg,
        /// Leave the database's large objects out (the manifest records it; a restore says so)
        #[arg(long)]
        no_large_objects: bool,
        /// Tables larger than this are split into chunks of about this many MiB
        #[arg(long, value_name = "MIB", default_value_t = 256)]
        chunk_mib: u64,
        /// How long to wait for each table's ACCESS SHARE lock
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
        lock_timeout: Duration,
        /// List what would be backed up; write nothing
        #[arg(long)]
        dry_run: bool,
    },
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
    match cli.command {
        Command::Backup {
            to,
            jobs,
            level,
            label,
            tables,
            exclude_tables,
            backup_format,
            no_large_objects,
            chunk_mib,
            lock_timeout,
            dry_run,
        } => run(TOOL, "backup", cli.global, |ctx| {
            let options = DumpOptions {
                jobs,
                level,
                label,
                tables,
                exclude_tables,
                format: match backup_format {
                    FormatArg::Directory => BackupFormat::Directory,
                    FormatArg::Sql => BackupFormat::Sql,
                },
                chunk_bytes: chunk_mib.max(1) << 20,
                lock_timeout,
                env: None,
                no_large_objects,
            };
            commands::backup(ctx, to.as_deref(), &storage, &options, dry_run)
        }),
        Command::List { from } => run(TOOL, "list", cli.global, |ctx| {
            commands::list(ctx, from.as_deref(), &storage)
        }),
        Command::Verify {
            id,
            from,
            deep,
            jobs,
        } => run(TOOL, "verify", cli.global, |ctx| {
            commands::verify(ctx, from.as_deref(), &id, deep, jobs, &storage)
        }),
        Command::Prune {
            from,
            keep_last,
            keep_days,
            leftover_age,
            dry_run,
            all_databases,
            guard,
        } => run(TOOL, "prune", cli.global, |ctx| {
            let rules = PruneRules {
                keep_last,
                keep_days,
                leftover_age,
                source: commands::configured_source(ctx),
                all_databases,
            };
            commands::prune_command(ctx, from.as_deref(), &storage, &rules, dry_run, guard)
        }),
    }
}
