//! `pgward-validate schema`: what a DBA checks in the catalogs after a migration — tables
//! without primary key, invalid indexes, NOT VALID constraints, foreign keys without a
//! covering index, duplicate indexes, integer columns and sequences running out, and the
//! migration history's failed or pending entries.
//!
//! Each check is one catalog query over the whole database (never one query per table), so
//! a database of thousands of tables is checked in well under a second.

use pgward_shared::cli::{MigrationsDir, STRICT_HELP};
use pgward_shared::codes::WarningCode;
use pgward_shared::error::{Error, Result};
use pgward_shared::migrations::history;
use pgward_shared::migrations::state::MigrationState;
use pgward_shared::migrations::MigrationsFolder;
use pgward_shared::output::{Context, Failure, Outcome};
use serde::Serialize;

use pgward_shared::findings::SchemaResult;
use pgward_shared::findings::Totals;
use pgward_shared::findings::{Finding, Location, Severity};

/// schema's options: its flags, parsed straight into them.
#[derive(Debug, Clone, clap::Args)]
pub struct SchemaOptions {
    // The migrations folder (for pending and failed migrations; skipped when it does not
    // exist).
    #[command(flatten)]
    pub dir: MigrationsDir,
    // Warnings fail the run (exit 3).
    #[arg(long, help = STRICT_HELP)]
    pub strict: bool,
}

/// Share of a sequence's or column's range above which it is reported (issue: 75%).
const NEAR_MAX_WARNING: f64 = 0.75;
/// Share above which running out is an error rather than a warning.
const NEAR_MAX_ERROR: f64 = 0.90;

/// Schemas that are never the application's.
const SYSTEM_SCHEMAS: &str = "('pg_catalog', 'information_schema', 'pg_toast')";

/// Runs the schema checks.
pub fn run(ctx: &Context, options: &SchemaOptions) -> Result<Outcome, Failure> {
    let mut session = ctx.connect()?;
    let schema = session.schema().to_string();
    let client = &mut session.client;
    let mut findings = Vec::new();
    tables_without_primary_key(client, &mut findings)?;
    invalid_indexes(client, &mut findings)?;
    not_valid_constraints(client, &mut findings)?;
    unindexed_foreign_keys(client, &mut findings)?;
    duplicate_indexes(client, &mut findings)?;
    sequences_near_max(client, &mut findings)?;
    migration_history(ctx, client, &schema, options, &mut findings)?;
    let tables: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN {SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg_temp%'"
            ),
            &[],
        )
        .map_err(|e| Error::query("counting tables", &e))?
        .get(0);
    let totals = Totals::of(&findings);
    let result = SchemaResult {
        tables,
        findings,
        totals,
    };
    finish("schema checks", result.totals, options.strict, result)
}

/// Turns findings into the outcome: exit 1 on errors, 3 on warnings under `strict`.
pub fn finish(
    what: &str,
    totals: Totals,
    strict: bool,
    result: impl Serialize,
) -> Result<Outcome, Failure> {
    match totals.exit(strict) {
        pgward_shared::Exit::Failed => Err(Failure::with_result(
            Error::ChecksFailed {
                what: what.to_string(),
                errors: totals.errors,
                warnings: totals.warnings,
            },
            result,
        )),
        pgward_shared::Exit::Attention => Ok(Outcome::attention(result)),
        _ => Ok(Outcome::ok(result)),
    }
}

fn finding(
    rule: &str,
    severity: Severity,
    object: String,
    message: String,
    why: &str,
    fix: String,
) -> Finding {
    Finding {
        rule: rule.to_string(),
        severity,
        location: Location {
            file: None,
            line: None,
            column: None,
            object: Some(object),
        },
        message,
        lock: None,
        why: why.to_string(),
        fix,
        span: None,
        confirmed: None,
        observed: None,
    }
}

/// Relations owned by an extension are not the application's to fix.
const NOT_EXTENSION_OWNED: &str =
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')";

fn tables_without_primary_key(client: &mut postgres::Client, out: &mut Vec<Finding>) -> Result<()> {
    let rows = client
        .query(
            &format!(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN {SYSTEM_SCHEMAS} \
                   AND n.nspname NOT LIKE 'pg_temp%' AND {NOT_EXTENSION_OWNED} \
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') \
                 ORDER BY 1"
            ),
            &[],
        )
        .map_err(|e| Error::query("looking for tables without primary key", &e))?;
    for r in rows {
        let table: String = r.get(0);
        out.push(finding(
            "table-without-primary-key",
            Severity::Warning,
            table.clone(),
            format!("table {table} has no primary key"),
            "rows cannot be addressed reliably: logical replication cannot replicate its UPDATEs and DELETEs, and duplicates creep in",
            format!("add one without a long lock: CREATE UNIQUE INDEX CONCURRENTLY ... ON {table} (id); ALTER TABLE {table} ADD PRIMARY KEY USING INDEX ..."),
        ));
    }
    Ok(())
}

fn invalid_indexes(client: &mut postgres::Client, out: &mut Vec<Finding>) -> Result<()> {
    let rows = client
        .query(
            &format!(
                "SELECT format('%I.%I', n.nspname, ic.relname), format('%I.%I', n.nspname, t.relname) \
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
                 JOIN pg_namespace n ON n.oid = ic.relnamespace \
                 WHERE NOT i.indisvalid AND n.nspname NOT IN {SYSTEM_SCHEMAS} ORDER BY 1"
            ),
            &[],
        )
        .map_err(|e| Error::query("looking for invalid indexes", &e))?;
    for r in rows {
        let (index, table): (String, String) = (r.get(0), r.get(1));
        out.push(finding(
            "invalid-index",
            Severity::Error,
            index.clone(),
            format!("index {index} on {table} is INVALID (a CREATE INDEX CONCURRENTLY that failed or was interrupted)"),
            "the planner never uses it but every write still maintains it; a unique one does not enforce uniqueness",
            format!("DROP INDEX CONCURRENTLY {index}; then create it again with CREATE INDEX CONCURRENTLY (or REINDEX INDEX CONCURRENTLY {index})"),
        ));
    }
    Ok(())
}

fn not_valid_constraints(client: &mut postgres::Client, out: &mut Vec<Finding>) -> Result<()> {
    let rows = client
        .query(
            &format!(
                "SELECT format('%I.%I', n.nspname, t.relname), k.conname, k.contype::text \
                 FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE NOT k.convalidated AND n.nspname NOT IN {SYSTEM_SCHEMAS} ORDER BY 1, 2"
            ),
            &[],
        )
        .map_err(|e| Error::query("looking for NOT VALID constraints", &e))?;
    for r in rows {
        let (table, name, kind): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let kind = if kind == "f" {
            "foreign key"
        } else {
            "check constraint"
        };
        out.push(finding(
            "not-valid-constraint",
            Severity::Warning,
            format!("{table}.{name}"),
            format!("{kind} {name} on {table} is NOT VALID: existing rows were never checked"),
            "new rows are checked but old ones may violate it; the planner cannot rely on it",
            format!("check the old rows with `pgward-validate data`, then ALTER TABLE {table} VALIDATE CONSTRAINT \"{name}\" (takes only SHARE UPDATE EXCLUSIVE)"),
        ));
    }
    Ok(())
}

fn unindexed_foreign_keys(client: &mut postgres::Client, out: &mut Vec<Finding>) -> Result<()> {
    // A foreign key is covered when some valid index starts with its columns, in any order.
    let rows = client
        .query(
            &format!(
                "SELECT format('%I.%I', n.nspname, t.relname), k.conname, \
                        (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY x.ord) FROM unnest(k.conkey) WITH ORDINALITY x(attnum, ord) \
                           JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum) \
                 FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE k.contype = 'f' AND n.nspname NOT IN {SYSTEM_SCHEMAS} AND NOT t.relispartition \
                   AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = k.conrelid AND i.indisvalid AND i.indpred IS NULL \
                          AND (SELECT array_agg(v ORDER BY v) FROM unnest((i.indkey::int2[])[0:cardinality(k.conkey) - 1]) v) \
                            = (SELECT array_agg(v ORDER BY v) FROM unnest(k.conkey) v)) \
                 ORDER BY 1, 2"
            ),
            &[],
        )
        .map_err(|e| Error::query("looking for foreign keys without index", &e))?;
    for r in rows {
        let (table, name, cols): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        out.push(finding(
            "foreign-key-without-index",
            Severity::Warning,
            format!("{table}.{name}"),
            format!("foreign key {name} on {table} ({cols}) has no index starting with its columns"),
            "every DELETE or key UPDATE on the referenced table scans this table in full, holding locks meanwhile",
            format!("CREATE INDEX CONCURRENTLY ON {table} ({cols})"),
        ));
    }
    Ok(())
}

fn duplicate_indexes(client: &mut postgres::Client, out: &mut Vec<Finding>) -> Result<()> {
    let rows = client
        .query(
            &format!(
                "SELECT format('%I.%I', n.nspname, t.relname), \
                        array_agg(format('%I.%I', n.nspname, ic.relname) ORDER BY ic.relname) \
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE n.nspname NOT IN {SYSTEM_SCHEMAS} AND i.indisvalid \
                 GROUP BY 1, i.indrelid, i.indkey::text, i.indclass::text, i.indcollation::text, \
                          coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), coalesce(pg_get_expr(i.indpred, i.indrelid), ''), ic.relam \
                 HAVING count(*) > 1 ORDER BY 1"
            ),
            &[],
        )
        .map_err(|e| Error::query("looking for duplicate indexes", &e))?;
    for r in rows {
        let (table, indexes): (String, Vec<String>) = (r.get(0), r.get(1));
        out.push(finding(
            "duplicate-index",
            Severity::Warning,
            indexes.join(", "),
            format!("indexes {} on {table} are identical", indexes.join(", ")),
            "each write maintains both and both take memory and disk, for no gain",
            format!(
                "keep one (a constraint's index if one backs a constraint) and DROP INDEX CONCURRENTLY the others, e.g. {}",
                indexes.last().cloned().unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

fn sequences_near_max(client: &mut postgres::Client, out: &mut Vec<Finding>) -> Result<()> {
    // The limit is the tighter of the sequence's own maximum and the type of the column
    // that owns it (a serial column is int4 even when its sequence is later made bigint).
    let rows = client
        .query(
            "SELECT format('%I.%I', s.schemaname, s.sequencename), s.last_value::float8, \
                    least(s.max_value::float8, coalesce(CASE col.atttypid WHEN 'int2'::regtype THEN 32767 \
                          WHEN 'int4'::regtype THEN 2147483647 ELSE NULL END, s.max_value::float8)), \
                    CASE WHEN col.attname IS NULL THEN '' ELSE format('%I.%I.%I', cn.nspname, ct.relname, col.attname) END \
             FROM pg_sequences s \
             JOIN pg_class sc ON sc.relname = s.sequencename JOIN pg_namespace sn ON sn.oid = sc.relnamespace AND sn.nspname = s.schemaname \
             LEFT JOIN pg_depend d ON d.objid = sc.oid AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
             LEFT JOIN pg_attribute col ON col.attrelid = d.refobjid AND col.attnum = d.refobjsubid \
             LEFT JOIN pg_class ct ON ct.oid = d.refobjid LEFT JOIN pg_namespace cn ON cn.oid = ct.relnamespace \
             WHERE s.last_value IS NOT NULL AND s.increment_by > 0 ORDER BY 1",
            &[],
        )
        .map_err(|e| Error::query("looking for sequences near their maximum", &e))?;
    for r in rows {
        let (sequence, last, max, column): (String, f64, f64, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let used = if max > 0.0 { last / max } else { 0.0 };
        if used < NEAR_MAX_WARNING {
            continue;
        }
        let owner = if column.is_empty() {
            String::new()
        } else {
            format!(" (feeds {column})")
        };
        out.push(finding(
            "sequence-near-max",
            if used >= NEAR_MAX_ERROR {
                Severity::Error
            } else {
                Severity::Warning
            },
            sequence.clone(),
            format!(
                "sequence {sequence}{owner} is at {:.1}% of its maximum ({last:.0} of {max:.0})",
                used * 100.0
            ),
            "when it runs out every INSERT fails with 'nextval: reached maximum value' or an integer out of range error",
            "change the column to bigint (a rewrite: plan it, e.g. a new bigint column backfilled in batches) and ALTER SEQUENCE ... AS bigint".into(),
        ));
    }
    Ok(())
}

fn migration_history(
    ctx: &Context,
    client: &mut postgres::Client,
    schema: &str,
    options: &SchemaOptions,
    out: &mut Vec<Finding>,
) -> Result<()> {
    if !history::table_exists(client, schema)? {
        return Ok(());
    }
    let rows = history::read_rows(client, schema)?;
    for row in rows.iter().filter(|r| r.is_failed()) {
        out.push(finding(
            "failed-migration",
            Severity::Error,
            row.migration_name.clone(),
            format!(
                "migration {} is recorded as failed or unfinished (started {})",
                row.migration_name, row.started_at
            ),
            "it blocks every later deploy (P3009) and part of it may be applied",
            format!("see its logs with `pgward-migrate status`; after fixing, `pgward-migrate resolve --rolled-back {}` (or --applied)", row.migration_name),
        ));
    }
    let folder = match MigrationsFolder::read(&options.dir.resolve(&ctx.settings)) {
        Ok(f) => f,
        Err(Error::MigrationsDirMissing { path }) => {
            ctx.warn(
                WarningCode::NoMigrationsDir,
                format!(
                    "{} does not exist: pending migrations were not checked",
                    path.display()
                ),
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let state = MigrationState::compare(&folder, &rows);
    for name in &state.pending {
        out.push(finding(
            "pending-migration",
            Severity::Warning,
            name.clone(),
            format!("migration {name} is not applied"),
            "the database is behind the code that expects it",
            "run `pgward-migrate deploy`".into(),
        ));
    }
    Ok(())
}
