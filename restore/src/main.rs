//! `pgward-restore`: flags in, one JSON document out. The work lives in the library.

use clap::{Parser, Subcommand};
use pgward_restore::restore::{restore, RestoreOptions};
use pgward_shared::config::{GlobalArgs, GuardArgs};
use pgward_shared::output::{parse_args, run};
use pgward_shared::storage::StorageArgs;

const TOOL: &str = "restore";

#[derive(Parser)]
#[command(
    name = "pgward-restore",
    version,
    about = "Verified, parallel PostgreSQL restore with safety guards",
    long_about = "Verifies every file of a pgward backup before touching the target, refuses a non-empty \
target without --clean (and then takes a safety backup of it first), loads schema, data and indexes in \
parallel, and checks row counts against the manifest. Prints one JSON document on stdout; exit codes: \
0 ok, 1 failed, 2 usage, 4 cannot connect, 5 corrupt backup or row counts differ, 6 refused, 7 storage, \
130 interrupted.",
    after_help = "Examples:\n  pgward-restore restore --from /var/backups/pgward/app-prod-20261122T031300Z --target-db app_check --create\n  pgward-restore restore --env production --before-migration 20261120093000_add_orders --clean --force"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Restore a backup into a database
    #[command(
        after_help = "Examples:\n  pgward-restore restore --from s3://acme-db-backups/prod/app-prod-20261122T031300Z --target-db app_restored --create\n  pgward-restore restore --from /var/backups/pgward/latest --clean --jobs 4"
    )]
    Restore {
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
        /// Parallel loaders
        #[arg(long, value_name = "N", default_value_t = 2)]
        jobs: usize,
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
    },
}

fn main() {
    let cli: Cli = parse_args(TOOL);
    let storage = cli.storage;
    match cli.command {
        Command::Restore {
            from,
            before_migration,
            target_db,
            create,
            clean,
            no_safety_backup,
            safety_backup_to,
            jobs,
            tables,
            no_owner,
            no_large_objects,
            dry_run,
            guard,
        } => run(TOOL, "restore", cli.global, |ctx| {
            let options = RestoreOptions {
                from,
                before_migration,
                target_db,
                create,
                clean,
                no_safety_backup,
                safety_backup_to,
                jobs,
                tables,
                no_owner,
                no_large_objects,
                dry_run,
                guard,
            };
            restore(ctx, &options, &storage)
        }),
    }
}
