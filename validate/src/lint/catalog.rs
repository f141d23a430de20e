//! What the migrations linted so far have built, as far as the rules need it: each
//! table's columns with their types, which are NOT NULL and which have a default, and its
//! `CHECK (col IS NOT NULL)` constraints.
//!
//! Files are linted in migration order, so when lint reaches a file the catalog holds what
//! the earlier migrations left, which is what the database has when that file runs. It
//! lets `alter-column-type` tell a free `varchar(50)` → `varchar(100)` from a rewrite, and
//! `set-not-null` recognise a column already proven by a validated check. A table it does
//! not know (a file linted on its own) is an existing table of unknown shape, and the
//! rules that need more say so rather than guess.

use std::collections::{HashMap, HashSet};

use pg_query::protobuf::{AlterTableType, ConstrType, NullTestType, ObjectType};
use pg_query::NodeEnum;

use crate::lint::string_values;
use crate::lint::types::ColumnType;

/// The tables the linted migrations built, by name (Prisma qualifies nothing, so the
/// schema is not part of the key; the parser has already folded unquoted names to
/// lower case).
#[derive(Debug, Default)]
pub struct Catalog {
    tables: HashMap<String, TableShape>,
    /// The PostgreSQL major the migrations will run on, when known (`--pg-version`, or
    /// the database's): the rules whose danger depends on it read it here.
    pub pg_version: Option<u32>,
}

#[derive(Debug, Default)]
struct TableShape {
    columns: HashMap<String, ColumnType>,
    /// Columns declared NOT NULL (or part of the primary key).
    not_null: HashSet<String>,
    /// Columns with a default (a DEFAULT, an identity, a serial type).
    defaults: HashSet<String>,
    /// `CHECK (col IS NOT NULL)` constraints by name.
    not_null_checks: HashMap<String, NotNullCheck>,
}

#[derive(Debug)]
struct NotNullCheck {
    column: String,
    validated: bool,
}

impl Catalog {
    /// The type of `table.column`, when the linted migrations made it.
    pub fn column_type(&self, table: &str, column: &str) -> Option<&ColumnType> {
        self.tables.get(table)?.columns.get(column)
    }

    /// Whether a validated `CHECK (column IS NOT NULL)` on `table` proves the column has no
    /// NULL, so that `SET NOT NULL` skips its scan (PostgreSQL 12 and newer).
    /// Whether the target major is known to be older than `major` (an unknown one is taken
    /// for a supported one: 14 or later).
    pub fn before(&self, major: u32) -> bool {
        self.pg_version.is_some_and(|v| v < major)
    }

    /// Whether the target major is known to be `major` or newer.
    pub fn at_least(&self, major: u32) -> bool {
        self.pg_version.is_some_and(|v| v >= major)
    }

    pub fn proves_not_null(&self, table: &str, column: &str) -> bool {
        self.tables.get(table).is_some_and(|t| {
            t.not_null_checks
                .values()
                .any(|c| c.validated && c.column == column)
        })
    }

    /// Whether `table.column` is declared NOT NULL and has a default, as far as the linted
    /// migrations show (false when they do not show the column).
    pub fn not_null_with_default(&self, table: &str, column: &str) -> bool {
        self.tables
            .get(table)
            .is_some_and(|t| t.not_null.contains(column) && t.defaults.contains(column))
    }

    /// Takes in what one `ALTER TABLE` subcommand changes, so that the next subcommand
    /// of the same statement is judged on the table as this one left it.
    pub fn learn_alter_table_cmd(&mut self, table: &str, cmd: &pg_query::protobuf::AlterTableCmd) {
        self.tables.entry(table.to_string()).or_default().learn(cmd);
    }

    /// Takes in what one statement changes (an `ALTER TABLE` of a table: subcommand by
    /// subcommand through [`Catalog::learn_alter_table_cmd`] instead).
    pub fn learn(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::CreateStmt(create) => {
                let Some(relation) = &create.relation else {
                    return;
                };
                let mut shape = TableShape::default();
                for element in &create.table_elts {
                    match &element.node {
                        Some(NodeEnum::ColumnDef(column)) => {
                            shape.add_column(column);
                        }
                        Some(NodeEnum::Constraint(constraint)) => {
                            if constraint.contype() == ConstrType::ConstrPrimary {
                                shape.not_null.extend(string_values(&constraint.keys));
                            }
                            // A new table is empty: every constraint on it is valid.
                            if let Some(column) = not_null_check_column(constraint) {
                                shape.not_null_checks.insert(
                                    constraint.conname.clone(),
                                    NotNullCheck {
                                        column,
                                        validated: true,
                                    },
                                );
                            }
                        }
                        _ => {}
                    }
                }
                self.tables.insert(relation.relname.clone(), shape);
            }
            NodeEnum::AlterTableStmt(alter) => {
                let Some(relation) = &alter.relation else {
                    return;
                };
                let shape = self.tables.entry(relation.relname.clone()).or_default();
                for cmd in &alter.cmds {
                    if let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node {
                        shape.learn(cmd);
                    }
                }
            }
            NodeEnum::RenameStmt(rename) => {
                let Some(relation) = &rename.relation else {
                    return;
                };
                match rename.rename_type() {
                    ObjectType::ObjectTable => {
                        if let Some(shape) = self.tables.remove(&relation.relname) {
                            self.tables.insert(rename.newname.clone(), shape);
                        }
                    }
                    ObjectType::ObjectColumn => {
                        if let Some(shape) = self.tables.get_mut(&relation.relname) {
                            if let Some(t) = shape.columns.remove(&rename.subname) {
                                shape.columns.insert(rename.newname.clone(), t);
                            }
                            for check in shape.not_null_checks.values_mut() {
                                if check.column == rename.subname {
                                    check.column = rename.newname.clone();
                                }
                            }
                        }
                    }
                    ObjectType::ObjectTabconstraint => {
                        if let Some(shape) = self.tables.get_mut(&relation.relname) {
                            if let Some(check) = shape.not_null_checks.remove(&rename.subname) {
                                shape.not_null_checks.insert(rename.newname.clone(), check);
                            }
                        }
                    }
                    _ => {}
                }
            }
            NodeEnum::DropStmt(drop) if drop.remove_type() == ObjectType::ObjectTable => {
                for name in drop.objects.iter().filter_map(crate::lint::last_name) {
                    self.tables.remove(&name);
                }
            }
            _ => {}
        }
    }
}

impl TableShape {
    /// A column of CREATE TABLE or ADD COLUMN: its type, NOT NULL and default.
    fn add_column(&mut self, column: &pg_query::protobuf::ColumnDef) {
        let name = column.colname.clone();
        let column_type = column.type_name.as_ref().map(ColumnType::from_type_name);
        if column_type.as_ref().is_some_and(ColumnType::is_serial) {
            self.defaults.insert(name.clone());
        }
        for c in &column.constraints {
            if let Some(NodeEnum::Constraint(c)) = &c.node {
                match c.contype() {
                    ConstrType::ConstrNotnull | ConstrType::ConstrPrimary => {
                        self.not_null.insert(name.clone());
                    }
                    ConstrType::ConstrDefault | ConstrType::ConstrIdentity => {
                        self.defaults.insert(name.clone());
                    }
                    _ => {}
                }
            }
        }
        if let Some(t) = column_type {
            self.columns.insert(name, t.stored());
        }
    }

    fn learn(&mut self, cmd: &pg_query::protobuf::AlterTableCmd) {
        let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
        match (cmd.subtype(), def) {
            (AlterTableType::AtAddColumn, Some(NodeEnum::ColumnDef(column))) => {
                self.add_column(column);
            }
            (AlterTableType::AtSetNotNull, _) => {
                self.not_null.insert(cmd.name.clone());
            }
            (AlterTableType::AtDropNotNull, _) => {
                self.not_null.remove(&cmd.name);
            }
            (AlterTableType::AtColumnDefault, Some(_)) => {
                self.defaults.insert(cmd.name.clone());
            }
            (AlterTableType::AtColumnDefault, None) => {
                self.defaults.remove(&cmd.name);
            }
            (AlterTableType::AtAlterColumnType, Some(NodeEnum::ColumnDef(column))) => {
                if let Some(t) = &column.type_name {
                    self.columns
                        .insert(cmd.name.clone(), ColumnType::from_type_name(t).stored());
                }
            }
            (AlterTableType::AtDropColumn, _) => {
                self.columns.remove(&cmd.name);
                self.not_null.remove(&cmd.name);
                self.defaults.remove(&cmd.name);
                self.not_null_checks.retain(|_, c| c.column != cmd.name);
            }
            (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(constraint))) => {
                if constraint.contype() == ConstrType::ConstrPrimary {
                    self.not_null.extend(string_values(&constraint.keys));
                }
                if let Some(column) = not_null_check_column(constraint) {
                    self.not_null_checks.insert(
                        constraint.conname.clone(),
                        NotNullCheck {
                            column,
                            validated: !constraint.skip_validation,
                        },
                    );
                }
            }
            (AlterTableType::AtValidateConstraint, _) => {
                if let Some(check) = self.not_null_checks.get_mut(&cmd.name) {
                    check.validated = true;
                }
            }
            (AlterTableType::AtDropConstraint, _) => {
                self.not_null_checks.remove(&cmd.name);
            }
            _ => {}
        }
    }
}

/// The column of a `CHECK (column IS NOT NULL)` constraint.
pub fn not_null_check_column(constraint: &pg_query::protobuf::Constraint) -> Option<String> {
    if constraint.contype() != ConstrType::ConstrCheck {
        return None;
    }
    let Some(NodeEnum::NullTest(test)) = constraint.raw_expr.as_ref()?.node.as_ref() else {
        return None;
    };
    if test.nulltesttype() != NullTestType::IsNotNull {
        return None;
    }
    let Some(NodeEnum::ColumnRef(column)) = test.arg.as_ref()?.node.as_ref() else {
        return None;
    };
    match column.fields.as_slice() {
        [field] => match &field.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn_all(catalog: &mut Catalog, sql: &str) {
        for stmt in pgward_shared::sql::parse_statements(sql).expect("valid SQL") {
            catalog.learn(&stmt.node);
        }
    }

    #[test]
    fn follows_tables_columns_and_not_null_checks() {
        let mut catalog = Catalog::default();
        learn_all(
            &mut catalog,
            "CREATE TABLE \"User\" (id SERIAL, name VARCHAR(50), CONSTRAINT \"User_pkey\" PRIMARY KEY (id));
             ALTER TABLE \"User\" ADD COLUMN email TEXT, ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;
             ALTER TABLE \"User\" RENAME COLUMN name TO full_name;",
        );
        assert_eq!(
            catalog.column_type("User", "id").map(ColumnType::display),
            Some("int4".into())
        );
        assert_eq!(
            catalog
                .column_type("User", "full_name")
                .map(ColumnType::display),
            Some("varchar(50)".into())
        );
        assert!(!catalog.proves_not_null("User", "email"));
        learn_all(
            &mut catalog,
            "ALTER TABLE \"User\" VALIDATE CONSTRAINT email_nn;",
        );
        assert!(catalog.proves_not_null("User", "email"));
        learn_all(&mut catalog, "ALTER TABLE \"User\" RENAME TO people;");
        assert!(catalog.proves_not_null("people", "email"));
        assert!(catalog.column_type("User", "id").is_none());
        learn_all(&mut catalog, "DROP TABLE people;");
        assert!(catalog.column_type("people", "id").is_none());
    }
}
