//! Statements on every row of an existing table: UPDATE or DELETE without WHERE,
//! TRUNCATE, and the rewrites VACUUM FULL and CLUSTER.

use pg_query::protobuf::{self, DropBehavior, RangeVar};

use super::{lock_on, FileLinter};
use crate::lint::display_ident;
use crate::lint::locks::{has_full_option, range_vars, vacuum_targets, Kind};
use crate::lint::rules::{Family, Rule, RuleInfo};
use pgward_shared::findings::Severity;

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[
        RuleInfo {
            rule: Rule::UpdateWithoutWhere,
            id: "update-without-where",
            severity: Severity::Warning,
            fires_at: (1, 1),
        },
        RuleInfo {
            rule: Rule::DeleteWithoutWhere,
            id: "delete-without-where",
            severity: Severity::Warning,
            fires_at: (1, 1),
        },
        RuleInfo {
            rule: Rule::TruncateTable,
            id: "truncate-table",
            severity: Severity::Warning,
            fires_at: (1, 1),
        },
        RuleInfo {
            rule: Rule::TruncateCascade,
            id: "truncate-cascade",
            severity: Severity::Error,
            fires_at: (2, 1),
        },
        RuleInfo {
            rule: Rule::VacuumFull,
            id: "vacuum-full",
            severity: Severity::Error,
            fires_at: (1, 1),
        },
        RuleInfo {
            rule: Rule::ClusterTable,
            id: "cluster-table",
            severity: Severity::Error,
            fires_at: (2, 1),
        },
    ],
};

impl FileLinter<'_> {
    pub(super) fn update(&mut self, index: usize, update: &protobuf::UpdateStmt) {
        if update.where_clause.is_none() {
            let relation = update.relation.as_ref();
            self.whole_table_write(index, Rule::UpdateWithoutWhere, "UPDATE", relation);
        }
    }

    pub(super) fn delete(&mut self, index: usize, delete: &protobuf::DeleteStmt) {
        if delete.where_clause.is_none() {
            let relation = delete.relation.as_ref();
            self.whole_table_write(index, Rule::DeleteWithoutWhere, "DELETE", relation);
        }
    }

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

    pub(super) fn truncate(&mut self, index: usize, truncate: &protobuf::TruncateStmt) {
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

    pub(super) fn vacuum(&mut self, index: usize, vacuum: &protobuf::VacuumStmt) {
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

    pub(super) fn cluster(&mut self, index: usize, cluster: &protobuf::ClusterStmt) {
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
}
