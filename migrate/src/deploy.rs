//! `pgward-migrate deploy`: apply pending migrations in Prisma's order, under Prisma's
//! advisory lock, recording each attempt in `_prisma_migrations` as Prisma does.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use pgward_shared::cli::{LockTimeout, StatementTimeout, DRY_RUN_HELP};
use pgward_shared::codes::WarningCode;
use pgward_shared::config::{parse_duration, GuardArgs};
use pgward_shared::error::{describe_pg_error, Error, Result};
use pgward_shared::migrations::history::{self, Attempt};
use pgward_shared::migrations::state::MigrationState;
use pgward_shared::migrations::warnings::{state_warnings, StateReader};
use pgward_shared::migrations::{LocalMigration, MigrationsFolder};
use pgward_shared::output::{Context, Failure, Outcome};
use pgward_shared::{interrupt, log};

use pgward_shared::migrations::engine::{
    drop_left_indexes, elapsed_ms, index_names as names, is_lock_timeout, run_script_traced,
    Bookkeeping, LeftBehind, ScriptFailure, ScriptPlan, Watch,
};
use pgward_shared::migrations::lock::with_migration_lock;
use pgward_shared::migrations::results::{DeployResult, DeployedMigration};
use pgward_shared::migrations::trace::{over_budget, summarize, OverBudget, ScriptTrace, Tracer};
use pgward_shared::render::human_seconds;

/// One stderr line per relation a traced migration locked in a way that blocks writes.
fn log_trace(name: &str, trace: &ScriptTrace) {
    for r in trace
        .relations
        .iter()
        .filter(|r| r.strongest.blocks_writes())
    {
        log::info(&format!(
            "{name}: {} on {} held {}{}; blocks {}",
            r.strongest.name(),
            r.relation,
            human_seconds(r.held_ms / 1000.0),
            if r.rewritten { " (rewritten)" } else { "" },
            r.blocks.words()
        ));
    }
}

/// Deploy's options: its flags, parsed straight into the engine's options.
#[derive(Debug, Clone, clap::Args)]
pub struct DeployOptions {
    /// Apply up to and including this migration only
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    // Say what would happen; change nothing.
    #[arg(long, help = DRY_RUN_HELP)]
    pub dry_run: bool,
    /// How long to wait for another deploy's lock
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub lock_wait: Duration,
    // `SET lock_timeout` on the migration session.
    #[command(flatten)]
    pub lock_timeout: LockTimeout,
    // `SET statement_timeout` on the migration session.
    #[command(flatten)]
    pub statement_timeout: StatementTimeout,
    /// Retry a migration that failed only on lock_timeout this many times
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// Back-off before the first retry, doubled each time
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub retry_backoff: Duration,
    /// Record for every statement its time, rows, the table locks it took and how long
    /// each was held, and the tables and indexes it rewrote (result.applied[].trace)
    #[arg(long, conflicts_with = "dry_run")]
    pub trace: bool,
    /// With --trace: exit 3 when a statement held a lock that blocks writes (or reads)
    /// longer than this, naming it (result.over_budget, warnings LOCK_OVER_BUDGET)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "trace")]
    pub max_lock: Option<Duration>,
    // --force / --yes.
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// Runs deploy.
pub fn deploy(ctx: &Context, dir: &Path, opts: &DeployOptions) -> Result<Outcome, Failure> {
    // The server starts the session while the folder is read, unless the protected
    // environment's guard may still refuse (or ask): then nothing connects before it.
    let guard_passes = opts.dry_run || ctx.settings.deploy_needs_no_confirmation(opts.guard);
    let early = guard_passes.then(|| ctx.connect_early()).flatten();
    let folder = MigrationsFolder::read_non_empty(dir)?;
    if !folder.has_lock_file {
        ctx.warn(
            WarningCode::NoMigrationLockFile,
            format!(
                "{} has no migration_lock.toml; the provider is not checked",
                dir.display()
            ),
        );
    }
    let db = ctx.database()?;
    if !opts.dry_run {
        // Audited before the guard: a refused attempt on a protected database is worth a line.
        ctx.audit(&db);
        ctx.settings
            .guard_deploy(&db.display_target(), opts.guard)?;
    }
    let mut session = ctx.connect_from(early)?;
    with_migration_lock(
        &mut session,
        opts.lock_wait,
        opts.dry_run,
        |client, schema| deploy_locked(ctx, client, &folder, schema, opts),
    )
}

fn deploy_locked(
    ctx: &Context,
    client: &mut postgres::Client,
    folder: &MigrationsFolder,
    schema: &str,
    opts: &DeployOptions,
) -> Result<Outcome, Failure> {
    let table_exists = history::table_exists(client, schema)?;
    if !table_exists {
        if history::schema_exists(client, schema)? && !history::schema_is_empty(client, schema)? {
            return Err(Error::SchemaNotEmpty {
                schema: schema.to_string(),
                first_migration: folder.migrations.first().map(|m| m.name.clone()),
            }
            .into());
        }
        if !opts.dry_run {
            history::create_table(client, schema)?;
        }
    }
    let rows = if table_exists {
        history::read_rows(client, schema)?
    } else {
        Vec::new()
    };
    let state = MigrationState::compare(folder, &rows);
    if !state.failed.is_empty() {
        return Err(Failure::with_result(
            Error::FailedMigrations {
                names: state.failed.iter().map(|f| f.name.clone()).collect(),
            },
            &state,
        ));
    }
    ctx.warn_all(state_warnings(&state, StateReader::Deploy));
    let (to_apply, still_pending) = select_pending(folder, &state, opts.to.as_deref())?;
    let mut result = DeployResult {
        migrations_dir: folder.path.display().to_string(),
        schema: schema.to_string(),
        dry_run: opts.dry_run,
        applied: Vec::new(),
        already_applied: state.applied.len(),
        still_pending,
        relations: None,
        over_budget: None,
    };
    if to_apply.is_empty() {
        log::info("no pending migrations to apply");
        return Ok(Outcome::ok(result));
    }
    if !opts.dry_run {
        set_session_timeouts(client, opts)?;
    }
    // The trace's second session, which watches the locks of statements that run outside
    // a transaction.
    let mut observer = if opts.trace {
        Some(ctx.connect()?)
    } else {
        None
    };
    // How the session reads the text sent, looked at from file to file.
    let mut watch = Watch::session();
    for m in to_apply {
        if opts.dry_run {
            // As the session reads it: a file whose statements depend on its reading of
            // string literals runs as this session would run it.
            let planned = ScriptPlan::new(m.script()?);
            let plan = planned
                .for_session(client)
                .map_err(|e| Error::query("reading how the session reads string literals", &e))?;
            result.applied.push(DeployedMigration {
                name: m.name.clone(),
                statements: plan.statements.len(),
                mode: plan.mode.clone(),
                duration_ms: None,
                retries: 0,
                trace: None,
            });
            continue;
        }
        log::info(&format!("applying {}", m.name));
        let observer = observer.as_mut().map(|s| &mut s.client);
        match apply_migration(ctx, client, schema, m, opts, observer, &mut watch) {
            Ok(done) => {
                if let Some(trace) = &done.trace {
                    log_trace(&m.name, trace);
                }
                result.applied.push(done);
            }
            Err(e) => return Err(Failure::with_result(e, &result)),
        }
    }
    if opts.trace {
        let traces: Vec<ScriptTrace> = result
            .applied
            .iter()
            .filter_map(|m| m.trace.clone())
            .collect();
        result.relations = Some(summarize(&traces));
    }
    log::info(&format!(
        "{} migration(s) {}",
        result.applied.len(),
        if opts.dry_run {
            "would be applied"
        } else {
            "applied"
        }
    ));
    if let Some(budget) = opts.max_lock {
        let over: Vec<OverBudget> = result
            .applied
            .iter()
            .filter_map(|m| m.trace.as_ref().map(|t| over_budget(&m.name, t, budget)))
            .flatten()
            .collect();
        for o in &over {
            ctx.warn(
                WarningCode::LockOverBudget,
                format!(
                    "{}, over the {} budget",
                    o.line(),
                    human_seconds(budget.as_secs_f64())
                ),
            );
        }
        let attention = !over.is_empty();
        result.over_budget = Some(over);
        if attention {
            // Applied all the same: the budget judges the locks, the migrations are done.
            return Ok(Outcome::attention(result));
        }
    }
    Ok(Outcome::ok(result))
}

/// The pending migrations to apply (up to `--to`) and those left pending.
fn select_pending<'f>(
    folder: &'f MigrationsFolder,
    state: &MigrationState,
    to: Option<&str>,
) -> Result<(Vec<&'f LocalMigration>, Vec<String>)> {
    let pending: Vec<&LocalMigration> = state
        .pending
        .iter()
        .filter_map(|name| folder.get(name))
        .collect();
    let Some(to) = to else {
        return Ok((pending, Vec::new()));
    };
    if folder.get(to).is_none() {
        return Err(Error::usage(
            format!(
                "--to names `{to}`, which is not in {}",
                folder.path.display()
            ),
            "pass the full folder name of a migration, as `pgward-migrate status` lists it",
        ));
    }
    match pending.iter().position(|m| m.name == to) {
        Some(i) => Ok((
            pending[..=i].to_vec(),
            pending[i + 1..].iter().map(|m| m.name.clone()).collect(),
        )),
        None => Ok((Vec::new(), pending.iter().map(|m| m.name.clone()).collect())),
    }
}

fn set_session_timeouts(client: &mut postgres::Client, opts: &DeployOptions) -> Result<()> {
    for (setting, value) in [
        ("lock_timeout", opts.lock_timeout.lock_timeout),
        (
            "statement_timeout",
            opts.statement_timeout.statement_timeout,
        ),
    ] {
        if let Some(v) = value {
            client
                .batch_execute(&format!("SET {setting} = {}", v.as_millis().max(1)))
                .map_err(|e| Error::query(format!("setting {setting}"), &e))?;
        }
    }
    Ok(())
}

/// Applies one migration, retrying lock timeouts; records every attempt.
///
/// A retry runs the whole migration again, so it is only safe when the failed attempt
/// left nothing behind: nothing of it committed, and the failing statement either ran in
/// a transaction or left only what pgward can clean. A CREATE INDEX CONCURRENTLY that
/// timed out in its wait phase has already committed an INVALID index; that index (the
/// one it created, found by oid) is dropped before the retry, and if it cannot be dropped
/// the migration fails naming it. Anything else a non-transactional statement may have
/// left stops the retries (`LOCK_TIMEOUT_NOT_RETRIED`).
fn apply_migration(
    ctx: &Context,
    client: &mut postgres::Client,
    schema: &str,
    m: &LocalMigration,
    opts: &DeployOptions,
    mut observer: Option<&mut postgres::Client>,
    watch: &mut Watch,
) -> Result<DeployedMigration> {
    let script = m.script()?;
    let plan = ScriptPlan::new(script);
    let started = Instant::now();
    let mut retries = 0;
    'attempts: loop {
        let attempt = Attempt::new(&m.name, &m.checksum);
        let books = Bookkeeping {
            on_start: Some(attempt.insert(schema)),
            on_finish: Some(history::finish_attempt(schema, &attempt)),
            on_progress: Some(Box::new(|n| history::progress_attempt(schema, &attempt, n))),
        };
        let mut tracer = match observer.as_deref_mut() {
            Some(o) => Some(
                Tracer::new(client, o)
                    .map_err(|e| Error::query("starting the trace of the migration", &e))?,
            ),
            None => None,
        };
        let failure = match run_script_traced(client, script, &plan, &books, tracer.as_mut(), watch)
        {
            Ok(done) => {
                return Ok(DeployedMigration {
                    name: m.name.clone(),
                    mode: done.mode,
                    statements: done.statements,
                    duration_ms: Some(elapsed_ms(started)),
                    retries,
                    trace: tracer.map(Tracer::finish),
                })
            }
            Err(f) => f,
        };
        let interrupted = interrupt::requested();
        if interrupted && !failure.committed_something {
            // Nothing reached the database: the migration stays pending, not failed.
            return Err(Error::Interrupted);
        }
        let logs = failure_logs(&m.name, &failure, interrupted);
        history::fail_attempt(schema, &attempt, &logs)
            .execute(client)
            .map_err(|e| Error::query(format!("recording the failure of {}", m.name), &e))?;
        let mut left = match &failure.left_behind {
            LeftBehind::InvalidIndexes(found) => found.clone(),
            _ => Vec::new(),
        };
        let wants_retry = failure.is_lock_timeout() && !interrupted && retries < opts.retries;
        let blocker = if failure.partly_committed() {
            Some("statements of it were committed before the failure, and a retry would run them again".to_string())
        } else if let LeftBehind::Unknown(why) = &failure.left_behind {
            Some(why.clone())
        } else {
            None
        };
        match (&blocker, wants_retry) {
            (None, true) => {
                // The timed-out attempt no longer counts; wait, drop what the failed
                // statement left, run the migration again. A cleanup that meets the same
                // lock waits again, within the same retry budget.
                history::roll_back_failed(schema, &m.name)
                    .execute(client)
                    .map_err(|e| Error::query("marking the timed-out attempt rolled back", &e))?;
                while retries < opts.retries {
                    let backoff = opts.retry_backoff * 2u32.saturating_pow(retries);
                    ctx.warn(
                        WarningCode::LockTimeoutRetry,
                        format!(
                            "{} hit lock_timeout; retry {} of {} in {} ms{}",
                            m.name,
                            retries + 1,
                            opts.retries,
                            backoff.as_millis(),
                            if left.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    ", after dropping the INVALID index {} its CREATE INDEX CONCURRENTLY left",
                                    names(&left)
                                )
                            }
                        ),
                    );
                    sleep_unless_interrupted(backoff)?;
                    retries += 1;
                    match drop_left_indexes(client, &mut left) {
                        Ok(()) => continue 'attempts,
                        Err(e) if is_lock_timeout(&e) => log::warn(&format!(
                            "the INVALID index {} could not be dropped yet: {}",
                            names(&left),
                            describe_pg_error(&e).1
                        )),
                        Err(e) => {
                            return Err(Error::query(
                                format!(
                                    "dropping the INVALID index {} before a retry",
                                    names(&left)
                                ),
                                &e,
                            ))
                        }
                    }
                }
                // Out of retries with the index still there: the migration is failed
                // again, not pending, until someone drops it.
                let again = Attempt::new(&m.name, &m.checksum);
                let logs = format!(
                    "{logs}\nThe INVALID index {} it left could not be dropped within {} retries; drop it with DROP INDEX CONCURRENTLY before deploying again.\n",
                    names(&left),
                    opts.retries
                );
                history::fail_attempt(schema, &again, &logs)
                    .execute(client)
                    .map_err(|e| {
                        Error::query(format!("recording the failure of {}", m.name), &e)
                    })?;
            }
            (Some(why), true) => ctx.warn(
                WarningCode::LockTimeoutNotRetried,
                format!("{} hit lock_timeout and is not retried: {why}", m.name),
            ),
            _ if interrupted => {
                // Ctrl-C: leave at once; say what is left rather than wait to drop it.
                if !left.is_empty() {
                    log::warn(&format!(
                        "the interrupted CREATE INDEX CONCURRENTLY left the INVALID index {}: drop it with DROP INDEX CONCURRENTLY before deploying again",
                        names(&left)
                    ));
                }
            }
            _ => {
                // No retry: still drop what the failed statement left, so that the
                // failed attempt leaves nothing behind when it can.
                if let Err(e) = drop_left_indexes(client, &mut left) {
                    log::warn(&format!(
                        "the INVALID index {} could not be dropped: {}",
                        names(&left),
                        describe_pg_error(&e).1
                    ));
                }
            }
        }
        if interrupted {
            return Err(Error::Interrupted);
        }
        // In statement mode the start row is committed first; only statements that ran
        // to the end before the failure can have been committed.
        let partly_committed = failure.partly_committed();
        return Err(Error::MigrationFailed {
            migration: m.name.clone(),
            failure: failure.failed,
            partly_committed,
            left_behind: left.iter().map(|l| l.name.clone()).collect(),
        });
    }
}

/// Sleeps for `duration` (a retry back-off, which can be minutes), but returns
/// [`Error::Interrupted`] within a moment of Ctrl-C or SIGTERM instead of sleeping on.
fn sleep_unless_interrupted(duration: Duration) -> Result<()> {
    let until = Instant::now() + duration;
    loop {
        interrupt::check()?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        sleep(left.min(Duration::from_millis(50)));
    }
}

/// The `logs` text of a failed attempt, readable in `status` and by Prisma users.
fn failure_logs(name: &str, f: &ScriptFailure, interrupted: bool) -> String {
    let mut logs = format!("Migration name: {name}\n\n");
    if interrupted {
        logs.push_str("Interrupted (SIGINT/SIGTERM) by the operator.\n\n");
    }
    let failed = &f.failed;
    if let Some(code) = &failed.sqlstate {
        logs.push_str(&format!("Database error code: {code}\n\n"));
    }
    logs.push_str(&format!("Database error:\n{}\n", failed.message));
    if let Some(p) = &failed.position {
        logs.push_str(&format!(
            "\nPosition: line {}, column {}\n",
            p.line, p.column
        ));
    }
    if let Some(s) = &failed.statement {
        logs.push_str(&format!("\nStatement:\n{s}\n"));
    }
    if f.whole_may_have_committed {
        logs.push_str(
            "\nThe file was sent whole, as one query, and holds a COMMIT (or END) the server may have run before the failure: \
             some of the migration may have been committed; check the schema before resolving\n",
        );
        return logs;
    }
    logs.push_str(&format!(
        "\nStatements run before the failure: {}{}\n",
        f.statements_done,
        if f.partly_committed() {
            " (some of the migration was committed: check the schema before resolving)"
        } else {
            " (none of it was committed)"
        }
    ));
    logs
}
