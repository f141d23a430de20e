//! `pgward-validate`: flags in, one JSON document out. The checks live in the library.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pgward_shared::config::{parse_duration, GlobalArgs};
use pgward_shared::output::{parse_args, run};
use pgward_validate::{data, drift, lint, preflight, schema};

const TOOL: &str = "validate";

#[derive(Parser)]
#[command(
    name = "pgward-validate",
    version,
    about = "Migration lint, schema and data integrity checks, and drift detection for PostgreSQL",
    long_about = "Reads the pending migrations before they run, and the database after. Prints one JSON \
document on stdout; exit codes: 0 clear, 1 errors found, 2 usage, 3 warnings under --strict or drift, \
4 cannot connect, 130 interrupted.",
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
        after_help = "With no FILES, lints the pending migrations (needs the database); --all lints every\nmigration without connecting.\n\nExamples:\n  pgward-validate lint --all --format text\n  pgward-validate lint prisma/migrations/20240101000000_add_index/migration.sql --format github"
    )]
    Lint {
        /// Migration files to lint [default: the pending migrations]
        files: Vec<PathBuf>,
        /// Lint every migration of the folder (no database needed)
        #[arg(long, conflicts_with = "files")]
        all: bool,
        /// Migrations folder [default: `migrations` of pgward.toml, else prisma/migrations]
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// Fail (exit 3) on warnings too
        #[arg(long)]
        strict: bool,
    },
    /// Check the live schema: missing primary keys, invalid indexes, unindexed foreign keys...
    #[command(after_help = "Example:\n  pgward-validate schema --strict --format text")]
    Schema {
        /// Migrations folder, for pending and failed migrations
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// Fail (exit 3) on warnings too
        #[arg(long)]
        strict: bool,
    },
    /// Check the data: rows violating NOT VALID constraints, duplicates under invalid unique
    /// indexes, and your own checks (checks/*.sql: each a query returning violating rows)
    #[command(
        after_help = "Example:\n  pgward-validate data --checks db/checks --statement-timeout 30s"
    )]
    Data {
        /// Folder of user checks (*.sql) [default: ./checks if it exists]
        #[arg(long, value_name = "DIR")]
        checks: Option<PathBuf>,
        /// statement_timeout for each check
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
        statement_timeout: Duration,
        /// Checks run at once, one connection each
        #[arg(long, value_name = "N", default_value_t = 2)]
        jobs: usize,
        /// Fail (exit 3) on warnings too
        #[arg(long)]
        strict: bool,
    },
    /// Apply the applied migrations to a shadow database and compare its schema with the live one
    #[command(
        after_help = "Exit 3 when the schemas differ; every difference is in result.differences.\n\nExample:\n  pgward-validate drift --dir prisma/migrations"
    )]
    Drift {
        /// Migrations folder [default: `migrations` of pgward.toml, else prisma/migrations]
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// Use this (empty) database as the shadow instead of a temporary one on the same server
        #[arg(long, value_name = "URL")]
        shadow_url: Option<String>,
    },
    /// The pre-migration checklist: connectable, server version, privileges, lock free, no
    /// failed migration, pending migrations lint clean, a recent verified backup, pg_dump fits
    #[command(
        after_help = "Example:\n  pgward-validate preflight --env production --max-backup-age 26h"
    )]
    Preflight {
        /// Migrations folder [default: `migrations` of pgward.toml, else prisma/migrations]
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// Backup location to look in [default: the environment's `backups`]
        #[arg(long, value_name = "LOCATION")]
        backups: Option<String>,
        /// The newest verified backup must be younger than this
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "26h")]
        max_backup_age: Duration,
        /// Fail (exit 3) on warnings (skipped checks) too
        #[arg(long)]
        strict: bool,
    },
}

fn main() {
    let cli: Cli = parse_args(TOOL);
    match cli.command {
        Command::Lint {
            files,
            all,
            dir,
            strict,
        } => run(TOOL, "lint", cli.global, |ctx| {
            let options = lint::LintOptions {
                files,
                all,
                dir: ctx.settings.migrations_dir(dir.as_deref()),
                strict,
            };
            lint::run(ctx, &options)
        }),
        Command::Schema { dir, strict } => run(TOOL, "schema", cli.global, |ctx| {
            let options = schema::SchemaOptions {
                dir: ctx.settings.migrations_dir(dir.as_deref()),
                strict,
            };
            schema::run(ctx, &options)
        }),
        Command::Data {
            checks,
            statement_timeout,
            jobs,
            strict,
        } => run(TOOL, "data", cli.global, |ctx| {
            let options = data::DataOptions {
                checks,
                statement_timeout,
                jobs,
                strict,
            };
            data::run(ctx, &options)
        }),
        Command::Drift { dir, shadow_url } => run(TOOL, "drift", cli.global, |ctx| {
            let options = drift::DriftOptions {
                dir: ctx.settings.migrations_dir(dir.as_deref()),
                shadow_url,
            };
            drift::run(ctx, &options)
        }),
        Command::Preflight {
            dir,
            backups,
            max_backup_age,
            strict,
        } => run(TOOL, "preflight", cli.global, |ctx| {
            let options = preflight::PreflightOptions {
                dir: ctx.settings.migrations_dir(dir.as_deref()),
                backups,
                max_backup_age,
                strict,
            };
            preflight::run(ctx, &options)
        }),
    }
}
