//! What every check of pgward-validate reports: findings with a rule id, a severity, a
//! place, why it matters and what to do instead, and the exit code they add up to
//! (0 clear, 1 errors, 3 warnings under `--strict`).

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never fails a run.
    Info,
    /// Risky; fails the run only under `--strict` (exit 3).
    Warning,
    /// Dangerous or broken; fails the run (exit 1).
    Error,
}

/// Where a finding points.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Location {
    /// The file (lint) or the database object (schema, data checks).
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// The object concerned (`public.users`, `users_email_idx`), when known.
    pub object: Option<String>,
}

/// One thing a check found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// Stable rule id (`add-column-not-null-without-default`, `table-without-primary-key`).
    pub rule: String,
    /// How bad it is.
    pub severity: Severity,
    /// Where.
    #[serde(flatten)]
    pub location: Location,
    /// What was found.
    pub message: String,
    /// The lock it takes, for lint findings (`ACCESS EXCLUSIVE on users`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// Why it is dangerous.
    pub why: String,
    /// The safe alternative, spelled out.
    pub fix: String,
}

/// The counts a run adds up to.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct Totals {
    /// Findings of severity error.
    pub errors: usize,
    /// Findings of severity warning.
    pub warnings: usize,
    /// Findings of severity info.
    pub infos: usize,
}

impl Totals {
    /// Counts `findings`.
    pub fn of(findings: &[Finding]) -> Totals {
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        Totals {
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            infos: count(Severity::Info),
        }
    }

    /// The exit code: 1 with errors, 3 with warnings under `strict`, else 0.
    pub fn exit(&self, strict: bool) -> pgward_shared::Exit {
        if self.errors > 0 {
            pgward_shared::Exit::Failed
        } else if strict && self.warnings > 0 {
            pgward_shared::Exit::Attention
        } else {
            pgward_shared::Exit::Success
        }
    }
}
