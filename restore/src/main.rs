//! `pgward-restore`: flags in, one JSON document out. The work lives in the library.

use clap::{Parser, Subcommand};
use pgward_restore::restore::{restore, RestoreOptions};
use pgward_shared::archive::crypt::{self, KeyArgs};
use pgward_shared::cli::about_with_exit_codes;
use pgward_shared::config::GlobalArgs;
use pgward_shared::error::{Error, Exit};
use pgward_shared::fleet::{FleetArgs, FleetKind};
use pgward_shared::output::{parse_args, run};
use pgward_shared::storage::S3Options;

const TOOL: &str = "restore";

/// The exit classes pgward-restore ends with besides those every binary does.
const EXITS: &[Exit] = &[Exit::Failed, Exit::Integrity, Exit::Refused, Exit::Storage];

#[derive(Parser)]
#[command(
    name = "pgward-restore",
    arg_required_else_help = true,
    version,
    about = "Verified, parallel PostgreSQL restore with safety guards",
    long_about = about_with_exit_codes("Verifies every file of a pgward backup before touching the target, refuses a non-empty \
target without --clean (and then takes a safety backup of it first), loads schema, data and indexes in \
parallel, and checks row counts against the manifest. Prints one JSON document on stdout.", EXITS),
    after_help = "Examples:\n  pgward-restore --from /var/backups/pgward/app-prod-20261122T031300Z --target-db app_check --create\n  pgward-restore --env production --before-migration 20261120093000_add_orders --clean --force\n  pgward-restore restore --from s3://acme-db-backups/prod/latest --clean   (the `restore` word is accepted too)"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    storage: S3Options,
    #[command(flatten)]
    keys: KeyArgs,
    #[command(flatten)]
    restore: RestoreOptions,
    #[command(flatten)]
    fleet: FleetArgs,
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
    Restore(RestoreOptions),
}

fn main() {
    let cli: Cli = parse_args(TOOL);
    let storage = cli.storage;
    let keys = cli.keys;
    let top = cli.restore;
    cli.fleet
        .run_if_given(TOOL, "restore", &cli.global, FleetKind::Changes);
    run(TOOL, "restore", cli.global, |ctx| {
        crypt::configure(ctx, &keys)?;
        let options = match cli.command {
            None => top,
            Some(Command::Restore(options)) if !top.given() => options,
            Some(Command::Restore(_)) => {
                return Err(Error::usage(
                    "restore options were given both before and after the word `restore`",
                    "give them once: pgward-restore --from LOCATION/ID ... (or pgward-restore restore --from LOCATION/ID ...)",
                )
                .into())
            }
        };
        restore(ctx, &options, &storage)
    })
}
