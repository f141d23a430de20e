//! `pgward-report`: flags in, one document out. The work lives in the library.

use std::time::Duration;

use clap::{Parser, Subcommand};
use pgward_report::audit::{audit, AuditFilter};
use pgward_report::backups::backups;
use pgward_report::health::{health, HealthOptions};
use pgward_report::migrations::migrations;
use pgward_report::render::read_document;
use pgward_report::scripts::{self, without_database};
use pgward_shared::cli::{
    about_with_exit_codes, FromLocation, MigrationsDir, DEFAULT_MAX_BACKUP_AGE,
};
use pgward_shared::config::{parse_duration, GlobalArgs};
use pgward_shared::error::Exit;
use pgward_shared::fleet::{FleetArgs, FleetKind};
use pgward_shared::output::{parse_args, print_envelope, run};
use pgward_shared::storage::S3Options;

const TOOL: &str = "report";

/// The exit classes pgward-report ends with besides those every binary does (attention:
/// `backups` finds the newest backup older than --max-age, or none).
const EXITS: &[Exit] = &[Exit::Failed, Exit::Attention, Exit::Storage];

#[derive(Parser)]
#[command(
    name = "pgward-report",
    version,
    about = "Reports: migration history, database health, backup inventory and age, the audit log; any pgward JSON rendered",
    long_about = about_with_exit_codes("Reads, never changes. Prints one document on stdout: the JSON envelope by default, or \
--format text, markdown (PR comments, CI step summaries), html (one self-contained page with SVG charts) \
or prometheus (node_exporter textfile collector). `backups` needs attention when the newest backup is \
older than --max-age, or there is none.", EXITS),
    after_help = "Examples:\n  pgward-report health --format html > health.html\n  pgward-report backups --from /var/backups/pgward --max-age 26h --format prometheus > /var/lib/node_exporter/pgward.prom\n  pgward-migrate status | pgward-report render --format markdown >> \"$GITHUB_STEP_SUMMARY\""
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The migration history joined with the folder: attempts, durations, failures with
    /// their logs, rollbacks and re-applies, totals, the slowest ten
    #[command(
        after_help = "Without the migrations folder the report covers the history alone.\n\nExample:\n  pgward-report migrations --dir prisma/migrations --format html > migrations.html"
    )]
    Migrations {
        #[command(flatten)]
        dir: MigrationsDir,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Table and index sizes, dead rows, vacuum and analyze, unused indexes, cache hit
    /// ratio, connections, long-running queries and blocking locks
    #[command(
        after_help = "Examples:\n  pgward-report health --env production --format text\n  pgward-report health --targets tenants.txt --format prometheus   # per-target series (docs/fleet.md)"
    )]
    Health {
        #[command(flatten)]
        options: HealthOptions,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// The backups of a location: sizes and durations over time, the newest backup's age;
    /// exit 3 when it is older than --max-age, or when there is none
    #[command(
        after_help = "Example (cron, alarm on exit 3):\n  pgward-report backups --from s3://acme-db-backups/prod --max-age 26h --format text"
    )]
    Backups {
        #[command(flatten)]
        from: FromLocation,
        /// The newest backup may be this old
        #[arg(long, value_name = "DURATION", default_value = DEFAULT_MAX_BACKUP_AGE, value_parser = parse_duration)]
        max_age: Duration,
        #[command(flatten)]
        storage: S3Options,
    },
    /// Print a JSON document any pgward binary printed in --format text, markdown, html or
    /// prometheus
    #[command(
        after_help = "Examples:\n  pgward-report render status.json --format html > status.html\n  pgward-validate lint | pgward-report render - --format markdown"
    )]
    Render {
        /// The JSON file, or `-` for stdin
        #[arg(value_name = "FILE|-", default_value = "-")]
        file: String,
    },
    /// List the audit log (see --audit-log), newest first
    #[command(
        after_help = "Example:\n  pgward-report audit --audit-log /var/log/pgward/audit.jsonl --since 7d --tool migrate --format text"
    )]
    Audit(AuditFilter),
    /// For scripts/: the environment's settings of pgward.toml resolved, defaults filled
    /// in (hooks, health check, notification, run log); never connects
    #[command(
        after_help = "Example:\n  pgward-report settings --env staging | jq -r .result.log_dir"
    )]
    Settings,
    /// GET the application's health URL until it answers the expected status (retries
    /// with a doubling pause, a total timeout); exit 1 (APP_UNHEALTHY) when it never does
    #[command(
        after_help = "Examples:\n  pgward-report app-health --env production\n  pgward-report app-health --url http://127.0.0.1:8080/healthz --retries 10 --timeout 2min"
    )]
    AppHealth {
        /// The URL [default: health_url of the environment]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The status a healthy application answers [default: health_status, else 200]
        #[arg(long, value_name = "STATUS")]
        expect: Option<u16>,
        /// GETs at most [default: health_retries, else 5]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        retries: Option<u32>,
        /// The whole check's limit [default: health_timeout, else 60s]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
    /// For scripts/: send a script run's one notification (its final JSON document) to the
    /// environment's notify_url (PGWARD_NOTIFY_URL wins) when its notify_on wants it
    #[command(after_help = "Example:\n  pgward-report notify run.json --env production")]
    Notify {
        /// The script's JSON document
        #[arg(value_name = "FILE")]
        file: String,
    },
}

fn main() {
    let cli: Cli = parse_args(TOOL);
    match cli.command {
        Command::Migrations { dir, fleet } => {
            fleet.run_if_given(TOOL, "migrations", &cli.global, FleetKind::Reads);
            run(TOOL, "migrations", cli.global, |ctx| {
                migrations(ctx, &dir.resolve(&ctx.settings))
            })
        }
        Command::Health { options, fleet } => {
            fleet.run_if_given(TOOL, "health", &cli.global, FleetKind::Reads);
            run(TOOL, "health", cli.global, |ctx| health(ctx, &options))
        }
        Command::Backups {
            from,
            max_age,
            storage,
        } => run(TOOL, "backups", cli.global, |ctx| {
            backups(ctx, from.locations(), &storage, max_age)
        }),
        // The document printed is the one read, not an envelope about reading it; only a
        // document that cannot be read gets render's own (failed) envelope.
        Command::Render { file } => match read_document(&file) {
            Ok(document) => {
                print_envelope(&document, cli.global.format);
                std::process::exit(0);
            }
            Err(e) => run(TOOL, "render", cli.global, |_| Err(e.into())),
        },
        Command::Audit(filter) => run(TOOL, "audit", cli.global, |ctx| audit(ctx, &filter)),
        Command::Settings => run(
            TOOL,
            "settings",
            without_database(cli.global),
            scripts::settings,
        ),
        Command::AppHealth {
            url,
            expect,
            retries,
            timeout,
        } => run(TOOL, "app-health", without_database(cli.global), |ctx| {
            scripts::app_health(ctx, url, expect, retries, timeout)
        }),
        Command::Notify { file } => run(TOOL, "notify", without_database(cli.global), |ctx| {
            scripts::notify(ctx, &file)
        }),
    }
}
