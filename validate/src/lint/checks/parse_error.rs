//! `parse-error`: a file PostgreSQL's parser rejects, reported at the token it stopped at
//! (found by `source.rs`). No other rule can read such a file.

use pgward_shared::sql::position_of;

use crate::lint::rules::{Family, Rule, RuleInfo};
use crate::lint::source::ParseFailure;
use crate::lint::LintSource;
use pgward_shared::findings::{Finding, Location, Severity, Span};

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[RuleInfo {
        rule: Rule::ParseError,
        id: "parse-error",
        severity: Severity::Error,
        fires_at: (2, 29),
    }],
};

/// The finding for `source`, which the parser rejected with `failure`.
pub(crate) fn finding(source: &LintSource, failure: &ParseFailure) -> Finding {
    let (position, unknown) = match failure.offset {
        Some(offset) => (position_of(&source.text, offset), ""),
        None => (
            position_of(&source.text, 0),
            " (the scanner stopped before any token could be placed, so the position is the start of the file)",
        ),
    };
    Finding {
        rule: Rule::ParseError.id().to_string(),
        severity: Rule::ParseError.severity(),
        location: Location {
            file: Some(source.path.clone()),
            line: Some(position.line),
            column: Some(position.column),
            object: None,
        },
        message: format!("PostgreSQL's parser rejects this file: {}{unknown}", failure.message),
        lock: None,
        why: "the migration fails when it runs, and no other rule could check the file".into(),
        fix: "fix the SQL at this position (psql reports the same error: `psql -f` the file against a scratch database)".into(),
        span: failure.offset.and_then(|offset| {
            // The word the parser stopped at.
            let word = source.text.get(offset..).and_then(|rest| rest.find(char::is_whitespace));
            let word = word.map_or(source.text.len(), |n| offset + n);
            Span::of(&source.text, offset, word)
        }),
        confirmed: None,
        observed: None,
    }
}
