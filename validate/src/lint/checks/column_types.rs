//! The types chosen for columns: json, timestamp without time zone, char(n), and
//! 16/32-bit integer primary keys.

use pg_query::protobuf::{self, ColumnDef, ConstrType, Constraint};
use pg_query::NodeEnum;

use super::{column_object, constraints_of, location, FileLinter};
use crate::lint::rules::{Family, Rule, RuleInfo};
use crate::lint::types::ColumnType;
use crate::lint::{display_ident, string_values};
use pgward_shared::findings::Severity;

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[
        RuleInfo {
            rule: Rule::PreferJsonb,
            id: "prefer-jsonb",
            severity: Severity::Warning,
            fires_at: (3, 13),
        },
        RuleInfo {
            rule: Rule::PreferTimestamptz,
            id: "prefer-timestamptz",
            severity: Severity::Warning,
            fires_at: (3, 17),
        },
        RuleInfo {
            rule: Rule::PreferBigintPrimaryKey,
            id: "prefer-bigint-primary-key",
            severity: Severity::Warning,
            fires_at: (2, 10),
        },
        RuleInfo {
            rule: Rule::PreferTextOverChar,
            id: "prefer-text-over-char",
            severity: Severity::Warning,
            fires_at: (3, 10),
        },
    ],
};

impl FileLinter<'_> {
    pub(super) fn create_table(&mut self, index: usize, create: &protobuf::CreateStmt) {
        let Some(relation) = &create.relation else {
            return;
        };
        let table = relation.relname.clone();
        self.created_tables.insert(table.clone());
        let columns: Vec<&ColumnDef> = create
            .table_elts
            .iter()
            .filter_map(|e| match &e.node {
                Some(NodeEnum::ColumnDef(c)) => Some(c.as_ref()),
                _ => None,
            })
            .collect();
        for column in &columns {
            self.column_type_rules(index, &table, &column.colname, column.type_name.as_ref());
            if constraints_of(column).any(|c| c.contype() == ConstrType::ConstrPrimary) {
                self.small_primary_key(index, &table, column, None);
            }
        }
        for element in &create.table_elts {
            let Some(NodeEnum::Constraint(constraint)) = &element.node else {
                continue;
            };
            if constraint.contype() != ConstrType::ConstrPrimary {
                continue;
            }
            if let [key] = string_values(&constraint.keys).as_slice() {
                if let Some(column) = columns.iter().find(|c| &c.colname == key) {
                    self.small_primary_key(index, &table, column, None);
                }
            }
        }
    }

    /// `prefer-bigint-primary-key` for a key column defined in this statement;
    /// `at` overrides where it points (the constraint, for `ADD PRIMARY KEY`).
    pub(super) fn small_primary_key(
        &mut self,
        index: usize,
        table: &str,
        column: &ColumnDef,
        at: Option<usize>,
    ) {
        let Some(type_name) = &column.type_name else {
            return;
        };
        let column_type = ColumnType::from_type_name(type_name);
        let offset = at
            .or(location(type_name.location))
            .unwrap_or(self.offset_of(index));
        self.small_key_type(index, table, &column.colname, &column_type, offset);
    }

    fn small_key_type(
        &mut self,
        index: usize,
        table: &str,
        column: &str,
        column_type: &ColumnType,
        offset: usize,
    ) {
        if !column_type.is_small_integer() {
            return;
        }
        self.hit(
            Rule::PreferBigintPrimaryKey,
            index,
            offset,
            Some(column_object(table, column)),
            format!(
                "primary key {} of {} is {}",
                display_ident(column),
                display_ident(table),
                column_type.display()
            ),
            None,
            "a 32-bit key runs out at 2,147,483,647 (a 16-bit one at 32,767), and every INSERT fails from then on; changing it to bigint later rewrites this table and every table referencing it under ACCESS EXCLUSIVE",
            "use bigint from the start: `bigint GENERATED ALWAYS AS IDENTITY` or bigserial (Prisma: `BigInt @id @default(autoincrement())`), or a uuid/text key",
        );
    }

    /// The rules on a column's declared type: json, timestamp, char(n).
    pub(super) fn column_type_rules(
        &mut self,
        index: usize,
        table: &str,
        column: &str,
        type_name: Option<&protobuf::TypeName>,
    ) {
        let Some(type_name) = type_name else {
            return;
        };
        let column_type = ColumnType::from_type_name(type_name);
        let offset = location(type_name.location).unwrap_or(self.offset_of(index));
        let object = Some(column_object(table, column));
        let about = format!(
            "column {} of {}",
            display_ident(column),
            display_ident(table)
        );
        match column_type.name.as_str() {
            "json" => self.hit(
                Rule::PreferJsonb,
                index,
                offset,
                object,
                format!("{about} is json"),
                None,
                "json keeps the text as written and parses it again on every access; it has no equality operator (DISTINCT, GROUP BY and UNIQUE fail on it) and no GIN indexing",
                "use jsonb (Prisma's Json maps to jsonb unless the field says @db.Json)",
            ),
            "timestamp" => self.hit(
                Rule::PreferTimestamptz,
                index,
                offset,
                object,
                format!("{about} is {} (timestamp without time zone)", column_type.display()),
                None,
                "the value carries no time zone: what it means depends on the time zone of whoever wrote it, so clients or servers in other zones and daylight-saving changes shift it silently",
                "use timestamptz (Prisma: `DateTime @db.Timestamptz(3)`); converting an existing column rewrites the table unless the session time zone is UTC (PostgreSQL 12 and newer)",
            ),
            "bpchar" => self.hit(
                Rule::PreferTextOverChar,
                index,
                offset,
                object,
                format!("{about} is {}", column_type.display().replace("bpchar", "char")),
                None,
                "char(n) pads every value with spaces to n characters; trailing spaces count in some operations and not in others, and it is no faster than text",
                "use text (with a CHECK on its length if the length matters) or varchar(n)",
            ),
            _ => {}
        }
    }

    pub(super) fn added_primary_key(
        &mut self,
        index: usize,
        table: &str,
        constraint: &Constraint,
        added: &[&ColumnDef],
        at: usize,
    ) {
        let keys = string_values(&constraint.keys);
        let [key] = keys.as_slice() else {
            return;
        };
        // The catalog has taken in the statement's earlier subcommands: a column added
        // or retyped before this ADD PRIMARY KEY has its new type there.
        if let Some(column_type) = self.catalog.column_type(table, key).cloned() {
            self.small_key_type(index, table, key, &column_type, at);
        } else if let Some(column) = added.iter().find(|c| &c.colname == key) {
            self.small_primary_key(index, table, column, Some(at));
        }
    }
}
