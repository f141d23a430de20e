//! Constraints added to existing tables: validated foreign keys and checks (a scan under
//! a strong lock), validation in the transaction that added them NOT VALID, and unique
//! keys whose index is built under ACCESS EXCLUSIVE.

use pg_query::protobuf::{ConstrType, Constraint};

use super::{lock_on, FileLinter};
use crate::lint::locks::Kind;
use crate::lint::rules::{Family, Rule, RuleInfo};
use crate::lint::{display_ident, string_values};
use pgward_shared::findings::Severity;
use pgward_shared::locks::LockMode;

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[
        RuleInfo {
            rule: Rule::AddForeignKeyWithoutNotValid,
            id: "add-foreign-key-without-not-valid",
            severity: Severity::Error,
            fires_at: (2, 24),
        },
        RuleInfo {
            rule: Rule::AddCheckWithoutNotValid,
            id: "add-check-without-not-valid",
            severity: Severity::Error,
            fires_at: (2, 24),
        },
        RuleInfo {
            rule: Rule::ValidateConstraintInSameTransaction,
            id: "validate-constraint-in-same-transaction",
            severity: Severity::Warning,
            fires_at: (3, 20),
        },
        RuleInfo {
            rule: Rule::AddConstraintWithoutUsingIndex,
            id: "add-constraint-without-using-index",
            severity: Severity::Error,
            fires_at: (2, 23),
        },
    ],
};

/// The locks of a foreign key from `table` to `referenced` (one table when it refers to
/// itself), by the lock table.
fn fk_lock(table: &str, referenced: &str) -> String {
    let row = Kind::AddForeignKey.row();
    match row.other {
        Some(other) if referenced != table && other == row.mode => {
            format!("{} on {table} and {referenced}", row.mode.name())
        }
        Some(other) if referenced != table => {
            format!(
                "{} on {table}, {} on {referenced}",
                row.mode.name(),
                other.name()
            )
        }
        _ => lock_on(Kind::AddForeignKey, table),
    }
}

/// A constraint added `NOT VALID` to an existing table by the file.
pub(super) struct NotValidConstraint {
    table: String,
    name: String,
    statement: usize,
    transaction: usize,
    lock: LockMode,
}

impl FileLinter<'_> {
    pub(super) fn add_constraint(
        &mut self,
        index: usize,
        table: &str,
        constraint: &Constraint,
        at: usize,
    ) {
        let t = display_ident(table);
        // `name` reads in a sentence ("foreign key fk_x is added"), `conname` in SQL.
        let (name, conname) = if constraint.conname.is_empty() {
            (String::new(), "<name>".to_string())
        } else {
            let conname = display_ident(&constraint.conname);
            (format!("{conname} "), conname)
        };
        let object = Some(if constraint.conname.is_empty() {
            t.clone()
        } else {
            format!("{t}.{}", display_ident(&constraint.conname))
        });
        let validates = matches!(
            constraint.contype(),
            ConstrType::ConstrForeign | ConstrType::ConstrCheck
        ) && !constraint.skip_validation;
        if validates && self.empty_tables.contains(table) {
            // An earlier ADD COLUMN ... NOT NULL without a default succeeded only on an
            // empty table: the validation scans nothing, NOT VALID would buy nothing.
            return;
        }
        match constraint.contype() {
            ConstrType::ConstrForeign => {
                let referenced = constraint
                    .pktable
                    .as_ref()
                    .map(|r| display_ident(&r.relname))
                    .unwrap_or_else(|| "the referenced table".into());
                if constraint.skip_validation {
                    self.remember_not_valid(
                        index,
                        table,
                        constraint,
                        Kind::AddForeignKey.row().mode,
                    );
                    return;
                }
                let keys = string_values(&constraint.fk_attrs);
                if !keys.is_empty()
                    && keys
                        .iter()
                        .all(|k| self.null_columns.contains(&(table.to_string(), k.clone())))
                {
                    let columns = keys
                        .iter()
                        .map(|k| display_ident(k))
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.hit(
                        Rule::AddForeignKeyWithoutNotValid,
                        index,
                        at,
                        object,
                        format!("foreign key {name}is added to existing table {t} (referencing {referenced}) without NOT VALID, on {columns} added in this file with no default"),
                        Some(fk_lock(&t, &referenced)),
                        format!("every row's {columns} is NULL, so the validation looks nothing up in {referenced}; it still reads all of {t} while holding SHARE ROW EXCLUSIVE on both tables, so writes to either wait for one sequential scan of {t}"),
                        format!("cheap on a small {t}; on a large one add it NOT VALID and `ALTER TABLE {t} VALIDATE CONSTRAINT {conname};` in a later migration, which scans under SHARE UPDATE EXCLUSIVE"),
                    );
                    if let Some(hit) = self.hits.last_mut() {
                        hit.severity = Severity::Warning;
                    }
                    return;
                }
                self.hit(
                    Rule::AddForeignKeyWithoutNotValid,
                    index,
                    at,
                    object,
                    format!("foreign key {name}is added to existing table {t} (referencing {referenced}) without NOT VALID"),
                    Some(fk_lock(&t, &referenced)),
                    format!("PostgreSQL checks every row of {t} against {referenced} before committing, holding SHARE ROW EXCLUSIVE on both tables for the whole scan: every INSERT, UPDATE and DELETE on either waits"),
                    format!("add it as `ALTER TABLE {t} ADD CONSTRAINT {conname} FOREIGN KEY (...) REFERENCES {referenced} (...) NOT VALID;` (a brief lock, no scan: new rows are checked from then on), then in a later migration `ALTER TABLE {t} VALIDATE CONSTRAINT {conname};` which scans under SHARE UPDATE EXCLUSIVE and lets reads and writes through"),
                );
            }
            ConstrType::ConstrCheck => {
                if constraint.skip_validation {
                    self.remember_not_valid(index, table, constraint, Kind::AddCheck.row().mode);
                    return;
                }
                self.hit(
                    Rule::AddCheckWithoutNotValid,
                    index,
                    at,
                    object,
                    format!("check constraint {name}is added to existing table {t} without NOT VALID"),
                    Some(lock_on(Kind::AddCheck, &t)),
                    "PostgreSQL checks every existing row before committing, holding ACCESS EXCLUSIVE for the whole scan: no reads or writes on the table meanwhile",
                    format!("add it as `ALTER TABLE {t} ADD CONSTRAINT {conname} CHECK (...) NOT VALID;` (brief lock, no scan), then in a later migration `ALTER TABLE {t} VALIDATE CONSTRAINT {conname};` which scans under SHARE UPDATE EXCLUSIVE and lets reads and writes through"),
                );
            }
            kind @ (ConstrType::ConstrPrimary | ConstrType::ConstrUnique)
                if constraint.indexname.is_empty() =>
            {
                let (what, keyword) = if kind == ConstrType::ConstrPrimary {
                    ("primary key", "PRIMARY KEY")
                } else {
                    ("unique constraint", "UNIQUE")
                };
                let columns = string_values(&constraint.keys)
                    .iter()
                    .map(|c| display_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ");
                let index_name = if constraint.conname.is_empty() {
                    "new_idx".to_string()
                } else {
                    display_ident(&format!("{}_idx", constraint.conname))
                };
                let not_null_note = if kind == ConstrType::ConstrPrimary {
                    " (a primary key's columns must already be NOT NULL, or adding it scans the table to make them so: see set-not-null)"
                } else {
                    ""
                };
                self.hit(
                    Rule::AddConstraintWithoutUsingIndex,
                    index,
                    at,
                    object,
                    format!("{what} {name}is added to existing table {t} without USING INDEX"),
                    Some(lock_on(Kind::AddKey, &t)),
                    "the unique index behind it is built while ACCESS EXCLUSIVE is held: no reads or writes on the table for the whole build",
                    format!("build the index first, without blocking, in a migration of its own: `CREATE UNIQUE INDEX CONCURRENTLY {index_name} ON {t} ({columns});`, then in the next migration `ALTER TABLE {t} ADD CONSTRAINT {conname} {keyword} USING INDEX {index_name};` (a brief lock){not_null_note}"),
                );
            }
            _ => {}
        }
    }

    fn remember_not_valid(
        &mut self,
        index: usize,
        table: &str,
        constraint: &Constraint,
        lock: LockMode,
    ) {
        if constraint.conname.is_empty() {
            return;
        }
        self.not_valid_constraints.push(NotValidConstraint {
            table: table.to_string(),
            name: constraint.conname.clone(),
            statement: index,
            transaction: self.transaction,
            lock,
        });
    }

    pub(super) fn validate_constraint(&mut self, index: usize, table: &str, name: &str, at: usize) {
        let Some(added) = self
            .not_valid_constraints
            .iter()
            .find(|c| c.table == table && c.name == name && c.transaction == self.transaction)
        else {
            return;
        };
        let (line, lock) = (self.line_of(self.offset_of(added.statement)), added.lock);
        let t = display_ident(table);
        self.hit(
            Rule::ValidateConstraintInSameTransaction,
            index,
            at,
            Some(format!("{t}.{}", display_ident(name))),
            format!("constraint {} is validated in the transaction that added it NOT VALID (line {line})", display_ident(name)),
            Some(format!("{} on {t}, held since line {line}", lock.name())),
            format!("a lock is held until its transaction ends, so the validation scan still runs under the {} lock the ADD took: NOT VALID buys nothing here", lock.name()),
            "validate it in a later migration, so the scan runs under SHARE UPDATE EXCLUSIVE only",
        );
    }
}
