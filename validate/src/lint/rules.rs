//! The rule catalogue: every rule's stable id (what `-- pgward-ignore` and `[lint] ignore`
//! name) and its usual severity. What each rule looks for is in `checks.rs`.

use crate::findings::Severity;

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
    /// The parser rejected the file.
    ParseError,
}

impl Rule {
    /// Every rule.
    pub const ALL: &'static [Rule] = &[
        Rule::AddColumnNotNullWithoutDefault,
        Rule::AddColumnVolatileDefault,
        Rule::CreateIndexNotConcurrently,
        Rule::DropIndexNotConcurrently,
        Rule::ConcurrentlyInTransaction,
        Rule::ConcurrentlyInMultiStatementFile,
        Rule::AddForeignKeyWithoutNotValid,
        Rule::AddCheckWithoutNotValid,
        Rule::ValidateConstraintInSameTransaction,
        Rule::SetNotNull,
        Rule::AddConstraintWithoutUsingIndex,
        Rule::AlterColumnType,
        Rule::DropColumn,
        Rule::DropTable,
        Rule::RenameColumn,
        Rule::RenameTable,
        Rule::EnumAddValueWithoutPosition,
        Rule::EnumValueUsedInSameTransaction,
        Rule::UpdateWithoutWhere,
        Rule::DeleteWithoutWhere,
        Rule::TruncateTable,
        Rule::TruncateCascade,
        Rule::VacuumFull,
        Rule::ClusterTable,
        Rule::MissingLockTimeout,
        Rule::BeginWithoutCommit,
        Rule::IdentifierTooLong,
        Rule::PreferJsonb,
        Rule::PreferTimestamptz,
        Rule::PreferBigintPrimaryKey,
        Rule::PreferTextOverChar,
        Rule::ConcurrentlyWithoutIfNotExists,
        Rule::StatementsAfterCommit,
        Rule::DropDefaultNotNull,
        Rule::ParseError,
    ];

    /// The stable id.
    pub fn id(self) -> &'static str {
        match self {
            Rule::AddColumnNotNullWithoutDefault => "add-column-not-null-without-default",
            Rule::AddColumnVolatileDefault => "add-column-volatile-default",
            Rule::CreateIndexNotConcurrently => "create-index-not-concurrently",
            Rule::DropIndexNotConcurrently => "drop-index-not-concurrently",
            Rule::ConcurrentlyInTransaction => "concurrently-in-transaction",
            Rule::ConcurrentlyInMultiStatementFile => "concurrently-in-multi-statement-file",
            Rule::AddForeignKeyWithoutNotValid => "add-foreign-key-without-not-valid",
            Rule::AddCheckWithoutNotValid => "add-check-without-not-valid",
            Rule::ValidateConstraintInSameTransaction => "validate-constraint-in-same-transaction",
            Rule::SetNotNull => "set-not-null",
            Rule::AddConstraintWithoutUsingIndex => "add-constraint-without-using-index",
            Rule::AlterColumnType => "alter-column-type",
            Rule::DropColumn => "drop-column",
            Rule::DropTable => "drop-table",
            Rule::RenameColumn => "rename-column",
            Rule::RenameTable => "rename-table",
            Rule::EnumAddValueWithoutPosition => "enum-add-value-without-position",
            Rule::EnumValueUsedInSameTransaction => "enum-value-used-in-same-transaction",
            Rule::UpdateWithoutWhere => "update-without-where",
            Rule::DeleteWithoutWhere => "delete-without-where",
            Rule::TruncateTable => "truncate-table",
            Rule::TruncateCascade => "truncate-cascade",
            Rule::VacuumFull => "vacuum-full",
            Rule::ClusterTable => "cluster-table",
            Rule::MissingLockTimeout => "missing-lock-timeout",
            Rule::BeginWithoutCommit => "begin-without-commit",
            Rule::IdentifierTooLong => "identifier-too-long",
            Rule::PreferJsonb => "prefer-jsonb",
            Rule::PreferTimestamptz => "prefer-timestamptz",
            Rule::PreferBigintPrimaryKey => "prefer-bigint-primary-key",
            Rule::PreferTextOverChar => "prefer-text-over-char",
            Rule::ConcurrentlyWithoutIfNotExists => "concurrently-without-if-not-exists",
            Rule::StatementsAfterCommit => "statements-after-commit",
            Rule::DropDefaultNotNull => "drop-default-not-null",
            Rule::ParseError => "parse-error",
        }
    }

    /// The rule with this id.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.id() == id)
    }

    /// The severity its findings usually have (`alter-column-type` is a warning when the
    /// column's current type is unknown).
    pub fn severity(self) -> Severity {
        match self {
            Rule::DropIndexNotConcurrently
            | Rule::ConcurrentlyInMultiStatementFile
            | Rule::ValidateConstraintInSameTransaction
            | Rule::DropColumn
            | Rule::DropTable
            | Rule::RenameColumn
            | Rule::RenameTable
            | Rule::UpdateWithoutWhere
            | Rule::DeleteWithoutWhere
            | Rule::TruncateTable
            | Rule::MissingLockTimeout
            | Rule::PreferJsonb
            | Rule::PreferTimestamptz
            | Rule::PreferBigintPrimaryKey
            | Rule::PreferTextOverChar
            | Rule::ConcurrentlyWithoutIfNotExists
            | Rule::StatementsAfterCommit
            | Rule::DropDefaultNotNull => Severity::Warning,
            Rule::EnumAddValueWithoutPosition => Severity::Info,
            _ => Severity::Error,
        }
    }

    /// Whether the finding concerns the whole file rather than the statement it points
    /// at: a `-- pgward-ignore` on the file's first statement suppresses it too.
    pub fn is_file_level(self) -> bool {
        self == Rule::MissingLockTimeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip() {
        for rule in Rule::ALL {
            assert_eq!(Rule::from_id(rule.id()), Some(*rule));
        }
        let mut ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Rule::ALL.len());
    }
}
