//! `lint --trace`: the static findings checked against what the statements really do.
//!
//! The files linted run on a throwaway shadow database (drift's: a temporary database
//! beside the target, marked as pgward's work and dropped again also when anything fails,
//! or an empty `--shadow-url` one, emptied again), in order and with pgward-migrate's
//! engine; the migrations before them (applied ones, in the default mode) run first,
//! untraced, so that the tables exist. The linted files run under `deploy --trace`'s tracer
//! (`pgward_shared::migrations::trace`), which reads the locks each statement took and the
//! relations it rewrote.
//!
//! Then every finding whose rule predicts a lock or a rewrite gets `confirmed`: did its
//! statement take that lock (or a stronger one) on that relation, or rewrite it? And every
//! statement that rewrote a relation, or took ACCESS EXCLUSIVE on one, that existed before
//! its file, with no finding predicting it, gets a finding of its own:
//! [`UNPREDICTED`]. The shadow is empty, so durations mean nothing there: only modes and
//! rewrites are reported. The target database is only read (its encoding, for the shadow);
//! nothing runs in it.

use std::collections::{HashMap, HashSet};

use pgward_shared::codes::ErrorCode;
use pgward_shared::connect::connect;
use pgward_shared::error::{Error, Result, SqlPosition};
use pgward_shared::findings::{Finding, LintResult, LintTrace, Location, Severity, Totals};
use pgward_shared::locks::LockMode;
use pgward_shared::migrations::engine::{run_script_traced, Bookkeeping, ScriptPlan, Watch};
use pgward_shared::migrations::trace::{ScriptTrace, StatementTrace, Tracer};
use pgward_shared::output::Context;
use pgward_shared::sql::position_of;

use crate::drift::shadow::{self, Shadow};
use crate::drift::{self, ReplayStep};
use crate::lint::{LintSource, Rule};

/// The rule id of what the trace saw and no rule predicted.
pub const UNPREDICTED: &str = "trace-unpredicted";

/// The rules whose findings predict that the statement rewrites a table.
const REWRITE_RULES: [Rule; 4] = [
    Rule::AddColumnVolatileDefault,
    Rule::AlterColumnType,
    Rule::VacuumFull,
    Rule::ClusterTable,
];

/// What a linted file did on the shadow.
struct FileTrace {
    /// The relations that existed before the file ran.
    before: HashSet<String>,
    trace: ScriptTrace,
}

/// Runs `sources` on a shadow database beside the target (or `shadow_url`), marks the
/// findings of `result` and adds what the rules missed.
pub fn trace(
    ctx: &Context,
    sources: &[LintSource],
    shadow_url: Option<&str>,
    result: &mut LintResult,
) -> Result<()> {
    let db = ctx.database()?;
    let given = shadow_url
        .map(|url| drift::given_shadow(&db, url))
        .transpose()?;
    let name = match &given {
        Some(settings) => settings.dbname.clone(),
        None => shadow::temporary_name(),
    };
    let mut live = connect(&db, &shadow::owner_tag(&name))?;
    let schema = live.schema().to_string();
    let leftovers_dropped = shadow::drop_leftovers(ctx, &mut live.client)?;
    let steps: Vec<ReplayStep<'_>> = sources
        .iter()
        .map(|s| ReplayStep {
            name: &s.path,
            script: &s.text,
            plan: ScriptPlan::new(&s.text),
        })
        .collect();
    let mut shadow = match &given {
        Some(settings) => Shadow::adopt(live, settings)?,
        None => Shadow::create(live, &name, "pgward-validate lint --trace")?,
    };
    if let Some(refusal) = drift::refusal(&steps, &mut shadow)? {
        return Err(refusal);
    }
    let traced = run_on_shadow(&mut shadow, &steps, sources, &schema);
    let temporary = shadow.is_temporary();
    shadow.close_or_warn(ctx);
    let traced = traced?;
    let mut summary = LintTrace {
        shadow: name,
        shadow_temporary: temporary,
        leftovers_dropped,
        ..LintTrace::default()
    };
    for (index, (step, file)) in steps.iter().zip(&traced).enumerate() {
        if let Some(file) = file {
            summary.statements += file.trace.statements.len();
            judge(result, &sources[index], step, file);
        }
    }
    let place: HashMap<&str, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.path.as_str(), i))
        .collect();
    result.findings.sort_by_key(|f| {
        (
            f.location
                .file
                .as_deref()
                .and_then(|p| place.get(p).copied()),
            f.location.line,
            f.location.column,
        )
    });
    for f in &result.findings {
        match (f.rule.as_str(), f.confirmed) {
            (UNPREDICTED, _) => summary.unpredicted += 1,
            (_, Some(true)) => summary.confirmed += 1,
            (_, Some(false)) => summary.not_confirmed += 1,
            _ => {}
        }
    }
    result.totals = Totals::of(&result.findings);
    result.trace = Some(summary);
    Ok(())
}

/// The relations outside the system schemas, by name as the tracer names them.
fn relation_names(client: &mut postgres::Client) -> Result<HashSet<String>> {
    let rows = client
        .query(
            "SELECT c.oid::pg_catalog.regclass::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'",
            &[],
        )
        .map_err(|e| Error::query("listing the shadow database's relations", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Runs every step on the shadow, tracing the reported ones.
fn run_on_shadow(
    shadow: &mut Shadow,
    steps: &[ReplayStep<'_>],
    sources: &[LintSource],
    schema: &str,
) -> Result<Vec<Option<FileTrace>>> {
    let mut observer = shadow.connect_again("pgward-validate trace observer")?;
    let shadow_name = shadow.name().to_string();
    let (_, client) = shadow.sessions();
    drift::prepare_shadow(client, schema)?;
    let mut out = Vec::new();
    for (i, (step, source)) in steps.iter().zip(sources).enumerate() {
        let before = relation_names(client)?;
        let mut tracer = if source.report {
            Some(
                Tracer::new(client, &mut observer.client)
                    .map_err(|e| Error::query("starting the trace on the shadow database", &e))?,
            )
        } else {
            None
        };
        let run = run_script_traced(
            client,
            step.script,
            &step.plan,
            &Bookkeeping::default(),
            tracer.as_mut(),
            // Files nobody reviewed yet, replayed on the live server.
            &mut Watch::every_statement(),
        );
        if let Err(failure) = run {
            return Err(failure.into_error(
                ErrorCode::ShadowMigrationFailed,
                format!(
                    "running {} ({} of {}) on the shadow database {shadow_name}",
                    step.name,
                    i + 1,
                    steps.len()
                ),
                "the file fails on a database built by the files before it: it depends on something no earlier migration creates, or the SQL is wrong. Files named on the command line run alone: lint the pending migrations instead (no FILES), so the applied ones run first. The static findings are in result.findings; without --trace lint runs nothing".to_string(),
            ));
        }
        out.push(tracer.map(|t| FileTrace {
            before,
            trace: t.finish(),
        }));
    }
    Ok(out)
}

/// What a finding says will happen.
struct Prediction {
    /// The lock mode and the relation (`SHARE on orders`).
    lock: Option<(LockMode, String)>,
    /// Whether its rule predicts a rewrite.
    rewrite: bool,
}

impl Prediction {
    fn of(finding: &Finding) -> Option<Prediction> {
        let lock = finding.lock.as_deref().and_then(|l| {
            let (mode, on) = l.split_once(" on ")?;
            Some((LockMode::from_name(mode)?, on.to_string()))
        });
        let rewrite = Rule::from_id(&finding.rule).is_some_and(|r| REWRITE_RULES.contains(&r));
        (lock.is_some() || rewrite).then_some(Prediction { lock, rewrite })
    }
}

/// `"User"` and `public."User"` → `User`: a relation's name, to compare the lint's and the
/// trace's spellings.
fn bare(name: &str) -> String {
    let last = match name.rfind("\".") {
        Some(_) => name.rsplit_once('.').map_or(name, |(_, n)| n),
        None => name.rsplit('.').next().unwrap_or(name),
    };
    last.trim_matches('"').replace("\"\"", "\"")
}

/// In words, what statement `index` did to relations that existed before: its locks, the
/// lock its transaction already held on `focus` (the relation a finding names), its
/// rewrites.
fn observed(
    statements: &[StatementTrace],
    index: usize,
    before: &HashSet<String>,
    focus: Option<&str>,
) -> String {
    let s = &statements[index];
    let mut parts: Vec<String> = s
        .locks
        .iter()
        .filter(|l| before.contains(&l.relation))
        .map(|l| format!("{} on {}", l.mode.name(), l.relation))
        .collect();
    let focus = focus.map(bare);
    let earlier = held_earlier(statements, index)
        .filter(|(_, l)| Some(bare(&l.relation)) == focus)
        .filter(|(_, l)| !s.locks.iter().any(|m| m.relation == l.relation))
        .max_by_key(|(_, l)| l.mode);
    if let Some((i, l)) = earlier {
        parts.push(format!(
            "{} on {} (held since statement {})",
            l.mode.name(),
            l.relation,
            i + 1
        ));
    }
    if parts.is_empty() {
        parts.push("no new lock on a relation that existed before the file".into());
    }
    let rewrites: Vec<String> = s
        .rewrites
        .iter()
        .filter(|r| before.contains(&r.relation))
        .map(|r| r.relation.clone())
        .collect();
    if rewrites.is_empty() {
        parts.push("no rewrite".into());
    } else {
        parts.push(format!("rewrote {}", rewrites.join(", ")));
    }
    parts.join("; ")
}

/// The strongest lock statement `index` held on `relation`: its own, or one its
/// transaction took before it.
fn lock_held(statements: &[StatementTrace], index: usize, relation: &str) -> Option<LockMode> {
    statements[index]
        .locks
        .iter()
        .chain(held_earlier(statements, index).map(|(_, l)| l))
        .filter(|l| l.relation == relation)
        .map(|l| l.mode)
        .max()
}

/// The locks earlier statements of the same transaction still held when statement
/// `index` ran (a file's statements in one transaction, up to one that ran outside it).
fn held_earlier(
    statements: &[StatementTrace],
    index: usize,
) -> impl Iterator<Item = (usize, &pgward_shared::migrations::trace::LockTrace)> {
    let in_transaction = statements[index].in_transaction;
    statements[..index]
        .iter()
        .enumerate()
        .rev()
        .take_while(move |(_, s)| in_transaction && s.in_transaction)
        .flat_map(|(i, s)| s.locks.iter().map(move |l| (i, l)))
}

/// Whether statement `index` did what `p` predicts.
fn came_true(
    p: &Prediction,
    statements: &[StatementTrace],
    index: usize,
    before: &HashSet<String>,
) -> bool {
    let s = &statements[index];
    if p.rewrite {
        return s.rewrites.iter().any(|r| before.contains(&r.relation));
    }
    let Some((mode, on)) = &p.lock else {
        return false;
    };
    let held = s
        .locks
        .iter()
        .chain(held_earlier(statements, index).map(|(_, l)| l));
    held.filter(|l| l.mode >= *mode)
        .any(|l| bare(&l.relation) == bare(on))
}

/// Marks the findings of `source` by its trace and adds what no rule
/// predicted.
fn judge(result: &mut LintResult, source: &LintSource, step: &ReplayStep<'_>, file: &FileTrace) {
    let statements = &file.trace.statements;
    let starts: Vec<SqlPosition> = step
        .plan
        .statements
        .iter()
        .map(|s| position_of(step.script, s.offset))
        .collect();
    // Per traced statement: whether a finding predicted a rewrite, and the strongest lock
    // a finding predicted.
    let mut predicted: Vec<(bool, Option<LockMode>)> = vec![(false, None); statements.len()];
    for finding in result
        .findings
        .iter_mut()
        .filter(|f| f.location.file.as_deref() == Some(source.path.as_str()))
    {
        let Some(prediction) = Prediction::of(finding) else {
            continue;
        };
        let at = (
            finding.location.line.unwrap_or(0),
            finding.location.column.unwrap_or(0),
        );
        let Some(start) = starts.iter().rfind(|p| (p.line, p.column) <= at) else {
            continue;
        };
        let Some(traced) = statements.iter().position(|s| s.position == *start) else {
            continue;
        };
        predicted[traced].0 |= prediction.rewrite;
        if let Some((mode, _)) = &prediction.lock {
            predicted[traced].1 = predicted[traced].1.max(Some(*mode));
        }
        finding.confirmed = Some(came_true(&prediction, statements, traced, &file.before));
        let focus = prediction.lock.as_ref().map(|(_, on)| on.as_str());
        finding.observed = Some(observed(statements, traced, &file.before, focus));
    }
    for (i, s) in statements.iter().enumerate() {
        let rewrites: Vec<_> = s
            .rewrites
            .iter()
            .filter(|r| file.before.contains(&r.relation))
            .collect();
        let exclusive: Vec<_> = s
            .locks
            .iter()
            .filter(|l| l.mode == LockMode::AccessExclusive && file.before.contains(&l.relation))
            .collect();
        let (rewrite_predicted, lock_predicted) = predicted[i];
        let statement = s.statement.lines().next().unwrap_or_default();
        let finding = if !rewrites.is_empty() && !rewrite_predicted {
            let what: Vec<&str> = rewrites.iter().map(|r| r.relation.as_str()).collect();
            Some((
                Severity::Warning,
                rewrites[0].relation.clone(),
                format!("`{statement}` rewrote {} on the shadow database; no lint rule predicted it", what.join(", ")),
                "a rewrite copies every row into a new file (and rebuilds the table's indexes) while holding ACCESS EXCLUSIVE: on production's data no reads or writes until it is done. The rules did not see it coming (a DO block or function, or a statement they do not know), so no other finding says so",
                "measure it on a copy of production before deploying (`pgward-migrate deploy --trace --max-lock 5s` against a restored backup); if it holds the table too long, add a new column or table, backfill it in batches and switch over in later migrations",
            ))
        } else if !exclusive.is_empty() && lock_predicted < Some(LockMode::AccessExclusive) {
            Some((
                Severity::Info,
                exclusive[0].relation.clone(),
                format!("`{statement}` took ACCESS EXCLUSIVE on {} on the shadow database; no lint rule predicted it", exclusive.iter().map(|l| l.relation.as_str()).collect::<Vec<_>>().join(", ")),
                "ACCESS EXCLUSIVE blocks even reads; brief as it may be, its request queues behind every running query on the table and every new query queues behind it",
                "set lock_timeout before it (`SET lock_timeout = '5s';`, or `pgward-migrate deploy --lock-timeout 5s --retries 3`) so that a busy table makes the migration retry instead of stalling the application",
            ))
        } else {
            None
        };
        let Some((severity, object, message, why, fix)) = finding else {
            continue;
        };
        // A rewrite's lock is the one on the relation rewritten (its transaction may have
        // taken it before); else the ACCESS EXCLUSIVE seen.
        let strongest =
            lock_held(statements, i, &object).map(|mode| format!("{} on {object}", mode.name()));
        result.findings.push(Finding {
            rule: UNPREDICTED.to_string(),
            severity,
            location: Location {
                file: Some(source.path.clone()),
                line: Some(s.position.line),
                column: Some(s.position.column),
                object: Some(object),
            },
            message,
            lock: strongest,
            why: why.into(),
            fix: fix.into(),
            confirmed: Some(true),
            observed: Some(observed(statements, i, &file.before, None)),
            span: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::bare;

    #[test]
    fn relation_names_compare_without_schema_and_quotes() {
        assert_eq!(bare("orders"), "orders");
        assert_eq!(bare("public.orders"), "orders");
        assert_eq!(bare("\"User\""), "User");
        assert_eq!(bare("app.\"User\""), "User");
    }
}
