//! `pgward-validate data`: the rows a schema change left behind — rows violating NOT VALID
//! foreign keys and checks, NULLs under a NOT VALID `IS NOT NULL` check, duplicates under
//! invalid unique indexes — and the team's own checks (`checks/*.sql`, each a query whose
//! rows are violations, with an optional `-- max-rows: N` header).
//!
//! Every check runs in its own read-only transaction on its own connection, in parallel
//! (`--jobs`), under `--statement-timeout`: a user check can neither change data nor run
//! forever. A user check is parsed by libpg_query first and refused unless it is exactly
//! one SELECT that changes nothing (no data-modifying WITH, no SELECT INTO, no FOR
//! UPDATE/SHARE); it then runs through the extended query protocol, which carries exactly
//! one statement, so nothing can ride along after a `;`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pg_query::{NodeEnum, NodeRef};
use pgward_shared::cli::{Jobs, StatementTimeout, CHECK_STATEMENT_TIMEOUT, STRICT_HELP};
use pgward_shared::connect::dburl::ConnectionSettings;
use pgward_shared::connect::READ_EVERY_ROW;
use pgward_shared::error::{describe_pg_error, Error, Result};
use pgward_shared::output::{Context, Failure, Outcome};
use pgward_shared::sql::quote_ident;
use rayon::prelude::*;

use crate::schema::finish;
use pgward_shared::findings::Totals;
use pgward_shared::findings::{CheckRun, DataResult};
use pgward_shared::findings::{Finding, Location, Severity};

/// data's options: its flags, parsed straight into them.
#[derive(Debug, Clone, clap::Args)]
pub struct DataOptions {
    /// Folder of user checks (*.sql) [default: ./checks if it exists]
    #[arg(long, value_name = "DIR")]
    pub checks: Option<PathBuf>,
    // statement_timeout per check.
    #[command(flatten)]
    pub statement_timeout: StatementTimeout,
    // Checks at once, one connection each.
    #[command(flatten)]
    pub jobs: Jobs,
    // Warnings fail the run (exit 3).
    #[arg(long, help = STRICT_HELP)]
    pub strict: bool,
}

/// The folder used when `--checks` is not given and it exists.
const DEFAULT_CHECKS_DIR: &str = "checks";
/// Rows of a violation quoted in the finding.
const SAMPLE_ROWS: usize = 5;

/// One check to run: built-in (from the catalogs) or a user's file.
#[derive(Debug, Clone)]
struct DataCheck {
    rule: String,
    object: String,
    file: Option<String>,
    /// A query returning the violating rows.
    sql: String,
    /// Why a user check is refused without running (not exactly one read-only SELECT).
    refused: Option<String>,
    /// More rows than this is a violation.
    max_rows: usize,
    why: String,
    fix: String,
}

/// Runs the data checks.
pub fn run(ctx: &Context, options: &DataOptions) -> Result<Outcome, Failure> {
    let user_checks = match &options.checks {
        Some(dir) => read_user_checks(dir)?,
        None if Path::new(DEFAULT_CHECKS_DIR).is_dir() => {
            read_user_checks(Path::new(DEFAULT_CHECKS_DIR))?
        }
        None => Vec::new(),
    };
    let db = ctx.database()?;
    let mut session = ctx.connect()?;
    let mut checks = builtin_checks(&mut session.client)?;
    drop(session);
    checks.extend(user_checks);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.get().max(1))
        .build()
        .map_err(|e| {
            Error::usage(
                format!("cannot start {} workers: {e}", options.jobs.get()),
                "lower --jobs",
            )
        })?;
    let outcomes: Vec<Result<(CheckRun, Option<Finding>)>> = pool.install(|| {
        checks
            .par_iter()
            .map(|check| {
                run_check(
                    &db,
                    check,
                    options
                        .statement_timeout
                        .statement_timeout
                        .unwrap_or(CHECK_STATEMENT_TIMEOUT),
                )
            })
            .collect()
    });
    let mut runs = Vec::new();
    let mut findings = Vec::new();
    for outcome in outcomes {
        let (run, finding) = outcome?;
        runs.push(run);
        findings.extend(finding);
    }
    let totals = Totals::of(&findings);
    let result = DataResult {
        checks: runs,
        findings,
        totals,
    };
    finish("data checks", totals, options.strict, result)
}

fn run_check(
    db: &ConnectionSettings,
    check: &DataCheck,
    timeout: Duration,
) -> Result<(CheckRun, Option<Finding>)> {
    let started = Instant::now();
    if let Some(reason) = &check.refused {
        let finding = check_problem(
            check,
            "check-refused",
            format!(
                "check {} was refused and did not run: {reason}",
                check.object
            ),
            "a check must be exactly one SELECT (or WITH ... SELECT) that changes nothing; \
             pgward runs it read-only and refuses anything else rather than trusting it"
                .into(),
        );
        return Ok((failed_run(check, started), Some(finding)));
    }
    let mut session = pgward_shared::connect::connect(db, "pgward-validate")?;
    let rows = match query_read_only(&mut session.client, check, timeout) {
        Ok(rows) => rows,
        Err(e) => {
            if pgward_shared::interrupt::requested() {
                return Err(Error::Interrupted);
            }
            let (sqlstate, message) = describe_pg_error(&e);
            let timed_out = sqlstate.as_deref() == Some("57014");
            let finding = check_problem(
                check,
                if timed_out {
                    "check-timed-out"
                } else {
                    "check-failed"
                },
                format!("check {} could not run: {message}", check.object),
                if timed_out {
                    "raise --statement-timeout, or make the query cheaper (an index, a narrower WHERE)".into()
                } else if let Some(table) = pgward_shared::error::row_security_table(&e) {
                    Error::RowSecurity {
                        role: Some(db.user.clone()),
                        tables: vec![table],
                    }
                    .hint()
                } else {
                    "fix the check's SQL; it must be one SELECT returning the violating rows".into()
                },
            );
            return Ok((failed_run(check, started), Some(finding)));
        }
    };
    let passed = rows.len() <= check.max_rows;
    let run = CheckRun {
        rule: check.rule.clone(),
        object: check.object.clone(),
        rows: rows.len(),
        passed,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let finding = (!passed).then(|| {
        let sample: Vec<_> = rows.iter().take(SAMPLE_ROWS).cloned().collect();
        let more = if rows.len() > SAMPLE_ROWS {
            " or more"
        } else {
            ""
        };
        check_finding(
            check,
            &check.rule,
            format!(
                "{}: {} violating row(s){more}{}; first: {}",
                check.object,
                rows.len(),
                if check.max_rows > 0 {
                    format!(" (at most {} allowed)", check.max_rows)
                } else {
                    String::new()
                },
                serde_json::Value::Array(sample)
            ),
            check.why.clone(),
            check.fix.clone(),
        )
    });
    Ok((run, finding))
}

/// Runs a check's query in a READ ONLY transaction under `timeout`, through the extended
/// query protocol (one Parse message holds one statement: a `;` cannot smuggle a second
/// one in), and returns its first rows as JSON objects (column name to value).
fn query_read_only(
    client: &mut postgres::Client,
    check: &DataCheck,
    timeout: Duration,
) -> std::result::Result<Vec<serde_json::Value>, postgres::Error> {
    // Dropping the transaction rolls it back; SET LOCAL ends with it.
    let mut tx = client.build_transaction().read_only(true).start()?;
    // With row_security off, a check on a table whose policies apply to the role fails
    // instead of passing on the rows the policies show (the SET ends with the rollback).
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}; {READ_EVERY_ROW}",
        timeout.as_millis().max(1)
    ))?;
    // `pgward_check.*` is the whole row even when the check has a column of that name.
    let sql = format!(
        "SELECT to_json(pgward_check.*) FROM (\n{}\n) AS pgward_check LIMIT {}",
        check.sql,
        check.max_rows + SAMPLE_ROWS
    );
    let rows = tx.query(&sql, &[])?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The finding of a check that did not run (refused, failed or timed out).
fn check_problem(check: &DataCheck, rule: &str, message: String, fix: String) -> Finding {
    let why = "a check that does not run proves nothing".to_string();
    check_finding(check, rule, message, why, fix)
}

/// An error finding on `check`'s file or object.
fn check_finding(
    check: &DataCheck,
    rule: &str,
    message: String,
    why: String,
    fix: String,
) -> Finding {
    Finding {
        rule: rule.into(),
        severity: Severity::Error,
        location: Location {
            file: check.file.clone(),
            line: None,
            column: None,
            object: Some(check.object.clone()),
        },
        message,
        lock: None,
        why,
        fix,
        span: None,
        confirmed: None,
        observed: None,
    }
}

/// The run of a check that did not run to the end.
fn failed_run(check: &DataCheck, started: Instant) -> CheckRun {
    CheckRun {
        rule: check.rule.clone(),
        object: check.object.clone(),
        rows: 0,
        passed: false,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

/// The statement of a user check when it is exactly one SELECT that changes nothing, else
/// why it is refused. Parsed by libpg_query, so comments, strings and dollar quotes cannot
/// hide a second statement.
fn read_only_select(text: &str) -> std::result::Result<String, String> {
    let statements = pgward_shared::sql::parse_statements(text)
        .map_err(|e| format!("it does not parse: {}", e.message))?;
    let [statement] = statements.as_slice() else {
        return Err(format!(
            "it holds {} statements, not one SELECT{}",
            statements.len(),
            if statements.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    statements
                        .iter()
                        .map(|s| statement_kind(&s.node))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
    };
    if !matches!(statement.node, NodeEnum::SelectStmt(_)) {
        return Err(format!(
            "it is {}, not a SELECT",
            statement_kind(&statement.node)
        ));
    }
    for (node, ..) in statement.node.nodes() {
        match node {
            NodeRef::InsertStmt(_)
            | NodeRef::UpdateStmt(_)
            | NodeRef::DeleteStmt(_)
            | NodeRef::MergeStmt(_) => {
                return Err(
                    "it changes data (an INSERT, UPDATE, DELETE or MERGE inside WITH)".into(),
                )
            }
            NodeRef::SelectStmt(s) if s.into_clause.is_some() => {
                return Err("SELECT INTO creates a table".into())
            }
            NodeRef::SelectStmt(s) if !s.locking_clause.is_empty() => {
                return Err(
                    "FOR UPDATE / FOR SHARE locks rows and would block the application's writes"
                        .into(),
                )
            }
            _ => {}
        }
    }
    Ok(statement.text.clone())
}

/// `a SELECT`, `a DeleteStmt`: the parse tree's statement kind, for messages.
fn statement_kind(node: &NodeEnum) -> String {
    match node {
        NodeEnum::SelectStmt(_) => "a SELECT".into(),
        NodeEnum::TransactionStmt(_) => "a transaction command (BEGIN, COMMIT, ...)".into(),
        other => {
            let name = format!("{other:?}");
            let name = name.split('(').next().unwrap_or_default().to_string();
            format!("a {name}")
        }
    }
}

/// The built-in checks, one per NOT VALID constraint and invalid unique index.
fn builtin_checks(client: &mut postgres::Client) -> Result<Vec<DataCheck>> {
    let mut checks = Vec::new();
    let fks = client
        .query(
            "SELECT format('%I.%I', cn.nspname, c.relname), k.conname, format('%I.%I', pn.nspname, p.relname), \
                    array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY x(n, o) JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n ORDER BY x.o), \
                    array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY x(n, o) JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.n ORDER BY x.o) \
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace \
             JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE k.contype = 'f' AND NOT k.convalidated ORDER BY 1, 2",
            &[],
        )
        .map_err(|e| Error::query("listing NOT VALID foreign keys", &e))?;
    for r in fks {
        let (table, name, parent, cols, refcols): (
            String,
            String,
            String,
            Vec<String>,
            Vec<String>,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let not_null = cols
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let join = cols
            .iter()
            .zip(&refcols)
            .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let select = cols
            .iter()
            .map(|c| format!("c.{}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        checks.push(DataCheck {
            rule: "not-valid-foreign-key-violation".into(),
            object: format!("{table}.{name}"),
            file: None,
            refused: None,
            sql: format!("SELECT c.ctid::text AS ctid, {select} FROM ONLY {table} c WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {join})"),
            max_rows: 0,
            why: format!("rows of {table} reference {parent} rows that do not exist; VALIDATE CONSTRAINT {name} will fail"),
            fix: format!("delete or repair the orphans (or insert the missing {parent} rows), then ALTER TABLE {table} VALIDATE CONSTRAINT {}", quote_ident(&name)),
        });
    }
    let check_constraints = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), k.conname, pg_get_expr(k.conbin, k.conrelid) \
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE k.contype = 'c' AND NOT k.convalidated ORDER BY 1, 2",
            &[],
        )
        .map_err(|e| Error::query("listing NOT VALID check constraints", &e))?;
    for r in check_constraints {
        let (table, name, expr): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let rule = if is_not_null_test(&expr) {
            "null-under-not-valid-not-null-check"
        } else {
            "not-valid-check-violation"
        };
        checks.push(DataCheck {
            rule: rule.into(),
            object: format!("{table}.{name}"),
            file: None,
            refused: None,
            // A CHECK passes on NULL: only FALSE is a violation.
            sql: format!("SELECT ctid::text AS ctid, * FROM ONLY {table} WHERE ({expr}) IS FALSE"),
            max_rows: 0,
            why: format!(
                "rows of {table} break CHECK ({expr}); VALIDATE CONSTRAINT {name} will fail"
            ),
            fix: format!(
                "repair the rows, then ALTER TABLE {table} VALIDATE CONSTRAINT {}",
                quote_ident(&name)
            ),
        });
    }
    let unique = client
        .query(
            "SELECT format('%I.%I', n.nspname, t.relname), format('%I.%I', n.nspname, ic.relname), \
                    array(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k), \
                    pg_get_expr(i.indpred, i.indrelid) \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE i.indisunique AND NOT i.indisvalid ORDER BY 1, 2",
            &[],
        )
        .map_err(|e| Error::query("listing invalid unique indexes", &e))?;
    for r in unique {
        let (table, index, keys, predicate): (String, String, Vec<String>, Option<String>) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let key_list = keys.join(", ");
        let mut filters: Vec<String> = keys.iter().map(|k| format!("({k}) IS NOT NULL")).collect();
        if let Some(p) = predicate {
            filters.push(format!("({p})"));
        }
        checks.push(DataCheck {
            rule: "duplicates-under-invalid-unique-index".into(),
            object: index.clone(),
            file: None,
            refused: None,
            sql: format!(
                "SELECT {key_list}, count(*) AS copies FROM ONLY {table} WHERE {} GROUP BY {key_list} HAVING count(*) > 1",
                filters.join(" AND ")
            ),
            max_rows: 0,
            why: format!("the unique index {index} is invalid, probably because these duplicates made its CREATE fail; it enforces nothing"),
            fix: format!("remove the duplicates, DROP INDEX CONCURRENTLY {index}, and create it again CONCURRENTLY"),
        });
    }
    Ok(checks)
}

/// Whether a check expression is `col IS NOT NULL` (parsed, not pattern-matched).
fn is_not_null_test(expr: &str) -> bool {
    let Ok(stmts) = pgward_shared::sql::parse_statements(&format!("SELECT {expr}")) else {
        return false;
    };
    let Some(NodeEnum::SelectStmt(select)) = stmts.first().map(|s| &s.node) else {
        return false;
    };
    let Some(NodeEnum::ResTarget(target)) =
        select.target_list.first().and_then(|t| t.node.as_ref())
    else {
        return false;
    };
    matches!(
        target.val.as_ref().and_then(|v| v.node.as_ref()),
        Some(NodeEnum::NullTest(t)) if t.nulltesttype() == pg_query::protobuf::NullTestType::IsNotNull
    )
}

/// Reads `dir/*.sql`, in name order.
fn read_user_checks(dir: &Path) -> Result<Vec<DataCheck>> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::usage(
            format!("the checks folder {} does not exist", dir.display()),
            "pass --checks DIR with your *.sql checks, or create ./checks",
        ),
        _ => Error::io("read", dir, e),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    paths.sort();
    let mut checks = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        let max_rows = max_rows_header(&text).map_err(|reason| {
            Error::usage(
                format!("{}: {reason}", path.display()),
                "write the header as `-- max-rows: 10` on a line of its own",
            )
        })?;
        let body = text.trim().trim_end_matches(';').trim_end().to_string();
        if body.is_empty() {
            return Err(Error::usage(
                format!("the check {} is empty", path.display()),
                "each check is one SELECT returning the violating rows",
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (sql, refused) = match read_only_select(&body) {
            Ok(statement) => (statement, None),
            Err(reason) => (String::new(), Some(reason)),
        };
        checks.push(DataCheck {
            rule: "user-check".into(),
            object: name.clone(),
            file: Some(path.display().to_string()),
            sql,
            refused,
            max_rows,
            why: format!("the team's check {name} returned violating rows"),
            fix: format!(
                "see {} for what it checks; repair the rows it returns",
                path.display()
            ),
        });
    }
    Ok(checks)
}

/// `-- max-rows: N` among the leading comment lines; 0 when absent.
fn max_rows_header(text: &str) -> std::result::Result<usize, String> {
    for line in text
        .lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with("--"))
    {
        let Some(rest) = line.strip_prefix("--").map(str::trim) else {
            continue;
        };
        if let Some(value) = rest.strip_prefix("max-rows:") {
            return value
                .trim()
                .parse()
                .map_err(|_| format!("`-- max-rows: {}` is not a whole number", value.trim()));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_rows_header_is_read_from_leading_comments_only() {
        assert_eq!(
            max_rows_header("-- orphans\n-- max-rows: 3\nSELECT 1"),
            Ok(3)
        );
        assert_eq!(max_rows_header("SELECT 1\n-- max-rows: 3"), Ok(0));
        assert!(max_rows_header("-- max-rows: many\nSELECT 1").is_err());
    }

    #[test]
    fn only_one_read_only_select_is_accepted_as_a_check() {
        for ok in [
            "SELECT id FROM users WHERE email IS NULL",
            "-- header\nWITH x AS (SELECT 1 AS a) SELECT a FROM x -- trailing",
            "SELECT ';' AS s, $$; DELETE FROM users; $$ AS d /* ; COMMIT; */",
            "VALUES (1), (2)",
            "SELECT 1 UNION ALL SELECT 2",
        ] {
            assert!(
                read_only_select(ok).is_ok(),
                "{ok}: {:?}",
                read_only_select(ok)
            );
        }
        assert_eq!(
            read_only_select("SELECT 1 -- done\n").as_deref(),
            Ok("SELECT 1 -- done")
        );
        for (bad, why) in [
            (
                "SELECT 1) x; COMMIT; DELETE FROM users; SELECT (1",
                "does not parse",
            ),
            ("SELECT 1; DELETE FROM users", "2 statements"),
            ("COMMIT", "transaction command"),
            ("DELETE FROM users", "DeleteStmt"),
            ("SET transaction_read_only = off", "VariableSetStmt"),
            (
                "WITH d AS (DELETE FROM users RETURNING id) SELECT id FROM d",
                "changes data",
            ),
            ("SELECT * INTO copy FROM users", "SELECT INTO"),
            ("SELECT * FROM users FOR UPDATE", "FOR UPDATE"),
            (
                "SELECT * FROM (SELECT * FROM users FOR SHARE) s",
                "FOR UPDATE",
            ),
            ("", "0 statements"),
        ] {
            let err = read_only_select(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn not_null_checks_are_recognised_by_the_parser() {
        assert!(is_not_null_test("(email IS NOT NULL)"));
        assert!(!is_not_null_test("(price > 0)"));
        assert!(!is_not_null_test("((a IS NOT NULL) AND (b > 1))"));
    }
}
