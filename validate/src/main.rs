//! `pgward-validate`: flags in, one JSON document out. The checks live in the library.

use clap::{Parser, Subcommand};
use pgward_shared::cli::{about_with_exit_codes, exit_codes_noted};
use pgward_shared::config::GlobalArgs;
use pgward_shared::error::Exit;
use pgward_shared::fleet::{FleetArgs, FleetKind};
use pgward_shared::output::{parse_args, run};
use pgward_validate::{data, drift, lint, preflight, schema};

const TOOL: &str = "validate";

/// The exit classes pgward-validate ends with besides those every binary does (refused:
/// drift will not replay server-wide statements on the live server, nor use a shadow that
/// is not empty).
const EXITS: &[Exit] = &[Exit::Failed, Exit::Attention, Exit::Refused];

#[derive(Parser)]
#[command(
    name = "pgward-validate",
    version,
    about = "Migration lint, schema and data integrity checks, and drift detection for PostgreSQL",
    long_about = about_with_exit_codes("Reads the pending migrations before they run, and the database after. Prints one JSON \
document on stdout. Errors found fail the run; warnings need attention only under --strict, drift always.", EXITS),
    after_help = "Examples:\n  pgward-validate lint --format github\n  pgward-validate schema --strict\n  pgward-validate drift --env staging"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lint migration SQL with PostgreSQL's own parser: locks, rewrites, unsafe changes
    #[command(
        after_help = "With no FILES, lints the pending migrations (needs the database); --all lints every\nmigration without connecting. The rules judge for the database's PostgreSQL major, or\n--pg-version's. --trace also runs them on a throwaway shadow database and marks each\nfinding confirmed or not by what the statements did there.\n\nExamples:\n  pgward-validate lint --all --format text\n  pgward-validate lint --all --pg-version 16\n  pgward-validate lint --trace --env staging\n  pgward-validate lint prisma/migrations/20240101000000_add_index/migration.sql --format github"
    )]
    Lint(lint::LintOptions),
    /// Check the live schema: missing primary keys, invalid indexes, unindexed foreign keys...
    #[command(
        after_help = "Examples:\n  pgward-validate schema --strict --format text\n  pgward-validate schema --fleet tenants --format markdown   # every tenant (docs/fleet.md)"
    )]
    Schema {
        #[command(flatten)]
        options: schema::SchemaOptions,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Check the data: rows violating NOT VALID constraints, duplicates under invalid unique
    /// indexes, and your own checks (checks/*.sql: each a query returning violating rows)
    #[command(
        after_help = "Example:\n  pgward-validate data --checks db/checks --statement-timeout 30s"
    )]
    Data(data::DataOptions),
    /// Apply the applied migrations to a shadow database and compare its schema with the live one
    #[command(
        after_help = format!("{} Every difference is in result.differences.\n\nExample:\n  pgward-validate drift --dir prisma/migrations", exit_codes_noted(
            &[Exit::Success, Exit::Attention, Exit::Refused],
            &[(Exit::Success, "no drift"), (Exit::Attention, "the schemas differ"), (Exit::Refused, "a replay of server-wide statements on the live server")],
        ))
    )]
    Drift {
        #[command(flatten)]
        options: drift::DriftOptions,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// The pre-migration checklist: connectable, server version, privileges, lock free, no
    /// failed migration, pending migrations lint clean, a recent verified backup, pg_dump fits
    #[command(
        after_help = "Example:\n  pgward-validate preflight --env production --max-backup-age 26h"
    )]
    Preflight {
        #[command(flatten)]
        options: preflight::PreflightOptions,
        #[command(flatten)]
        fleet: FleetArgs,
    },
}

fn main() {
    let cli: Cli = parse_args(TOOL);
    match cli.command {
        Command::Lint(options) => run(TOOL, "lint", cli.global, |ctx| lint::run(ctx, &options)),
        Command::Schema { options, fleet } => {
            fleet.run_if_given(TOOL, "schema", &cli.global, FleetKind::Reads);
            run(TOOL, "schema", cli.global, |ctx| schema::run(ctx, &options))
        }
        Command::Data(options) => run(TOOL, "data", cli.global, |ctx| data::run(ctx, &options)),
        Command::Drift { options, fleet } => {
            fleet.run_if_given(TOOL, "drift", &cli.global, FleetKind::Reads);
            run(TOOL, "drift", cli.global, |ctx| drift::run(ctx, &options))
        }
        Command::Preflight { options, fleet } => {
            fleet.run_if_given(TOOL, "preflight", &cli.global, FleetKind::Reads);
            run(TOOL, "preflight", cli.global, |ctx| {
                preflight::run(ctx, &options)
            })
        }
    }
}
