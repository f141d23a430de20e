//! Tables and columns the running application still uses: dropped or renamed under it.

use pg_query::protobuf::{self, ObjectType};

use super::{column_object, lock_on, FileLinter};
use crate::lint::display_ident;
use crate::lint::locks::Kind;
use crate::lint::rules::{Family, Rule, RuleInfo};
use pgward_shared::findings::Severity;

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[
        RuleInfo {
            rule: Rule::DropTable,
            id: "drop-table",
            severity: Severity::Warning,
            fires_at: (1, 1),
        },
        RuleInfo {
            rule: Rule::RenameColumn,
            id: "rename-column",
            severity: Severity::Warning,
            fires_at: (2, 1),
        },
        RuleInfo {
            rule: Rule::RenameTable,
            id: "rename-table",
            severity: Severity::Warning,
            fires_at: (2, 1),
        },
    ],
};

impl FileLinter<'_> {
    /// `DROP TABLE` of `names`.
    pub(super) fn drop_tables(&mut self, index: usize, names: &[String]) {
        for table in names {
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

    pub(super) fn rename(&mut self, index: usize, rename: &protobuf::RenameStmt) {
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
}
