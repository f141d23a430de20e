//! The rules, applied statement by statement to one parsed file.
//!
//! A migration file runs against a live database while the application keeps querying
//! it, so what matters is which lock each statement takes on a table that already has
//! rows and traffic, for how long, and whether the statement works at all outside the
//! developer's empty database. Tables created earlier in the same file are new and empty:
//! nothing waits on them, so no lock rule fires for them. Each finding says the lock, why
//! it hurts, and the safe way to get the same result.

use std::collections::HashSet;

use pg_query::protobuf::{
    self, AlterTableCmd, AlterTableStmt, AlterTableType, ColumnDef, ConstrType, Constraint,
    DropBehavior, ObjectType, RangeVar, VariableSetKind,
};
use pg_query::NodeEnum;
use pgward_shared::sql::{self, TransactionControl};

use crate::findings::Severity;
use crate::lint::catalog::Catalog;
use crate::lint::locks::{
    self, has_full_option, range_vars, vacuum_targets, Kind, LockMode, Locked,
};
use crate::lint::rules::Rule;
use crate::lint::source::ParsedFile;
use crate::lint::types::{self, ColumnType};
use crate::lint::{display_ident, last_name, string_values};

/// PostgreSQL keeps the first NAMEDATALEN - 1 bytes of an identifier (NAMEDATALEN is 64).
const MAX_IDENTIFIER_BYTES: usize = 63;

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

fn location(location: i32) -> Option<usize> {
    usize::try_from(location).ok()
}

fn constraints_of(column: &ColumnDef) -> impl Iterator<Item = &Constraint> {
    column.constraints.iter().filter_map(|c| match &c.node {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    })
}

/// `"User"."email"`.
fn column_object(table: &str, column: &str) -> String {
    format!("{}.{}", display_ident(table), display_ident(column))
}

/// `SHARE on "orders"`: the lock the lock table gives `kind`, on `on`.
fn lock_on(kind: Kind, on: &str) -> String {
    format!("{} on {on}", kind.row().mode.name())
}

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
struct NotValidConstraint {
    table: String,
    name: String,
    statement: usize,
    transaction: usize,
    lock: LockMode,
}

/// The first write-blocking lock of the file on an existing table.
struct UnguardedLock {
    statement: usize,
    mode: LockMode,
    object: String,
    /// ` (for ALTER TABLE ... ADD FOREIGN KEY)` when the table is the statement's second
    /// relation (a foreign key's referenced table); empty otherwise.
    by: String,
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
            NodeEnum::UpdateStmt(update) if update.where_clause.is_none() => self
                .whole_table_write(
                    index,
                    Rule::UpdateWithoutWhere,
                    "UPDATE",
                    update.relation.as_ref(),
                ),
            NodeEnum::DeleteStmt(delete) if delete.where_clause.is_none() => self
                .whole_table_write(
                    index,
                    Rule::DeleteWithoutWhere,
                    "DELETE",
                    delete.relation.as_ref(),
                ),
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

    // -- transactions ------------------------------------------------------------------

    fn transaction_control(&mut self, index: usize, node: &NodeEnum) {
        match sql::transaction_control(node) {
            Some(TransactionControl::Begin) => {
                if self.open_block.is_none() {
                    self.open_block = Some(index);
                }
            }
            Some(TransactionControl::End) => {
                self.open_block = None;
                self.transaction += 1;
                if self.work_since_commit {
                    self.committed = Some(index);
                }
                self.work_since_commit = false;
            }
            Some(TransactionControl::Chain) => {
                self.open_block = Some(index);
                self.transaction += 1;
            }
            Some(TransactionControl::Other) | None => {}
        }
    }

    /// `statements-after-commit`: the first statement doing work after each explicit COMMIT
    /// that ended earlier work.
    fn after_commit(&mut self, index: usize, node: &NodeEnum) {
        if matches!(
            node,
            NodeEnum::TransactionStmt(_) | NodeEnum::VariableSetStmt(_)
        ) {
            return;
        }
        self.work_since_commit = true;
        let Some(commit) = self.committed.take() else {
            return;
        };
        let commit_line = self.line_of(self.offset_of(commit));
        self.hit(
            Rule::StatementsAfterCommit,
            index,
            self.offset_of(index),
            None,
            format!("this statement runs after the COMMIT on line {commit_line}: it is not atomic with the work before that COMMIT"),
            None,
            "if it fails, the work committed before it stays, and the migration is recorded as failed with part of it applied: neither a retry nor a rollback starts from a known state",
            "put the statements after the COMMIT in a migration of their own (or inside the same transaction block); a statement that cannot run in a transaction (CONCURRENTLY) belongs alone in its own migration file",
        );
    }

    fn outside_transaction(&mut self, index: usize, what: &str) {
        let offset = self.offset_of(index);
        if let Some(begin) = self.open_block {
            let begin_line = self.line_of(self.offset_of(begin));
            self.hit(
                Rule::ConcurrentlyInTransaction,
                index,
                offset,
                None,
                format!("{what} inside the transaction block opened at line {begin_line}"),
                None,
                format!("PostgreSQL refuses {what} inside a transaction block (\"cannot run inside a transaction block\"): the migration fails, under Prisma and pgward-migrate alike"),
                "move it out of the BEGIN ... COMMIT block, into a migration file of its own where it is the only statement",
            );
        } else if self.file.statements.len() > 1 {
            let others = self.file.statements.len() - 1;
            self.hit(
                Rule::ConcurrentlyInMultiStatementFile,
                index,
                offset,
                None,
                format!("{what} shares its migration file with {others} other statement(s)"),
                None,
                format!("Prisma sends a migration file as one query, which PostgreSQL runs as one transaction, and {what} cannot run in one: `prisma migrate deploy` fails on this file. pgward-migrate notices and runs such a file statement by statement outside a transaction: that works, but it is not atomic, and a failure halfway leaves the earlier statements applied"),
                "put it in a migration file of its own, as the only statement: Prisma and pgward-migrate then both run it outside a transaction",
            );
        }
    }

    fn variable_set(&mut self, set: &protobuf::VariableSetStmt) {
        if set.name != "lock_timeout" {
            return;
        }
        self.lock_timeout_set = match set.kind() {
            VariableSetKind::VarSetValue => !set.args.first().is_some_and(is_zero_setting),
            _ => false,
        };
    }

    // -- locks -------------------------------------------------------------------------

    /// The strongest write-blocking lock the statement takes on a relation that existed
    /// before the file, with that relation (by [`locks::statement_locks`], the lock table).
    fn lock_on_existing_table(&self, node: &NodeEnum) -> Option<(LockMode, String, String)> {
        locks::statement_locks(node)
            .into_iter()
            .filter(|l| l.mode.blocks_writes())
            .filter_map(|l| {
                let object = match &l.locked {
                    Locked::Relation(name) if self.is_new(name) => return None,
                    Locked::Relation(name) => display_ident(name),
                    Locked::TableOfIndex(index) if self.created_indexes.contains(index) => {
                        return None
                    }
                    Locked::TableOfIndex(index) => {
                        format!("the table of index {}", display_ident(index))
                    }
                    Locked::Every(what) => (*what).to_string(),
                };
                // The lock on a second relation says which statement takes it.
                let by = if l.other {
                    format!(" (for {})", l.kind.row().statement)
                } else {
                    String::new()
                };
                Some((l.mode, object, by))
            })
            .max_by_key(|(mode, _, _)| *mode)
    }

    fn account_lock(&mut self, index: usize, node: &NodeEnum) {
        if self.lock_timeout_set || self.unguarded_lock.is_some() {
            return;
        }
        if let Some((mode, object, by)) = self.lock_on_existing_table(node) {
            self.unguarded_lock = Some(UnguardedLock {
                statement: index,
                mode,
                object,
                by,
            });
        }
    }

    // -- CREATE TABLE and column types -------------------------------------------------

    fn create_table(&mut self, index: usize, create: &protobuf::CreateStmt) {
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
    fn small_primary_key(
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
    fn column_type_rules(
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

    // -- ALTER TABLE -------------------------------------------------------------------

    fn alter_table(&mut self, index: usize, alter: &AlterTableStmt) {
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
                    self.column_type_rules(index, &table, &column.colname, column.type_name.as_ref());
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
                (AlterTableType::AtSetNotNull, _)
                    if existing && !self.catalog.proves_not_null(&table, &cmd.name) =>
                {
                    self.set_not_null(index, &table, &cmd.name, at)
                }
                (AlterTableType::AtAlterColumnType, Some(NodeEnum::ColumnDef(column))) => {
                    self.column_type_rules(index, &table, &cmd.name, column.type_name.as_ref());
                    if existing {
                        self.alter_column_type(index, &table, &cmd.name, column, at);
                    }
                }
                (AlterTableType::AtColumnDefault, Some(_)) => {
                    let transaction = self.transaction;
                    let object = column_object(&table, &cmd.name);
                    let (restored, pending): (Vec<_>, Vec<_>) =
                        std::mem::take(&mut self.dropped_defaults)
                            .into_iter()
                            .partition(|(t, c, tx, _)| {
                                t == &table && c == &cmd.name && *tx == transaction
                            });
                    self.dropped_defaults = pending;
                    for (.., statement) in restored {
                        self.hits.retain(|h| {
                            !(h.rule == Rule::DropDefaultNotNull
                                && h.statement == statement
                                && h.object.as_deref() == Some(object.as_str()))
                        });
                    }
                }
                (AlterTableType::AtColumnDefault, None)
                    if existing && self.catalog.not_null_with_default(&table, &cmd.name) =>
                {
                    self.dropped_defaults.push((
                        table.clone(),
                        cmd.name.clone(),
                        self.transaction,
                        index,
                    ));
                    let (t, c) = (display_ident(&table), display_ident(&cmd.name));
                    self.hit(
                        Rule::DropDefaultNotNull,
                        index,
                        at,
                        Some(column_object(&table, &cmd.name)),
                        format!("the default of NOT NULL column {c} of existing table {t} is dropped"),
                        Some(format!("{} (briefly)", lock_on(Kind::DropDefault, &t))),
                        format!("the application still running during the deploy inserts into {t} without naming {c} wherever it relied on the default (Prisma leaves out a field with @default that the code does not set), and every such INSERT now fails with a not-null violation"),
                        format!("first deploy code that always sets {c} (keep @default in schema.prisma until then), then drop the default in a later migration; or keep the default"),
                    );
                }
                (AlterTableType::AtDropColumn, _) if existing => self.hit(
                    Rule::DropColumn,
                    index,
                    at,
                    Some(column_object(&table, &cmd.name)),
                    format!("column {} is dropped from existing table {}", display_ident(&cmd.name), display_ident(&table)),
                    Some(format!("{} (briefly)", lock_on(Kind::DropColumn, &display_ident(&table)))),
                    "the application still running during the deploy names the column (Prisma selects and inserts every column of a model by name), so it fails from this moment until the new code runs everywhere; and the data is gone for good",
                    "first deploy code that no longer uses the column (remove the field from schema.prisma), then drop it in a later migration, with a backup taken",
                ),
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
        if let Some((what, offset)) = per_row {
            self.hit(
                Rule::AddColumnVolatileDefault,
                index,
                offset,
                object.clone(),
                format!("column {} is added to existing table {} with {what}", display_ident(name), display_ident(table)),
                lock.clone(),
                "a value that differs per row is computed for every existing row, so PostgreSQL rewrites the whole table and rebuilds its indexes while holding ACCESS EXCLUSIVE: no reads or writes until it is done (stable defaults such as now() or CURRENT_TIMESTAMP are computed once and need no rewrite since PostgreSQL 11)",
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

    fn added_primary_key(
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

    fn add_constraint(&mut self, index: usize, table: &str, constraint: &Constraint, at: usize) {
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

    fn validate_constraint(&mut self, index: usize, table: &str, name: &str, at: usize) {
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

    fn set_not_null(&mut self, index: usize, table: &str, column: &str, at: usize) {
        let (t, c) = (display_ident(table), display_ident(column));
        let check = display_ident(&format!("{column}_not_null"));
        self.hit(
            Rule::SetNotNull,
            index,
            at,
            Some(column_object(table, column)),
            format!("column {c} of existing table {t} is made NOT NULL"),
            Some(lock_on(Kind::SetNotNull, &t)),
            "PostgreSQL scans the whole table to prove there is no NULL, holding ACCESS EXCLUSIVE: no reads or writes on the table meanwhile",
            format!("`ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID;`, then in a later migration `ALTER TABLE {t} VALIDATE CONSTRAINT {check};` (scans without blocking writes), then `ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;` which PostgreSQL 12 and newer do without a scan because the valid check proves it, and `ALTER TABLE {t} DROP CONSTRAINT {check};`"),
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

    // -- indexes, drops, renames -------------------------------------------------------

    fn create_index(&mut self, index: usize, create: &protobuf::IndexStmt) {
        if !create.idxname.is_empty() {
            self.created_indexes.insert(create.idxname.clone());
        }
        let Some(relation) = &create.relation else {
            return;
        };
        if self.is_new(&relation.relname) {
            return;
        }
        let t = display_ident(&relation.relname);
        if create.concurrent {
            if !create.if_not_exists && !create.idxname.is_empty() {
                let name = display_ident(&create.idxname);
                self.hit(
                    Rule::ConcurrentlyWithoutIfNotExists,
                    index,
                    self.offset_of(index),
                    Some(name.clone()),
                    format!("index {name} is built CONCURRENTLY without IF NOT EXISTS"),
                    None,
                    format!("a concurrent build that fails (a lock timeout while it waits, a duplicate key) leaves an INVALID index named {name} behind: running the file again fails with `relation {name} already exists` (pgward-migrate drops the INVALID index its own failed build left before a retry; Prisma and psql do not)"),
                    format!("write `CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {name} ON {t} (...);`, and before running it again after a failure check that no INVALID {name} is left (`DROP INDEX CONCURRENTLY IF EXISTS {name};` if one is): IF NOT EXISTS alone would keep an INVALID index", if create.unique { "UNIQUE " } else { "" }),
                );
            }
            return;
        }
        let name = if create.idxname.is_empty() {
            String::new()
        } else {
            format!("{} ", display_ident(&create.idxname))
        };
        self.hit(
            Rule::CreateIndexNotConcurrently,
            index,
            self.offset_of(index),
            Some(if create.idxname.is_empty() { t.clone() } else { display_ident(&create.idxname) }),
            format!("index {name}is built on existing table {t} without CONCURRENTLY"),
            Some(lock_on(Kind::CreateIndex, &t)),
            "CREATE INDEX holds a SHARE lock for the whole build: every INSERT, UPDATE and DELETE on the table waits until the index is built, which takes minutes on a large table",
            format!("`CREATE {}INDEX CONCURRENTLY {name}ON {t} (...);` as the only statement of a migration file (Prisma and pgward-migrate both run such a file outside a transaction); if it fails it leaves an INVALID index: drop it with DROP INDEX CONCURRENTLY and run it again", if create.unique { "UNIQUE " } else { "" }),
        );
    }

    fn drop(&mut self, index: usize, drop: &protobuf::DropStmt) {
        let names: Vec<String> = drop.objects.iter().filter_map(last_name).collect();
        match drop.remove_type() {
            ObjectType::ObjectTable => {
                for table in &names {
                    if self.created_tables.remove(table) {
                        continue;
                    }
                    let t = display_ident(table);
                    self.hit(
                        Rule::DropTable,
                        index,
                        self.offset_of(index),
                        Some(t.clone()),
                        format!("existing table {t} is dropped"),
                        Some(format!("{} (briefly)", lock_on(Kind::DropTable, &t))),
                        "the application still running during the deploy may query the table and fails from this moment on; and its data is gone for good",
                        "first deploy code that no longer uses the table, then drop it in a later migration, with a backup taken (or rename it aside and drop it once nothing missed it)",
                    );
                }
            }
            ObjectType::ObjectIndex if !drop.concurrent => {
                let dropped: Vec<&String> = names
                    .iter()
                    .filter(|n| !self.created_indexes.contains(*n))
                    .collect();
                for name in dropped {
                    let i = display_ident(name);
                    self.hit(
                        Rule::DropIndexNotConcurrently,
                        index,
                        self.offset_of(index),
                        Some(i.clone()),
                        format!("index {i} is dropped without CONCURRENTLY"),
                        Some(lock_on(Kind::DropIndex, "the index's table")),
                        "DROP INDEX takes ACCESS EXCLUSIVE on the table: quick itself, but it waits behind every running query on the table and, while it waits, blocks every new one, reads included",
                        format!("`DROP INDEX CONCURRENTLY {i};` as the only statement of a migration file (run outside a transaction)"),
                    );
                }
            }
            _ => {}
        }
    }

    fn rename(&mut self, index: usize, rename: &protobuf::RenameStmt) {
        let Some(relation) = &rename.relation else {
            return;
        };
        let table = &relation.relname;
        if self.is_new(table) {
            if rename.rename_type() == ObjectType::ObjectTable {
                self.created_tables.insert(rename.newname.clone());
            }
            return;
        }
        let t = display_ident(table);
        let lock = Some(format!("{} (briefly)", lock_on(Kind::RenameColumn, &t)));
        match rename.rename_type() {
            ObjectType::ObjectColumn => self.hit(
                Rule::RenameColumn,
                index,
                self.offset_of(index),
                Some(column_object(table, &rename.subname)),
                format!("column {} of existing table {t} is renamed to {}", display_ident(&rename.subname), display_ident(&rename.newname)),
                lock,
                "the application still running during the deploy uses the old name: its queries fail from this moment until the new code runs everywhere",
                format!("keep the column's name and map the new field name to it in schema.prisma (`@map(\"{}\")`), or expand and contract: add the new column, write both, backfill, switch reads, drop the old one later", rename.subname),
            ),
            ObjectType::ObjectTable => self.hit(
                Rule::RenameTable,
                index,
                self.offset_of(index),
                Some(t.clone()),
                format!("existing table {t} is renamed to {}", display_ident(&rename.newname)),
                lock,
                "the application still running during the deploy uses the old name: its queries fail from this moment until the new code runs everywhere",
                format!("keep the table's name and map the model to it in schema.prisma (`@@map(\"{table}\")`), or rename it and create a view with the old name until the old code is gone"),
            ),
            _ => {}
        }
    }

    // -- enums -------------------------------------------------------------------------

    fn alter_enum(&mut self, index: usize, alter: &protobuf::AlterEnumStmt) {
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
    fn enum_value_uses(&mut self, index: usize) {
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

    // -- whole-table statements --------------------------------------------------------

    fn whole_table_write(
        &mut self,
        index: usize,
        rule: Rule,
        verb: &str,
        relation: Option<&RangeVar>,
    ) {
        let Some(relation) = relation.filter(|r| !self.is_new(&r.relname)) else {
            return;
        };
        let t = display_ident(&relation.relname);
        self.hit(
            rule,
            index,
            self.offset_of(index),
            Some(t.clone()),
            format!("{verb} of every row of existing table {t} (no WHERE)"),
            Some(format!("ROW EXCLUSIVE on {t}, and a lock on every row until commit")),
            "one transaction touches every row: concurrent writes to any of them wait until the migration commits, dead row versions pile up (an UPDATE doubles the table until vacuum), and vacuum is held back everywhere while it runs; if it was not meant for every row, the data is lost",
            "if it is meant for every row, do it in batches of a few thousand rows by primary key range, each in its own transaction, in a script run after the deploy; otherwise add the WHERE clause",
        );
    }

    fn truncate(&mut self, index: usize, truncate: &protobuf::TruncateStmt) {
        let existing: Vec<String> = range_vars(&truncate.relations)
            .filter(|r| !self.is_new(&r.relname))
            .map(|r| display_ident(&r.relname))
            .collect();
        if existing.is_empty() {
            return;
        }
        let tables = existing.join(", ");
        let lock = Some(lock_on(Kind::Truncate, &tables));
        let object = Some(tables.clone());
        if truncate.behavior() == DropBehavior::DropCascade {
            self.hit(
                Rule::TruncateCascade,
                index,
                self.offset_of(index),
                object,
                format!("TRUNCATE ... CASCADE of existing table(s) {tables}"),
                lock,
                "CASCADE also empties every table with a foreign key to these, and the tables referencing those in turn: tables this file never names lose all their rows",
                format!("name every table to empty (`TRUNCATE {tables}, ...`) without CASCADE, so the statement fails instead of emptying a table nobody reviewed"),
            );
        } else {
            self.hit(
                Rule::TruncateTable,
                index,
                self.offset_of(index),
                object,
                format!("TRUNCATE of existing table(s) {tables}"),
                lock,
                "every row is removed for good in every environment the migration reaches, and the ACCESS EXCLUSIVE lock waits behind every running query on the table while blocking all new ones",
                "make sure emptying the table is meant for every environment (production included) and take a backup first; to remove only some rows, DELETE them in batches",
            );
        }
    }

    fn vacuum(&mut self, index: usize, vacuum: &protobuf::VacuumStmt) {
        if !has_full_option(vacuum) {
            return;
        }
        let targets = vacuum_targets(vacuum);
        let existing: Vec<String> = targets
            .iter()
            .filter(|t| !self.is_new(t))
            .map(|t| display_ident(t))
            .collect();
        if !targets.is_empty() && existing.is_empty() {
            return;
        }
        let tables = if existing.is_empty() {
            "every table".to_string()
        } else {
            existing.join(", ")
        };
        self.hit(
            Rule::VacuumFull,
            index,
            self.offset_of(index),
            Some(tables.clone()),
            format!("VACUUM FULL rewrites {tables}"),
            Some(lock_on(Kind::VacuumFull, &tables)),
            "VACUUM FULL copies the table into a new file holding ACCESS EXCLUSIVE for the whole rewrite: no reads or writes until it is done, and it needs the table's size again in free disk space",
            "plain VACUUM (no lock on reads or writes) makes the space reusable; to shrink a bloated table online use pg_repack or pg_squeeze, outside migrations",
        );
    }

    fn cluster(&mut self, index: usize, cluster: &protobuf::ClusterStmt) {
        let table = match &cluster.relation {
            Some(rel) if self.is_new(&rel.relname) => return,
            Some(rel) => display_ident(&rel.relname),
            None => "every clustered table".to_string(),
        };
        self.hit(
            Rule::ClusterTable,
            index,
            self.offset_of(index),
            Some(table.clone()),
            format!("CLUSTER rewrites {table} in index order"),
            Some(lock_on(Kind::Cluster, &table)),
            "CLUSTER rewrites the table in index order holding ACCESS EXCLUSIVE for the whole rewrite: no reads or writes until it is done, and it needs the table's size again in free disk space",
            "leave physical ordering out of migrations; if it matters, use pg_repack --order-by online, in a maintenance window",
        );
    }

    // -- end of file -------------------------------------------------------------------

    fn end_of_file(&mut self) {
        if let Some(begin) = self.open_block {
            self.hit(
                Rule::BeginWithoutCommit,
                begin,
                self.offset_of(begin),
                None,
                "the transaction block opened here is never committed".into(),
                None,
                "the file ends with its transaction still open, so whether its work is kept depends on the tool that runs it (pgward-migrate commits it with the history row, psql rolls it back when it exits); an unmatched BEGIN is almost always an editing mistake",
                "end the block with COMMIT; (or drop the BEGIN: a migration runs in a transaction anyway)",
            );
        }
        if let Some(lock) = self.unguarded_lock.take() {
            let mode = lock.mode.name();
            self.hit(
                Rule::MissingLockTimeout,
                lock.statement,
                self.offset_of(lock.statement),
                Some(lock.object.clone()),
                format!("this file takes {mode} on {}{} without setting lock_timeout first", lock.object, lock.by),
                Some(format!("{mode} on {}", lock.object)),
                "the lock request queues behind every running query on the table (a long report, an idle open transaction), and while it waits every new query on the table queues behind it: a few seconds of waiting becomes an outage",
                "start the file with `SET lock_timeout = '5s';` (or deploy with `pgward-migrate deploy --lock-timeout 5s --retries 3`), so the migration gives up and is retried instead of blocking the application",
            );
        }
        self.long_identifiers();
    }

    fn long_identifiers(&mut self) {
        let file = self.file;
        let mut seen = HashSet::new();
        for token in file
            .tokens
            .iter()
            .filter(|t| t.kind == Some(protobuf::Token::Ident))
        {
            let Some(written) = self.text.get(token.start..token.end) else {
                continue;
            };
            let name = unquote_identifier(written);
            if name.len() <= MAX_IDENTIFIER_BYTES || !seen.insert(name.clone()) {
                continue;
            }
            let mut cut = MAX_IDENTIFIER_BYTES;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            self.hit(
                Rule::IdentifierTooLong,
                file.statement_at(token.start).unwrap_or(0),
                token.start,
                Some(display_ident(&name)),
                format!("identifier {} is {} bytes long; PostgreSQL keeps only the first {MAX_IDENTIFIER_BYTES}: {}", display_ident(&name), name.len(), display_ident(&name[..cut])),
                None,
                "PostgreSQL truncates longer identifiers without an error (only a NOTICE): the object gets another name than the one written, so statements and tools using the full name miss it, and two long names sharing their first 63 bytes collide",
                "use a name of at most 63 bytes (in schema.prisma, give the index, unique constraint or relation a shorter name with `map: \"...\"`)",
            );
        }
    }
}

/// Whether a `SET lock_timeout` value turns the timeout off (0, '0', '0s').
fn is_zero_setting(value: &protobuf::Node) -> bool {
    match &value.node {
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(protobuf::a_const::Val::Ival(i)) => i.ival == 0,
            Some(protobuf::a_const::Val::Sval(s)) => {
                let digits = s
                    .sval
                    .trim()
                    .trim_end_matches(|c: char| c.is_ascii_alphabetic());
                digits.trim().parse::<f64>().is_ok_and(|n| n == 0.0)
            }
            _ => false,
        },
        _ => false,
    }
}

/// `"a""b"` → `a"b`; an unquoted identifier is folded to lower case, as PostgreSQL does.
fn unquote_identifier(written: &str) -> String {
    match written.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => written.to_ascii_lowercase(),
    }
}
