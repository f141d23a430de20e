//! What every check of `pgward-validate` (lint, schema, data, preflight) reports: findings
//! with a rule id, a severity, a place, why it matters and what to do instead. Their
//! results carry them as `result.findings`, which `--format github` turns into workflow
//! annotations ([`crate::render::render_github_annotations`]).

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
