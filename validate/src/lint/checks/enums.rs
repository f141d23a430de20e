//! Enum values: appended without a position, or used before the transaction that adds
//! them commits (judged by `pgward_shared::sql::enum_values_used_before_commit`, as the
//! migration engine judges it).

use pg_query::protobuf;
use pgward_shared::sql;

use super::FileLinter;
use crate::lint::rules::{Family, Rule, RuleInfo};
use crate::lint::{display_ident, string_values};
use pgward_shared::findings::Severity;

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[
        RuleInfo {
            rule: Rule::EnumAddValueWithoutPosition,
            id: "enum-add-value-without-position",
            severity: Severity::Info,
            fires_at: (1, 1),
        },
        RuleInfo {
            rule: Rule::EnumValueUsedInSameTransaction,
            id: "enum-value-used-in-same-transaction",
            severity: Severity::Error,
            fires_at: (2, 28),
        },
    ],
};

impl FileLinter<'_> {
    pub(super) fn alter_enum(&mut self, index: usize, alter: &protobuf::AlterEnumStmt) {
        // RENAME VALUE has an old value; only ADD VALUE adds one.
        if !alter.old_val.is_empty() || alter.new_val.is_empty() {
            return;
        }
        let value = alter.new_val.clone();
        let enum_name = string_values(&alter.type_name).pop().unwrap_or_default();
        let e = display_ident(&enum_name);
        if alter.new_val_neighbor.is_empty() {
            self.hit(
                Rule::EnumAddValueWithoutPosition,
                index,
                self.offset_of(index),
                Some(e.clone()),
                format!("value '{value}' is appended to enum {e} (no BEFORE or AFTER)"),
                None,
                "it sorts after every existing value: ORDER BY and comparisons on the column follow declaration order, not the alphabet",
                format!("if order matters, say where it belongs: `ALTER TYPE {e} ADD VALUE '{value}' BEFORE '...'` (or AFTER); otherwise ignore this note"),
            );
        }
        if self.open_block.is_some() {
            self.enum_values_added_in_block.insert(index);
        }
    }

    /// A value added by an earlier statement of the same transaction, used as a literal
    /// ([`sql::enum_values_used_before_commit`]).
    pub(super) fn enum_value_uses(&mut self, index: usize) {
        let uses: Vec<sql::EnumValueUsedEarly> = self
            .enum_values_used_early
            .iter()
            .filter(|u| u.used == index)
            .cloned()
            .collect();
        for used in uses {
            let in_block =
                self.enum_values_added_in_block.contains(&used.added) || self.open_block.is_some();
            let line = self.line_of(self.offset_of(used.added));
            let why = if in_block {
                "PostgreSQL refuses a new enum value until the transaction that added it commits (\"unsafe use of new value\"), and this use is inside the same BEGIN ... COMMIT block: the migration fails under pgward-migrate and Prisma alike".to_string()
            } else {
                "PostgreSQL refuses a new enum value until the transaction that added it commits (\"unsafe use of new value\"). Prisma runs the whole file as one transaction, so `prisma migrate deploy` fails; pgward-migrate notices and runs the file statement by statement, so it passes there, but not atomically and not under Prisma".to_string()
            };
            self.hit(
                Rule::EnumValueUsedInSameTransaction,
                index,
                self.offset_of(index) + used.offset,
                Some(display_ident(&used.enum_name)),
                format!(
                    "enum value '{}' is used in the transaction that adds it (line {line})",
                    used.value
                ),
                None,
                why,
                "add the value in one migration and use it in a later one",
            );
        }
    }
}
