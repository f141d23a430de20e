//! `pgward-validate preflight`: the pre-migration checklist of the guides pgward replaces,
//! as checks with pass/fail and the fix — connectable, server version, privileges for the
//! pending migrations, the migration lock free, no failed migration, the pending
//! migrations lint clean, a recent verified backup, a pg_dump that can dump this server.
//!
//! The backup check asks `pgward-backup list` (beside this binary or on PATH) rather than
//! reading storage itself: validate never links the S3 client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use pgward_shared::archive::sources::{
    choose_source, newest_verified, source_in_use, BackupEntry, BackupSource, Listing,
};
use pgward_shared::cli::{MigrationsDir, DEFAULT_MAX_BACKUP_AGE, LOCATION_HELP, STRICT_HELP};
use pgward_shared::config::parse_duration;
use pgward_shared::connect::Session;
use pgward_shared::error::{Error, Result};
use pgward_shared::migrations::history;
use pgward_shared::migrations::state::MigrationState;
use pgward_shared::migrations::MigrationsFolder;
use pgward_shared::output::{Context, Failure, Outcome, ReadEnvelope};
use pgward_shared::pgtools;

use crate::schema::finish;
use pgward_shared::findings::Totals;
use pgward_shared::findings::{CheckStatus, PreflightCheck, PreflightResult};
use pgward_shared::findings::{Finding, Location, Severity};

/// Oldest PostgreSQL major version pgward supports (docs/contract.md: 13 and newer).
const MIN_SERVER_MAJOR: i32 = 13;

/// preflight's options: its flags, parsed straight into them.
#[derive(Debug, Clone, clap::Args)]
pub struct PreflightOptions {
    // The migrations folder.
    #[command(flatten)]
    pub dir: MigrationsDir,
    // The backup locations to look in (the same as backup's --from).
    #[arg(long, value_name = "LOCATION", help = LOCATION_HELP)]
    pub backups: Vec<String>,
    /// The newest verified backup must be younger than this
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = DEFAULT_MAX_BACKUP_AGE)]
    pub max_backup_age: Duration,
    // Warnings (skipped checks) fail the run (exit 3).
    #[arg(long, help = STRICT_HELP)]
    pub strict: bool,
}

struct Checklist(Vec<PreflightCheck>);

impl Checklist {
    fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.push(name, CheckStatus::Pass, detail.into(), None);
    }
    fn fail(&mut self, name: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, CheckStatus::Fail, detail.into(), Some(fix.into()));
    }
    fn skip(&mut self, name: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(name, CheckStatus::Skip, detail.into(), Some(fix.into()));
    }
    fn push(&mut self, name: &str, status: CheckStatus, detail: String, fix: Option<String>) {
        self.0.push(PreflightCheck {
            name: name.to_string(),
            status,
            detail,
            fix,
        });
    }
}

/// Runs the checklist.
pub fn run(ctx: &Context, options: &PreflightOptions) -> Result<Outcome, Failure> {
    let mut list = Checklist(Vec::new());
    let folder = MigrationsFolder::read(&options.dir.resolve(&ctx.settings))?;
    let session = match ctx.connect() {
        Ok(s) => {
            list.pass(
                "connectable",
                format!("connected to {}", s.settings.display_target()),
            );
            Some(s)
        }
        Err(e) if e.exit() == pgward_shared::Exit::Connect => {
            list.fail("connectable", e.to_string(), e.hint());
            None
        }
        Err(e) => return Err(e.into()),
    };
    let server_version_num = session.as_ref().map(|s| s.server_version_num);
    if let Some(mut session) = session {
        database_checks(ctx, &mut session, &folder, &mut list)?;
    }
    backup_check(ctx, options, &mut list);
    // Without a server there is no version to fit: the item is left out, not failed.
    if let Some(server_version_num) = server_version_num {
        pg_dump_check(server_version_num, &mut list);
    }
    let findings: Vec<Finding> = list
        .0
        .iter()
        .filter(|c| c.status != CheckStatus::Pass)
        .map(|c| Finding {
            rule: format!("preflight-{}", c.name),
            severity: if c.status == CheckStatus::Fail {
                Severity::Error
            } else {
                Severity::Warning
            },
            location: Location {
                file: None,
                line: None,
                column: None,
                object: None,
            },
            message: c.detail.clone(),
            lock: None,
            why: "the migration should not start until the checklist passes".into(),
            fix: c.fix.clone().unwrap_or_default(),
            span: None,
            confirmed: None,
            observed: None,
        })
        .collect();
    let totals = Totals::of(&findings);
    let result = PreflightResult {
        checks: list.0,
        findings,
        totals,
    };
    finish("preflight", totals, options.strict, result)
}

fn database_checks(
    ctx: &Context,
    session: &mut Session,
    folder: &MigrationsFolder,
    list: &mut Checklist,
) -> Result<()> {
    let major = session.server_version_num / 10_000;
    if major >= MIN_SERVER_MAJOR {
        list.pass("server-version", format!("PostgreSQL {major}"));
    } else {
        list.fail(
            "server-version",
            format!("PostgreSQL {major} is older than {MIN_SERVER_MAJOR}"),
            "upgrade the server; pgward supports PostgreSQL 13 and newer",
        );
    }
    let schema = session.schema().to_string();
    let client = &mut session.client;
    let rows = history::read_rows_if_any(client, &schema)?;
    let state = MigrationState::compare(folder, &rows);

    let (can_create, is_super): (bool, bool) = {
        let r = client
            .query_one(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) \
                        THEN has_schema_privilege(current_user, $1, 'CREATE') \
                        ELSE has_database_privilege(current_user, current_database(), 'CREATE') END, \
                        (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
                &[&schema],
            )
            .map_err(|e| Error::query("checking privileges", &e))?;
        (r.get(0), r.get(1))
    };
    let pending: std::collections::HashSet<&str> =
        state.pending.iter().map(String::as_str).collect();
    let touched = tables_altered(folder, &pending)?;
    let not_owned: Vec<String> = if is_super || touched.is_empty() {
        Vec::new()
    } else {
        client
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = ANY($2) AND NOT pg_has_role(current_user, c.relowner, 'USAGE') \
                 ORDER BY 1",
                &[&schema, &touched],
            )
            .map_err(|e| Error::query("checking table ownership", &e))?
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    if !can_create {
        list.fail(
            "privileges",
            format!("the user cannot CREATE in schema {schema}"),
            format!("GRANT CREATE ON SCHEMA {schema} TO the migration user"),
        );
    } else if !not_owned.is_empty() {
        list.fail(
            "privileges",
            format!(
                "pending migrations alter tables the user does not own: {}",
                not_owned.join(", ")
            ),
            "run migrations as the tables' owner (or a role that is a member of it)",
        );
    } else {
        list.pass(
            "privileges",
            format!(
                "CREATE on {schema}; owns the {} table(s) the pending migrations alter",
                touched.len()
            ),
        );
    }

    match history::lock_holder(client)? {
        None => list.pass("advisory-lock-free", "nobody holds the migration lock"),
        Some(h) => list.fail(
            "advisory-lock-free",
            format!(
                "pid {} ({}) holds the migration lock",
                h.pid, h.application_name
            ),
            "wait for the other deploy to finish, or end the session if it is stuck",
        ),
    }
    if state.failed.is_empty() {
        list.pass("no-failed-migration", "no failed migration in the history");
    } else {
        let names: Vec<_> = state.failed.iter().map(|f| f.name.clone()).collect();
        list.fail(
            "no-failed-migration",
            format!("failed migrations block deploy (P3009): {}", names.join(", ")),
            format!("inspect with `pgward-migrate status`, then `pgward-migrate resolve --rolled-back {}`", names[0]),
        );
    }
    // Applied migrations are linted too (not reported), so later files know what they built.
    let sources = crate::lint::migration_sources(folder, |m| pending.contains(m.name.as_str()))?;
    let ignore = ctx
        .settings
        .config
        .lint
        .ignore
        .iter()
        .filter_map(|id| crate::lint::Rule::from_id(id))
        .collect();
    let (lint, _) = crate::lint::lint_sources(&sources, &ignore);
    let errors = lint.totals.errors;
    if errors == 0 {
        list.pass(
            "pending-lint-clean",
            format!(
                "{} pending migration(s), no lint errors",
                state.pending.len()
            ),
        );
    } else {
        list.fail(
            "pending-lint-clean",
            format!("{errors} lint error(s) in the pending migrations"),
            "run `pgward-validate lint` and fix or suppress each finding",
        );
    }
    Ok(())
}

fn backup_check(ctx: &Context, options: &PreflightOptions, list: &mut Checklist) {
    let locations = if options.backups.is_empty() {
        ctx.settings.backup_locations()
    } else {
        Some(options.backups.clone())
    };
    let Some(locations) = locations else {
        list.skip(
            "recent-verified-backup",
            "no backup location configured",
            "pass --backups LOCATION or set `backups` for the environment in pgward.toml",
        );
        return;
    };
    let Some(backup_bin) = sibling_binary("pgward-backup") else {
        list.fail(
            "recent-verified-backup",
            "pgward-backup is not installed beside pgward-validate or on PATH",
            "install pgward-backup to let preflight read the backup inventory",
        );
        return;
    };
    let location = locations.join(", ");
    let output = Command::new(&backup_bin)
        .arg("list")
        .args(locations.iter().flat_map(|l| ["--from", l.as_str()]))
        .arg("--quiet")
        .output();
    let entries: std::result::Result<Vec<BackupEntry>, String> = match output {
        Ok(o) => serde_json::from_slice::<ReadEnvelope<Listing>>(&o.stdout)
            .map_err(|e| format!("pgward-backup list printed no envelope this pgward reads: {e}"))
            .and_then(
                |envelope| match (envelope.ok, envelope.result, envelope.error) {
                    (true, Some(listing), _) => Ok(listing.backups),
                    (_, _, Some(error)) => Err(error.message),
                    _ => Err("pgward-backup list failed without an error".to_string()),
                },
            ),
        Err(e) => Err(format!("cannot run {}: {e}", backup_bin.display())),
    };
    match entries {
        Err(reason) => list.fail("recent-verified-backup", reason, format!("check the location {location}")),
        Ok(entries) => match choose_source(&entries, source_in_use(ctx)) {
            Err(several) => list.fail(
                "recent-verified-backup",
                format!(
                    "{location} holds backups of {}, and no database is configured to say whose to check",
                    several.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ),
                "pass --database-url (or set DATABASE_URL, or --env) for the database being migrated",
            ),
            Ok(None) => list.fail(
                "recent-verified-backup",
                format!("no verified backup at {location}"),
                take_and_verify(&locations),
            ),
            Ok(Some(source)) => backup_age_check(&entries, &source, &locations, options, list),
        },
    }
}

/// The commands that take a backup into `locations` (every copy) and verify it.
fn take_and_verify(locations: &[String]) -> String {
    let flags = |flag: &str| {
        locations
            .iter()
            .map(|l| format!("{flag} {l}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "pgward-backup backup {} && pgward-backup verify latest {}",
        flags("--to"),
        flags("--from")
    )
}

/// The newest verified backup of `source` (never one of another database) against
/// `--max-backup-age`.
fn backup_age_check(
    entries: &[BackupEntry],
    source: &BackupSource,
    locations: &[String],
    options: &PreflightOptions,
    list: &mut Checklist,
) {
    let location = locations.join(", ");
    match newest_verified(entries, source) {
        None => list.fail(
            "recent-verified-backup",
            format!("no verified backup of {source} at {location}"),
            take_and_verify(locations),
        ),
        Some(b) => {
            let age = Utc::now() - b.created_at;
            let max =
                chrono::Duration::from_std(options.max_backup_age).unwrap_or(chrono::Duration::MAX);
            if age <= max {
                list.pass(
                    "recent-verified-backup",
                    format!("{} is verified and {} min old", b.id, age.num_minutes()),
                );
            } else {
                list.fail(
                    "recent-verified-backup",
                    format!(
                        "the newest verified backup {} is {} h old",
                        b.id,
                        age.num_hours()
                    ),
                    format!("take a fresh one: {}", take_and_verify(locations)),
                );
            }
        }
    }
}

/// Whether the pg_dump pgward-backup would run (`PGWARD_PG_BINDIR`, else PATH) can dump
/// this server, judged as pgward-backup judges it and reported in its words.
fn pg_dump_check(server_version_num: i32, list: &mut Checklist) {
    let server_major = server_version_num / 10_000;
    match pgtools::check_fits_server("pg_dump", server_version_num) {
        Ok(text) => list.pass("pg-dump-version", format!("{text} (server {server_major})")),
        Err(e) => list.fail("pg-dump-version", e.to_string(), e.hint()),
    }
}

/// The tables the pending migrations alter, drop, rename or index (parsed, not matched):
/// the ones the migration user must own.
fn tables_altered(
    folder: &MigrationsFolder,
    pending: &std::collections::HashSet<&str>,
) -> Result<Vec<String>> {
    let mut tables = std::collections::BTreeSet::new();
    for m in folder
        .migrations
        .iter()
        .filter(|m| pending.contains(m.name.as_str()))
    {
        let Ok(statements) = pgward_shared::sql::parse_statements(m.script()?) else {
            continue;
        };
        for s in statements {
            use pg_query::NodeEnum;
            let relation = match &s.node {
                NodeEnum::AlterTableStmt(a) => a.relation.as_ref(),
                NodeEnum::IndexStmt(i) => i.relation.as_ref(),
                NodeEnum::RenameStmt(r) => r.relation.as_ref(),
                NodeEnum::CreateTrigStmt(t) => t.relation.as_ref(),
                _ => None,
            };
            if let Some(r) = relation {
                tables.insert(r.relname.clone());
            }
        }
    }
    Ok(tables.into_iter().collect())
}

/// `name` beside the running binary, else on PATH.
fn sibling_binary(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.parent()?.join(name);
    if beside.is_file() {
        return Some(beside);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| Path::new(p).is_file())
    })
}
