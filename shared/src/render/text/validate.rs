//! The text views of pgward-validate's commands, read from their typed results
//! ([`crate::findings`]): every finding as a diagnostic in the manner of rustc and squawk
//! ([`super::diagnostic`]), lint's with the source line and the offending text
//! underlined; preflight's checklist and drift's differences; a closing totals line.

use serde::de::DeserializeOwned;

use super::diagnostic::{finding, plural, totals_words};
use super::migrate::{database, finish};
use super::table::columns;
use super::TextStyle;
use crate::findings::{
    Change, CheckStatus, DataResult, DriftResult, Finding, LintResult, PreflightResult,
    SchemaResult,
};
use crate::output::Envelope;

/// The view of a pgward-validate document.
pub(super) fn view(e: &Envelope, style: TextStyle) -> Option<String> {
    let body = match e.command.as_str() {
        "lint" => read(e).map(|r| lint(&r, style)),
        "schema" => read(e).map(|r| schema(e, &r, style)),
        "data" => read(e).map(|r| data(e, &r, style)),
        "preflight" => read(e).map(|r| preflight(e, &r, style)),
        "drift" => read(e).map(|r| drift(e, &r)),
        _ => return None,
    };
    let body = match body {
        Some(body) => body,
        None if e.result.is_null() && e.error.is_some() => String::new(),
        None => return None,
    };
    Some(finish(body, e, &[], style))
}

fn read<T: DeserializeOwned>(e: &Envelope) -> Option<T> {
    if e.result.is_null() {
        return None;
    }
    T::deserialize(&e.result).ok()
}

fn diagnostics(findings: &[Finding], style: TextStyle) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&finding(f, style));
        out.push('\n');
    }
    out
}

fn lint(r: &LintResult, style: TextStyle) -> String {
    let mut out = diagnostics(&r.findings, style);
    out.push_str(&format!(
        "lint: {} in {} ({}){}.\n",
        totals_words(&r.totals),
        plural(r.files, "file", "files"),
        plural(r.statements, "statement", "statements"),
        if r.suppressed > 0 {
            format!("; {} suppressed by pgward-ignore", r.suppressed)
        } else {
            String::new()
        }
    ));
    out
}

fn schema(e: &Envelope, r: &SchemaResult, style: TextStyle) -> String {
    let mut out = diagnostics(&r.findings, style);
    out.push_str(&format!(
        "schema: {} in {} of {}.\n",
        totals_words(&r.totals),
        plural(r.tables.max(0) as usize, "table", "tables"),
        database(e)
    ));
    out
}

fn data(e: &Envelope, r: &DataResult, style: TextStyle) -> String {
    let mut out = diagnostics(&r.findings, style);
    if !r.checks.is_empty() {
        out.push_str("Checks:\n");
        let rows = r
            .checks
            .iter()
            .map(|c| {
                vec![
                    if c.passed { "pass" } else { "FAIL" }.to_string(),
                    c.rule.clone(),
                    c.object.clone(),
                    if c.passed {
                        String::new()
                    } else {
                        plural(c.rows, "violating row", "violating rows")
                    },
                ]
            })
            .collect();
        out.push_str(&columns(rows));
        out.push('\n');
    }
    let failed = r.checks.iter().filter(|c| !c.passed).count();
    out.push_str(&format!(
        "data: {} from {} ({} failed) on {}.\n",
        totals_words(&r.totals),
        plural(r.checks.len(), "check", "checks"),
        failed,
        database(e)
    ));
    out
}

fn preflight(e: &Envelope, r: &PreflightResult, style: TextStyle) -> String {
    let mut out = String::new();
    let rows = r
        .checks
        .iter()
        .map(|c| {
            vec![
                match c.status {
                    CheckStatus::Pass => "pass",
                    CheckStatus::Fail => "FAIL",
                    CheckStatus::Skip => "skip",
                }
                .to_string(),
                c.name.clone(),
                c.detail.lines().next().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    out.push_str(&format!("Preflight of {}:\n", database(e)));
    out.push_str(&columns(rows));
    out.push('\n');
    out.push_str(&diagnostics(&r.findings, style));
    let passed = r
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Pass)
        .count();
    out.push_str(&format!(
        "preflight: {passed} of {} passed; {}.\n",
        plural(r.checks.len(), "check", "checks"),
        totals_words(&r.totals)
    ));
    out
}

fn drift(e: &Envelope, r: &DriftResult) -> String {
    let mut out = String::new();
    if !r.differences.is_empty() {
        out.push_str(&format!(
            "{} between {} and what its migrations build:\n",
            plural(r.differences.len(), "difference", "differences"),
            database(e)
        ));
        let rows = r
            .differences
            .iter()
            .map(|d| {
                vec![
                    match d.change {
                        Change::MissingInDatabase => "missing in the database",
                        Change::ExtraInDatabase => "only in the database",
                        Change::Changed => "changed",
                    }
                    .to_string(),
                    d.kind.name().replace('_', " "),
                    d.object.clone(),
                    d.detail.lines().next().unwrap_or_default().to_string(),
                ]
            })
            .collect();
        out.push_str(&columns(rows));
        out.push('\n');
    }
    let shadow = if r.shadow_temporary {
        "a temporary shadow database".to_string()
    } else {
        format!("the shadow database {}", r.shadow)
    };
    if e.error.is_some() && r.compared.is_empty() {
        // Stopped before the comparison: no verdict to give.
        out.push_str(&format!(
            "drift: stopped after replaying {} into {shadow}; nothing was compared.\n",
            plural(
                r.migrations_applied,
                "applied migration",
                "applied migrations"
            ),
        ));
        return out;
    }
    let compared: usize = r.compared.values().sum();
    out.push_str(&format!(
        "drift: {} after replaying {} into {} ({} compared{}).\n",
        if r.differences.is_empty() {
            "no drift".to_string()
        } else {
            plural(r.differences.len(), "difference", "differences")
        },
        plural(
            r.migrations_applied,
            "applied migration",
            "applied migrations"
        ),
        shadow,
        plural(compared, "object", "objects"),
        if r.migrations_pending > 0 {
            format!(
                "; {} not applied, not replayed",
                plural(
                    r.migrations_pending,
                    "pending migration",
                    "pending migrations"
                )
            )
        } else {
            String::new()
        }
    ));
    if !r.differences.is_empty() && e.error.is_none() {
        out.push_str("Next: make the database match its migrations (or write a migration for the change made by hand), then run drift again.\n");
    }
    out
}
