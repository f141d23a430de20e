//! Which table-level lock each kind of statement takes: one table, [`LOCK_TABLE`],
//! compiled from PostgreSQL's documentation (the "Explicit Locking" chapter's table of
//! commands per lock mode, and each command's reference page) and from `tablecmds.c` for
//! the `ALTER TABLE` subcommands the pages do not spell out.
//!
//! Every row carries an example statement against [`FIXTURE`]; the test
//! `validate/tests/lock_table.rs` runs each one on a real server and compares what
//! `pg_locks` shows with the row, so the table cannot drift from what PostgreSQL does.
//! The lint reads locks only through [`statement_locks`], which maps a parsed statement to
//! rows of this table.

use pg_query::protobuf::{self, AlterTableCmd, AlterTableType, ConstrType, ObjectType, RangeVar};
use pg_query::NodeEnum;

use crate::lint::last_name;
use pgward_shared::locks::LockMode;

/// One row of [`LOCK_TABLE`].
#[derive(Debug)]
pub struct LockRow {
    /// The kind of statement.
    pub kind: Kind,
    /// What the row covers, as a reader would look it up.
    pub statement: &'static str,
    /// The lock on the relation the statement acts on.
    pub mode: LockMode,
    /// The lock on a second relation the statement names, where there is one: the table
    /// a foreign key references, the table attached or detached as a partition.
    pub other: Option<LockMode>,
    /// An example against [`FIXTURE`]: the relation acted on, the second relation (when
    /// `other` is set), and the SQL.
    pub example: Example,
}

/// A statement of one kind against [`FIXTURE`], for the test that checks the table.
#[derive(Debug)]
pub struct Example {
    /// The relation `LockRow::mode` is about.
    pub on: &'static str,
    /// The relation `LockRow::other` is about.
    pub other: Option<&'static str>,
    /// The statement.
    pub sql: &'static str,
    /// Whether it cannot run inside a transaction block (CONCURRENTLY, VACUUM): the test
    /// then watches its locks from another session while it waits.
    pub outside_transaction: bool,
}

/// The objects every example runs against, created in an empty schema: `t` (with rows,
/// a foreign key to `r`, an index, a NOT VALID check and a trigger), `r` and its view `v`,
/// the materialized view `mv`, the partitioned table `p` with partition `p2`, and `p1`,
/// a table that can be attached to `p`.
pub const FIXTURE: &str = "
CREATE TABLE r (id int PRIMARY KEY);
INSERT INTO r VALUES (1), (2);
CREATE TABLE t (id int PRIMARY KEY, r_id int REFERENCES r (id), n int DEFAULT 0 NOT NULL, s text);
INSERT INTO t VALUES (1, 1, 1, 'a'), (2, 2, 2, 'b');
CREATE INDEX t_n_idx ON t (n);
ALTER TABLE t ADD CONSTRAINT t_n_check CHECK (n >= 0) NOT VALID;
CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t_noop BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION noop();
CREATE VIEW v AS SELECT id FROM r;
CREATE MATERIALIZED VIEW mv AS SELECT id FROM t;
CREATE UNIQUE INDEX mv_id_idx ON mv (id);
CREATE TABLE p (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE p2 PARTITION OF p FOR VALUES FROM ('2000-01-01') TO ('2001-01-01');
CREATE TABLE p1 (id int, at date);
";

macro_rules! lock_table {
    ($(
        $(#[doc = $doc:literal])*
        $kind:ident: $statement:literal => $mode:ident $(+ $other:ident)?,
        on $on:literal $(+ $other_on:literal)?, $(outside $outside:literal,)? $sql:literal;
    )*) => {
        /// A kind of statement, as far as its table locks go: one variant per row of
        /// [`LOCK_TABLE`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $( $(#[doc = $doc])* $kind, )*
        }

        /// Every kind of statement with the locks it takes, in [`Kind`]'s order.
        pub const LOCK_TABLE: &[LockRow] = &[
            $( LockRow {
                kind: Kind::$kind,
                statement: $statement,
                mode: LockMode::$mode,
                other: lock_table!(@other $($other)?),
                example: Example {
                    on: $on,
                    other: lock_table!(@other_on $($other_on)?),
                    sql: $sql,
                    outside_transaction: lock_table!(@outside $($outside)?),
                },
            }, )*
        ];
    };
    (@other) => { None };
    (@other $other:ident) => { Some(LockMode::$other) };
    (@other_on) => { None };
    (@other_on $other:literal) => { Some($other) };
    (@outside) => { false };
    (@outside $outside:literal) => { $outside };
}

lock_table! {
    /// `CREATE INDEX`: writes wait for the whole build; reads go on.
    CreateIndex: "CREATE INDEX" => Share,
        on "t", "CREATE INDEX t_s_idx ON t (s)";
    /// `CREATE INDEX CONCURRENTLY`: reads and writes go on.
    CreateIndexConcurrently: "CREATE INDEX CONCURRENTLY" => ShareUpdateExclusive,
        on "t", outside true, "CREATE INDEX CONCURRENTLY t_s_idx ON t (s)";
    /// `DROP INDEX`: the index's table is locked against everything.
    DropIndex: "DROP INDEX" => AccessExclusive,
        on "t", "DROP INDEX t_n_idx";
    /// `DROP INDEX CONCURRENTLY`.
    DropIndexConcurrently: "DROP INDEX CONCURRENTLY" => ShareUpdateExclusive,
        on "t", outside true, "DROP INDEX CONCURRENTLY t_n_idx";
    /// `REINDEX TABLE` (not CONCURRENTLY): writes wait.
    ReindexTable: "REINDEX TABLE" => Share,
        on "t", "REINDEX TABLE t";
    /// `REINDEX INDEX` (not CONCURRENTLY): writes to its table wait.
    ReindexIndex: "REINDEX INDEX" => Share,
        on "t", "REINDEX INDEX t_n_idx";
    /// `CREATE TRIGGER`: writes wait.
    CreateTrigger: "CREATE TRIGGER" => ShareRowExclusive,
        on "t", "CREATE TRIGGER t_noop2 BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION noop()";
    /// `DROP TRIGGER`: everything waits.
    DropTrigger: "DROP TRIGGER" => AccessExclusive,
        on "t", "DROP TRIGGER t_noop ON t";
    /// `CREATE POLICY`: everything waits.
    CreatePolicy: "CREATE POLICY" => AccessExclusive,
        on "t", "CREATE POLICY t_all ON t USING (true)";
    /// `CREATE OR REPLACE VIEW` of an existing view: queries of the view wait.
    ReplaceView: "CREATE OR REPLACE VIEW" => AccessExclusive,
        on "v", "CREATE OR REPLACE VIEW v AS SELECT id, id + 1 AS next FROM r";
    /// `DROP VIEW`.
    DropView: "DROP VIEW" => AccessExclusive,
        on "v", "DROP VIEW v";
    /// `DROP TABLE`; a foreign key it holds is dropped with it, which locks the
    /// referenced table too.
    DropTable: "DROP TABLE" => AccessExclusive + AccessExclusive,
        on "t" + "r", "DROP TABLE t CASCADE";
    /// `DROP MATERIALIZED VIEW`.
    DropMaterializedView: "DROP MATERIALIZED VIEW" => AccessExclusive,
        on "mv", "DROP MATERIALIZED VIEW mv";
    /// `REFRESH MATERIALIZED VIEW`: queries of the view wait.
    RefreshMaterializedView: "REFRESH MATERIALIZED VIEW" => AccessExclusive,
        on "mv", "REFRESH MATERIALIZED VIEW mv";
    /// `REFRESH MATERIALIZED VIEW CONCURRENTLY`: reads go on.
    RefreshMaterializedViewConcurrently: "REFRESH MATERIALIZED VIEW CONCURRENTLY" => Exclusive,
        on "mv", "REFRESH MATERIALIZED VIEW CONCURRENTLY mv";
    /// `TRUNCATE`.
    Truncate: "TRUNCATE" => AccessExclusive,
        on "t", "TRUNCATE t";
    /// `VACUUM FULL`: rewrites the table.
    VacuumFull: "VACUUM FULL" => AccessExclusive,
        on "t", outside true, "VACUUM FULL t";
    /// `CLUSTER`: rewrites the table.
    Cluster: "CLUSTER" => AccessExclusive,
        on "t", "CLUSTER t USING t_pkey";
    /// `LOCK TABLE ... IN mode MODE`: the mode it names (the example names SHARE).
    LockTable: "LOCK TABLE" => Share,
        on "t", "LOCK TABLE t IN SHARE MODE";
    /// `CREATE TABLE` with a foreign key: the referenced table's writes wait until the
    /// transaction ends (the new table itself is new).
    CreateTableWithForeignKey: "CREATE TABLE ... REFERENCES" => AccessExclusive + ShareRowExclusive,
        on "c" + "r", "CREATE TABLE c (id int PRIMARY KEY, r_id int REFERENCES r (id))";
    /// `ALTER TABLE ... RENAME TO`.
    RenameTable: "ALTER TABLE ... RENAME TO" => AccessExclusive,
        on "t", "ALTER TABLE t RENAME TO t_renamed";
    /// `ALTER TABLE ... RENAME COLUMN`.
    RenameColumn: "ALTER TABLE ... RENAME COLUMN" => AccessExclusive,
        on "t", "ALTER TABLE t RENAME COLUMN s TO s2";
    /// `ALTER TABLE ... RENAME CONSTRAINT`.
    RenameConstraint: "ALTER TABLE ... RENAME CONSTRAINT" => AccessExclusive,
        on "t", "ALTER TABLE t RENAME CONSTRAINT t_n_check TO t_n_check2";
    /// `ALTER TABLE ... ADD COLUMN`.
    AddColumn: "ALTER TABLE ... ADD COLUMN" => AccessExclusive,
        on "t", "ALTER TABLE t ADD COLUMN x int";
    /// `ALTER TABLE ... ADD FOREIGN KEY`: both tables' writes wait (with validation, for
    /// the whole scan).
    AddForeignKey: "ALTER TABLE ... ADD FOREIGN KEY" => ShareRowExclusive + ShareRowExclusive,
        on "t" + "r", "ALTER TABLE t ADD CONSTRAINT t_id_r FOREIGN KEY (id) REFERENCES r (id) NOT VALID";
    /// `ALTER TABLE ... ADD CHECK` (and other constraints that are not keys).
    AddCheck: "ALTER TABLE ... ADD CHECK" => AccessExclusive,
        on "t", "ALTER TABLE t ADD CONSTRAINT t_id_check CHECK (id > 0) NOT VALID";
    /// `ALTER TABLE ... ADD UNIQUE | PRIMARY KEY | EXCLUDE`.
    AddKey: "ALTER TABLE ... ADD UNIQUE / PRIMARY KEY" => AccessExclusive,
        on "t", "ALTER TABLE t ADD CONSTRAINT t_s_key UNIQUE (s)";
    /// `ALTER TABLE ... VALIDATE CONSTRAINT`: reads and writes go on.
    ValidateConstraint: "ALTER TABLE ... VALIDATE CONSTRAINT" => ShareUpdateExclusive,
        on "t", "ALTER TABLE t VALIDATE CONSTRAINT t_n_check";
    /// `ALTER TABLE ... ALTER CONSTRAINT` (deferrability of a foreign key): everything
    /// waits (the older table here said SHARE ROW EXCLUSIVE; the server says otherwise).
    AlterConstraint: "ALTER TABLE ... ALTER CONSTRAINT" => AccessExclusive,
        on "t", "ALTER TABLE t ALTER CONSTRAINT t_r_id_fkey DEFERRABLE";
    /// `ALTER TABLE ... DROP CONSTRAINT`.
    DropConstraint: "ALTER TABLE ... DROP CONSTRAINT" => AccessExclusive,
        on "t", "ALTER TABLE t DROP CONSTRAINT t_n_check";
    /// `ALTER TABLE ... ALTER COLUMN ... SET NOT NULL`.
    SetNotNull: "ALTER TABLE ... SET NOT NULL" => AccessExclusive,
        on "t", "ALTER TABLE t ALTER COLUMN s SET NOT NULL";
    /// `ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL`.
    DropNotNull: "ALTER TABLE ... DROP NOT NULL" => AccessExclusive,
        on "t", "ALTER TABLE t ALTER COLUMN n DROP NOT NULL";
    /// `ALTER TABLE ... ALTER COLUMN ... SET DEFAULT`.
    SetDefault: "ALTER TABLE ... SET DEFAULT" => AccessExclusive,
        on "t", "ALTER TABLE t ALTER COLUMN s SET DEFAULT 'x'";
    /// `ALTER TABLE ... ALTER COLUMN ... DROP DEFAULT`.
    DropDefault: "ALTER TABLE ... DROP DEFAULT" => AccessExclusive,
        on "t", "ALTER TABLE t ALTER COLUMN n DROP DEFAULT";
    /// `ALTER TABLE ... ALTER COLUMN ... TYPE`.
    AlterColumnType: "ALTER TABLE ... ALTER COLUMN TYPE" => AccessExclusive,
        on "t", "ALTER TABLE t ALTER COLUMN n TYPE bigint";
    /// `ALTER TABLE ... DROP COLUMN`.
    DropColumn: "ALTER TABLE ... DROP COLUMN" => AccessExclusive,
        on "t", "ALTER TABLE t DROP COLUMN s";
    /// `ALTER TABLE ... ALTER COLUMN ... SET STATISTICS` (and column `SET (...)`).
    SetStatistics: "ALTER TABLE ... SET STATISTICS" => ShareUpdateExclusive,
        on "t", "ALTER TABLE t ALTER COLUMN n SET STATISTICS 500";
    /// `ALTER TABLE ... SET (storage parameter)`: fillfactor and autovacuum settings.
    SetStorageParameters: "ALTER TABLE ... SET (fillfactor, autovacuum_*)" => ShareUpdateExclusive,
        on "t", "ALTER TABLE t SET (fillfactor = 90)";
    /// `ALTER TABLE ... CLUSTER ON` / `SET WITHOUT CLUSTER`.
    ClusterOn: "ALTER TABLE ... CLUSTER ON" => ShareUpdateExclusive,
        on "t", "ALTER TABLE t CLUSTER ON t_pkey";
    /// `ALTER TABLE ... ENABLE | DISABLE TRIGGER`.
    EnableDisableTrigger: "ALTER TABLE ... ENABLE / DISABLE TRIGGER" => ShareRowExclusive,
        on "t", "ALTER TABLE t DISABLE TRIGGER t_noop";
    /// `ALTER TABLE ... ATTACH PARTITION`: the parent's reads and writes go on; the
    /// table attached is locked against everything.
    AttachPartition: "ALTER TABLE ... ATTACH PARTITION" => ShareUpdateExclusive + AccessExclusive,
        on "p" + "p1", "ALTER TABLE p ATTACH PARTITION p1 FOR VALUES FROM ('2001-01-01') TO ('2002-01-01')";
    /// `ALTER TABLE ... DETACH PARTITION` (not CONCURRENTLY).
    DetachPartition: "ALTER TABLE ... DETACH PARTITION" => AccessExclusive + AccessExclusive,
        on "p" + "p2", "ALTER TABLE p DETACH PARTITION p2";
    /// `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY` (and `FINALIZE`).
    DetachPartitionConcurrently: "ALTER TABLE ... DETACH PARTITION CONCURRENTLY" => ShareUpdateExclusive,
        on "p", outside true, "ALTER TABLE p DETACH PARTITION p2 CONCURRENTLY";
    /// Every other `ALTER TABLE` subcommand (owner, row level security, logged, ...):
    /// PostgreSQL's default for ALTER TABLE.
    AlterTableOther: "ALTER TABLE (other subcommands)" => AccessExclusive,
        on "t", "ALTER TABLE t ENABLE ROW LEVEL SECURITY";
}

impl Kind {
    /// This kind's row of [`LOCK_TABLE`].
    pub fn row(self) -> &'static LockRow {
        &LOCK_TABLE[self as usize]
    }
}

/// What a statement locks, as far as static reading can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locked {
    /// A table, view or materialized view, by name.
    Relation(String),
    /// The table of an index, known by the index's name.
    TableOfIndex(String),
    /// Every table a statement without a target touches (`VACUUM FULL;`, `CLUSTER;`).
    Every(&'static str),
}

/// One lock a statement takes.
#[derive(Debug, Clone)]
pub struct StatementLock {
    /// The row it comes from.
    pub kind: Kind,
    /// The mode.
    pub mode: LockMode,
    /// On what.
    pub locked: Locked,
    /// Whether this is the row's second relation (the referenced table of a foreign key,
    /// the partition attached or detached).
    pub other: bool,
}

/// Every table-level lock `node` takes on relations that exist before it runs, by the
/// rows of [`LOCK_TABLE`]. A `CREATE TABLE` names only what its foreign keys reference.
pub fn statement_locks(node: &NodeEnum) -> Vec<StatementLock> {
    let mut locks = Vec::new();
    match node {
        NodeEnum::AlterTableStmt(alter) => {
            let target = alter.relation.as_ref();
            for cmd in alter.cmds.iter().filter_map(|c| match &c.node {
                Some(NodeEnum::AlterTableCmd(cmd)) => Some(cmd.as_ref()),
                _ => None,
            }) {
                let kind = alter_table_kind(cmd);
                push_rel(&mut locks, kind, target);
                if let Some(other) = alter_table_other(cmd) {
                    push_other(&mut locks, kind, Locked::Relation(other));
                }
            }
        }
        NodeEnum::CreateStmt(create) => {
            let own = create.relation.as_ref().map(|r| r.relname.as_str());
            for referenced in create_table_references(create) {
                if Some(referenced.as_str()) != own {
                    push_other(
                        &mut locks,
                        Kind::CreateTableWithForeignKey,
                        Locked::Relation(referenced),
                    );
                }
            }
        }
        NodeEnum::IndexStmt(index) => push_rel(
            &mut locks,
            if index.concurrent {
                Kind::CreateIndexConcurrently
            } else {
                Kind::CreateIndex
            },
            index.relation.as_ref(),
        ),
        NodeEnum::DropStmt(drop) => {
            let kind = match drop.remove_type() {
                ObjectType::ObjectTable => Kind::DropTable,
                ObjectType::ObjectView => Kind::DropView,
                ObjectType::ObjectMatview => Kind::DropMaterializedView,
                ObjectType::ObjectIndex if drop.concurrent => Kind::DropIndexConcurrently,
                ObjectType::ObjectIndex => Kind::DropIndex,
                ObjectType::ObjectTrigger => Kind::DropTrigger,
                _ => return locks,
            };
            for object in &drop.objects {
                let locked = match kind {
                    Kind::DropIndex | Kind::DropIndexConcurrently => {
                        last_name(object).map(Locked::TableOfIndex)
                    }
                    // DROP TRIGGER name ON table: the list is [schema,] table, trigger.
                    Kind::DropTrigger => match &object.node {
                        Some(NodeEnum::List(list)) if list.items.len() >= 2 => list
                            .items
                            .get(list.items.len() - 2)
                            .and_then(last_name)
                            .map(Locked::Relation),
                        _ => None,
                    },
                    _ => last_name(object).map(Locked::Relation),
                };
                if let Some(locked) = locked {
                    push(&mut locks, kind, locked);
                }
            }
        }
        NodeEnum::RenameStmt(rename) => match rename.rename_type() {
            ObjectType::ObjectTable => {
                push_rel(&mut locks, Kind::RenameTable, rename.relation.as_ref())
            }
            ObjectType::ObjectColumn => {
                push_rel(&mut locks, Kind::RenameColumn, rename.relation.as_ref())
            }
            ObjectType::ObjectTabconstraint => {
                push_rel(&mut locks, Kind::RenameConstraint, rename.relation.as_ref())
            }
            _ => {}
        },
        NodeEnum::TruncateStmt(truncate) => {
            for rel in range_vars(&truncate.relations) {
                push_rel(&mut locks, Kind::Truncate, Some(rel));
            }
        }
        NodeEnum::VacuumStmt(vacuum) if has_full_option(vacuum) => {
            let targets = vacuum_targets(vacuum);
            if targets.is_empty() {
                push(&mut locks, Kind::VacuumFull, Locked::Every("every table"));
            }
            for table in targets {
                push(&mut locks, Kind::VacuumFull, Locked::Relation(table));
            }
        }
        NodeEnum::ClusterStmt(cluster) => match &cluster.relation {
            Some(rel) => push_rel(&mut locks, Kind::Cluster, Some(rel)),
            None => push(
                &mut locks,
                Kind::Cluster,
                Locked::Every("every clustered table"),
            ),
        },
        NodeEnum::LockStmt(lock) => {
            if let Some(mode) = LockMode::from_number(lock.mode) {
                for rel in range_vars(&lock.relations) {
                    locks.push(StatementLock {
                        kind: Kind::LockTable,
                        mode,
                        locked: Locked::Relation(rel.relname.clone()),
                        other: false,
                    });
                }
            }
        }
        NodeEnum::RefreshMatViewStmt(refresh) => push_rel(
            &mut locks,
            if refresh.concurrent {
                Kind::RefreshMaterializedViewConcurrently
            } else {
                Kind::RefreshMaterializedView
            },
            refresh.relation.as_ref(),
        ),
        NodeEnum::CreateTrigStmt(trigger) => {
            push_rel(&mut locks, Kind::CreateTrigger, trigger.relation.as_ref())
        }
        NodeEnum::CreatePolicyStmt(policy) => {
            push_rel(&mut locks, Kind::CreatePolicy, policy.table.as_ref())
        }
        NodeEnum::ViewStmt(view) if view.replace => {
            push_rel(&mut locks, Kind::ReplaceView, view.view.as_ref())
        }
        NodeEnum::ReindexStmt(reindex) if !reindex_is_concurrent(reindex) => match reindex.kind() {
            protobuf::ReindexObjectType::ReindexObjectTable => {
                push_rel(&mut locks, Kind::ReindexTable, reindex.relation.as_ref())
            }
            protobuf::ReindexObjectType::ReindexObjectIndex => {
                if let Some(rel) = &reindex.relation {
                    push(
                        &mut locks,
                        Kind::ReindexIndex,
                        Locked::TableOfIndex(rel.relname.clone()),
                    );
                }
            }
            _ => {}
        },
        _ => {}
    }
    locks
}

fn push_rel(locks: &mut Vec<StatementLock>, kind: Kind, rel: Option<&RangeVar>) {
    if let Some(rel) = rel {
        push(locks, kind, Locked::Relation(rel.relname.clone()));
    }
}

fn push(locks: &mut Vec<StatementLock>, kind: Kind, locked: Locked) {
    locks.push(StatementLock {
        kind,
        mode: kind.row().mode,
        locked,
        other: false,
    });
}

fn push_other(locks: &mut Vec<StatementLock>, kind: Kind, locked: Locked) {
    if let Some(mode) = kind.row().other {
        locks.push(StatementLock {
            kind,
            mode,
            locked,
            other: true,
        });
    }
}

/// The row of an `ALTER TABLE` subcommand (`AlterTableGetLockLevel` in tablecmds.c).
pub fn alter_table_kind(cmd: &AlterTableCmd) -> Kind {
    let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
    match cmd.subtype() {
        AlterTableType::AtAddColumn => Kind::AddColumn,
        AlterTableType::AtAddConstraint => match def {
            Some(NodeEnum::Constraint(c)) => match c.contype() {
                ConstrType::ConstrForeign => Kind::AddForeignKey,
                ConstrType::ConstrPrimary
                | ConstrType::ConstrUnique
                | ConstrType::ConstrExclusion => Kind::AddKey,
                _ => Kind::AddCheck,
            },
            _ => Kind::AddCheck,
        },
        AlterTableType::AtValidateConstraint => Kind::ValidateConstraint,
        AlterTableType::AtAlterConstraint => Kind::AlterConstraint,
        AlterTableType::AtDropConstraint => Kind::DropConstraint,
        AlterTableType::AtSetNotNull => Kind::SetNotNull,
        AlterTableType::AtDropNotNull => Kind::DropNotNull,
        AlterTableType::AtColumnDefault if def.is_some() => Kind::SetDefault,
        AlterTableType::AtColumnDefault => Kind::DropDefault,
        AlterTableType::AtAlterColumnType => Kind::AlterColumnType,
        AlterTableType::AtDropColumn => Kind::DropColumn,
        AlterTableType::AtSetStatistics
        | AlterTableType::AtSetOptions
        | AlterTableType::AtResetOptions => Kind::SetStatistics,
        AlterTableType::AtSetRelOptions | AlterTableType::AtResetRelOptions => {
            Kind::SetStorageParameters
        }
        AlterTableType::AtClusterOn | AlterTableType::AtDropCluster => Kind::ClusterOn,
        AlterTableType::AtAttachPartition => Kind::AttachPartition,
        AlterTableType::AtDetachPartition => match def {
            Some(NodeEnum::PartitionCmd(p)) if p.concurrent => Kind::DetachPartitionConcurrently,
            _ => Kind::DetachPartition,
        },
        AlterTableType::AtDetachPartitionFinalize => Kind::DetachPartitionConcurrently,
        AlterTableType::AtEnableTrig
        | AlterTableType::AtEnableAlwaysTrig
        | AlterTableType::AtEnableReplicaTrig
        | AlterTableType::AtDisableTrig
        | AlterTableType::AtEnableTrigAll
        | AlterTableType::AtDisableTrigAll
        | AlterTableType::AtEnableTrigUser
        | AlterTableType::AtDisableTrigUser => Kind::EnableDisableTrigger,
        _ => Kind::AlterTableOther,
    }
}

/// The second relation an `ALTER TABLE` subcommand names: a foreign key's referenced
/// table, the partition attached or detached.
fn alter_table_other(cmd: &AlterTableCmd) -> Option<String> {
    match cmd.def.as_ref().and_then(|d| d.node.as_ref())? {
        NodeEnum::Constraint(c) if c.contype() == ConstrType::ConstrForeign => {
            c.pktable.as_ref().map(|r| r.relname.clone())
        }
        NodeEnum::PartitionCmd(p) if !p.concurrent => p.name.as_ref().map(|r| r.relname.clone()),
        _ => None,
    }
}

/// The tables a `CREATE TABLE`'s foreign keys reference (column and table constraints).
fn create_table_references(create: &protobuf::CreateStmt) -> Vec<String> {
    let mut referenced = Vec::new();
    let mut note = |c: &protobuf::Constraint| {
        if c.contype() == ConstrType::ConstrForeign {
            if let Some(r) = &c.pktable {
                referenced.push(r.relname.clone());
            }
        }
    };
    for element in &create.table_elts {
        match &element.node {
            Some(NodeEnum::Constraint(c)) => note(c),
            Some(NodeEnum::ColumnDef(column)) => {
                for c in &column.constraints {
                    if let Some(NodeEnum::Constraint(c)) = &c.node {
                        note(c);
                    }
                }
            }
            _ => {}
        }
    }
    referenced
}

fn reindex_is_concurrent(reindex: &protobuf::ReindexStmt) -> bool {
    reindex.params.iter().any(|p| match &p.node {
        Some(NodeEnum::DefElem(d)) => d.defname == "concurrently",
        _ => false,
    })
}

pub(crate) fn range_vars(nodes: &[protobuf::Node]) -> impl Iterator<Item = &RangeVar> {
    nodes.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::RangeVar(r)) => Some(r),
        _ => None,
    })
}

/// Whether a `VACUUM` (not `ANALYZE`) has the `FULL` option.
pub(crate) fn has_full_option(vacuum: &protobuf::VacuumStmt) -> bool {
    vacuum.is_vacuumcmd
        && vacuum.options.iter().any(|o| match &o.node {
            Some(NodeEnum::DefElem(d)) if d.defname == "full" => {
                match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
                    None => true,
                    Some(NodeEnum::Boolean(b)) => b.boolval,
                    Some(NodeEnum::Integer(i)) => i.ival != 0,
                    Some(NodeEnum::String(s)) => {
                        !matches!(s.sval.to_ascii_lowercase().as_str(), "false" | "off" | "0")
                    }
                    Some(_) => true,
                }
            }
            _ => false,
        })
}

/// The tables a `VACUUM` names.
pub(crate) fn vacuum_targets(vacuum: &protobuf::VacuumStmt) -> Vec<String> {
    vacuum
        .rels
        .iter()
        .filter_map(|r| match &r.node {
            Some(NodeEnum::VacuumRelation(v)) => v.relation.as_ref().map(|r| r.relname.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locks_of(sql: &str) -> Vec<(Kind, LockMode, Locked, bool)> {
        let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).expect("parses");
        let stmt = parsed.protobuf.stmts[0]
            .stmt
            .as_ref()
            .and_then(|s| s.node.clone())
            .expect("a statement");
        statement_locks(&stmt)
            .into_iter()
            .map(|l| (l.kind, l.mode, l.locked, l.other))
            .collect()
    }

    #[test]
    fn every_kind_is_its_own_row() {
        for (i, row) in LOCK_TABLE.iter().enumerate() {
            assert_eq!(row.kind as usize, i, "{row:?}");
            assert_eq!(row.kind.row().kind, row.kind);
            assert_eq!(
                row.other.is_some(),
                row.example.other.is_some(),
                "{:?}: a second lock needs a second relation in its example",
                row.kind
            );
        }
    }

    /// Every example statement maps back to its own row (with LOCK TABLE's mode from the
    /// statement), so the lint reads each example as the table says.
    #[test]
    fn every_example_reads_as_its_row() {
        for row in LOCK_TABLE {
            let locks = locks_of(row.example.sql);
            let main: Vec<_> = locks.iter().filter(|l| !l.3).collect();
            let expected = match row.kind {
                Kind::CreateTableWithForeignKey => None,
                _ => Some(row.kind),
            };
            match expected {
                Some(kind) => {
                    assert!(
                        main.iter().any(|l| l.0 == kind && l.1 == row.mode),
                        "{}: {locks:?}",
                        row.example.sql
                    );
                }
                None => assert!(main.is_empty(), "{}: {locks:?}", row.example.sql),
            }
            if let (Some(mode), Some(other)) = (row.other, row.example.other) {
                let found = locks
                    .iter()
                    .any(|l| l.3 && l.1 == mode && l.2 == Locked::Relation(other.to_string()));
                // DROP TABLE's foreign keys are not in the statement: the lint cannot name
                // the referenced table from the SQL alone.
                assert!(
                    found || row.kind == Kind::DropTable,
                    "{}: {locks:?}",
                    row.example.sql
                );
            }
        }
    }

    #[test]
    fn a_foreign_key_from_a_new_table_locks_the_referenced_one() {
        let locks = locks_of(
            "ALTER TABLE \"Post\" ADD CONSTRAINT \"Post_userId_fkey\" FOREIGN KEY (\"userId\") REFERENCES \"User\"(\"id\") ON DELETE CASCADE ON UPDATE CASCADE",
        );
        assert!(locks.contains(&(
            Kind::AddForeignKey,
            LockMode::ShareRowExclusive,
            Locked::Relation("User".into()),
            true
        )));
        let locks = locks_of("CREATE TABLE c (id int PRIMARY KEY, p int REFERENCES c (id), u int, FOREIGN KEY (u) REFERENCES \"User\" (id))");
        assert_eq!(
            locks,
            [(
                Kind::CreateTableWithForeignKey,
                LockMode::ShareRowExclusive,
                Locked::Relation("User".into()),
                true
            )]
        );
    }

    #[test]
    fn drop_trigger_names_its_table() {
        assert_eq!(
            locks_of("DROP TRIGGER IF EXISTS trg ON app.\"Orders\""),
            [(
                Kind::DropTrigger,
                LockMode::AccessExclusive,
                Locked::Relation("Orders".into()),
                false
            )]
        );
    }
}
