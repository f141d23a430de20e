//! What follows the data: sequences set to their values, materialized views filled, row
//! counts compared with the manifest, ANALYZE.

use crate::archive::load::schedule::TableLoaded;
use crate::archive::load::TableLoad;
use crate::archive::manifest::{BackupManifest, ManifestTable};
use crate::connect::Session;
use crate::error::{Error, Result};
use crate::sql::{quote_ident, quote_literal};

/// Sets every sequence of the backup to the value it had.
pub(super) fn restore_sequences(session: &mut Session, manifest: &BackupManifest) -> Result<()> {
    for s in &manifest.sequences {
        let name = format!("{}.{}", quote_ident(&s.schema), quote_ident(&s.name));
        session
            .client
            .batch_execute(&format!(
                "SELECT pg_catalog.setval({}, {}, {})",
                quote_literal(&name),
                s.last_value,
                s.is_called
            ))
            .map_err(|e| Error::query(format!("restoring sequence {name}"), &e))?;
    }
    Ok(())
}

/// pg_dump --schema-only leaves materialized views empty; fill those that held rows at
/// backup time in dependency order (retrying those that depend on a not yet refreshed
/// one). One that was empty (created `WITH NO DATA` and never refreshed) stays empty, as
/// pg_restore leaves it: refreshing it would run a query its owner never ran, and reading
/// it fails until someone refreshes it, as it did before. A manifest of an older version
/// does not say which were populated: every view is refreshed then.
pub(super) fn refresh_materialized_views(
    session: &mut Session,
    manifest: &BackupManifest,
) -> Result<()> {
    let views: Vec<String> = session
        .client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'm' AND NOT c.relispopulated ORDER BY c.oid",
            &[],
        )
        .map_err(|e| Error::query("listing materialized views", &e))?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|(schema, name)| match &manifest.materialized_views {
            Some(views) => views
                .iter()
                .any(|v| v.populated && &v.schema == schema && &v.name == name),
            None => true,
        })
        .map(|(schema, name)| format!("{}.{}", quote_ident(&schema), quote_ident(&name)))
        .collect();
    let mut pending = views;
    for _round in 0..3 {
        let mut failed = Vec::new();
        for v in pending {
            if session
                .client
                .batch_execute(&format!("REFRESH MATERIALIZED VIEW {v}"))
                .is_err()
            {
                failed.push(v);
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        pending = failed;
    }
    Err(Error::Query {
        context: "refreshing materialized views".into(),
        sqlstate: None,
        message: format!("cannot refresh {}", pending.join(", ")),
    })
}

/// Compares the rows COPY loaded into each table with the manifest's count.
pub(super) fn check_row_counts(
    tables: &[&ManifestTable],
    loaded: &[TableLoaded],
) -> Result<Vec<TableLoad>> {
    let mut report = Vec::new();
    let mut mismatches = Vec::new();
    for (t, l) in tables.iter().zip(loaded) {
        let n = l.rows;
        if n != t.rows {
            mismatches.push(format!(
                "{}.{}: {n} restored, {} in the backup",
                t.schema, t.name, t.rows
            ));
        }
        report.push(TableLoad {
            table: format!("{}.{}", t.schema, t.name),
            rows: n,
            expected_rows: t.rows,
            seconds: (l.seconds * 1000.0).round() / 1000.0,
            frozen: l.frozen,
        });
    }
    if !mismatches.is_empty() {
        return Err(Error::RowCountMismatch {
            tables: mismatches.join("; "),
        });
    }
    Ok(report)
}

/// ANALYZE of every table and materialized view outside the system schemas except
/// `done` (analyzed while the rest loaded).
pub(super) fn analyze_all_but(session: &mut Session, done: &[&ManifestTable]) -> Result<()> {
    let done: std::collections::HashSet<(&str, &str)> = done
        .iter()
        .map(|t| (t.schema.as_str(), t.name.as_str()))
        .collect();
    let rows = session
        .client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'm') AND c.relpersistence <> 't' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
             ORDER BY 1, 2",
            &[],
        )
        .map_err(|e| Error::query("listing the tables to ANALYZE", &e))?;
    let names: Vec<String> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|(s, n)| !done.contains(&(s.as_str(), n.as_str())))
        .map(|(s, n)| format!("{}.{}", quote_ident(&s), quote_ident(&n)))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    session
        .client
        .batch_execute(&format!("ANALYZE {}", names.join(", ")))
        .map_err(|e| Error::query("running ANALYZE", &e))
}
