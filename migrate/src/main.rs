//! `pgward-migrate`: flags in, one JSON document out. The work lives in the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use pgward_migrate::deploy::{deploy, DeployOptions};
use pgward_migrate::new::new_migration;
use pgward_migrate::resolve::{resolve, ResolveOptions};
use pgward_migrate::rollback::{rollback, RollbackOptions};
use pgward_migrate::seed::{default_seeds_dir, seed};
use pgward_migrate::status::status;
use pgward_shared::cli::{about_with_exit_codes, exit_codes_noted, MigrationsDir, DRY_RUN_HELP};
use pgward_shared::config::GlobalArgs;
use pgward_shared::error::Exit;
use pgward_shared::fleet::{FleetArgs, FleetKind};
use pgward_shared::output::{parse_args, run};

const TOOL: &str = "migrate";

/// The exit classes pgward-migrate ends with besides those every binary does.
const EXITS: &[Exit] = &[
    Exit::Failed,
    Exit::Attention,
    Exit::Integrity,
    Exit::Refused,
];

#[derive(Parser)]
#[command(
    name = "pgward-migrate",
    version,
    about = "Prisma-compatible PostgreSQL migrations: deploy, status, resolve, rollback, new, seed",
    long_about = about_with_exit_codes("Reads a Prisma migrations folder and writes the same _prisma_migrations table as \
`prisma migrate deploy`, so the two can be used interchangeably. Prints one JSON document on stdout.", EXITS),
    after_help = "Examples:\n  DATABASE_URL=postgresql://app:secret@localhost/app pgward-migrate deploy\n  pgward-migrate status --env staging --format text"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations in order, under Prisma's advisory lock
    #[command(
        after_help = "Examples:\n  pgward-migrate deploy --dry-run\n  pgward-migrate deploy --env production --yes --lock-timeout 5s --retries 3\n  pgward-migrate deploy --targets tenants.txt --parallel 8 --canary 3   # a fleet (docs/fleet.md)\n  psql -Atc \"select url from tenants\" | pgward-migrate deploy --targets -"
    )]
    Deploy {
        #[command(flatten)]
        dir: MigrationsDir,
        #[command(flatten)]
        options: DeployOptions,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Compare the migrations folder with the history: applied, pending, failed, edited, missing
    #[command(
        after_help = format!("{}\n\nExample:\n  pgward-migrate status --format text", exit_codes_noted(
            &[Exit::Success, Exit::Attention, Exit::Integrity],
            &[(Exit::Success, "up to date"), (Exit::Attention, "pending"), (Exit::Integrity, "failed, edited or missing")],
        ))
    )]
    Status {
        #[command(flatten)]
        dir: MigrationsDir,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Mark a failed migration rolled back, or a migration applied by hand as applied
    #[command(
        after_help = "Examples:\n  pgward-migrate resolve --rolled-back 20240101000000_add_index\n  pgward-migrate resolve --applied 20230101000000_init   # baseline an existing database"
    )]
    Resolve {
        #[command(flatten)]
        dir: MigrationsDir,
        #[command(flatten)]
        options: ResolveOptions,
    },
    /// Run down.sql of the newest applied migrations and forget them in the history
    #[command(
        after_help = "Examples:\n  pgward-migrate rollback --dry-run\n  pgward-migrate rollback --steps 2\n  pgward-migrate rollback --to 20240101000000_init"
    )]
    Rollback {
        #[command(flatten)]
        dir: MigrationsDir,
        #[command(flatten)]
        options: RollbackOptions,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Create <UTC timestamp>_<name>/migration.sql and down.sql
    #[command(after_help = "Example:\n  pgward-migrate new add_users_table")]
    New {
        #[command(flatten)]
        dir: MigrationsDir,
        /// What the migration does, e.g. add_users_table
        name: String,
        #[arg(long, help = DRY_RUN_HELP)]
        dry_run: bool,
    },
    /// Run seed SQL files in name order; refused in protected environments
    #[command(
        after_help = "Example:\n  pgward-migrate seed --env staging --dir prisma/seeds/staging"
    )]
    Seed {
        /// Seeds folder [default: prisma/seeds/<env>, else prisma/seeds]
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        #[arg(long, help = DRY_RUN_HELP)]
        dry_run: bool,
    },
}

fn main() {
    let cli: Cli = parse_args(TOOL);
    match cli.command {
        Command::Deploy {
            dir,
            options,
            fleet,
        } => {
            fleet.run_if_given(TOOL, "deploy", &cli.global, FleetKind::Changes);
            run(TOOL, "deploy", cli.global, |ctx| {
                deploy(ctx, &dir.resolve(&ctx.settings), &options)
            })
        }
        Command::Status { dir, fleet } => {
            fleet.run_if_given(TOOL, "status", &cli.global, FleetKind::Reads);
            run(TOOL, "status", cli.global, |ctx| {
                status(ctx, &dir.resolve(&ctx.settings))
            })
        }
        Command::Resolve { dir, options } => run(TOOL, "resolve", cli.global, |ctx| {
            resolve(ctx, &dir.resolve(&ctx.settings), &options)
        }),
        Command::Rollback {
            dir,
            options,
            fleet,
        } => {
            fleet.run_if_given(TOOL, "rollback", &cli.global, FleetKind::Changes);
            run(TOOL, "rollback", cli.global, |ctx| {
                rollback(ctx, &dir.resolve(&ctx.settings), &options)
            })
        }
        Command::New { dir, name, dry_run } => run(TOOL, "new", cli.global, |ctx| {
            new_migration(ctx, &dir.resolve(&ctx.settings), &name, dry_run)
        }),
        Command::Seed { dir, dry_run } => run(TOOL, "seed", cli.global, |ctx| {
            let dir = dir.unwrap_or_else(|| default_seeds_dir(ctx.settings.env_name.as_deref()));
            seed(ctx, &dir, dry_run)
        }),
    }
}
