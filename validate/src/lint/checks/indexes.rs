//! Indexes on existing tables: built or dropped without CONCURRENTLY, or built
//! CONCURRENTLY in a way that cannot simply be run again.

use pg_query::protobuf;

use super::{lock_on, FileLinter};
use crate::lint::display_ident;
use crate::lint::locks::Kind;
use crate::lint::rules::{Family, Rule, RuleInfo};
use pgward_shared::findings::Severity;

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[
        RuleInfo {
            rule: Rule::CreateIndexNotConcurrently,
            id: "create-index-not-concurrently",
            severity: Severity::Error,
            fires_at: (2, 1),
        },
        RuleInfo {
            rule: Rule::DropIndexNotConcurrently,
            id: "drop-index-not-concurrently",
            severity: Severity::Warning,
            fires_at: (1, 1),
        },
        RuleInfo {
            rule: Rule::ConcurrentlyWithoutIfNotExists,
            id: "concurrently-without-if-not-exists",
            severity: Severity::Warning,
            fires_at: (1, 1),
        },
    ],
};

impl FileLinter<'_> {
    pub(super) fn create_index(&mut self, index: usize, create: &protobuf::IndexStmt) {
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

    /// `DROP INDEX` of `names` without CONCURRENTLY.
    pub(super) fn drop_indexes(&mut self, index: usize, names: &[String]) {
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
}
