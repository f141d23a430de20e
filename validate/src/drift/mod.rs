//! `pgward-validate drift`: does the live schema still match what its migrations produce?
//!
//! The migrations recorded as applied in the live `_prisma_migrations` are replayed, in
//! folder order and with pgward-migrate's own engine, into a shadow database
//! (`shadow.rs`); both databases are then read from the catalogs into one normalised model
//! ([`introspect`], [`model`]) and compared object by object ([`diff`]). A migration
//! applied live but missing from the folder cannot be replayed and is a difference of its
//! own. No difference: exit 0; differences: exit 3 with every one in
//! `result.differences`.
//!
//! The replay and the live read run at the same time, on two sessions, so drift costs
//! little more than the replay itself.

pub mod diff;
pub mod introspect;
pub mod model;
pub(crate) mod shadow;

use std::collections::BTreeMap;

use pgward_shared::cli::{MigrationsDir, ShadowUrl};
use pgward_shared::codes::{ErrorCode, WarningCode};
use pgward_shared::connect::connect;
use pgward_shared::connect::dburl::ConnectionSettings;
use pgward_shared::error::{Error, Result};
use pgward_shared::log;
use pgward_shared::migrations::engine::{
    run_script_traced, Bookkeeping, RunMode, ScriptPlan, Watch,
};
use pgward_shared::migrations::history::{self, HistoryRow};
use pgward_shared::migrations::state::MigrationState;
use pgward_shared::migrations::warnings::{state_warnings, StateReader};
use pgward_shared::migrations::{LocalMigration, MigrationsFolder};
use pgward_shared::output::{Context, Failure, Outcome};
use pgward_shared::progress::Progress;
use pgward_shared::sql::{self, quote_ident};

use model::SchemaModel;
use pgward_shared::findings::DriftResult;
use pgward_shared::findings::{Change, Difference, ObjectKind};
use shadow::Shadow;

/// drift's options: its flags, parsed straight into them.
#[derive(Debug, Clone, clap::Args)]
pub struct DriftOptions {
    // The migrations folder.
    #[command(flatten)]
    pub dir: MigrationsDir,
    // The shadow database.
    #[command(flatten)]
    pub shadow: ShadowUrl,
}

/// Runs drift.
pub fn run(ctx: &Context, options: &DriftOptions) -> Result<Outcome, Failure> {
    let folder = MigrationsFolder::read(&options.dir.resolve(&ctx.settings))?;
    let db = ctx.database()?;
    let given = options
        .shadow
        .shadow_url
        .as_deref()
        .map(|url| given_shadow(&db, url))
        .transpose()?;
    let shadow_name = match &given {
        Some(settings) => settings.dbname.clone(),
        None => shadow::temporary_name(),
    };
    let mut live = connect(&db, &shadow::owner_tag(&shadow_name))?;
    let schema = live.schema().to_string();
    let rows = if history::table_exists(&mut live.client, &schema)? {
        history::read_rows(&mut live.client, &schema)?
    } else {
        ctx.warn(
            WarningCode::NoMigrationHistory,
            format!("schema `{schema}` has no _prisma_migrations table: no migration is recorded as applied, so every object of the database counts as extra"),
        );
        Vec::new()
    };
    let state = MigrationState::compare(&folder, &rows);
    // Failed and edited migrations: the replay cannot reproduce those faithfully.
    ctx.warn_all(state_warnings(&state, StateReader::Drift));
    let replay: Vec<&LocalMigration> = state
        .applied
        .iter()
        .filter_map(|a| folder.get(&a.name))
        .collect();
    let mut result = DriftResult {
        migrations_dir: folder.path.display().to_string(),
        schema: schema.clone(),
        shadow: shadow_name.clone(),
        shadow_temporary: given.is_none(),
        migrations_applied: 0,
        migrations_pending: state.pending.len(),
        leftovers_dropped: shadow::drop_leftovers(ctx, &mut live.client)?,
        differences: missing_locally(&state, &rows),
        compared: BTreeMap::new(),
    };
    // Parsing the migrations overlaps with CREATE DATABASE, the slowest fixed step.
    let (steps, shadow) = std::thread::scope(|scope| {
        let planning = scope.spawn(|| plan_replay(&replay));
        let shadow = match &given {
            Some(settings) => Shadow::adopt(live, settings),
            None => Shadow::create(live, &shadow_name, "pgward-validate drift"),
        };
        let steps = planning
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (steps, shadow)
    });
    let mut shadow = shadow?;
    let steps = steps?;
    // Nothing is replayed when a migration holds statements that act on the whole server
    // and the shadow shares the live server: they would run on production again.
    // Statements that reach other servers (a subscription's publisher, dblink) act on
    // them from any shadow: those are never replayed.
    if let Some(refusal) = refusal(&steps, &mut shadow)? {
        return Err(Failure::with_result(refusal, &result));
    }
    let models = replay_and_read(&mut shadow, &steps, &schema, &mut result.migrations_applied);
    shadow.close_or_warn(ctx);
    let (expected, actual) = match models {
        Ok(models) => models,
        Err(e) => return Err(Failure::with_result(e, &result)),
    };
    result.differences.extend(diff::compare(&expected, &actual));
    result.compared = diff::compared_counts(&expected, &actual)
        .into_iter()
        .map(|(kind, n)| (kind.to_string(), n))
        .collect();
    if result.differences.is_empty() {
        log::info(&format!(
            "no drift: the database matches its {} applied migration(s)",
            result.migrations_applied
        ));
        return Ok(Outcome::ok(result));
    }
    ctx.warn(
        WarningCode::DriftDetected,
        format!(
            "the database differs from what its {} applied migration(s) produce: {}",
            result.migrations_applied,
            summary(&result.differences)
        ),
    );
    Ok(Outcome::attention(result))
}

/// The refusal to replay `steps` into `shadow`, if they hold statements that act on the
/// whole server (they would run on the live server again when the shadow shares it) or
/// that reach other servers (a subscription's publisher, dblink: from any shadow).
pub(crate) fn refusal(steps: &[ReplayStep<'_>], shadow: &mut Shadow) -> Result<Option<Error>> {
    let cluster_wide = cluster_wide_statements(steps);
    let other_servers: Vec<String> = cluster_wide
        .iter()
        .filter(|(_, other)| *other)
        .map(|(s, _)| s.clone())
        .collect();
    let shadow_name = shadow.name().to_string();
    let refusal = if !other_servers.is_empty() {
        Some((
            other_servers,
            "they connect to other servers, whichever server the shadow is on".to_string(),
            true,
        ))
    } else if !cluster_wide.is_empty() && shadow.on_live_server()? {
        let place = if shadow.is_temporary() {
            format!("the shadow database {shadow_name} would be a temporary database on the live server")
        } else {
            format!("--shadow-url names {shadow_name}, a database on the live server")
        };
        Some((
            cluster_wide.into_iter().map(|(s, _)| s).collect(),
            place,
            false,
        ))
    } else {
        None
    };
    Ok(refusal.map(
        |(statements, shadow, other_servers)| Error::ClusterWideReplay {
            statements,
            shadow,
            other_servers,
        },
    ))
}

/// The `--shadow-url` database, in the live database's schema (the replay must create
/// objects where deploy created them live).
pub(crate) fn given_shadow(live: &ConnectionSettings, url: &str) -> Result<ConnectionSettings> {
    let mut settings = ConnectionSettings::from_url(url)?;
    if settings.host == live.host && settings.port == live.port && settings.dbname == live.dbname {
        return Err(Error::usage(
            format!(
                "--shadow-url names the target database itself ({})",
                live.display_target()
            ),
            "pass an empty database of its own as the shadow, or omit --shadow-url to let drift create a temporary one",
        ));
    }
    settings.schema = live.schema.clone();
    Ok(settings)
}

/// A difference for every migration applied live but missing from the folder.
fn missing_locally(state: &MigrationState, rows: &[HistoryRow]) -> Vec<Difference> {
    state
        .missing_locally
        .iter()
        .map(|name| {
            let finished_at = rows
                .iter()
                .filter(|r| &r.migration_name == name && r.is_applied())
                .filter_map(|r| r.finished_at)
                .max();
            Difference {
                kind: ObjectKind::Migration,
                object: name.clone(),
                change: Change::ExtraInDatabase,
                expected: None,
                actual: Some(serde_json::json!({ "finished_at": finished_at })),
                detail: "recorded as applied in _prisma_migrations but missing from the migrations folder, so the shadow cannot replay it; what it created shows up as extra objects".to_string(),
            }
        })
        .collect()
}

/// A migration ready to replay.
pub(crate) struct ReplayStep<'m> {
    /// How messages name it (the migration, or the file).
    pub name: &'m str,
    /// Its SQL.
    pub script: &'m str,
    /// How it runs.
    pub plan: ScriptPlan,
}

/// Reads and plans `migrations` as deploy would run them.
fn plan_replay<'m>(migrations: &[&'m LocalMigration]) -> Result<Vec<ReplayStep<'m>>> {
    migrations
        .iter()
        .map(|m| {
            let script = m.script()?;
            Ok(ReplayStep {
                name: &m.name,
                script,
                plan: ScriptPlan::new(script),
            })
        })
        .collect()
}

/// `(migration line N: WHAT, reaches other servers)` for every statement of the replay
/// that acts beyond its database (roles, databases, tablespaces, server settings,
/// subscriptions...), and for every script that cannot be parsed (and so checked).
fn cluster_wide_statements(steps: &[ReplayStep<'_>]) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    for step in steps {
        // A script the parser rejects cannot be checked: on the live server it is refused
        // like a server-wide statement, since nothing says it is not one.
        if let RunMode::Whole { reason } = &step.plan.mode {
            found.push((
                format!(
                    "{}: could not be parsed ({reason}), so it cannot be checked for statements that act on the whole server",
                    step.name
                ),
                false,
            ));
        }
        // A file whose statements depend on standard_conforming_strings is checked as
        // every session may read it: one could hide ALTER SYSTEM in a string literal.
        for (stmt, strings) in step.plan.statements_in_any_session() {
            if let Some(c) = sql::cluster_wide(&stmt.node) {
                let reading = match strings {
                    sql::Strings::Standard => "",
                    sql::Strings::BackslashEscapes => {
                        " (as a session with standard_conforming_strings = off reads the file)"
                    }
                };
                found.push((
                    format!(
                        "{} line {}: {}{reading}",
                        step.name,
                        sql::position_of(step.script, stmt.offset).line,
                        c.what
                    ),
                    c.other_servers,
                ));
            }
        }
    }
    found
}

/// Replays `migrations` into the shadow and reads both schemas, the live one while the
/// replay runs. Returns (expected, actual).
fn replay_and_read(
    shadow: &mut Shadow,
    migrations: &[ReplayStep<'_>],
    schema: &str,
    applied: &mut usize,
) -> Result<(SchemaModel, SchemaModel)> {
    let shadow_name = shadow.name().to_string();
    let (live_client, shadow_client) = shadow.sessions();
    std::thread::scope(|scope| {
        let replay = scope.spawn(|| {
            prepare_shadow(shadow_client, schema)?;
            replay_migrations(shadow_client, migrations, &shadow_name, applied)?;
            introspect::read_schema(shadow_client)
        });
        let actual = introspect::read_schema(live_client);
        let expected = replay
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok((expected?, actual?))
    })
}

/// Makes the shadow session replay like deploy ran live: in the history's schema, which
/// deploy creates when it is missing.
pub(crate) fn prepare_shadow(client: &mut postgres::Client, schema: &str) -> Result<()> {
    // Nothing in a throwaway database is worth waiting for the disk.
    client
        .batch_execute("SET synchronous_commit = off")
        .map_err(|e| Error::query("preparing the shadow session", &e))?;
    if !history::schema_exists(client, schema)? {
        client
            .batch_execute(&format!("CREATE SCHEMA {}", quote_ident(schema)))
            .map_err(|e| {
                Error::query(
                    format!("creating schema `{schema}` in the shadow database"),
                    &e,
                )
            })?;
    }
    Ok(())
}

/// Runs each migration as deploy would, without history rows; counts them in `applied`.
fn replay_migrations(
    client: &mut postgres::Client,
    migrations: &[ReplayStep<'_>],
    shadow_name: &str,
    applied: &mut usize,
) -> Result<()> {
    log::info(&format!(
        "replaying {} applied migration(s) into the shadow database {shadow_name}",
        migrations.len()
    ));
    // A bar on a terminal, a timestamped line every 10 s otherwise (shared/src/progress.rs).
    let progress = Progress::start_counting("replay", migrations.len() as u64, "migrations");
    for (i, m) in migrations.iter().enumerate() {
        // Files nobody may have reviewed yet, replayed on the live server.
        let run = run_script_traced(
            client,
            m.script,
            &m.plan,
            &Bookkeeping::default(),
            None,
            &mut Watch::every_statement(),
        );
        if let Err(failure) = run {
            return Err(failure.into_error(
                ErrorCode::ShadowMigrationFailed,
                format!(
                    "replaying migration `{}` ({} of {}) into the shadow database",
                    m.name,
                    i + 1,
                    migrations.len()
                ),
                "the applied migrations do not rebuild the database from empty: this one depends on something no earlier migration creates (made by hand live, or by a migration since deleted); add what it needs to an earlier migration, or baseline".to_string(),
            ));
        }
        *applied += 1;
        progress.add_items(1);
    }
    progress.finish();
    Ok(())
}

/// `3 difference(s): 1 column, 2 index`.
fn summary(differences: &[Difference]) -> String {
    let mut by_kind: BTreeMap<ObjectKind, usize> = BTreeMap::new();
    for d in differences {
        *by_kind.entry(d.kind).or_default() += 1;
    }
    let parts: Vec<String> = by_kind
        .iter()
        .map(|(kind, n)| format!("{n} {}", kind.name()))
        .collect();
    format!("{} difference(s) ({})", differences.len(), parts.join(", "))
}
