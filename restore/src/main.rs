//! `pgward-restore`: flags in, one JSON document out. The work lives in the library.

use clap::{Args, Parser, Subcommand};
use pgward_restore::restore::{restore, RestoreOptions};
use pgward_shared::config::{GlobalArgs, GuardArgs};
use pgward_shared::error::Error;
use pgward_shared::output::{parse_args, run};
use pgward_shared::storage::StorageArgs;

const TOOL: &str = "restore";

#[derive(Parser)]
#[command(
    name = "pgward-restore",
    arg_required_else_help = true,
    version,
    about = "Verified, parallel PostgreSQL restore with safety guards",
    long_about = "Verifies every file of a pgward backup before touching the target, refuses a non-empty \
target without --clean (and then takes a safety backup of it first), loads schema, data and indexes in \
parallel, and checks row counts against the manifest. Prints one JSON document on stdout; exit codes: \
0 ok, 1 failed, 2 usage, 4 cannot connect, 5 corrupt backup or row counts differ, 6 refused, 7 storage, \
130 interrupted.",
    after_help = "Examples:\n  pgward-restore --from /var/backups/pgward/app-prod-20261122T031300Z --target-db app_check --create\n  pgward-restore --env production --before-migration 20261120093000_add_orders --clean --force\n  pgward-restore restore --from s3://acme-db-backups/prod/latest --clean   (the `restore` word is accepted too)"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    restore: RestoreArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Restore a backup into a database: the same as without the word, kept so that
    /// scripts written `pgward-restore restore --from ...` go on working
    #[command(
        after_help = "Examples:\n  pgward-restore restore --from s3://acme-db-backups/prod/app-prod-20261122T031300Z --target-db app_restored --create\n  pgward-restore restore --from /var/backups/pgward/latest --clean --jobs 4"
    )]
    Restore(RestoreArgs),
}

/// What to restore, where, and how.
#[derive(Args, Default, PartialEq)]
struct RestoreArgs {
    /// LOCATION/ID or LOCATION/latest (LOCATION alone with --before-migration)
    /// [default: the environment's `backups`]
    #[arg(long, value_name = "LOCATION/ID")]
    from: Option<String>,
    /// Restore the newest backup taken before this migration was applied
    #[arg(long, value_name = "NAME")]
    before_migration: Option<String>,
    /// Restore into this database instead of the URL's (for restore tests)
    #[arg(long, value_name = "NAME")]
    target_db: Option<String>,
    /// Create the target database if it does not exist
    #[arg(long)]
    create: bool,
    /// Replace a non-empty target (after a safety backup of it)
    #[arg(long)]
    clean: bool,
    /// Do not take the safety backup --clean takes
    #[arg(long, requires = "clean")]
    no_safety_backup: bool,
    /// Where the safety backup goes [default: the backup's location]
    #[arg(long, value_name = "LOCATION")]
    safety_backup_to: Option<String>,
    /// Parallel loaders [default: 2]
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Only the data of these tables (schema.table or table, * wildcards); repeatable
    #[arg(long = "tables", value_name = "PATTERN", num_args = 1..)]
    tables: Vec<String>,
    /// Do not restore ownership and privileges (restoring into another cluster)
    #[arg(long)]
    no_owner: bool,
    /// Do not restore the backup's large objects (the restore says so)
    #[arg(long)]
    no_large_objects: bool,
    /// Verify the backup and say what would happen; change nothing
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    guard: GuardArgs,
}

/// Parallel loaders without `--jobs`.
const DEFAULT_JOBS: usize = 2;

impl RestoreArgs {
    /// Whether any option was given (so that one given both before and after the
    /// `restore` word is refused rather than one of them silently ignored): every field
    /// defaults to "not given" (none, false, empty).
    fn given(&self) -> bool {
        *self != RestoreArgs::default()
    }

    fn into_options(self) -> RestoreOptions {
        RestoreOptions {
            from: self.from,
            before_migration: self.before_migration,
            target_db: self.target_db,
            create: self.create,
            clean: self.clean,
            no_safety_backup: self.no_safety_backup,
            safety_backup_to: self.safety_backup_to,
            jobs: self.jobs.unwrap_or(DEFAULT_JOBS),
            tables: self.tables,
            no_owner: self.no_owner,
            no_large_objects: self.no_large_objects,
            dry_run: self.dry_run,
            guard: self.guard,
        }
    }
}

fn main() {
    let cli: Cli = parse_args(TOOL);
    let storage = cli.storage;
    let top = cli.restore;
    run(TOOL, "restore", cli.global, |ctx| {
        let args = match cli.command {
            None => top,
            Some(Command::Restore(args)) if !top.given() => args,
            Some(Command::Restore(_)) => {
                return Err(Error::usage(
                    "restore options were given both before and after the word `restore`",
                    "give them once: pgward-restore --from LOCATION/ID ... (or pgward-restore restore --from LOCATION/ID ...)",
                )
                .into())
            }
        };
        restore(ctx, &args.into_options(), &storage)
    })
}
