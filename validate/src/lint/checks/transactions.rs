//! Transaction boundaries: statements that cannot run in a transaction block, work after
//! an explicit COMMIT, a BEGIN never committed.

use pg_query::NodeEnum;
use pgward_shared::migrations::engine::ScriptPlan;
use pgward_shared::sql::{self, TransactionControl};

use super::FileLinter;
use crate::lint::rules::{Family, Rule, RuleInfo};
use pgward_shared::findings::Severity;

pub(super) const FAMILY: Family = Family {
    source: file!(),
    rules: &[
        RuleInfo {
            rule: Rule::ConcurrentlyInTransaction,
            id: "concurrently-in-transaction",
            severity: Severity::Error,
            fires_at: (2, 1),
        },
        RuleInfo {
            rule: Rule::ConcurrentlyInMultiStatementFile,
            id: "concurrently-in-multi-statement-file",
            severity: Severity::Warning,
            fires_at: (2, 1),
        },
        RuleInfo {
            rule: Rule::StatementsAfterCommit,
            id: "statements-after-commit",
            severity: Severity::Warning,
            fires_at: (4, 1),
        },
        RuleInfo {
            rule: Rule::BeginWithoutCommit,
            id: "begin-without-commit",
            severity: Severity::Error,
            fires_at: (1, 1),
        },
        RuleInfo {
            rule: Rule::StatementsDependOnStringSetting,
            id: "statements-depend-on-string-setting",
            severity: Severity::Warning,
            fires_at: (2, 1),
        },
    ],
};

impl FileLinter<'_> {
    pub(super) fn transaction_control(&mut self, index: usize, node: &NodeEnum) {
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
    pub(super) fn after_commit(&mut self, index: usize, node: &NodeEnum) {
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

    pub(super) fn outside_transaction(&mut self, index: usize, what: &str) {
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

    /// `statements-depend-on-string-setting`: the file splits into other statements when
    /// the session reads backslashes in string literals as escapes, found at the first
    /// statement the two readings cut differently.
    pub(super) fn string_setting(&mut self) {
        // Only a backslash can make the readings differ: no second parse without one.
        if !self.text.contains('\\') {
            return;
        }
        let plan = ScriptPlan::new(self.text);
        let Some(offset) = plan.first_statement_read_differently() else {
            return;
        };
        let Some(index) = self.file.statements.iter().position(|s| s.offset == offset) else {
            return;
        };
        self.hit(
            Rule::StatementsDependOnStringSetting,
            index,
            offset,
            None,
            "from this statement on, the file holds other statements when standard_conforming_strings is off: a backslash before a quote ends a string literal with the setting on and escapes the quote with it off".into(),
            None,
            "a server, database or role with standard_conforming_strings = off, or a SET in an earlier migration, runs statements other than the ones reviewed here (a COMMIT or any other statement can hide in what reads as a literal); pgward-migrate splits the file as its session reads it and Prisma sends it whole, so both run what the session reads",
            "write the literal so that both readings agree: E'...' with the backslash doubled (E'C:\\\\'), or chr(92) for the backslash",
        );
    }

    /// `begin-without-commit`, at the end of the file.
    pub(super) fn begin_without_commit(&mut self) {
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
    }
}
