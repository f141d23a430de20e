//! `pgward-backup`: flags in, one JSON document out. The work lives in the library.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pgward_backup::commands;
use pgward_shared::archive::crypt::{self, KeyArgs};
use pgward_shared::archive::manifest::BackupFormat;
use pgward_shared::archive::prune::PruneRules;
use pgward_shared::archive::write::{DumpOptions, DEFAULT_CHUNK_MIB, DEFAULT_LEVEL};
use pgward_shared::cli::{
    about_with_exit_codes, FromLocation, Jobs, LockTimeout, Tables, ToLocation, DRY_RUN_HELP,
    NO_LARGE_OBJECTS_HELP,
};
use pgward_shared::config::{parse_duration, GlobalArgs, GuardArgs};
use pgward_shared::error::{Error, Exit};
use pgward_shared::fleet::{FleetArgs, FleetKind};
use pgward_shared::output::{parse_args, run};
use pgward_shared::retention::Retention;
use pgward_shared::storage::S3Options;

const TOOL: &str = "backup";

/// The exit classes pgward-backup ends with besides those every binary does.
const EXITS: &[Exit] = &[Exit::Failed, Exit::Integrity, Exit::Refused, Exit::Storage];

#[derive(Parser)]
#[command(
    name = "pgward-backup",
    arg_required_else_help = true,
    version,
    about = "Consistent, parallel, zstd-compressed PostgreSQL backups to a folder or S3 (and copies to more); list, verify, copy, prune",
    long_about = about_with_exit_codes("One consistent snapshot of the database: the schema by pg_dump, every table's rows as \
zstd-compressed COPY streams read in parallel, manifest.json (sizes, SHA-256, row counts) written last. \
Prints one JSON document on stdout.", EXITS),
    after_help = "Examples:\n  pgward-backup --to /var/backups/pgward --jobs 4\n  pgward-backup --to /var/backups/pgward --to s3://acme-db-backups/prod   (a copy in each)\n  pgward-backup list --from s3://acme-db-backups/prod --format text\n  pgward-backup backup --to s3://acme-db-backups/prod   (the `backup` word is accepted too)"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    storage: S3Options,
    #[command(flatten)]
    keys: KeyArgs,
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

/// What to back up, where, and how: converted once into the engine's [`DumpOptions`],
/// whose defaults stand for every flag not given.
#[derive(Args, Default, PartialEq)]
struct BackupArgs {
    #[command(flatten)]
    to: ToLocation,
    #[command(flatten)]
    jobs: Jobs,
    #[arg(long, value_name = "L", value_parser = clap::value_parser!(i32).range(1..=19),
        help = format!("zstd level (1 fast .. 19 small) [default: {DEFAULT_LEVEL}]"))]
    level: Option<i32>,
    /// A note kept in the manifest
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
    #[command(flatten)]
    tables: Tables,
    /// Not the data of tables matching; repeatable
    #[arg(long = "exclude-table", value_name = "PATTERN")]
    exclude_tables: Vec<String>,
    /// Layout of the backup [default: the environment's backup_format, else directory]
    #[arg(long = "backup-format", value_enum)]
    backup_format: Option<FormatArg>,
    #[arg(long, help = NO_LARGE_OBJECTS_HELP)]
    no_large_objects: bool,
    #[arg(long, value_name = "MIB", help = format!(
        "Tables larger than this are split into chunks of about this many MiB [default: {DEFAULT_CHUNK_MIB}]"
    ))]
    chunk_mib: Option<u64>,
    #[command(flatten)]
    lock_timeout: LockTimeout,
    #[arg(long, help = DRY_RUN_HELP)]
    dry_run: bool,
    #[command(flatten)]
    fleet: FleetArgs,
}

impl BackupArgs {
    /// Whether any option was given (so that one given beside another command, or on
    /// both sides of the `backup` word, is refused rather than silently ignored): every
    /// field defaults to "not given" (none, false, empty).
    fn given(&self) -> bool {
        *self != BackupArgs::default()
    }

    fn options(&self) -> DumpOptions {
        let defaults = DumpOptions::default();
        DumpOptions {
            jobs: self.jobs.get(),
            level: self.level.unwrap_or(defaults.level),
            label: self.label.clone(),
            tables: self.tables.tables.clone(),
            exclude_tables: self.exclude_tables.clone(),
            format: match self.backup_format {
                None => defaults.format,
                Some(FormatArg::Directory) => BackupFormat::Directory,
                Some(FormatArg::Sql) => BackupFormat::Sql,
            },
            chunk_bytes: self
                .chunk_mib
                .map_or(defaults.chunk_bytes, |mib| mib.max(1) << 20),
            lock_timeout: self
                .lock_timeout
                .lock_timeout
                .unwrap_or(defaults.lock_timeout),
            no_large_objects: self.no_large_objects,
            ..defaults
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
        #[command(flatten)]
        from: FromLocation,
    },
    /// Check every file's size and SHA-256 and that it decompresses; --deep also restores
    /// into a scratch database and compares row counts
    #[command(
        after_help = "Examples:\n  pgward-backup verify latest --from /var/backups/pgward\n  pgward-backup verify app-prod-20261122T031300Z --deep"
    )]
    Verify {
        /// A backup id, or `latest`
        id: String,
        #[command(flatten)]
        from: FromLocation,
        /// Restore into a scratch database on the same server and compare row counts
        #[arg(long)]
        deep: bool,
        #[command(flatten)]
        jobs: Jobs,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Copy a complete backup to the locations that lack it (a copy that failed, a
    /// location added later): each file checked on arrival, the manifest last. Without
    /// --from/--to, from and to every location of the environment's `backups`
    #[command(
        after_help = "Examples:\n  pgward-backup copy app-prod-20261122T031300Z --from /var/backups/pgward --to s3://acme-db-backups/prod\n  pgward-backup copy latest --env production   (every location of its `backups` gets it)\n  pgward-backup copy app-prod-20261122T031300Z --from s3://acme-db-backups/prod --to /var/backups/pgward --replace-damaged   (after verify found the folder's copy damaged)"
    )]
    Copy {
        /// A backup id, or `latest`
        id: String,
        #[command(flatten)]
        from: FromLocation,
        #[command(flatten)]
        to: ToLocation,
        #[command(flatten)]
        jobs: Jobs,
        /// Also check the copies already there (every file's size and SHA-256), and
        /// replace a damaged one: deleted and copied again, only after the source's copy
        /// passed the same check
        #[arg(long)]
        replace_damaged: bool,
    },
    /// Delete old backups; never the newest verified one
    #[command(
        after_help = "Without a --keep-* flag the environment's [env.NAME.retention] of pgward.toml applies.\n\nExamples:\n  pgward-backup prune --from /var/backups/pgward --keep-last 7 --keep-days 30\n  pgward-backup prune --from s3://bkp/app --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run\n  pgward-backup prune --env production --force"
    )]
    Prune {
        #[command(flatten)]
        from: FromLocation,
        #[command(flatten)]
        retention: Retention,
        /// Remove leftovers of interrupted runs older than this
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
        leftover_age: Duration,
        #[arg(long, help = DRY_RUN_HELP)]
        dry_run: bool,
        /// Apply the rules to every database's backups in the location, each apart
        /// [default: only the backups of the database in use: the URL's, and --env]
        #[arg(long)]
        all_databases: bool,
        #[command(flatten)]
        guard: GuardArgs,
        #[command(flatten)]
        fleet: FleetArgs,
    },
}

fn main() {
    let cli: Cli = parse_args(TOOL);
    let storage = cli.storage;
    let keys = cli.keys;
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
        Some(Command::Backup(args)) => {
            args.fleet
                .run_if_given(TOOL, "backup", &cli.global, FleetKind::Changes);
            run(TOOL, "backup", cli.global, |ctx| {
                crypt::configure(ctx, &keys)?;
                let mut options = args.options();
                if args.backup_format.is_none() {
                    if let Some(format) = ctx.settings.env.as_ref().and_then(|e| e.backup_format) {
                        options.format = format;
                    }
                }
                commands::backup(ctx, args.to.locations(), &storage, &options, args.dry_run)
            })
        }
        Some(Command::List { from }) => run(TOOL, "list", cli.global, |ctx| {
            commands::list(ctx, from.locations(), &storage)
        }),
        Some(Command::Verify {
            id,
            from,
            deep,
            jobs,
            fleet,
        }) => {
            fleet.run_if_given(TOOL, "verify", &cli.global, FleetKind::Reads);
            run(TOOL, "verify", cli.global, |ctx| {
                crypt::configure(ctx, &keys)?;
                commands::verify(ctx, from.locations(), &id, deep, jobs.get(), &storage)
            })
        }
        Some(Command::Copy {
            id,
            from,
            to,
            jobs,
            replace_damaged,
        }) => run(TOOL, "copy", cli.global, |ctx| {
            commands::copy(
                ctx,
                from.locations(),
                to.locations(),
                &id,
                jobs.get(),
                replace_damaged,
                &storage,
            )
        }),
        Some(Command::Prune {
            from,
            retention,
            leftover_age,
            dry_run,
            all_databases,
            guard,
            fleet,
        }) => {
            fleet.run_if_given(TOOL, "prune", &cli.global, FleetKind::Changes);
            run(TOOL, "prune", cli.global, |ctx| {
                let (retention, retention_from) = commands::prune_retention(ctx, retention)?;
                let rules = PruneRules {
                    retention,
                    retention_from,
                    leftover_age,
                    source: pgward_shared::archive::sources::source_in_use(ctx),
                    all_databases,
                };
                commands::prune_command(ctx, from.locations(), &storage, &rules, dry_run, guard)
            })
        }
    }
}
