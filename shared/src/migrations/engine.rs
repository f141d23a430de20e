//! Runs one SQL script the way Prisma runs it, but statement by statement.
//!
//! Prisma sends a migration as one simple-protocol query: an implicit transaction that an
//! explicit `BEGIN` inside the file turns into a regular block, a `COMMIT` ends, and after
//! which later statements start a new implicit block. This engine reproduces exactly those
//! transaction boundaries while sending one statement at a time, which buys three things:
//! the failing statement's line is known; the history row is written inside the same
//! transaction as the migration's last statements, so "recorded as applied" and "committed
//! by the server" are one atomic step (Prisma writes them apart and a killed client leaves
//! a committed migration recorded as failed); and files holding statements that cannot run
//! in a transaction block (CREATE INDEX CONCURRENTLY, ...) can run step by step.

use std::time::Instant;

use crate::codes::ErrorCode;
use crate::error::{describe_pg_error, Error, FailedStatement};
use crate::migrations::batch;
use crate::migrations::history::HistoryWrite;
use crate::migrations::trace::Tracer;
use crate::sql::{
    self, byte_offset_of_char, non_transactional_reason, position_of, transaction_control,
    ParsedStatement, Strings, TransactionControl,
};
use pg_query::NodeEnum;
use serde::{Deserialize, Serialize};

/// How a script will run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum RunMode {
    /// Prisma's transaction boundaries, bookkeeping committed with the statements.
    Transaction,
    /// One statement at a time, each in its own transaction where it may have one.
    Statements {
        /// Why the script cannot run in one transaction.
        reason: String,
    },
    /// The parser rejected the script; it is sent whole, as Prisma would, so the server
    /// reports the error.
    Whole {
        /// The parser's message.
        #[serde(alias = "parse_error")]
        reason: String,
    },
}

/// A script read and planned.
#[derive(Debug, Clone)]
pub struct ScriptPlan {
    /// How it will run.
    pub mode: RunMode,
    /// Its statements (empty in [`RunMode::Whole`]).
    pub statements: Vec<ParsedStatement>,
    /// How it reads string literals.
    reading: Strings,
    /// Whether the other reading of string literals gives other statements: cut elsewhere
    /// (`'a\'; COMMIT; --'` is one statement with `standard_conforming_strings` on,
    /// PostgreSQL's default, and three with it off, a COMMIT among them), or cut alike
    /// with other parse trees (`'x\', ' , lo_export(...) , '` is two literals, or a
    /// literal and a call).
    reading_matters: bool,
    /// The plan for a session that reads backslashes as escapes, when that reading
    /// matters (on the plan [`ScriptPlan::new`] returns).
    escaped: Option<Box<ScriptPlan>>,
}

impl ScriptPlan {
    /// Parses `script` and decides how it must run in a session with PostgreSQL's default
    /// `standard_conforming_strings = on`; [`ScriptPlan::for_session`] gives the plan for
    /// the session at hand.
    pub fn new(script: &str) -> ScriptPlan {
        let mut plan = ScriptPlan::as_read(script, Strings::Standard);
        if !script.contains('\\') {
            return plan;
        }
        let mut escaped = ScriptPlan::as_read(script, Strings::BackslashEscapes);
        if !plan.reads_like(&escaped) {
            escaped.reading_matters = true;
            plan.reading_matters = true;
            plan.escaped = Some(Box::new(escaped));
        }
        plan
    }

    /// The plan of `script` with string literals read as `reading` says.
    fn as_read(script: &str, reading: Strings) -> ScriptPlan {
        let (mode, statements) = match sql::parse_statements_as(script, reading) {
            Ok(statements) => match step_reason(&statements) {
                Some(reason) => (RunMode::Statements { reason }, statements),
                None => (RunMode::Transaction, statements),
            },
            Err(e) => (RunMode::Whole { reason: e.message }, Vec::new()),
        };
        ScriptPlan {
            mode,
            statements,
            reading,
            reading_matters: false,
            escaped: None,
        }
    }

    /// Every statement the script may run, each once, with how the session reads string
    /// literals: its own ([`Strings::Standard`]), and, when they differ, those only a
    /// session reading backslashes as escapes runs ([`Strings::BackslashEscapes`]).
    pub fn statements_in_any_session(&self) -> impl Iterator<Item = (&ParsedStatement, Strings)> {
        let escaped = self.escaped.as_ref().map_or(&[][..], |e| &e.statements[..]);
        let own = &self.statements;
        let only_escaped = escaped
            .iter()
            .filter(move |e| !own.iter().any(|o| same_statement(o, e)));
        own.iter()
            .map(|s| (s, Strings::Standard))
            .chain(only_escaped.map(|s| (s, Strings::BackslashEscapes)))
    }

    /// The byte offset of the first statement (of this plan) that a session reading
    /// backslashes as escapes cuts elsewhere, or the file is not SQL to it (then the first
    /// statement holding a backslash). None when both cut it alike (a literal whose value
    /// differs, `'\d+'`, is not counted: the server reads the statements pgward sends).
    pub fn first_statement_read_differently(&self) -> Option<usize> {
        let escaped = self.escaped.as_ref().filter(|e| !self.splits_like(e))?;
        let differs = match escaped.mode {
            RunMode::Whole { .. } => self.statements.iter().find(|s| s.text.contains('\\')),
            _ => self
                .statements
                .iter()
                .zip(
                    escaped
                        .statements
                        .iter()
                        .map(Some)
                        .chain(std::iter::repeat(None)),
                )
                .find(|(own, other)| other.is_none_or(|o| o.end() != own.end()))
                .map(|(own, _)| own),
        };
        differs.or(self.statements.first()).map(|s| s.offset)
    }

    /// Whether both plans hold the same statements: cut at the same places, with the same
    /// parse trees (a literal's value included).
    fn reads_like(&self, other: &ScriptPlan) -> bool {
        match (&self.mode, &other.mode) {
            (RunMode::Whole { .. }, RunMode::Whole { .. }) => true,
            (RunMode::Whole { .. }, _) | (_, RunMode::Whole { .. }) => false,
            _ => {
                self.statements.len() == other.statements.len()
                    && self
                        .statements
                        .iter()
                        .zip(&other.statements)
                        .all(|(a, b)| same_statement(a, b))
            }
        }
    }

    /// Whether both plans cut the file at the same places.
    fn splits_like(&self, other: &ScriptPlan) -> bool {
        let ends = |p: &ScriptPlan| -> Option<Vec<usize>> {
            match p.mode {
                RunMode::Whole { .. } => None,
                _ => Some(p.statements.iter().map(ParsedStatement::end).collect()),
            }
        };
        ends(self) == ends(other)
    }

    /// The plan for the session `client` will run the script in: the same plan unless
    /// the reading of string literals matters to the file; then the session's
    /// `standard_conforming_strings` (set for the server, the database or the role, or by
    /// an earlier migration) chooses, read once (one query, for such files only). Should
    /// the file change the setting part-way, the runner stops before the first statement
    /// read the other way ([`Watch`]).
    pub fn for_session(
        &self,
        client: &mut postgres::Client,
    ) -> Result<&ScriptPlan, postgres::Error> {
        let Some(escaped) = &self.escaped else {
            return Ok(self);
        };
        let (_, standard) = text_reading(client)?;
        Ok(if standard { self } else { escaped })
    }
}

/// Whether two readings of a file's statement are the same statement: ending at the same
/// place, with the same parse tree (a reading that keeps the comments before a statement
/// starts it elsewhere, but the tree's locations are the file's).
fn same_statement(a: &ParsedStatement, b: &ParsedStatement) -> bool {
    a.end() == b.end() && a.node == b.node
}

/// The session's `client_encoding`, and whether it reads strings the standard way
/// (`standard_conforming_strings`): what decides how the server reads the text pgward
/// sends. SHOW, not a SELECT: it takes no snapshot, so a file's `SET TRANSACTION` may
/// still follow it.
fn text_reading(client: &mut postgres::Client) -> Result<(String, bool), postgres::Error> {
    let shown: Vec<String> = client
        .simple_query("SHOW client_encoding; SHOW standard_conforming_strings")?
        .iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    match shown.as_slice() {
        [encoding, standard] => Ok((encoding.clone(), standard != "off")),
        // Not what SHOW answers: taken as a reading pgward cannot vouch for.
        _ => Ok(("(unknown)".into(), true)),
    }
}

/// How a session must read a file's statements for pgward's cut to hold, and whether it
/// is looked at ([`Watch`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    armed: bool,
    /// The plan's reading of string literals: the standard one.
    standard: bool,
    /// Whether the other reading holds other statements.
    matters: bool,
}

impl Reading {
    /// Why the next statement must not be sent (the session would read it otherwise than
    /// pgward cut it), or None; nothing is asked while the watch is not armed.
    pub(crate) fn refusal(
        &self,
        client: &mut postgres::Client,
    ) -> Result<Option<String>, postgres::Error> {
        if !self.armed {
            return Ok(None);
        }
        let (encoding, standard) = text_reading(client)?;
        Ok(if !encoding.eq_ignore_ascii_case("UTF8") {
            Some(format!(
                "not sent: the session's client_encoding is now {encoding} (set by an earlier statement, or when its transaction ended), and pgward sends migrations as UTF-8, so the server would read this statement otherwise than pgward cut the file; remove what sets it (a migration file is UTF-8)"
            ))
        } else if self.matters && standard != self.standard {
            Some(format!(
                "not sent: the session's standard_conforming_strings is now {} (set by an earlier statement, or when its transaction ended), and with it this file's string literals read otherwise (a backslash in them); write them so that both readings agree (E'...' with the backslash doubled; `pgward-validate lint` points at those that change the statements)",
                if standard { "on" } else { "off" }
            ))
        } else {
            None
        })
    }
}

/// When the runner looks at the session's text settings before sending a statement, so
/// that it does not send one the server would read otherwise than pgward cut it: in
/// another `client_encoding` than UTF-8 (whose multi-byte encodings can swallow a
/// backslash), or, for a file the reading of string literals matters to, with the other
/// `standard_conforming_strings`. Settings change when a statement sets them, and also
/// later: at the COMMIT of a `SET LOCAL` that masked a `SET`, in a trigger. One `Watch`
/// lives as long as the session and goes from file to file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    /// Before every statement from now on.
    armed: bool,
    /// Armed from the start (the replays of files nobody reviewed yet).
    always: bool,
}

impl Watch {
    /// For the team's own files (deploy, rollback, seed): armed by the first statement
    /// that may change the settings ([`sql::may_change_text_reading`]: SET or RESET of
    /// either, SET NAMES, RESET ALL, DISCARD, set_config(), pg_settings, CALL, DO), then
    /// before every statement of that file (one query each) and once at the start of the
    /// next, which rests it when the session reads as expected. A function that changes
    /// them unseen, before any such statement, is not looked for.
    pub fn session() -> Watch {
        Watch {
            armed: false,
            always: false,
        }
    }

    /// Before every statement (one query each): what the replays of files nobody
    /// reviewed yet run (drift, lint --trace), on a shadow database on the live server.
    pub fn every_statement() -> Watch {
        Watch {
            armed: true,
            always: true,
        }
    }
}

/// Why `statements` cannot share one transaction, if they cannot.
fn step_reason(statements: &[ParsedStatement]) -> Option<String> {
    if let Some(reason) = statements
        .iter()
        .find_map(|s| non_transactional_reason(&s.node))
    {
        return Some(format!("{reason} cannot run inside a transaction block"));
    }
    // A value added to an enum cannot be used before the transaction that added it commits.
    if let Some(used) = sql::enum_values_used_before_commit(statements)
        .iter()
        .min_by_key(|u| u.added)
    {
        return Some(format!(
            "the enum value '{}' is added and used in the same file; it must be committed before use",
            used.value
        ));
    }
    None
}

/// What pgward records around a script, as history writes (values bound, never spliced
/// into SQL) run inside its transactions.
#[derive(Default)]
pub struct Bookkeeping<'a> {
    /// Records the start: with the file's first own COMMIT (transaction mode), or
    /// committed before anything runs (step mode).
    pub on_start: Option<HistoryWrite>,
    /// Records success: committed with the last statements.
    pub on_finish: Option<HistoryWrite>,
    /// Records progress after n statements (step mode).
    pub on_progress: Option<Box<dyn Fn(usize) -> HistoryWrite + 'a>>,
}

/// A script that ran to the end.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptDone {
    /// Statements run.
    pub statements: usize,
    /// How it ran: the plan's mode, or the one the session's settings chose
    /// ([`ScriptPlan::for_session`]).
    pub mode: RunMode,
}

/// A script that failed.
#[derive(Debug, Clone)]
pub struct ScriptFailure {
    /// What the server rejected, and where.
    pub failed: Box<FailedStatement>,
    /// Statements that ran before the failing one.
    pub statements_done: usize,
    /// Whether anything of the script may have been committed.
    pub committed_something: bool,
    /// What the failing statement itself may have left in the database.
    pub left_behind: LeftBehind,
    /// The script was sent whole and may hold a COMMIT (or END) that the server ran before
    /// the failure: pgward cannot tell what of it was kept.
    pub whole_may_have_committed: bool,
}

/// What a failed statement may have left in the database. A statement that ran in a
/// transaction leaves nothing (the transaction was rolled back); one that cannot run in
/// a transaction commits its own steps as it goes, and a failure part-way leaves them.
#[derive(Debug, Clone, PartialEq)]
pub enum LeftBehind {
    /// Nothing: it ran in a transaction, or it is one a retry simply finishes (VACUUM,
    /// ANALYZE, DROP INDEX CONCURRENTLY).
    Nothing,
    /// A failed CREATE INDEX CONCURRENTLY: the INVALID indexes it created itself (none
    /// when it failed before creating one). Told apart from indexes that were already
    /// there by their oids, read before it ran.
    InvalidIndexes(Vec<LeftIndex>),
    /// Something pgward cannot clean: a retry could trip over it, or do the work twice.
    Unknown(String),
}

/// An INVALID index a failed CREATE INDEX CONCURRENTLY left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct LeftIndex {
    /// Its oid: what identifies it, whatever it is called by the time it is dropped.
    pub oid: u32,
    /// Its name when it was found (schema-qualified when not on the search_path).
    pub name: String,
}

impl ScriptFailure {
    /// The error to report for a script that is not a migration (down.sql, seed, shadow
    /// replay): `Interrupted` after Ctrl-C, else `ScriptFailed` with `code`, `what` and
    /// `hint`.
    pub fn into_error(self, code: ErrorCode, what: String, hint: String) -> Error {
        if crate::interrupt::requested() {
            return Error::Interrupted;
        }
        Error::ScriptFailed {
            code,
            what,
            failure: self.failed,
            hint,
        }
    }

    /// Whether some of the script's own statements were committed (not merely the
    /// attempt's start record): the database is partly changed.
    pub fn partly_committed(&self) -> bool {
        self.committed_something && self.statements_done > 0 || self.whole_may_have_committed
    }

    /// Whether only `lock_timeout` stopped it (SQLSTATE 55P03, lock_not_available).
    pub fn is_lock_timeout(&self) -> bool {
        self.failed.sqlstate.as_deref() == Some("55P03")
    }
}

/// What a failure of `node`, run outside a transaction block, may leave behind, when it
/// is not an index built concurrently (which the runner looks for itself).
fn left_by_non_transactional(node: &NodeEnum, reason: &str) -> LeftBehind {
    match node {
        NodeEnum::VacuumStmt(_) => LeftBehind::Nothing,
        NodeEnum::DropStmt(_) => LeftBehind::Nothing,
        _ => LeftBehind::Unknown(format!(
            "{reason} commits its work in steps and a failure part-way may leave some of it (a REINDEX CONCURRENTLY leaves `_ccnew` indexes, a DETACH PARTITION CONCURRENTLY a pending detach)"
        )),
    }
}

/// A CREATE INDEX of the script whose result is checked before the script is recorded as
/// done: concurrent builds (which can leave an INVALID index) and IF NOT EXISTS (which
/// can skip an INVALID one of the same name).
struct IndexCheck {
    /// The table, as written (quoted, schema-qualified when it was).
    table: String,
    /// The table, resolved when the statement ran (a later `SET search_path` of the
    /// script cannot send the check elsewhere).
    table_oid: Option<u32>,
    /// The index name, when the statement gives one.
    name: Option<String>,
    /// The table's indexes before the statement ran (concurrent builds only).
    before: Vec<u32>,
    /// Where the statement starts in the script, and its text.
    offset: usize,
    text: String,
}

/// The index check for `node` when it is a CREATE INDEX whose result must be checked.
fn index_check(stmt: &ParsedStatement) -> Option<IndexCheck> {
    let NodeEnum::IndexStmt(ix) = &stmt.node else {
        return None;
    };
    if !ix.concurrent && !ix.if_not_exists {
        return None;
    }
    let rel = ix.relation.as_ref()?;
    if !rel.inh {
        // CREATE INDEX ... ON ONLY a partitioned table: INVALID by design until an index
        // of every partition is attached, which a later migration may do.
        return None;
    }
    let table = if rel.schemaname.is_empty() {
        sql::quote_ident(&rel.relname)
    } else {
        format!(
            "{}.{}",
            sql::quote_ident(&rel.schemaname),
            sql::quote_ident(&rel.relname)
        )
    };
    Some(IndexCheck {
        table,
        table_oid: None,
        name: Some(ix.idxname.clone()).filter(|n| !n.is_empty()),
        before: Vec::new(),
        offset: stmt.offset,
        text: stmt.text.clone(),
    })
}

/// The INVALID indexes of `check`'s table that its statement made or names: the one of
/// its name, or, unnamed, those that were not there before it ran.
const INVALID_INDEXES_SQL: &str = "SELECT c.oid, c.oid::pg_catalog.regclass::text \
     FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
     WHERE i.indrelid = $1::oid AND NOT i.indisvalid \
       AND CASE WHEN $2::text IS NULL THEN NOT (c.oid = ANY ($3::oid[])) ELSE c.relname = $2::text END \
     ORDER BY c.oid";

fn invalid_indexes(
    client: &mut postgres::Client,
    check: &IndexCheck,
) -> Result<Vec<LeftIndex>, postgres::Error> {
    let Some(table) = check.table_oid else {
        return Ok(Vec::new());
    };
    Ok(client
        .query(INVALID_INDEXES_SQL, &[&table, &check.name, &check.before])?
        .iter()
        .map(|r| LeftIndex {
            oid: r.get(0),
            name: r.get(1),
        })
        .collect())
}

/// `table` as the session resolves it now, and its indexes.
fn table_and_indexes(
    client: &mut postgres::Client,
    table: &str,
) -> Result<(Option<u32>, Vec<u32>), postgres::Error> {
    let row = client.query_one(
        "SELECT t.oid, coalesce((SELECT array_agg(indexrelid) FROM pg_catalog.pg_index \
                                 WHERE indrelid = t.oid), '{}')::oid[] \
         FROM (SELECT pg_catalog.to_regclass($1::text)::oid AS oid) t",
        &[&table],
    )?;
    Ok((row.get(0), row.get(1)))
}

/// Longest statement text quoted in errors and logs.
const STATEMENT_EXCERPT_CHARS: usize = 300;

fn excerpt(text: &str) -> String {
    if text.chars().count() <= STATEMENT_EXCERPT_CHARS {
        text.to_string()
    } else {
        let cut: String = text.chars().take(STATEMENT_EXCERPT_CHARS).collect();
        format!("{cut}…")
    }
}

/// Runs `plan` of `script` with `books` on `client`.
pub fn run_script(
    client: &mut postgres::Client,
    script: &str,
    plan: &ScriptPlan,
    books: &Bookkeeping<'_>,
    watch: &mut Watch,
) -> Result<ScriptDone, ScriptFailure> {
    run_script_traced(client, script, plan, books, None, watch)
}

/// [`run_script`], recording what each statement did in `tracer` when there is one
/// (`deploy --trace`), reading the session's text settings again as `watch` says.
pub fn run_script_traced(
    client: &mut postgres::Client,
    script: &str,
    plan: &ScriptPlan,
    books: &Bookkeeping<'_>,
    tracer: Option<&mut Tracer<'_>>,
    watch: &mut Watch,
) -> Result<ScriptDone, ScriptFailure> {
    let mut runner = Runner {
        client,
        script,
        watch: *watch,
        reading: Strings::Standard,
        reading_matters: false,
        batched: false,
        sent_whole: false,
        begin_pending: false,
        in_block: false,
        committed_something: false,
        done: 0,
        index_checks: Vec::new(),
        tracer,
    };
    let plan = match plan.for_session(runner.client) {
        Ok(plan) => plan,
        Err(e) => return Err(runner.failure(&e, None)),
    };
    (runner.reading, runner.reading_matters) = (plan.reading, plan.reading_matters);
    // Fewer round trips where nothing else needs the statements one by one: a script in
    // Prisma's transaction mode without transaction control of its own, run untraced.
    runner.batched = runner.tracer.is_none()
        && plan.mode == RunMode::Transaction
        && plan
            .statements
            .iter()
            .all(|s| transaction_control(&s.node).is_none());
    let result = runner.start_file(plan).and_then(|()| match &plan.mode {
        RunMode::Transaction => runner.run_transactional(&plan.statements, books),
        RunMode::Statements { .. } => runner.run_steps(&plan.statements, books),
        RunMode::Whole { reason } => runner.run_whole(books, reason),
    });
    if result.is_err() {
        // Leave the session clean for the failure bookkeeping; a failed ROLLBACK means the
        // session is gone, and then the server has rolled back anyway.
        let _ = runner.client.batch_execute("ROLLBACK");
        runner.transaction_ended();
        // A migration refused for the session's encoding left it so: the failure is
        // recorded (and later files are sent) in UTF-8, as pgward connected.
        let _ = runner.client.batch_execute("SET client_encoding TO 'UTF8'");
    }
    *watch = runner.watch;
    result.map(|_| ScriptDone {
        statements: runner.done,
        mode: plan.mode.clone(),
    })
}

struct Runner<'c, 's, 't> {
    client: &'c mut postgres::Client,
    script: &'s str,
    /// When the session's text settings are read again.
    watch: Watch,
    /// How the plan read string literals, and whether the other reading cuts the file
    /// otherwise.
    reading: Strings,
    reading_matters: bool,
    /// The batched path (see [`batch`]): BEGIN travels with the first statement, the
    /// finish record with the COMMIT.
    batched: bool,
    /// The script is being sent whole (see [`ScriptFailure::whole_may_have_committed`]).
    sent_whole: bool,
    /// A BEGIN not sent yet: the next query sent starts with it.
    begin_pending: bool,
    in_block: bool,
    committed_something: bool,
    done: usize,
    /// The CREATE INDEX statements run so far whose indexes must be valid at the end.
    index_checks: Vec<IndexCheck>,
    /// Records what each statement did (`deploy --trace`).
    tracer: Option<&'c mut Tracer<'t>>,
}

impl Runner<'_, '_, '_> {
    fn exec(&mut self, sql: &str, stmt: Option<&ParsedStatement>) -> Result<(), ScriptFailure> {
        if let Some(stmt) = stmt {
            self.check_reading(stmt)?;
        }
        // The locks of the transaction are released when it ends: the runner's own
        // COMMIT, or the file's COMMIT / ROLLBACK (AND CHAIN).
        let ends = match stmt {
            Some(s) => matches!(
                transaction_control(&s.node),
                Some(TransactionControl::End | TransactionControl::Chain)
            ),
            None => sql == "COMMIT",
        };
        self.send(sql, stmt, ends)
    }

    /// Sends `sql` as one simple query, after the pending BEGIN when there is one (in the
    /// same query: see [`batch`]); `ends` when it ends the transaction.
    fn send(
        &mut self,
        sql: &str,
        stmt: Option<&ParsedStatement>,
        ends: bool,
    ) -> Result<(), ScriptFailure> {
        let sent = match std::mem::take(&mut self.begin_pending) {
            true => batch::after_begin(sql),
            false => std::borrow::Cow::Borrowed(sql),
        };
        let prefix = sent.len() - sql.len();
        self.client
            .batch_execute(&sent)
            .map_err(|e| self.failure_after(&e, stmt, prefix))?;
        if ends {
            self.transaction_ended();
        }
        Ok(())
    }

    /// Sends the pending BEGIN on its own, before a query that cannot carry it.
    fn flush_begin(&mut self) -> Result<(), ScriptFailure> {
        if self.begin_pending {
            self.begin_pending = false;
            self.exec("BEGIN", None)?;
        }
        Ok(())
    }

    /// Runs one of the script's own statements, through the tracer when there is one.
    fn exec_statement(
        &mut self,
        stmt: &ParsedStatement,
        in_transaction: bool,
    ) -> Result<(), ScriptFailure> {
        // SET takes no lock, and SET TRANSACTION must come before any query of its
        // transaction, the tracer's included.
        let untraced = matches!(
            &stmt.node,
            NodeEnum::VariableSetStmt(_) | NodeEnum::VariableShowStmt(_)
        );
        if untraced || self.tracer.is_none() {
            self.exec(&stmt.text, Some(stmt))?;
        } else {
            // The tracer queries the session before the statement: the look comes after
            // those, right before the statement is sent.
            let expected = self.expected();
            let position = position_of(self.script, stmt.offset);
            let traced = match self.tracer.as_deref_mut() {
                Some(tracer) => tracer.run(
                    self.client,
                    &stmt.text,
                    position,
                    excerpt(&stmt.text),
                    in_transaction,
                    expected,
                ),
                None => Ok(None),
            };
            match traced {
                Ok(None) => {}
                Ok(Some(why)) => return Err(self.not_sent(Some(stmt), why)),
                Err(e) => return Err(self.failure(&e, Some(stmt))),
            }
        }
        // From a statement that may change how the server reads text on, every
        // statement of the session is looked at before it is sent.
        self.watch.armed |= sql::may_change_text_reading(stmt);
        Ok(())
    }

    /// Before `stmt` is sent, once the [`Watch`] is armed: stops the script if the session
    /// would read it otherwise than pgward cut it ([`Reading::refusal`]). Nothing of `stmt`
    /// runs; the transaction it would have run in is rolled back like that of a failed
    /// statement.
    fn check_reading(&mut self, stmt: &ParsedStatement) -> Result<(), ScriptFailure> {
        self.check_read_as(self.expected(), Some(stmt))
    }

    /// Fails, naming `stmt` as not sent when there is one, if `reading` refuses the
    /// session as it is now.
    fn check_read_as(
        &mut self,
        reading: Reading,
        stmt: Option<&ParsedStatement>,
    ) -> Result<(), ScriptFailure> {
        match reading.refusal(self.client) {
            Ok(None) => Ok(()),
            Ok(Some(why)) => Err(self.not_sent(stmt, why)),
            Err(e) => Err(self.failure(&e, stmt)),
        }
    }

    /// Between two files no transaction is open: one look at the start of a file settles
    /// what an earlier one changed (at its COMMIT too), and the watch rests until a
    /// statement that may change the settings again. The replays keep looking.
    fn start_file(&mut self, plan: &ScriptPlan) -> Result<(), ScriptFailure> {
        if !self.watch.armed || self.watch.always {
            return Ok(());
        }
        self.check_read_as(self.expected(), plan.statements.first())?;
        self.watch.armed = false;
        Ok(())
    }

    /// How the session must read the file's statements.
    fn expected(&self) -> Reading {
        Reading {
            armed: self.watch.armed,
            standard: self.reading == Strings::Standard,
            matters: self.reading_matters,
        }
    }

    /// `stmt` (the whole script when none) was not sent, for `why`.
    fn not_sent(&self, stmt: Option<&ParsedStatement>, why: String) -> ScriptFailure {
        self.failed(FailedStatement {
            sqlstate: None,
            message: why,
            position: stmt.map(|s| position_of(self.script, s.offset)),
            statement: stmt.map(|s| excerpt(&s.text)),
        })
    }

    /// The transaction ended: the tracer's open locks are released.
    fn transaction_ended(&mut self) {
        if let Some(tracer) = self.tracer.as_deref_mut() {
            tracer.transaction_ended();
        }
    }

    fn failure(&self, err: &postgres::Error, stmt: Option<&ParsedStatement>) -> ScriptFailure {
        self.failure_after(err, stmt, 0)
    }

    /// [`Runner::failure`] of a query that sent `prefix` characters (ASCII) before the
    /// statement: the server counts its error position from the start of the query.
    fn failure_after(
        &self,
        err: &postgres::Error,
        stmt: Option<&ParsedStatement>,
        prefix: usize,
    ) -> ScriptFailure {
        let (sqlstate, message) = describe_pg_error(err);
        let error_char = err.as_db_error().and_then(|db| match db.position() {
            Some(postgres::error::ErrorPosition::Original(p)) => {
                Some((*p as usize).saturating_sub(prefix).max(1))
            }
            _ => None,
        });
        let position = match (stmt, error_char) {
            (Some(s), Some(p)) => Some(position_of(
                self.script,
                s.offset + byte_offset_of_char(&s.text, p),
            )),
            (Some(s), None) => Some(position_of(self.script, s.offset)),
            (None, Some(p)) => Some(position_of(
                self.script,
                byte_offset_of_char(self.script, p),
            )),
            (None, None) => None,
        };
        let mut failure = self.failed(FailedStatement {
            sqlstate,
            message,
            position,
            statement: stmt.map(|s| excerpt(&s.text)),
        });
        // A whole file's error position says where the server stopped: what follows it
        // never ran (a syntax error at line 1 ran nothing). Without one, all of it counts.
        if self.sent_whole {
            let before = match error_char {
                Some(p) => &self.script[..byte_offset_of_char(self.script, p)],
                None => self.script,
            };
            failure.whole_may_have_committed = sql::may_end_transaction_when_sent_whole(before);
        }
        failure
    }

    /// The script failed with `failed`, where the runner stands now.
    fn failed(&self, failed: FailedStatement) -> ScriptFailure {
        ScriptFailure {
            failed: Box::new(failed),
            statements_done: self.done,
            committed_something: self.committed_something,
            left_behind: LeftBehind::Nothing,
            whole_may_have_committed: false,
        }
    }

    /// Runs one statement of the script, keeping what is needed to check the index it
    /// builds (if it builds one) and to tell what it left behind if it fails outside a
    /// transaction block.
    fn run_statement(
        &mut self,
        stmt: &ParsedStatement,
        in_transaction: bool,
    ) -> Result<(), ScriptFailure> {
        let mut check = index_check(stmt);
        let concurrent = matches!(&stmt.node, NodeEnum::IndexStmt(ix) if ix.concurrent);
        if let (Some(c), true) = (check.as_mut(), concurrent) {
            (c.table_oid, c.before) = table_and_indexes(self.client, &c.table)
                .map_err(|e| self.failure(&e, Some(stmt)))?;
        }
        if let Err(mut failure) = self.exec_statement(stmt, in_transaction) {
            if !in_transaction {
                failure.left_behind = match (&check, concurrent) {
                    (Some(c), true) => match invalid_indexes(self.client, c) {
                        Ok(found) => LeftBehind::InvalidIndexes(found),
                        Err(e) => LeftBehind::Unknown(format!(
                            "the CREATE INDEX CONCURRENTLY failed and its INVALID index could not be looked for: {}",
                            describe_pg_error(&e).1
                        )),
                    },
                    _ => non_transactional_reason(&stmt.node)
                        .map(|reason| left_by_non_transactional(&stmt.node, reason))
                        .unwrap_or(LeftBehind::Nothing),
                };
            }
            return Err(failure);
        }
        if let (Some(c), false) = (check.as_mut(), concurrent) {
            c.table_oid = table_and_indexes(self.client, &c.table)
                .map_err(|e| self.failure(&e, Some(stmt)))?
                .0;
        }
        self.index_checks.extend(check);
        Ok(())
    }

    /// Before the script is recorded as done: every index its CREATE INDEX statements
    /// built concurrently or skipped with IF NOT EXISTS must be valid. An INVALID one
    /// (left by an earlier failed concurrent build, and skipped by IF NOT EXISTS) fails
    /// the script: it is not recorded as applied.
    fn check_indexes(&mut self) -> Result<(), ScriptFailure> {
        if !self.index_checks.is_empty() {
            self.flush_begin()?;
        }
        let checks = std::mem::take(&mut self.index_checks);
        for check in &checks {
            let stmt_position = Some(position_of(self.script, check.offset));
            let found = invalid_indexes(self.client, check).map_err(|e| {
                let mut f = self.failure(&e, None);
                f.failed.position = stmt_position.clone();
                f
            })?;
            if let Some(index) = found.first() {
                return Err(self.failed(FailedStatement {
                        sqlstate: None,
                        message: format!(
                            "the index {} this statement builds is INVALID, so the migration is not recorded as applied: \
                             a concurrent build that failed earlier left it (IF NOT EXISTS then skips it), or this one did not finish; \
                             drop it (DROP INDEX CONCURRENTLY {}) and deploy again",
                            index.name, index.name
                        ),
                        position: stmt_position,
                        statement: Some(excerpt(&check.text)),
                }));
            }
        }
        Ok(())
    }

    fn write(&mut self, write: &HistoryWrite) -> Result<(), ScriptFailure> {
        self.flush_begin()?;
        write
            .execute(self.client)
            .map(|_| ())
            .map_err(|e| self.failure(&e, None))
    }

    fn begin(&mut self) -> Result<(), ScriptFailure> {
        if self.batched {
            // Sent with the next statement (or the finish record), one round trip less.
            self.begin_pending = true;
        } else {
            self.exec("BEGIN", None)?;
        }
        self.in_block = true;
        Ok(())
    }

    /// Records success and commits: the finish record and the COMMIT as one query on the
    /// batched path when the record has a literal form, else one after the other.
    fn finish_and_commit(&mut self, books: &Bookkeeping<'_>) -> Result<(), ScriptFailure> {
        let literal = books
            .on_finish
            .as_ref()
            .and_then(HistoryWrite::literal)
            .filter(|_| self.batched);
        match (literal, &books.on_finish) {
            (Some(sql), _) => self.send(&batch::then_commit(sql), None, true)?,
            (None, finish) => {
                if let Some(finish) = finish {
                    self.write(finish)?;
                }
                self.exec("COMMIT", None)?;
            }
        }
        self.in_block = false;
        Ok(())
    }

    /// Prisma's implicit-transaction semantics, one statement at a time.
    fn run_transactional(
        &mut self,
        statements: &[ParsedStatement],
        books: &Bookkeeping<'_>,
    ) -> Result<(), ScriptFailure> {
        // The start record is written only when the file itself commits part of its work
        // (an explicit COMMIT), so that it is committed with that part; otherwise the
        // finish record alone is written with the last statements. Writing it first would
        // also be a query before the file's own `SET TRANSACTION ISOLATION LEVEL`.
        let mut start_recorded = books.on_start.is_none();
        self.begin()?;
        for stmt in statements {
            crate::interrupt::check().map_err(|_| self.interrupted(stmt))?;
            match transaction_control(&stmt.node) {
                // Inside the implicit block, BEGIN turns it into a regular block: nothing
                // changes for us, the server only warns.
                Some(TransactionControl::Begin) => {
                    self.exec(&stmt.text, Some(stmt))?;
                    self.in_block = true;
                }
                Some(TransactionControl::End) => {
                    let was_in_block = self.in_block;
                    if was_in_block && is_commit(stmt) && !start_recorded {
                        self.record_start(books)?;
                        start_recorded = true;
                    }
                    self.exec(&stmt.text, Some(stmt))?;
                    self.committed_something |= was_in_block && is_commit(stmt);
                    self.in_block = false;
                }
                Some(TransactionControl::Chain) => {
                    if is_commit(stmt) && !start_recorded {
                        self.record_start(books)?;
                        start_recorded = true;
                    }
                    self.exec(&stmt.text, Some(stmt))?;
                    self.committed_something |= is_commit(stmt);
                    self.in_block = true;
                }
                Some(TransactionControl::Other) => self.exec(&stmt.text, Some(stmt))?,
                None => {
                    if !self.in_block {
                        self.begin()?;
                    }
                    self.run_statement(stmt, true)?;
                }
            }
            self.done += 1;
        }
        if !self.in_block {
            self.begin()?;
        }
        self.check_indexes()?;
        self.finish_and_commit(books)
    }

    /// One statement at a time; transactional ones each in a transaction with the
    /// progress record, the last one with the finish record.
    fn run_steps(
        &mut self,
        statements: &[ParsedStatement],
        books: &Bookkeeping<'_>,
    ) -> Result<(), ScriptFailure> {
        if let Some(start) = &books.on_start {
            self.write(start)?;
            self.committed_something = true;
        }
        let mut finished = false;
        let last = statements.len().saturating_sub(1);
        for (i, stmt) in statements.iter().enumerate() {
            crate::interrupt::check().map_err(|_| self.interrupted(stmt))?;
            let control = transaction_control(&stmt.node);
            if control.is_some() || self.in_block {
                // The file manages this block itself.
                if control.is_some() {
                    self.exec(&stmt.text, Some(stmt))?;
                } else {
                    self.run_statement(stmt, true)?;
                }
                self.in_block = match control {
                    Some(TransactionControl::Begin | TransactionControl::Chain) => true,
                    Some(TransactionControl::End) => false,
                    _ => self.in_block,
                };
                self.committed_something = true;
                self.done += 1;
                continue;
            }
            let own_transaction = non_transactional_reason(&stmt.node).is_none();
            if own_transaction {
                self.begin()?;
            }
            self.run_statement(stmt, own_transaction)?;
            self.done += 1;
            if let Some(progress) = &books.on_progress {
                self.write(&progress(self.done))?;
            }
            if i == last && own_transaction {
                self.check_indexes()?;
                if let Some(finish) = &books.on_finish {
                    self.write(finish)?;
                }
                finished = true;
            }
            if own_transaction {
                self.exec("COMMIT", None)?;
                self.in_block = false;
            }
            self.committed_something = true;
        }
        if self.in_block {
            // A BEGIN without COMMIT at the end of the file: Prisma's implicit transaction
            // would commit it at the end of the query string.
            self.exec("COMMIT", None)?;
            self.in_block = false;
        }
        if !finished {
            self.check_indexes()?;
            if let Some(finish) = &books.on_finish {
                self.write(finish)?;
            }
        }
        Ok(())
    }

    /// The whole script as one simple query, as Prisma sends it.
    fn run_whole(
        &mut self,
        books: &Bookkeeping<'_>,
        parse_error: &str,
    ) -> Result<(), ScriptFailure> {
        if let Some(start) = &books.on_start {
            self.write(start)?;
            self.committed_something = true;
        }
        // Not cut, so only the encoding can make the server read it otherwise.
        let encoding_only = Reading {
            matters: false,
            ..self.expected()
        };
        self.check_read_as(encoding_only, None)?;
        self.sent_whole = true;
        let sent = self.exec(self.script, None);
        self.sent_whole = false;
        if let Err(mut failure) = sent {
            // The server parses the whole query before it runs any of it: the syntax
            // error pgward's parser found too means that nothing ran.
            let same_error = failure.failed.sqlstate.as_deref() == Some("42601")
                && failure.failed.message == parse_error;
            if same_error {
                failure.whole_may_have_committed = false;
            }
            return Err(failure);
        }
        if let Some(finish) = &books.on_finish {
            self.write(finish)?;
        }
        Ok(())
    }

    fn record_start(&mut self, books: &Bookkeeping<'_>) -> Result<(), ScriptFailure> {
        match &books.on_start {
            Some(start) => self.write(start),
            None => Ok(()),
        }
    }

    fn interrupted(&self, stmt: &ParsedStatement) -> ScriptFailure {
        self.failed(FailedStatement {
            sqlstate: Some("57014".into()),
            message: "interrupted before this statement".into(),
            position: Some(position_of(self.script, stmt.offset)),
            statement: Some(excerpt(&stmt.text)),
        })
    }
}

fn is_commit(stmt: &ParsedStatement) -> bool {
    matches!(
        &stmt.node,
        pg_query::NodeEnum::TransactionStmt(t)
            if t.kind() == pg_query::protobuf::TransactionStmtKind::TransStmtCommit
    )
}

/// `a, b`: the names of indexes.
pub fn index_names(indexes: &[LeftIndex]) -> String {
    indexes
        .iter()
        .map(|l| l.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a server error is lock_timeout (SQLSTATE 55P03).
pub fn is_lock_timeout(e: &postgres::Error) -> bool {
    describe_pg_error(e).0.as_deref() == Some("55P03")
}

/// Drops the INVALID indexes a failed CREATE INDEX CONCURRENTLY left, removing each from
/// `left` once gone. Each is found again by its oid and dropped only while it is still
/// INVALID, under whatever name it has now: never an index someone else made or fixed.
pub fn drop_left_indexes(
    client: &mut postgres::Client,
    left: &mut Vec<LeftIndex>,
) -> std::result::Result<(), postgres::Error> {
    while let Some(index) = left.first() {
        let current = client.query_opt(
            "SELECT c.oid::pg_catalog.regclass::text FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
             WHERE i.indexrelid = $1 AND NOT i.indisvalid",
            &[&index.oid],
        )?;
        if let Some(row) = current {
            // regclass's text form is a quoted, qualified-when-needed identifier.
            let name: String = row.get(0);
            client.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))?;
            crate::log::info(&format!(
                "dropped the INVALID index {name} the failed CREATE INDEX CONCURRENTLY left"
            ));
        }
        left.remove(0);
    }
    Ok(())
}

/// Milliseconds since `start`.
pub fn elapsed_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_what_the_file_holds() {
        assert_eq!(
            ScriptPlan::new("CREATE TABLE a (id int); INSERT INTO a VALUES (1);").mode,
            RunMode::Transaction
        );
        assert!(matches!(
            ScriptPlan::new("CREATE INDEX CONCURRENTLY i ON a (id);").mode,
            RunMode::Statements { .. }
        ));
        assert!(matches!(
            ScriptPlan::new("ALTER TYPE mood ADD VALUE 'meh'; UPDATE t SET m = 'meh';").mode,
            RunMode::Statements { .. }
        ));
        assert_eq!(
            ScriptPlan::new("ALTER TYPE mood ADD VALUE 'meh';").mode,
            RunMode::Transaction
        );
        assert!(matches!(
            ScriptPlan::new("CREATE TABLE (").mode,
            RunMode::Whole { .. }
        ));
    }

    fn kinds(plan: &ScriptPlan) -> Vec<String> {
        plan.statements
            .iter()
            .map(|s| {
                s.text
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_file_split_differently_when_backslashes_escape_keeps_both_plans() {
        let hidden = "INSERT INTO t VALUES ('a\\', ' ) ; COMMIT ; SELECT 1 -- ');\n;\nSELECT 2;";
        let plan = ScriptPlan::new(hidden);
        assert_eq!(kinds(&plan), ["INSERT", "SELECT"]);
        assert!(plan.reading_matters);
        let escaped = plan.escaped.as_ref().expect("the two readings differ");
        assert_eq!(kinds(escaped), ["INSERT", "COMMIT", "SELECT", "SELECT"]);
        assert!(escaped.reading_matters);
        assert_eq!(escaped.reading, Strings::BackslashEscapes);
        assert_eq!(plan.first_statement_read_differently(), Some(0));
        let in_any: Vec<_> = plan
            .statements_in_any_session()
            .map(|(s, strings)| (s.text.split_whitespace().next().unwrap(), strings))
            .collect();
        assert_eq!(
            in_any,
            [
                ("INSERT", Strings::Standard),
                ("SELECT", Strings::Standard),
                ("INSERT", Strings::BackslashEscapes),
                ("COMMIT", Strings::BackslashEscapes),
                ("SELECT", Strings::BackslashEscapes),
            ],
            "the last SELECT is the same statement in both, listed once"
        );
    }

    #[test]
    fn backslashes_read_alike_leave_one_plan() {
        for sql in [
            "SELECT 1;",
            "SELECT E'it\\'s', E'\\d'; SELECT 2;",
            "SELECT $$a\\'$$;",
            "-- a comment holding \\ \nSELECT 1;",
        ] {
            let plan = ScriptPlan::new(sql);
            assert!(!plan.reading_matters && plan.escaped.is_none(), "{sql}");
        }
    }

    #[test]
    fn a_literal_read_otherwise_matters_though_the_cut_is_the_same() {
        // Lint does not warn (the server reads the statements pgward sends), but the
        // session's reading is checked, and drift sees what the other reading calls.
        for sql in [
            "SELECT '\\d+' ~ 'x'; SELECT 2;",
            "SELECT '\\\\';",
            "SELECT 'x\\', ' , lo_export(4242, $$/tmp/x$$) , ' AS c -- '\n;",
        ] {
            let plan = ScriptPlan::new(sql);
            assert!(plan.reading_matters, "{sql}");
            assert_eq!(plan.first_statement_read_differently(), None, "{sql}");
        }
        let hidden =
            ScriptPlan::new("SELECT 'x\\', ' , lo_export(4242, $$/tmp/x$$) , ' AS c -- '\n;");
        let calls: Vec<Strings> = hidden
            .statements_in_any_session()
            .filter(|(s, _)| sql::cluster_wide(&s.node).is_some())
            .map(|(_, strings)| strings)
            .collect();
        assert_eq!(
            calls,
            [Strings::BackslashEscapes],
            "lo_export, as an escaping session reads it"
        );
    }
}
