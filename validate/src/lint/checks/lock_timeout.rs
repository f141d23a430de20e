//! `missing-lock-timeout`: the first write-blocking lock a file takes on an existing
//! relation (by the lock table, `locks.rs`) with no `SET lock_timeout` before it.

use pg_query::protobuf;
use pg_query::protobuf::VariableSetKind;
use pg_query::NodeEnum;

use super::FileLinter;
use crate::lint::display_ident;
use crate::lint::locks::{self, Locked};
use crate::lint::rules::{Family, Rule, RuleInfo};
use pgward_shared::findings::Severity;
use pgward_shared::locks::LockMode;

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[RuleInfo {
        rule: Rule::MissingLockTimeout,
        id: "missing-lock-timeout",
        severity: Severity::Warning,
        fires_at: (1, 1),
    }],
};

/// The first write-blocking lock of the file on an existing table.
pub(super) struct UnguardedLock {
    statement: usize,
    mode: LockMode,
    object: String,
    /// ` (for ALTER TABLE ... ADD FOREIGN KEY)` when the table is the statement's second
    /// relation (a foreign key's referenced table); empty otherwise.
    by: String,
}

impl FileLinter<'_> {
    pub(super) fn variable_set(&mut self, set: &protobuf::VariableSetStmt) {
        if set.name != "lock_timeout" {
            return;
        }
        self.lock_timeout_set = match set.kind() {
            VariableSetKind::VarSetValue => !set.args.first().is_some_and(is_zero_setting),
            _ => false,
        };
    }

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

    pub(super) fn account_lock(&mut self, index: usize, node: &NodeEnum) {
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

    /// `missing-lock-timeout`, at the end of the file.
    pub(super) fn missing_lock_timeout(&mut self) {
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
