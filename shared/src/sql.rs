//! SQL text, read with PostgreSQL's own parser (libpg_query).
//!
//! pgward never splits or classifies SQL with regular expressions: a semicolon inside a
//! `DO $$ ... $$` body, a string or a comment would fool them. This module parses a whole
//! file once and hands out its statements with their byte offsets and parse trees, so the
//! migration engine can run statements one by one and report the failing one's line, and
//! the linter can inspect the same trees.

use pg_query::protobuf::{self, TransactionStmtKind};
use pg_query::NodeEnum;

use crate::error::SqlPosition;

/// One statement of a SQL file.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    /// The statement's text, without the trailing semicolon.
    pub text: String,
    /// Byte offset of the statement's first token in the file.
    pub offset: usize,
    /// The parse tree.
    pub node: NodeEnum,
}

/// A file the parser rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlParseError {
    /// The parser's message (`syntax error at or near ...`).
    pub message: String,
}

/// Parses `sql` into statements with their positions.
pub fn parse_statements(sql: &str) -> Result<Vec<ParsedStatement>, SqlParseError> {
    let parsed =
        pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| SqlParseError {
            message: match e {
                pg_query::Error::Parse(m) => m,
                other => other.to_string(),
            },
        })?;
    let token_starts = first_token_starts(sql);
    let mut out = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in parsed.protobuf.stmts {
        let Some(node) = raw.stmt.and_then(|n| n.node) else {
            continue;
        };
        let location = raw.stmt_location.max(0) as usize;
        let end = if raw.stmt_len == 0 {
            sql.len()
        } else {
            location + raw.stmt_len as usize
        };
        // The parser's location may include the comments and blank lines before the
        // statement; the statement starts at its first real token.
        let start = token_starts
            .iter()
            .copied()
            .find(|&s| s >= location)
            .filter(|&s| s < end)
            .unwrap_or(location);
        let text = sql.get(start..end).unwrap_or_default().trim_end();
        out.push(ParsedStatement {
            text: text.trim_end_matches(';').trim_end().to_string(),
            offset: start,
            node,
        });
    }
    Ok(out)
}

/// Byte offsets of every token that is not a comment.
fn first_token_starts(sql: &str) -> Vec<usize> {
    match pg_query::scan(sql) {
        Ok(scan) => scan
            .tokens
            .iter()
            .filter(|t| {
                !matches!(
                    protobuf::Token::try_from(t.token),
                    Ok(protobuf::Token::SqlComment | protobuf::Token::CComment)
                )
            })
            .map(|t| t.start.max(0) as usize)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The string literals of a statement, unquoted.
pub fn string_literals(sql: &str) -> Vec<String> {
    let Ok(scan) = pg_query::scan(sql) else {
        return Vec::new();
    };
    scan.tokens
        .iter()
        .filter(|t| {
            matches!(
                protobuf::Token::try_from(t.token),
                Ok(protobuf::Token::Sconst)
            )
        })
        .filter_map(|t| sql.get(t.start as usize..t.end as usize))
        .map(|lit| {
            let inner = lit
                .strip_prefix(['E', 'e'])
                .unwrap_or(lit)
                .trim_start_matches('\'')
                .trim_end_matches('\'');
            inner.replace("''", "'")
        })
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
pub fn position_of(text: &str, byte_offset: usize) -> SqlPosition {
    let mut offset = byte_offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    SqlPosition {
        line,
        column: before[line_start..].chars().count() + 1,
    }
}

/// The byte offset of the `char_pos`-th character (1-based, as PostgreSQL's error
/// `position` counts) of `text`.
pub fn byte_offset_of_char(text: &str, char_pos: usize) -> usize {
    text.char_indices()
        .nth(char_pos.saturating_sub(1))
        .map(|(i, _)| i)
        .unwrap_or(text.len())
}

/// What a transaction-control statement does to the transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionControl {
    /// BEGIN / START TRANSACTION: opens a block.
    Begin,
    /// COMMIT / ROLLBACK / END / ABORT (without AND CHAIN): closes the block.
    End,
    /// COMMIT AND CHAIN / ROLLBACK AND CHAIN: closes and opens a new block.
    Chain,
    /// SAVEPOINT, RELEASE, ROLLBACK TO, PREPARE TRANSACTION...: no change of block.
    Other,
}

/// Whether a statement controls transactions, and how.
pub fn transaction_control(node: &NodeEnum) -> Option<TransactionControl> {
    let NodeEnum::TransactionStmt(t) = node else {
        return None;
    };
    Some(match t.kind() {
        TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart => {
            TransactionControl::Begin
        }
        TransactionStmtKind::TransStmtCommit | TransactionStmtKind::TransStmtRollback => {
            if t.chain {
                TransactionControl::Chain
            } else {
                TransactionControl::End
            }
        }
        TransactionStmtKind::TransStmtPrepare => TransactionControl::End,
        _ => TransactionControl::Other,
    })
}

/// Why a statement cannot run inside a transaction block, or `None` when it can.
pub fn non_transactional_reason(node: &NodeEnum) -> Option<&'static str> {
    match node {
        NodeEnum::IndexStmt(s) if s.concurrent => Some("CREATE INDEX CONCURRENTLY"),
        NodeEnum::DropStmt(s) if s.concurrent => Some("DROP INDEX CONCURRENTLY"),
        NodeEnum::ReindexStmt(s) if has_option(&s.params, "concurrently") => {
            Some("REINDEX CONCURRENTLY")
        }
        NodeEnum::ReindexStmt(s)
            if matches!(
                s.kind(),
                protobuf::ReindexObjectType::ReindexObjectSchema
                    | protobuf::ReindexObjectType::ReindexObjectSystem
                    | protobuf::ReindexObjectType::ReindexObjectDatabase
            ) =>
        {
            Some("REINDEX SCHEMA/DATABASE/SYSTEM")
        }
        NodeEnum::VacuumStmt(s) if s.is_vacuumcmd => Some("VACUUM"),
        NodeEnum::CreatedbStmt(_) => Some("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => Some("DROP DATABASE"),
        NodeEnum::AlterSystemStmt(_) => Some("ALTER SYSTEM"),
        NodeEnum::CreateTableSpaceStmt(_) => Some("CREATE TABLESPACE"),
        NodeEnum::DropTableSpaceStmt(_) => Some("DROP TABLESPACE"),
        NodeEnum::ClusterStmt(s) if s.relation.is_none() => Some("CLUSTER (all tables)"),
        NodeEnum::CreateSubscriptionStmt(_) => Some("CREATE SUBSCRIPTION"),
        NodeEnum::DropSubscriptionStmt(_) => Some("DROP SUBSCRIPTION"),
        NodeEnum::AlterTableStmt(s) if detaches_concurrently(s) => {
            Some("ALTER TABLE ... DETACH PARTITION CONCURRENTLY")
        }
        _ => None,
    }
}

fn has_option(params: &[protobuf::Node], name: &str) -> bool {
    params.iter().any(
        |p| matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case(name)),
    )
}

fn detaches_concurrently(stmt: &protobuf::AlterTableStmt) -> bool {
    stmt.cmds.iter().any(|cmd| {
        let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
            return false;
        };
        let Some(def) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else {
            return false;
        };
        matches!(def, NodeEnum::PartitionCmd(p) if p.concurrent)
    })
}

/// The value an `ALTER TYPE ... ADD VALUE` adds, if the statement is one.
pub fn enum_value_added(node: &NodeEnum) -> Option<&str> {
    match node {
        NodeEnum::AlterEnumStmt(s) if s.old_val.is_empty() && !s.new_val.is_empty() => {
            Some(s.new_val.as_str())
        }
        _ => None,
    }
}

/// `"name"` with embedded quotes doubled: safe to splice into SQL as an identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled: safe to splice into SQL as a literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_keep_positions_past_comments_and_dollar_quotes() {
        let sql = "-- header\nCREATE TABLE a (id int);\n\n/* c */ DO $$ BEGIN PERFORM 1; END $$;\nCREATE INDEX CONCURRENTLY i ON a (id)";
        let stmts = parse_statements(sql).expect("valid SQL");
        assert_eq!(stmts.len(), 3);
        assert_eq!(
            position_of(sql, stmts[0].offset),
            SqlPosition { line: 2, column: 1 }
        );
        assert!(stmts[1].text.starts_with("DO $$"));
        assert_eq!(
            position_of(sql, stmts[1].offset),
            SqlPosition { line: 4, column: 9 }
        );
        assert_eq!(
            non_transactional_reason(&stmts[2].node),
            Some("CREATE INDEX CONCURRENTLY")
        );
        assert_eq!(non_transactional_reason(&stmts[0].node), None);
    }

    #[test]
    fn transaction_control_and_enum_values() {
        let stmts = parse_statements(
            "BEGIN; ALTER TYPE mood ADD VALUE 'meh'; COMMIT AND CHAIN; ROLLBACK; SAVEPOINT s",
        )
        .expect("valid SQL");
        let kinds: Vec<_> = stmts.iter().map(|s| transaction_control(&s.node)).collect();
        assert_eq!(
            kinds,
            vec![
                Some(TransactionControl::Begin),
                None,
                Some(TransactionControl::Chain),
                Some(TransactionControl::End),
                Some(TransactionControl::Other)
            ]
        );
        assert_eq!(enum_value_added(&stmts[1].node), Some("meh"));
        assert_eq!(
            string_literals("SELECT 'it''s', E'x', 1"),
            vec!["it's", "x"]
        );
    }

    #[test]
    fn parse_errors_are_reported() {
        let err = parse_statements("CREATE TABLE (").expect_err("invalid SQL");
        assert!(err.message.contains("syntax error"), "{}", err.message);
    }
}
