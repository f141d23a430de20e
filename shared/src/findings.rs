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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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
#[derive(Debug, Serialize, Default)]
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
}

/// schema's `result`.
#[derive(Debug, Serialize)]
pub struct SchemaResult {
    /// Tables looked at.
    pub tables: i64,
    /// What was found.
    pub findings: Vec<Finding>,
    /// Counts by severity.
    pub totals: Totals,
}

/// One check's outcome, for the result.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
pub struct DataResult {
    /// Every check that ran.
    pub checks: Vec<CheckRun>,
    /// What was found.
    pub findings: Vec<Finding>,
    /// Counts by severity.
    pub totals: Totals,
}

/// How an object differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Serialize)]
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
    pub compared: BTreeMap<&'static str, usize>,
}

/// One item of the checklist.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Serialize)]
pub struct PreflightResult {
    /// The checklist, in order.
    pub checks: Vec<PreflightCheck>,
    /// The failed and skipped items as findings (for `--format github`).
    pub findings: Vec<Finding>,
    /// Counts by severity.
    pub totals: Totals,
}
