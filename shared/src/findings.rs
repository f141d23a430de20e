//! What every check of `pgward-validate` (lint, schema, data, preflight) reports: findings
//! with a rule id, a severity, a place, why it matters and what to do instead. Their
//! results carry them as `result.findings`, which `--format github` turns into workflow
//! annotations ([`crate::render::render_github_annotations`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// With `lint --trace`, for a rule that predicts a lock or a rewrite: whether the
    /// statement did that on the shadow database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// With `lint --trace`: what the trace saw the statement do (`ACCESS EXCLUSIVE on
    /// orders; rewrote orders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// Lint: the offending text, so a view can show it underlined without the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
}

/// The text a lint finding points at: from its `line`:`column` to `end_line`:`end_column`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Span {
    /// 1-based line the text ends on (the finding's `line` when it fits on one).
    pub end_line: usize,
    /// 1-based column, in characters, just past the text's last character.
    pub end_column: usize,
    /// The source lines `line` to `end_line`, whole, as in the file (no line break at the
    /// end).
    pub source: String,
}

impl Span {
    /// A longer source line is not copied into a finding (a minified file would repeat it
    /// in every finding); the finding still has its line and column.
    pub const MAX_SOURCE_CHARS: usize = 500;

    /// The span of `text[start..end]` (byte offsets), cut at the end of `start`'s line, so
    /// a view underlines one line, and without trailing white space (an empty span where
    /// nothing but white space is left: a view points at `start`). None when the line is
    /// longer than [`Span::MAX_SOURCE_CHARS`].
    pub fn of(text: &str, start: usize, end: usize) -> Option<Span> {
        let start = floor_char_boundary(text, start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let end = floor_char_boundary(text, end.clamp(start, line_end));
        let end = start + text[start..end].trim_end().len();
        let source = text[line_start..line_end].trim_end_matches('\r');
        if source.chars().count() > Span::MAX_SOURCE_CHARS {
            return None;
        }
        let at = crate::sql::position_of(text, end);
        Some(Span {
            end_line: at.line,
            end_column: at.column,
            source: source.to_string(),
        })
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The counts a run adds up to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
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
    pub fn exit(&self, strict: bool) -> crate::Exit {
        if self.errors > 0 {
            crate::Exit::Failed
        } else if strict && self.warnings > 0 {
            crate::Exit::Attention
        } else {
            crate::Exit::Success
        }
    }
}

/// What kind of object a model entry (or a difference) is. The order is the order
/// differences are reported in: containers before what they contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A migration recorded as applied in the database but absent from the folder.
    Migration,
    /// `CREATE EXTENSION`.
    Extension,
    /// A schema other than PostgreSQL's own.
    Schema,
    /// An enum type with its values in order.
    Enum,
    /// A domain with its base type, default and checks.
    Domain,
    /// A stand-alone composite type.
    CompositeType,
    /// A table (ordinary, partitioned or foreign).
    Table,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A table column.
    Column,
    /// A primary key, foreign key, unique, check or exclusion constraint.
    Constraint,
    /// An index that backs no constraint (those are compared as the constraint).
    Index,
    /// A sequence (owned by a column or not).
    Sequence,
    /// A function, procedure or aggregate, keyed by its argument types (`name(integer)`).
    Function,
    /// A trigger.
    Trigger,
}

impl ObjectKind {
    /// Every kind the catalogs are read for, in report order.
    pub const INTROSPECTED: [ObjectKind; 14] = [
        ObjectKind::Extension,
        ObjectKind::Schema,
        ObjectKind::Enum,
        ObjectKind::Domain,
        ObjectKind::CompositeType,
        ObjectKind::Table,
        ObjectKind::View,
        ObjectKind::MaterializedView,
        ObjectKind::Column,
        ObjectKind::Constraint,
        ObjectKind::Index,
        ObjectKind::Sequence,
        ObjectKind::Function,
        ObjectKind::Trigger,
    ];

    /// The name the introspection queries give the kind (also its JSON spelling).
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Migration => "migration",
            ObjectKind::Extension => "extension",
            ObjectKind::Schema => "schema",
            ObjectKind::Enum => "enum",
            ObjectKind::Domain => "domain",
            ObjectKind::CompositeType => "composite_type",
            ObjectKind::Table => "table",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized_view",
            ObjectKind::Column => "column",
            ObjectKind::Constraint => "constraint",
            ObjectKind::Index => "index",
            ObjectKind::Sequence => "sequence",
            ObjectKind::Function => "function",
            ObjectKind::Trigger => "trigger",
        }
    }

    /// The key of `result.compared` (`tables`, `indexes`, ...).
    pub fn plural(self) -> &'static str {
        match self {
            ObjectKind::Migration => "migrations",
            ObjectKind::Extension => "extensions",
            ObjectKind::Schema => "schemas",
            ObjectKind::Enum => "enums",
            ObjectKind::Domain => "domains",
            ObjectKind::CompositeType => "composite_types",
            ObjectKind::Table => "tables",
            ObjectKind::View => "views",
            ObjectKind::MaterializedView => "materialized_views",
            ObjectKind::Column => "columns",
            ObjectKind::Constraint => "constraints",
            ObjectKind::Index => "indexes",
            ObjectKind::Sequence => "sequences",
            ObjectKind::Function => "functions",
            ObjectKind::Trigger => "triggers",
        }
    }

    /// The kind an introspection query names.
    pub fn from_name(name: &str) -> Option<ObjectKind> {
        ObjectKind::INTROSPECTED
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// lint's `result`.
#[derive(Debug, Serialize, Deserialize, Default)]
pub struct LintResult {
    /// Files linted (applied migrations read for context are not counted).
    pub files: usize,
    /// Statements in those files.
    pub statements: usize,
    /// What the rules found, file by file in migration order, by position within a file.
    pub findings: Vec<Finding>,
    /// Counts by severity.
    pub totals: Totals,
    /// Findings not reported because of `-- pgward-ignore` or `[lint] ignore`.
    pub suppressed: usize,
    /// The PostgreSQL major the rules judged for (`--pg-version`, else the database's in
    /// the default mode); absent when not known: the rules then judge for the supported
    /// majors (14 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_version: Option<u32>,
    /// With `--trace`: the run on the shadow database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<LintTrace>,
}

/// `lint --trace`'s run of the files on a shadow database.
#[derive(Debug, Serialize, Deserialize, Default)]
pub struct LintTrace {
    /// The shadow database.
    pub shadow: String,
    /// Whether lint created the shadow (and dropped it again).
    pub shadow_temporary: bool,
    /// Statements traced (the linted files'; earlier migrations run untraced first).
    pub statements: usize,
    /// Findings whose prediction the trace saw come true.
    pub confirmed: usize,
    /// Findings whose predicted lock or rewrite did not happen on the shadow.
    pub not_confirmed: usize,
    /// Findings of `trace-unpredicted`: what the trace saw and no rule predicted.
    pub unpredicted: usize,
    /// Temporary shadows of earlier runs that died, dropped by this run.
    pub leftovers_dropped: Vec<String>,
}

/// schema's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SchemaResult {
    /// Tables looked at.
    pub tables: i64,
    /// What was found.
    pub findings: Vec<Finding>,
    /// Counts by severity.
    pub totals: Totals,
}

/// One check's outcome, for the result.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckRun {
    /// Rule id.
    pub rule: String,
    /// Table, constraint or check file.
    pub object: String,
    /// Violating rows found (up to the sample size when the query returns many).
    pub rows: usize,
    /// Whether it passed.
    pub passed: bool,
    /// Wall time.
    pub duration_ms: u64,
}

/// data's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DataResult {
    /// Every check that ran.
    pub checks: Vec<CheckRun>,
    /// What was found.
    pub findings: Vec<Finding>,
    /// Counts by severity.
    pub totals: Totals,
}

/// How an object differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The migrations create it; the database does not have it.
    MissingInDatabase,
    /// The database has it; the migrations do not create it.
    ExtraInDatabase,
    /// Both have it, defined differently.
    Changed,
}

/// One difference between the database and what its migrations produce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// What kind of object.
    pub kind: ObjectKind,
    /// Which one: `public.users.email`, `public.users_email_idx`, `public.touch()`.
    pub object: String,
    /// How it differs.
    pub change: Change,
    /// Its definition as the migrations produce it (for `changed`: only the attributes
    /// that differ); null when missing from the migrations.
    pub expected: Option<Value>,
    /// Its definition in the database (for `changed`: only the attributes that differ);
    /// null when missing from the database.
    pub actual: Option<Value>,
    /// The difference in words.
    pub detail: String,
}

/// drift's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DriftResult {
    /// The migrations folder.
    pub migrations_dir: String,
    /// The schema holding `_prisma_migrations` (and the replay's search_path).
    pub schema: String,
    /// The shadow database the migrations were replayed into.
    pub shadow: String,
    /// Whether drift created the shadow (and dropped it again).
    pub shadow_temporary: bool,
    /// Migrations replayed into the shadow (the applied ones present locally).
    pub migrations_applied: usize,
    /// Local migrations not applied live, so not replayed either.
    pub migrations_pending: usize,
    /// Temporary shadows of earlier runs that died, dropped by this run.
    pub leftovers_dropped: Vec<String>,
    /// Every difference, containers first.
    pub differences: Vec<Difference>,
    /// Objects compared, by kind.
    pub compared: BTreeMap<String, usize>,
}

/// One item of the checklist.
#[derive(Debug, Serialize, Deserialize)]
pub struct PreflightCheck {
    /// Stable name (`connectable`, `advisory-lock-free`, ...).
    pub name: String,
    /// `pass`, `fail` or `skip`.
    pub status: CheckStatus,
    /// What was seen.
    pub detail: String,
    /// What to do when it fails.
    pub fix: Option<String>,
}

/// The outcome of one checklist item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// All good.
    Pass,
    /// Must be fixed before migrating.
    Fail,
    /// Could not be checked (nothing configured); a warning.
    Skip,
}

/// preflight's `result`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PreflightResult {
    /// The checklist, in order.
    pub checks: Vec<PreflightCheck>,
    /// The failed and skipped items as findings (for `--format github`).
    pub findings: Vec<Finding>,
    /// Counts by severity.
    pub totals: Totals,
}

#[cfg(test)]
mod span_tests {
    use super::Span;

    #[test]
    fn a_span_stops_at_its_line_end_and_keeps_the_line_whole() {
        let text = "SELECT 1;\r\nALTER TABLE \"é\" ADD x int,   \r\n  ADD y int;";
        let start = text.find("ADD x").unwrap();
        let span = Span::of(text, start, text.len()).expect("a short line");
        assert_eq!(span.source, "ALTER TABLE \"é\" ADD x int,   ");
        assert_eq!((span.end_line, span.end_column), (2, 27));
        // An offset past the end or inside a character does not panic.
        let at_end = Span::of(text, text.len() + 5, 0).expect("a short line");
        assert_eq!(at_end.source, "  ADD y int;");
        let inside = Span::of("é", 1, 2).expect("a short line");
        assert_eq!(inside.source, "é");
        // A long line is not copied; the line before it is.
        let long = format!(
            "SELECT 1;\nSELECT '{}';",
            "x".repeat(Span::MAX_SOURCE_CHARS)
        );
        assert!(Span::of(&long, 12, long.len()).is_none());
        assert!(Span::of(&long, 0, 8).is_some());
    }
}
