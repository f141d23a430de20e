//! What every check of pgward-validate reports: findings (defined in the common crate,
//! whose `--format github` renderer reads them) with a rule id, a severity, a place, why it
//! matters and what to do instead, and the exit code they add up to (0 clear, 1 errors, 3
//! warnings under `--strict`).

use pgward_shared::findings::{Finding, Severity};
use serde::Serialize;

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
