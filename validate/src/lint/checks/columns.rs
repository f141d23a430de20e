//! `ALTER TABLE` and the columns of existing tables: adding one that needs a value per
//! row, making one NOT NULL, changing its type, dropping it or its default. The
//! subcommands are read here in order; constraints go on to `constraints.rs`.

use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ColumnDef, ConstrType, Constraint,
};
use pg_query::NodeEnum;

use super::{column_object, constraints_of, location, lock_on, FileLinter, Hit};
use crate::lint::display_ident;
use crate::lint::locks::Kind;
use crate::lint::rules::{Family, Rule, RuleInfo};
use crate::lint::types::{self, ColumnType};
use pgward_shared::findings::Severity;

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[
        RuleInfo {
            rule: Rule::AddColumnNotNullWithoutDefault,
            id: "add-column-not-null-without-default",
            severity: Severity::Error,
            fires_at: (3, 24),
        },
        RuleInfo {
            rule: Rule::AddColumnVolatileDefault,
            id: "add-column-volatile-default",
            severity: Severity::Error,
            fires_at: (2, 49),
        },
        RuleInfo {
            rule: Rule::SetNotNull,
            id: "set-not-null",
            severity: Severity::Error,
            fires_at: (2, 19),
        },
        RuleInfo {
            rule: Rule::AlterColumnType,
            id: "alter-column-type",
            severity: Severity::Error,
            fires_at: (2, 56),
        },
        RuleInfo {
            rule: Rule::DropColumn,
            id: "drop-column",
            severity: Severity::Warning,
            fires_at: (2, 19),
        },
        RuleInfo {
            rule: Rule::DropDefaultNotNull,
            id: "drop-default-not-null",
            severity: Severity::Warning,
            fires_at: (2, 22),
        },
    ],
};

impl FileLinter<'_> {
    pub(super) fn alter_table(&mut self, index: usize, alter: &AlterTableStmt) {
        let Some(relation) = &alter.relation else {
            return;
        };
        let table = relation.relname.clone();
        let existing = !self.is_new(&table);
        let offsets = location(relation.location)
            .map(|at| {
                self.file
                    .command_offsets(self.text, index, at, alter.cmds.len())
            })
            .unwrap_or_default();
        let cmds: Vec<&AlterTableCmd> = alter
            .cmds
            .iter()
            .filter_map(|c| match &c.node {
                Some(NodeEnum::AlterTableCmd(cmd)) => Some(cmd.as_ref()),
                _ => None,
            })
            .collect();
        // Columns this statement adds, for an `ADD PRIMARY KEY` on one of them.
        let added: Vec<&ColumnDef> = cmds
            .iter()
            .filter(|c| c.subtype() == AlterTableType::AtAddColumn)
            .filter_map(|c| match c.def.as_ref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::ColumnDef(column)) => Some(column.as_ref()),
                _ => None,
            })
            .collect();
        for (i, cmd) in cmds.iter().enumerate() {
            let at = offsets.get(i).copied().unwrap_or(self.offset_of(index));
            let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
            match (cmd.subtype(), def) {
                (AlterTableType::AtAddColumn, Some(NodeEnum::ColumnDef(column))) => {
                    self.column_type_rules(
                        index,
                        &table,
                        &column.colname,
                        column.type_name.as_ref(),
                    );
                    if constraints_of(column).any(|c| c.contype() == ConstrType::ConstrPrimary) {
                        self.small_primary_key(index, &table, column, None);
                    }
                    if existing {
                        self.add_column(index, &table, column, at);
                    }
                }
                (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(constraint))) => {
                    let at = location(constraint.location).unwrap_or(at);
                    if constraint.contype() == ConstrType::ConstrPrimary {
                        self.added_primary_key(index, &table, constraint, &added, at);
                    }
                    if existing {
                        self.add_constraint(index, &table, constraint, at);
                    }
                }
                (AlterTableType::AtValidateConstraint, _) if existing => {
                    self.validate_constraint(index, &table, &cmd.name, at)
                }
                // Before 12 a valid check proves nothing to SET NOT NULL: it scans.
                (AlterTableType::AtSetNotNull, _)
                    if existing
                        && (self.catalog.before(12)
                            || !self.catalog.proves_not_null(&table, &cmd.name)) =>
                {
                    self.set_not_null(index, &table, &cmd.name, at)
                }
                (AlterTableType::AtAlterColumnType, Some(NodeEnum::ColumnDef(column))) => {
                    self.column_type_rules(index, &table, &cmd.name, column.type_name.as_ref());
                    if existing {
                        self.alter_column_type(index, &table, &cmd.name, column, at);
                    }
                }
                (AlterTableType::AtColumnDefault, Some(_)) => self.default_set(&table, &cmd.name),
                (AlterTableType::AtColumnDefault, None)
                    if existing && self.catalog.not_null_with_default(&table, &cmd.name) =>
                {
                    self.drop_default(index, &table, &cmd.name, at)
                }
                (AlterTableType::AtDropColumn, _) if existing => {
                    self.drop_column(index, &table, &cmd.name, at)
                }
                _ => {}
            }
            // The next subcommand sees the table as this one left it (a key changed to
            // text, then made the primary key, is a text key).
            self.catalog.learn_alter_table_cmd(&table, cmd);
        }
    }

    fn add_column(&mut self, index: usize, table: &str, column: &ColumnDef, at: usize) {
        let name = &column.colname;
        let object = Some(column_object(table, name));
        let lock = Some(lock_on(Kind::AddColumn, &display_ident(table)));
        let column_type = column.type_name.as_ref().map(ColumnType::from_type_name);
        let serial = column_type.as_ref().is_some_and(ColumnType::is_serial);
        let constraints: Vec<&Constraint> = constraints_of(column).collect();
        let find = |kind: ConstrType| constraints.iter().copied().find(|c| c.contype() == kind);
        let default = find(ConstrType::ConstrDefault);
        let identity = find(ConstrType::ConstrIdentity);
        let generated = find(ConstrType::ConstrGenerated);
        let column_at = location(column.location).unwrap_or(at);

        let not_null = constraints.iter().find(|c| {
            matches!(
                c.contype(),
                ConstrType::ConstrNotnull | ConstrType::ConstrPrimary
            )
        });
        let no_value = default.is_none() && identity.is_none() && generated.is_none() && !serial;
        if not_null.is_none() && no_value {
            self.null_columns.insert((table.to_string(), name.clone()));
        }
        if let Some(not_null) = not_null {
            if no_value {
                // Past this statement the table is known to be empty.
                self.empty_tables.insert(table.to_string());
                self.hit(
                    Rule::AddColumnNotNullWithoutDefault,
                    index,
                    location(not_null.location).unwrap_or(column_at),
                    object.clone(),
                    format!("column {} is added to existing table {} as NOT NULL without a DEFAULT", display_ident(name), display_ident(table)),
                    lock.clone(),
                    "every existing row needs a value for the new column and there is none to give, so the statement fails as soon as the table has a row: it passes on an empty development database and fails in production",
                    format!("add it with a constant default (`ADD COLUMN {col} ... NOT NULL DEFAULT <value>`: no rewrite since PostgreSQL 11), or add it nullable, backfill it in batches, then `ADD CONSTRAINT {col}_not_null CHECK ({col} IS NOT NULL) NOT VALID`, `VALIDATE CONSTRAINT` in a later migration, and `SET NOT NULL`", col = display_ident(name)),
                );
            }
        }

        let per_row = if let Some(expr) = default
            .and_then(|d| d.raw_expr.as_ref())
            .and_then(|e| e.node.as_ref())
        {
            types::volatile_call(expr)
                .map(|(function, offset)| (format!("the volatile default {function}()"), offset))
        } else if serial {
            column_type.as_ref().map(|t| {
                (
                    format!("type {} (a nextval() default)", t.display()),
                    column
                        .type_name
                        .as_ref()
                        .and_then(|t| location(t.location))
                        .unwrap_or(column_at),
                )
            })
        } else if let Some(identity) = identity {
            Some((
                "an identity (filled from a sequence)".to_string(),
                location(identity.location).unwrap_or(column_at),
            ))
        } else {
            generated.map(|g| {
                (
                    "GENERATED ... STORED (computed for every row)".to_string(),
                    location(g.location).unwrap_or(column_at),
                )
            })
        };
        // Before 11 every default, constant or not, is written into every existing row.
        let constant_before_11 = per_row.is_none() && default.is_some() && self.catalog.before(11);
        let why = if constant_before_11 {
            "before PostgreSQL 11, ADD COLUMN writes its default, even a constant, into every existing row: PostgreSQL rewrites the whole table and rebuilds its indexes while holding ACCESS EXCLUSIVE, so no reads or writes until it is done"
        } else {
            "a value that differs per row is computed for every existing row, so PostgreSQL rewrites the whole table and rebuilds its indexes while holding ACCESS EXCLUSIVE: no reads or writes until it is done (stable defaults such as now() or CURRENT_TIMESTAMP are computed once and need no rewrite since PostgreSQL 11)"
        };
        let per_row = per_row.or_else(|| {
            default.filter(|_| self.catalog.before(11)).map(|d| {
                (
                    "a default (before PostgreSQL 11 every default is written into every existing row)".to_string(),
                    location(d.location).unwrap_or(column_at),
                )
            })
        });
        if let Some((what, offset)) = per_row {
            self.hit(
                Rule::AddColumnVolatileDefault,
                index,
                offset,
                object.clone(),
                format!("column {} is added to existing table {} with {what}", display_ident(name), display_ident(table)),
                lock.clone(),
                why,
                format!("add the column without that default (nullable, or with a constant default), give new rows their value with `ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT ...` (no rewrite), and backfill the existing rows in batches", t = display_ident(table), c = display_ident(name)),
            );
        }

        for constraint in &constraints {
            if matches!(
                constraint.contype(),
                ConstrType::ConstrPrimary | ConstrType::ConstrUnique
            ) {
                let at = location(constraint.location).unwrap_or(column_at);
                self.add_constraint(index, table, constraint, at);
            }
        }
    }

    fn set_not_null(&mut self, index: usize, table: &str, column: &str, at: usize) {
        let (t, c) = (display_ident(table), display_ident(column));
        let check = display_ident(&format!("{column}_not_null"));
        let why = if self.catalog.before(12) {
            "PostgreSQL scans the whole table to prove there is no NULL, holding ACCESS EXCLUSIVE: no reads or writes on the table meanwhile; before PostgreSQL 12 it scans even when a valid CHECK (col IS NOT NULL) proves it"
        } else {
            "PostgreSQL scans the whole table to prove there is no NULL, holding ACCESS EXCLUSIVE: no reads or writes on the table meanwhile"
        };
        let fix = if self.catalog.before(12) {
            format!("before PostgreSQL 12 there is no way around the scan: keep `ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID;` and `VALIDATE CONSTRAINT` (the same guarantee without blocking writes) instead of SET NOT NULL, or run it in a quiet hour with a short lock_timeout")
        } else if self.catalog.at_least(18) {
            format!("`ALTER TABLE {t} ADD CONSTRAINT {check} NOT NULL {c} NOT VALID;` (PostgreSQL 18: no scan), then in a later migration `ALTER TABLE {t} VALIDATE CONSTRAINT {check};`, which scans without blocking writes and makes the column NOT NULL")
        } else {
            format!("`ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID;`, then in a later migration `ALTER TABLE {t} VALIDATE CONSTRAINT {check};` (scans without blocking writes), then `ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;` which PostgreSQL 12 and newer do without a scan because the valid check proves it, and `ALTER TABLE {t} DROP CONSTRAINT {check};`")
        };
        self.hit(
            Rule::SetNotNull,
            index,
            at,
            Some(column_object(table, column)),
            format!("column {c} of existing table {t} is made NOT NULL"),
            Some(lock_on(Kind::SetNotNull, &t)),
            why,
            fix,
        );
    }

    fn alter_column_type(
        &mut self,
        index: usize,
        table: &str,
        column: &str,
        def: &ColumnDef,
        at: usize,
    ) {
        let Some(type_name) = &def.type_name else {
            return;
        };
        let new = ColumnType::from_type_name(type_name);
        let using = def.raw_default.is_some();
        let old = self.catalog.column_type(table, column).cloned();
        let (t, c) = (display_ident(table), display_ident(column));
        let mut severity = Rule::AlterColumnType.severity();
        let (message, why) = match (&old, using) {
            (_, true) => (
                format!("column {c} of existing table {t} changes type to {} with a USING expression", new.display()),
                "the USING expression is computed for every row: PostgreSQL rewrites the whole table and rebuilds its indexes while holding ACCESS EXCLUSIVE, so no reads or writes until it is done".to_string(),
            ),
            (Some(old), false) if types::change_skips_rewrite(old, &new) => return,
            (Some(old), false) if types::change_rebuilds_indexes_only(old, &new) => (
                format!("column {c} of existing table {t} changes type from {} to {}", old.display(), new.display()),
                "the rows stay as they are (the cast is binary-coercible), but every index on the column is rebuilt for the new operator class while ACCESS EXCLUSIVE is held: no reads or writes until the last index is built (quick only if the column has no index)".to_string(),
            ),
            (Some(old), false) => (
                format!("column {c} of existing table {t} changes type from {} to {}", old.display(), new.display()),
                "the change is not binary-coercible: PostgreSQL rewrites every row and rebuilds the table's indexes while holding ACCESS EXCLUSIVE, so no reads or writes until it is done".to_string(),
            ),
            (None, false) => {
                if types::could_skip_rewrite(&new) {
                    severity = Severity::Warning;
                }
                (
                    format!("column {c} of existing table {t} changes type to {} (its current type is unknown: the migrations linted did not create it)", new.display()),
                    "unless the change is binary-coercible (varchar(n) to a longer varchar, to unbounded varchar or to text; text to unbounded varchar; numeric(p,s) to a larger precision with the same scale), PostgreSQL rewrites every row and rebuilds the table's indexes while holding ACCESS EXCLUSIVE, so no reads or writes until it is done".to_string(),
                )
            }
        };
        self.hits.push(Hit {
            rule: Rule::AlterColumnType,
            severity,
            statement: index,
            offset: location(type_name.location).unwrap_or(at),
            object: Some(column_object(table, column)),
            message,
            lock: Some(lock_on(Kind::AlterColumnType, &t)),
            why,
            fix: format!("add a new column of type {}, keep it in sync with {c} (a trigger, or the application writing both), backfill it in batches, switch reads to it, then drop {c} in a later migration", new.display()),
        });
    }

    /// A default set again withdraws the `drop-default-not-null` findings of the same
    /// column in the same transaction.
    fn default_set(&mut self, table: &str, column: &str) {
        let transaction = self.transaction;
        let object = column_object(table, column);
        let (restored, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut self.dropped_defaults)
            .into_iter()
            .partition(|(t, c, tx, _)| t == table && c == column && *tx == transaction);
        self.dropped_defaults = pending;
        for (.., statement) in restored {
            self.hits.retain(|h| {
                !(h.rule == Rule::DropDefaultNotNull
                    && h.statement == statement
                    && h.object.as_deref() == Some(object.as_str()))
            });
        }
    }

    fn drop_default(&mut self, index: usize, table: &str, column: &str, at: usize) {
        self.dropped_defaults.push((
            table.to_string(),
            column.to_string(),
            self.transaction,
            index,
        ));
        let (t, c) = (display_ident(table), display_ident(column));
        self.hit(
            Rule::DropDefaultNotNull,
            index,
            at,
            Some(column_object(table, column)),
            format!("the default of NOT NULL column {c} of existing table {t} is dropped"),
            Some(format!("{} (briefly)", lock_on(Kind::DropDefault, &t))),
            format!("the application still running during the deploy inserts into {t} without naming {c} wherever it relied on the default (Prisma leaves out a field with @default that the code does not set), and every such INSERT now fails with a not-null violation"),
            format!("first deploy code that always sets {c} (keep @default in schema.prisma until then), then drop the default in a later migration; or keep the default"),
        );
    }

    fn drop_column(&mut self, index: usize, table: &str, column: &str, at: usize) {
        self.hit(
            Rule::DropColumn,
            index,
            at,
            Some(column_object(table, column)),
            format!("column {} is dropped from existing table {}", display_ident(column), display_ident(table)),
            Some(format!("{} (briefly)", lock_on(Kind::DropColumn, &display_ident(table)))),
            "the application still running during the deploy names the column (Prisma selects and inserts every column of a model by name), so it fails from this moment until the new code runs everywhere; and the data is gone for good",
            "first deploy code that no longer uses the column (remove the field from schema.prisma), then drop it in a later migration, with a backup taken",
        );
    }
}
