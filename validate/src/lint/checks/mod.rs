//! The rules, applied statement by statement to one parsed file.
//!
//! A migration file runs against a live database while the application keeps querying
//! it, so what matters is which lock each statement takes on a table that already has
//! rows and traffic, for how long, and whether the statement works at all outside the
//! developer's empty database. Tables created earlier in the same file are new and empty:
//! nothing waits on them, so no lock rule fires for them. Each finding says the lock, why
//! it hurts, and the safe way to get the same result.
//!
//! One module per family of rules. Each starts with its `FAMILY` table (every rule's id,
//! severity and where its fixture `tests/fixtures/lint/rules/<id>/bad.sql` triggers it),
//! followed by the code that finds those rules and writes their why and fix;
//! [`FAMILIES`] lists them all, and `crate::lint::rules` reads the rule catalogue from it.

mod column_types;
mod columns;
mod constraints;
mod drops_and_renames;
mod enums;
mod identifiers;
mod indexes;
mod lock_timeout;
pub(crate) mod parse_error;
mod transactions;
mod whole_table;

use std::collections::HashSet;

use pg_query::protobuf::{self, ColumnDef, Constraint, ObjectType};
use pg_query::NodeEnum;
use pgward_shared::sql;

use crate::lint::catalog::Catalog;
use crate::lint::locks::Kind;
use crate::lint::rules::{Family, Rule};
use crate::lint::source::ParsedFile;
use crate::lint::{display_ident, last_name};
use constraints::NotValidConstraint;
use lock_timeout::UnguardedLock;
use pgward_shared::findings::Severity;

/// Every family of rules: the rule catalogue ([`Rule::all`]).
pub const FAMILIES: &[Family] = &[
    columns::FAMILY,
    indexes::FAMILY,
    transactions::FAMILY,
    constraints::FAMILY,
    drops_and_renames::FAMILY,
    enums::FAMILY,
    whole_table::FAMILY,
    lock_timeout::FAMILY,
    identifiers::FAMILY,
    column_types::FAMILY,
    parse_error::FAMILY,
];

/// What a rule found, before it is placed in a file and filtered by suppressions.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The rule.
    pub rule: Rule,
    /// Usually the rule's own severity.
    pub severity: Severity,
    /// Index of the statement it belongs to (for `-- pgward-ignore`).
    pub statement: usize,
    /// Byte offset it points at.
    pub offset: usize,
    /// The object concerned.
    pub object: Option<String>,
    /// What was found.
    pub message: String,
    /// The lock it takes.
    pub lock: Option<String>,
    /// Why it hurts.
    pub why: String,
    /// The safe alternative.
    pub fix: String,
}

pub(super) fn location(location: i32) -> Option<usize> {
    usize::try_from(location).ok()
}

pub(super) fn constraints_of(column: &ColumnDef) -> impl Iterator<Item = &Constraint> {
    column.constraints.iter().filter_map(|c| match &c.node {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    })
}

/// `"User"."email"`.
pub(super) fn column_object(table: &str, column: &str) -> String {
    format!("{}.{}", display_ident(table), display_ident(column))
}

/// `SHARE on "orders"`: the lock the lock table gives `kind`, on `on`.
pub(super) fn lock_on(kind: Kind, on: &str) -> String {
    format!("{} on {on}", kind.row().mode.name())
}

/// Lints `file` (the parse of `text`), reading and extending `catalog`.
pub fn lint_file(text: &str, file: &ParsedFile, catalog: &mut Catalog) -> Vec<Hit> {
    let mut linter = FileLinter {
        text,
        file,
        catalog,
        hits: Vec::new(),
        created_tables: HashSet::new(),
        created_indexes: HashSet::new(),
        open_block: None,
        transaction: 0,
        enum_values_used_early: sql::enum_values_used_before_commit(&file.statements),
        enum_values_added_in_block: HashSet::new(),
        not_valid_constraints: Vec::new(),
        empty_tables: HashSet::new(),
        committed: None,
        work_since_commit: false,
        dropped_defaults: Vec::new(),
        null_columns: HashSet::new(),
        lock_timeout_set: false,
        unguarded_lock: None,
    };
    for index in 0..file.statements.len() {
        linter.statement(index);
    }
    linter.end_of_file();
    linter.hits.sort_by_key(|h| h.offset);
    linter.hits
}

struct FileLinter<'a> {
    text: &'a str,
    file: &'a ParsedFile,
    catalog: &'a mut Catalog,
    hits: Vec<Hit>,
    /// Tables created by this file so far: new and empty, nobody waits on them.
    created_tables: HashSet<String>,
    /// Indexes created by this file so far.
    created_indexes: HashSet<String>,
    /// The statement that opened the explicit transaction block we are in.
    open_block: Option<usize>,
    /// Which transaction a statement runs in when the file runs as Prisma runs it: one
    /// transaction up to each explicit COMMIT or ROLLBACK.
    transaction: usize,
    /// Enum values the file uses in the transaction that adds them (the judgement the
    /// migration engine makes too).
    enum_values_used_early: Vec<sql::EnumValueUsedEarly>,
    /// The `ALTER TYPE ... ADD VALUE` statements inside an explicit transaction block.
    enum_values_added_in_block: HashSet<usize>,
    not_valid_constraints: Vec<NotValidConstraint>,
    /// Existing tables proven empty by the file: an `ADD COLUMN ... NOT NULL` without a
    /// default fails on a table with a row, so once it has run the table has none.
    empty_tables: HashSet<String>,
    /// Columns the file added to existing tables with no default: NULL in every row.
    null_columns: HashSet<(String, String)>,
    /// The explicit COMMIT (or ROLLBACK) that ended work, until the first statement doing
    /// work after it is reported.
    committed: Option<usize>,
    /// Whether a statement did work since the file's start or its last COMMIT.
    work_since_commit: bool,
    /// `drop-default-not-null` findings `(table, column, transaction, statement)`: withdrawn
    /// when the same transaction sets a default again (as Prisma's enum changes do), since
    /// no other session ever sees the column without one.
    dropped_defaults: Vec<(String, String, usize, usize)>,
    lock_timeout_set: bool,
    unguarded_lock: Option<UnguardedLock>,
}

impl FileLinter<'_> {
    fn is_new(&self, table: &str) -> bool {
        self.created_tables.contains(table)
    }

    fn offset_of(&self, index: usize) -> usize {
        self.file.statements[index].offset
    }

    fn line_of(&self, offset: usize) -> usize {
        sql::position_of(self.text, offset).line
    }

    #[allow(clippy::too_many_arguments)]
    fn hit(
        &mut self,
        rule: Rule,
        statement: usize,
        offset: usize,
        object: Option<String>,
        message: String,
        lock: Option<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.hits.push(Hit {
            rule,
            severity: rule.severity(),
            statement,
            offset,
            object,
            message,
            lock,
            why: why.into(),
            fix: fix.into(),
        });
    }

    fn statement(&mut self, index: usize) {
        let file = self.file;
        let node = &file.statements[index].node;
        self.account_lock(index, node);
        self.after_commit(index, node);
        if let Some(what) = sql::non_transactional_reason(node) {
            self.outside_transaction(index, what);
        }
        match node {
            NodeEnum::TransactionStmt(_) => self.transaction_control(index, node),
            NodeEnum::VariableSetStmt(set) => self.variable_set(set),
            NodeEnum::CreateStmt(create) => self.create_table(index, create),
            NodeEnum::CreateTableAsStmt(create) => {
                if let Some(rel) = create.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.created_tables.insert(rel.relname.clone());
                }
            }
            NodeEnum::ViewStmt(view) if !view.replace => {
                if let Some(rel) = &view.view {
                    self.created_tables.insert(rel.relname.clone());
                }
            }
            NodeEnum::AlterTableStmt(alter) if alter.objtype() == ObjectType::ObjectTable => {
                self.alter_table(index, alter)
            }
            NodeEnum::IndexStmt(create) => self.create_index(index, create),
            NodeEnum::DropStmt(drop) => self.drop(index, drop),
            NodeEnum::RenameStmt(rename) => self.rename(index, rename),
            NodeEnum::AlterEnumStmt(alter) => self.alter_enum(index, alter),
            NodeEnum::UpdateStmt(update) => self.update(index, update),
            NodeEnum::DeleteStmt(delete) => self.delete(index, delete),
            NodeEnum::TruncateStmt(truncate) => self.truncate(index, truncate),
            NodeEnum::VacuumStmt(vacuum) => self.vacuum(index, vacuum),
            NodeEnum::ClusterStmt(cluster) => self.cluster(index, cluster),
            _ => {}
        }
        self.enum_value_uses(index);
        match node {
            // Learned subcommand by subcommand in `alter_table`.
            NodeEnum::AlterTableStmt(alter) if alter.objtype() == ObjectType::ObjectTable => {}
            _ => self.catalog.learn(node),
        }
    }

    fn drop(&mut self, index: usize, drop: &protobuf::DropStmt) {
        let names: Vec<String> = drop.objects.iter().filter_map(last_name).collect();
        match drop.remove_type() {
            ObjectType::ObjectTable => self.drop_tables(index, &names),
            ObjectType::ObjectIndex if !drop.concurrent => self.drop_indexes(index, &names),
            _ => {}
        }
    }

    fn end_of_file(&mut self) {
        self.begin_without_commit();
        self.string_setting();
        self.missing_lock_timeout();
        self.long_identifiers();
    }
}
