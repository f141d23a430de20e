//! `pgward-report audit`: the audit log as a report. Every pgward command that changes
//! something appends one JSON line to it (shared/src/audit.rs); this lists them, newest
//! first, optionally only recent ones or one tool's. Lines that are not valid JSON (a
//! disk that filled mid-line) are skipped and named, never fatal.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pgward_shared::audit::{AuditEntry, AuditReport};
use pgward_shared::codes::WarningCode;
use pgward_shared::config::parse_duration;
use pgward_shared::error::Error;
use pgward_shared::output::{Context, Failure, Outcome};
use serde::Deserialize;

/// audit's filters: its flags, parsed straight into them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuditFilter {
    /// Only entries younger than this (e.g. 7d)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only this tool's entries: migrate, backup, restore, validate
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    /// At most this many entries, the newest
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub limit: usize,
}

/// One audit line, as written by shared/src/audit.rs.
#[derive(Debug, Clone, Deserialize)]
struct AuditLine {
    at: DateTime<Utc>,
    #[serde(default)]
    os_user: Option<String>,
    #[serde(default)]
    db_user: Option<String>,
    #[serde(default)]
    target: Option<String>,
    tool: String,
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    outcome: AuditLineOutcome,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct AuditLineOutcome {
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    duration_ms: Option<u64>,
}

/// Runs audit.
pub fn audit(ctx: &Context, filter: &AuditFilter) -> Result<Outcome, Failure> {
    let Some(path) = ctx.settings.audit_log() else {
        return Err(Error::usage(
            "no audit log to read",
            "pass --audit-log PATH, set PGWARD_AUDIT_LOG, or set `audit_log` in pgward.toml",
        )
        .into());
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ctx.warn(
                WarningCode::AuditLogMissing,
                format!(
                    "the audit log {} does not exist yet: no audited command has run",
                    path.display()
                ),
            );
            String::new()
        }
        Err(e) => return Err(Error::io("read", path, e).into()),
    };
    let report = build(path, &text, filter, Utc::now());
    if !report.invalid_lines.is_empty() {
        ctx.warn(
            WarningCode::AuditLinesInvalid,
            format!(
                "{} line(s) of {} are not audit lines and were skipped: {}",
                report.invalid_lines.len(),
                path.display(),
                report
                    .invalid_lines
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    Ok(Outcome::ok(report))
}

/// The report on the audit log `text`, as of `now`.
pub fn build(path: &Path, text: &str, filter: &AuditFilter, now: DateTime<Utc>) -> AuditReport {
    let mut entries = Vec::new();
    let mut invalid_lines = Vec::new();
    let mut lines = 0;
    for (i, line) in text.lines().enumerate() {
        lines += 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<AuditLine>(line) {
            Ok(l) => entries.push(l),
            Err(_) => invalid_lines.push(i + 1),
        }
    }
    let oldest = filter
        .since
        .and_then(|d| chrono::TimeDelta::from_std(d).ok())
        .map(|d| now - d);
    let mut matching: Vec<AuditEntry> = entries
        .into_iter()
        .filter(|l| oldest.is_none_or(|o| l.at >= o))
        .filter(|l| filter.tool.as_deref().is_none_or(|t| l.tool == t))
        .map(|l| AuditEntry {
            at: l.at,
            tool: l.tool,
            command: l.command,
            ok: l.outcome.ok,
            exit_code: l.outcome.exit_code,
            error: l.outcome.error,
            duration_ms: l.outcome.duration_ms,
            target: l.target,
            os_user: l.os_user,
            db_user: l.db_user,
            args: l.args.join(" "),
        })
        .collect();
    matching.sort_by_key(|e| std::cmp::Reverse(e.at));
    let count = matching.len();
    matching.truncate(filter.limit);
    AuditReport {
        path: path.display().to_string(),
        lines,
        matching: count,
        entries: matching,
        invalid_lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_newest_first_filters_and_names_bad_lines() {
        let log = concat!(
            r#"{"at":"2026-01-01T00:00:00Z","tool":"migrate","command":"deploy","args":["deploy"],"outcome":{"ok":true,"exit_code":0,"error":null,"duration_ms":5}}"#,
            "\n{\"at\": \"2026-01-0\n",
            r#"{"at":"2026-01-03T00:00:00Z","tool":"backup","command":"backup","outcome":{"ok":false,"exit_code":7,"error":"STORAGE_ERROR"}}"#,
            "\n",
            r#"{"at":"2026-01-02T00:00:00Z","tool":"migrate","command":"rollback","outcome":{"ok":true,"exit_code":0}}"#,
            "\n"
        );
        let now = DateTime::parse_from_rfc3339("2026-01-03T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let all = AuditFilter {
            limit: 10,
            ..Default::default()
        };
        let report = build(Path::new("audit.log"), log, &all, now);
        assert_eq!(report.lines, 4);
        assert_eq!(report.invalid_lines, [2]);
        let commands: Vec<&str> = report.entries.iter().map(|e| e.command.as_str()).collect();
        assert_eq!(commands, ["backup", "rollback", "deploy"]);
        assert_eq!(report.entries[0].error.as_deref(), Some("STORAGE_ERROR"));

        let recent_migrate = AuditFilter {
            since: Some(Duration::from_secs(2 * 86400)),
            tool: Some("migrate".into()),
            limit: 10,
        };
        let report = build(Path::new("audit.log"), log, &recent_migrate, now);
        assert_eq!(report.matching, 1);
        assert_eq!(report.entries[0].command, "rollback");
    }
}
