//! The rule catalogue. Every rule is a variant of [`Rule`]; its stable id (what
//! `-- pgward-ignore` and `[lint] ignore` name), its severity and its fixture are one
//! [`RuleInfo`] in the `FAMILY` table of the module under `checks/` that finds it, next to
//! the code that writes its why and fix. [`Rule::all`] reads those tables.
//!
//! Each rule's fixtures are `tests/fixtures/lint/rules/<id>/`: `bad.sql` triggers it at
//! [`RuleInfo::fires_at`], `good.sql` (its safe rewrite) does not, and optional
//! `before*.sql` are earlier migrations linted first. `tests/tests/validate_lint.rs` runs
//! every rule of the catalogue on them, and the tests below check that `docs/validate.md`
//! lists every rule with its severity.

use crate::lint::checks::FAMILIES;
use pgward_shared::findings::Severity;

/// One lint rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `ADD COLUMN ... NOT NULL` without a default on an existing table.
    AddColumnNotNullWithoutDefault,
    /// `ADD COLUMN` whose default is evaluated per row: rewrite.
    AddColumnVolatileDefault,
    /// `CREATE INDEX` without `CONCURRENTLY` on an existing table.
    CreateIndexNotConcurrently,
    /// `DROP INDEX` without `CONCURRENTLY`.
    DropIndexNotConcurrently,
    /// A statement that cannot run in a transaction block, inside one.
    ConcurrentlyInTransaction,
    /// A statement that cannot run in a transaction block, in a file with others.
    ConcurrentlyInMultiStatementFile,
    /// A validated foreign key added to an existing table.
    AddForeignKeyWithoutNotValid,
    /// A validated check constraint added to an existing table.
    AddCheckWithoutNotValid,
    /// A `VALIDATE CONSTRAINT` in the transaction that added the constraint `NOT VALID`.
    ValidateConstraintInSameTransaction,
    /// `SET NOT NULL` on an existing column without a validated check proving it.
    SetNotNull,
    /// `ADD UNIQUE` / `ADD PRIMARY KEY` building its index under ACCESS EXCLUSIVE.
    AddConstraintWithoutUsingIndex,
    /// A column type change that rewrites the table.
    AlterColumnType,
    /// `DROP COLUMN`.
    DropColumn,
    /// `DROP TABLE`.
    DropTable,
    /// `RENAME COLUMN`.
    RenameColumn,
    /// `RENAME TO` of a table.
    RenameTable,
    /// `ALTER TYPE ... ADD VALUE` without `BEFORE`/`AFTER`.
    EnumAddValueWithoutPosition,
    /// A new enum value used in the transaction that adds it.
    EnumValueUsedInSameTransaction,
    /// `UPDATE` without `WHERE`.
    UpdateWithoutWhere,
    /// `DELETE` without `WHERE`.
    DeleteWithoutWhere,
    /// `TRUNCATE`.
    TruncateTable,
    /// `TRUNCATE ... CASCADE`.
    TruncateCascade,
    /// `VACUUM FULL`.
    VacuumFull,
    /// `CLUSTER`.
    ClusterTable,
    /// Write-blocking locks on existing tables with no `lock_timeout` set before.
    MissingLockTimeout,
    /// `BEGIN` never committed.
    BeginWithoutCommit,
    /// An identifier over 63 bytes.
    IdentifierTooLong,
    /// `json` column.
    PreferJsonb,
    /// `timestamp without time zone` column.
    PreferTimestamptz,
    /// 16/32-bit integer or serial primary key.
    PreferBigintPrimaryKey,
    /// `char(n)` column.
    PreferTextOverChar,
    /// `CREATE INDEX CONCURRENTLY` without `IF NOT EXISTS`: a failed build's INVALID
    /// index keeps the name, so the file cannot simply be run again.
    ConcurrentlyWithoutIfNotExists,
    /// Statements after an explicit `COMMIT`: no longer atomic with what came before.
    StatementsAfterCommit,
    /// `DROP DEFAULT` on a NOT NULL column: inserts that relied on it fail.
    DropDefaultNotNull,
    /// Statements that differ with `standard_conforming_strings` on and off.
    StatementsDependOnStringSetting,
    /// The parser rejected the file. Keep it last: [`Rule::COUNT`] counts up to it.
    ParseError,
}

/// A rule's catalogue entry.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    /// The rule.
    pub rule: Rule,
    /// The stable id.
    pub id: &'static str,
    /// The severity its findings usually have (`alter-column-type` is a warning when the
    /// column's current type is unknown).
    pub severity: Severity,
    /// Where `bad.sql` of its fixture folder triggers it: line and column.
    pub fires_at: (usize, usize),
}

/// The rules one module of `checks/` finds.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The module's source file, from the workspace root (`file!()`).
    pub source: &'static str,
    /// Its rules.
    pub rules: &'static [RuleInfo],
}

impl Rule {
    /// How many rules there are.
    pub const COUNT: usize = Rule::ParseError as usize + 1;

    /// Every rule's entry, family by family.
    pub fn all() -> impl Iterator<Item = &'static RuleInfo> {
        FAMILIES.iter().flat_map(|family| family.rules)
    }

    /// The rule's entry.
    pub fn info(self) -> &'static RuleInfo {
        Rule::all()
            .find(|info| info.rule == self)
            .expect("every rule has an entry in a FAMILY table of checks/")
    }

    /// The source file of the `checks/` module that finds it and writes its why and fix
    /// (from the workspace root).
    pub fn source(self) -> &'static str {
        FAMILIES
            .iter()
            .find(|family| family.rules.iter().any(|info| info.rule == self))
            .map(|family| family.source)
            .expect("every rule has an entry in a FAMILY table of checks/")
    }

    /// The stable id.
    pub fn id(self) -> &'static str {
        self.info().id
    }

    /// The rule with this id.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::all().find(|info| info.id == id).map(|info| info.rule)
    }

    /// The severity its findings usually have.
    pub fn severity(self) -> Severity {
        self.info().severity
    }

    /// Whether the finding concerns the whole file rather than the statement it points
    /// at: a `-- pgward-ignore` on the file's first statement suppresses it too.
    pub fn is_file_level(self) -> bool {
        self == Rule::MissingLockTimeout
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::PathBuf;

    use super::*;

    fn workspace_file(path: &str) -> String {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn every_rule_has_one_entry_and_ids_are_unique_and_round_trip() {
        let rules: HashSet<Rule> = Rule::all().map(|info| info.rule).collect();
        assert_eq!(
            rules.len(),
            Rule::COUNT,
            "a rule without an entry, or one twice"
        );
        assert_eq!(Rule::all().count(), Rule::COUNT);
        for info in Rule::all() {
            assert_eq!(Rule::from_id(info.id), Some(info.rule));
            assert_eq!(info.rule.id(), info.id);
        }
        let ids: HashSet<&str> = Rule::all().map(|info| info.id).collect();
        assert_eq!(ids.len(), Rule::COUNT, "ids are unique");
    }

    #[test]
    fn every_rule_is_found_by_the_module_whose_table_lists_it() {
        for info in Rule::all() {
            let source = workspace_file(info.rule.source());
            // The code after the module's FAMILY table.
            let table_end = source.find("\n};\n").expect("a FAMILY table");
            let variant = format!("Rule::{:?}", info.rule);
            assert!(
                source[table_end..].contains(&variant),
                "{} lists {} but its code never reports {variant}",
                info.rule.source(),
                info.id
            );
        }
    }

    #[test]
    fn docs_list_every_rule_with_its_severity() {
        let docs = workspace_file("docs/validate.md");
        let mut missing = Vec::new();
        for info in Rule::all() {
            let quoted = format!("`{}`", info.id);
            let severity = match info.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            let row = docs.lines().find(|l| {
                l.starts_with('|') && l.split('|').nth(1).is_some_and(|c| c.contains(&quoted))
            });
            match row {
                Some(row) if row.split('|').nth(2).is_some_and(|c| c.contains(severity)) => {}
                Some(row) => missing.push(format!(
                    "{}: the row does not say {severity}: {row}",
                    info.id
                )),
                None => missing.push(format!(
                    "{}: no row in the rule table of docs/validate.md",
                    info.id
                )),
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
