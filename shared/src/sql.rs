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

impl ParsedStatement {
    /// Byte offset just past the statement in the file (its semicolon excluded).
    pub fn end(&self) -> usize {
        self.offset + self.text.len()
    }
}

/// A file the parser rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlParseError {
    /// The parser's message (`syntax error at or near ...`).
    pub message: String,
}

/// How string literals read: whether a backslash in `'...'` is an ordinary character
/// (`standard_conforming_strings = on`, PostgreSQL's default since 9.1) or escapes the
/// next one (`off`), so that `'a\'` is a whole literal in one and an unfinished one in
/// the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strings {
    /// `standard_conforming_strings = on`.
    Standard,
    /// `standard_conforming_strings = off`.
    BackslashEscapes,
}

/// Parses `sql` into statements with their positions, its string literals read as
/// PostgreSQL reads them by default ([`Strings::Standard`]).
pub fn parse_statements(sql: &str) -> Result<Vec<ParsedStatement>, SqlParseError> {
    parse_statements_as(sql, Strings::Standard)
}

/// [`parse_statements`], string literals read as `strings` says.
pub fn parse_statements_as(
    sql: &str,
    strings: Strings,
) -> Result<Vec<ParsedStatement>, SqlParseError> {
    let options = match strings {
        Strings::Standard => pg_query::ParserOptions::DEFAULT,
        Strings::BackslashEscapes => pg_query::ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS,
    };
    let parsed = pg_query::parse(sql, options).map_err(|e| SqlParseError {
        message: match e {
            pg_query::Error::Parse(m) => m,
            other => other.to_string(),
        },
    })?;
    // libpg_query's scanner reads strings the standard way only: with backslash escapes a
    // statement keeps the comments before it (the server reads them as comments alike).
    let token_starts = match strings {
        Strings::Standard => first_token_starts(sql),
        Strings::BackslashEscapes => Vec::new(),
    };
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

/// The tokens of `sql` that are not comments, or None when the scanner rejects it.
fn code_tokens(sql: &str) -> Option<Vec<protobuf::ScanToken>> {
    let scan = pg_query::scan(sql).ok()?;
    let code = |t: &protobuf::ScanToken| {
        !matches!(
            protobuf::Token::try_from(t.token),
            Ok(protobuf::Token::SqlComment | protobuf::Token::CComment)
        )
    };
    Some(scan.tokens.into_iter().filter(code).collect())
}

/// Byte offsets of every token that is not a comment.
fn first_token_starts(sql: &str) -> Vec<usize> {
    code_tokens(sql)
        .unwrap_or_default()
        .iter()
        .map(|t| t.start.max(0) as usize)
        .collect()
}

/// The words of `sql`, lowercased: runs of letters, digits, `_` and `$`. Used only where
/// the parser cannot say, and then only to err on the side of caution.
fn words(sql: &str) -> Vec<String> {
    sql.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The settings that decide how the server reads the text of a query: its encoding, and
/// whether a backslash in a string literal escapes.
const TEXT_READING_SETTINGS: [&str; 2] = ["client_encoding", "standard_conforming_strings"];

/// Whether running `stmt` may change how the server reads the statements sent after it:
/// a SET or RESET of a [`TEXT_READING_SETTINGS`] setting (`SET NAMES` included), RESET ALL,
/// DISCARD, a call of set_config() anywhere in it (whatever name it is given), any
/// statement naming `pg_settings` (an UPDATE of it is a SET) or `pg_reload_conf` (after
/// an ALTER SYSTEM), and CALL and DO, which run code that may do any of these. Its parse
/// tree is searched for the call only when its text could name it (`set_config`, or a
/// `U&"..."` identifier).
pub fn may_change_text_reading(stmt: &ParsedStatement) -> bool {
    match &stmt.node {
        NodeEnum::VariableSetStmt(set) => {
            set.kind() == protobuf::VariableSetKind::VarResetAll
                || TEXT_READING_SETTINGS.contains(&set.name.to_ascii_lowercase().as_str())
        }
        NodeEnum::DiscardStmt(_) | NodeEnum::CallStmt(_) | NodeEnum::DoStmt(_) => true,
        node => {
            let text = stmt.text.to_ascii_lowercase();
            if text.contains("pg_settings") || text.contains("pg_reload_conf") {
                return true;
            }
            if !text.contains("set_config") && !text.contains("u&") {
                return false;
            }
            let Ok(tree) = serde_json::to_value(node) else {
                return true;
            };
            let mut calls = Vec::new();
            collect_function_names(&tree, &mut calls);
            calls.iter().any(|name| name == "set_config")
        }
    }
}

/// Whether `sql`, sent as one query, may end a transaction part-way (`COMMIT`, `END`,
/// `PREPARE TRANSACTION`, with or without `AND CHAIN`; `CALL` or `DO`, whose code may
/// commit): the server then keeps what ran before it even if a later statement fails.
/// Told from the statements' first tokens (a CASE's or a function body's END is not
/// one); a file the scanner cannot read the way the server may (a backslash in it, which
/// `standard_conforming_strings = off` reads as an escape) or cannot read at all is
/// judged on its words, so any such word counts.
pub fn may_end_transaction_when_sent_whole(sql: &str) -> bool {
    use protobuf::Token;
    let by_words = || {
        let words = words(sql);
        words
            .iter()
            .any(|w| matches!(w.as_str(), "commit" | "end" | "call" | "do"))
            || words
                .windows(2)
                .any(|p| p[0] == "prepare" && p[1] == "transaction")
    };
    if sql.contains('\\') {
        return by_words();
    }
    let Some(code) = code_tokens(sql) else {
        return by_words();
    };
    let tokens: Vec<Token> = code
        .iter()
        .filter_map(|t| Token::try_from(t.token).ok())
        .collect();
    let mut at_start = true;
    for (i, token) in tokens.iter().enumerate() {
        let ends = match token {
            Token::Commit | Token::EndP | Token::Call | Token::Do => true,
            Token::Prepare => tokens.get(i + 1) == Some(&Token::Transaction),
            _ => false,
        };
        if at_start && ends {
            return true;
        }
        at_start = *token == Token::Ascii59;
    }
    false
}

/// The string literals of a statement, unquoted.
pub fn string_literals(sql: &str) -> Vec<String> {
    string_constants(sql).into_iter().map(|(_, s)| s).collect()
}

/// The string literals of a statement with their byte offsets in `sql`, unquoted.
fn string_constants(sql: &str) -> Vec<(usize, String)> {
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
        .filter_map(|t| {
            let start = t.start.max(0) as usize;
            sql.get(start..t.end.max(0) as usize)
                .map(|lit| (start, unquote_literal(lit)))
        })
        .collect()
}

/// A string constant as the scanner delimits it, unquoted: `'it''s'` → `it's`, `E'x'` →
/// `x`.
fn unquote_literal(written: &str) -> String {
    let inner = written
        .strip_prefix(['E', 'e'])
        .unwrap_or(written)
        .trim_start_matches('\'')
        .trim_end_matches('\'');
    inner.replace("''", "'")
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

/// Functions whose call acts on the server, or beyond it, rather than on the database a
/// statement runs in: ending sessions, reloading or writing server files, replication
/// slots, connections to other servers.
const CLUSTER_WIDE_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_promote",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_replication_origin_create",
    "pg_replication_origin_drop",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "lo_import",
    "lo_export",
    "dblink_exec",
    "dblink",
    "dblink_connect",
    "dblink_connect_u",
];

/// Functions that connect to other servers.
const OTHER_SERVER_FUNCTIONS: &[&str] = &[
    "dblink_exec",
    "dblink",
    "dblink_connect",
    "dblink_connect_u",
];

/// A statement that acts beyond the database it runs in.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterWide {
    /// What it is (`ALTER ROLE ... SET`, `a call of dblink_exec()`).
    pub what: String,
    /// Whether it reaches other servers (a subscription's publisher, dblink), so that
    /// running it again acts on them from wherever it runs.
    pub other_servers: bool,
}

/// Whether a statement changes the whole server (roles, databases, tablespaces, server
/// settings, subscriptions, other sessions) rather than only the database it runs in, or
/// `None`. A database made beside the live one on the same server (drift's shadow) does
/// not contain such a statement: replaying it there runs it on the live server again.
/// DO blocks are read too (their statements and the SQL in their string constants).
pub fn cluster_wide(node: &NodeEnum) -> Option<ClusterWide> {
    cluster_wide_at(node, 0)
}

/// Of several findings, one that reaches other servers if there is one, else the first.
fn strongest(found: impl Iterator<Item = ClusterWide>) -> Option<ClusterWide> {
    let mut first = None;
    for f in found {
        if f.other_servers {
            return Some(f);
        }
        first.get_or_insert(f);
    }
    first
}

fn server_wide(what: impl Into<String>) -> ClusterWide {
    ClusterWide {
        what: what.into(),
        other_servers: false,
    }
}

fn cluster_wide_at(node: &NodeEnum, depth: usize) -> Option<ClusterWide> {
    use protobuf::ObjectType as O;
    let shared_object = |t: O| matches!(t, O::ObjectDatabase | O::ObjectRole | O::ObjectTablespace);
    let direct = match node {
        NodeEnum::CreateRoleStmt(_) => Some("CREATE ROLE"),
        NodeEnum::AlterRoleStmt(_) => Some("ALTER ROLE"),
        NodeEnum::AlterRoleSetStmt(_) => Some("ALTER ROLE ... SET"),
        NodeEnum::DropRoleStmt(_) => Some("DROP ROLE"),
        NodeEnum::GrantRoleStmt(_) => Some("GRANT/REVOKE of a role"),
        NodeEnum::AlterSystemStmt(_) => Some("ALTER SYSTEM"),
        NodeEnum::CreateTableSpaceStmt(_) => Some("CREATE TABLESPACE"),
        NodeEnum::DropTableSpaceStmt(_) => Some("DROP TABLESPACE"),
        NodeEnum::AlterTableSpaceOptionsStmt(_) => Some("ALTER TABLESPACE"),
        NodeEnum::CreatedbStmt(_) => Some("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => Some("DROP DATABASE"),
        NodeEnum::AlterDatabaseStmt(_) => Some("ALTER DATABASE"),
        NodeEnum::AlterDatabaseSetStmt(_) => Some("ALTER DATABASE ... SET"),
        NodeEnum::AlterDatabaseRefreshCollStmt(_) => {
            Some("ALTER DATABASE ... REFRESH COLLATION VERSION")
        }
        NodeEnum::RenameStmt(s) if shared_object(s.rename_type()) => {
            Some("ALTER DATABASE/ROLE/TABLESPACE ... RENAME")
        }
        NodeEnum::AlterOwnerStmt(s) if shared_object(s.object_type()) => {
            Some("ALTER DATABASE/TABLESPACE ... OWNER TO")
        }
        NodeEnum::CommentStmt(s) if shared_object(s.objtype()) => {
            Some("COMMENT ON DATABASE/ROLE/TABLESPACE")
        }
        NodeEnum::SecLabelStmt(s) if shared_object(s.objtype()) => {
            Some("SECURITY LABEL ON DATABASE/ROLE/TABLESPACE")
        }
        NodeEnum::GrantStmt(s)
            if matches!(
                s.objtype(),
                O::ObjectDatabase | O::ObjectTablespace | O::ObjectParameterAcl
            ) =>
        {
            Some("GRANT/REVOKE on a database, tablespace or server parameter")
        }
        NodeEnum::ReassignOwnedStmt(_) => Some("REASSIGN OWNED"),
        NodeEnum::DropOwnedStmt(_) => Some("DROP OWNED"),
        _ => None,
    };
    if let Some(d) = direct {
        return Some(server_wide(d));
    }
    let subscription = match node {
        NodeEnum::CreateSubscriptionStmt(_) => Some(
            "CREATE SUBSCRIPTION (connects to the publisher and creates a replication slot there)",
        ),
        NodeEnum::AlterSubscriptionStmt(_) => Some("ALTER SUBSCRIPTION"),
        NodeEnum::DropSubscriptionStmt(_) => {
            Some("DROP SUBSCRIPTION (drops the publisher's replication slot)")
        }
        _ => None,
    };
    if let Some(what) = subscription {
        return Some(ClusterWide {
            what: what.to_string(),
            other_servers: true,
        });
    }
    if let NodeEnum::DoStmt(d) = node {
        return do_block_reason(d, depth);
    }
    // Calls anywhere in the tree (SELECT pg_terminate_backend(...), INSERT ... SELECT
    // dblink_exec(...)).
    let tree = serde_json::to_value(node).ok()?;
    let mut calls = Vec::new();
    collect_function_names(&tree, &mut calls);
    strongest(
        calls
            .into_iter()
            .filter(|name| CLUSTER_WIDE_FUNCTIONS.contains(&name.as_str()))
            .map(|name| ClusterWide {
                other_servers: OTHER_SERVER_FUNCTIONS.contains(&name.as_str()),
                what: format!("a call of {name}()"),
            }),
    )
}

/// The names of the functions a parse tree (as JSON) calls.
fn collect_function_names(tree: &serde_json::Value, out: &mut Vec<String>) {
    match tree {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key == "FuncCall" {
                    if let Some(name) = value
                        .get("funcname")
                        .and_then(|n| n.as_array())
                        .and_then(|parts| parts.last())
                        .and_then(|last| last.pointer("/node/String/sval"))
                        .and_then(|s| s.as_str())
                    {
                        out.push(name.to_ascii_lowercase());
                    }
                }
                collect_function_names(value, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_function_names(item, out);
            }
        }
        _ => {}
    }
}

/// Every string found under `key` in a JSON tree.
fn collect_strings<'v>(tree: &'v serde_json::Value, key: &str, out: &mut Vec<&'v str>) {
    match tree {
        serde_json::Value::Object(map) => {
            for (k, value) in map {
                match value {
                    serde_json::Value::String(s) if k == key => out.push(s),
                    _ => collect_strings(value, key, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_strings(item, key, out);
            }
        }
        _ => {}
    }
}

/// The string constants of a parse tree (as JSON), not its names.
fn collect_constants<'v>(tree: &'v serde_json::Value, out: &mut Vec<&'v str>) {
    match tree {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key == "AConst" {
                    collect_strings(value, "sval", out);
                } else {
                    collect_constants(value, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_constants(item, out);
            }
        }
        _ => {}
    }
}

/// How deep DO blocks that EXECUTE DO blocks are followed.
const MAX_NESTING: usize = 4;

/// A DO block's cluster-wide statements: the PL/pgSQL body is parsed, and each of its
/// SQL statements and each string constant of its expressions (the SQL an EXECUTE runs,
/// `format()` placeholders read as names) is checked like a statement of its own.
fn do_block_reason(stmt: &protobuf::DoStmt, depth: usize) -> Option<ClusterWide> {
    let mut body = None;
    let mut language = "plpgsql".to_string();
    for arg in &stmt.args {
        if let Some(NodeEnum::DefElem(d)) = &arg.node {
            let value = d.arg.as_ref().and_then(|a| match &a.node {
                Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                _ => None,
            });
            match d.defname.as_str() {
                "as" => body = value,
                "language" => language = value.unwrap_or_default().to_ascii_lowercase(),
                _ => {}
            }
        }
    }
    if language != "plpgsql" {
        return Some(server_wide(format!(
            "a DO block in language {language}, which pgward cannot read for cluster-wide statements"
        )));
    }
    let body = body?;
    let tag = (0..)
        .map(|i| format!("$pgward{i}$"))
        .find(|t| !body.contains(t.as_str()))?;
    let wrapped = format!(
        "CREATE FUNCTION pgward_do_block() RETURNS void LANGUAGE plpgsql AS {tag}{body}{tag}"
    );
    let Ok(tree) = pg_query::parse_plpgsql(&wrapped) else {
        return Some(server_wide(
            "a DO block pgward cannot parse, so cannot check for cluster-wide statements",
        ));
    };
    let mut queries = Vec::new();
    collect_strings(&tree, "query", &mut queries);
    strongest(
        queries
            .into_iter()
            .filter_map(|q| sql_text_reason(q, depth + 1)),
    )
}

/// The cluster-wide reason of SQL text found inside a DO block (a statement, or an
/// expression whose string constants may be SQL).
fn sql_text_reason(text: &str, depth: usize) -> Option<ClusterWide> {
    if depth > MAX_NESTING {
        return None;
    }
    let of_sql = |sql: &str| -> Option<ClusterWide> {
        let stmts = parse_statements(sql).ok()?;
        strongest(
            stmts
                .iter()
                .filter_map(|s| cluster_wide_at(&s.node, depth + 1)),
        )
    };
    if let Some(found) = of_sql(text) {
        return Some(found);
    }
    // An expression (`'ALTER ROLE ' || r`, `format('ALTER ROLE %I ...', r)`): its
    // string constants, with format()'s placeholders read as a name.
    let stmts = parse_statements(&format!("SELECT {text}")).ok()?;
    let tree = serde_json::to_value(&stmts.first()?.node).ok()?;
    let mut constants = Vec::new();
    collect_constants(&tree, &mut constants);
    // Pieces glued together around names (`'ALTER ROLE ' || r || ' SET x = 1'`).
    let joined = constants.join(" x ");
    strongest(
        std::iter::once(joined.as_str())
            .chain(constants)
            .filter_map(|c| of_sql(&c.replace("%I", "x").replace("%L", "'x'").replace("%s", "x"))),
    )
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

/// A value `ALTER TYPE ... ADD VALUE` adds, used by a later statement of the transaction
/// that adds it: PostgreSQL refuses the use ("unsafe use of new value") until that
/// transaction commits.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumValueUsedEarly {
    /// The value.
    pub value: String,
    /// The enum type (the last part of its name).
    pub enum_name: String,
    /// Index of the statement that adds it.
    pub added: usize,
    /// Index of the first statement that uses it.
    pub used: usize,
    /// Byte offset of that use (a string literal) in the using statement's text.
    pub offset: usize,
}

/// Every value added to an enum by `statements` (one file) and used before the
/// transaction that adds it commits, when the file runs as Prisma runs a migration: one
/// transaction up to each explicit COMMIT or ROLLBACK ([`transaction_control`]). The
/// migration engine runs a file with such a use statement by statement; lint reports it.
///
/// A use is a string literal equal to the value in a later statement of that
/// transaction, the first one only. Naming the value in another `ALTER TYPE ... ADD
/// VALUE` (as a value of another type, or as its BEFORE/AFTER) is no use: PostgreSQL
/// accepts it. A value added to a type created in the same transaction counts like any
/// other: PostgreSQL 17 accepts its use, but 13 to 16 refuse it.
pub fn enum_values_used_before_commit(statements: &[ParsedStatement]) -> Vec<EnumValueUsedEarly> {
    /// An added value: statement, value, type, transaction.
    type Added<'s> = (usize, &'s str, String, usize);
    let last_name = |names: &[protobuf::Node]| {
        names.iter().rev().find_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
    };
    let mut transaction = 0;
    let mut added: Vec<Added> = Vec::new();
    let mut uses: Vec<EnumValueUsedEarly> = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        match &statement.node {
            NodeEnum::AlterEnumStmt(alter) => {
                if let Some(value) = enum_value_added(&statement.node) {
                    let enum_name = last_name(&alter.type_name).unwrap_or_default();
                    added.push((index, value, enum_name, transaction));
                }
            }
            _ => {
                let literals = string_constants(&statement.text);
                for (at, value, enum_name, tx) in &added {
                    if *tx != transaction || uses.iter().any(|u| u.added == *at) {
                        continue;
                    }
                    if let Some((offset, _)) = literals.iter().find(|(_, l)| l == value) {
                        uses.push(EnumValueUsedEarly {
                            value: value.to_string(),
                            enum_name: enum_name.clone(),
                            added: *at,
                            used: index,
                            offset: *offset,
                        });
                    }
                }
            }
        }
        if matches!(
            transaction_control(&statement.node),
            Some(TransactionControl::End | TransactionControl::Chain)
        ) {
            transaction += 1;
        }
    }
    uses
}

/// `"name"` with embedded quotes doubled: safe to splice into SQL as an identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled: safe to splice into SQL as a literal, for the
/// statements that take no parameters (COMMENT, CREATE DATABASE, ...). Text holding a
/// backslash becomes an escape string, `E'a\\b'`, as PostgreSQL's own quote_literal()
/// does: a plain literal's backslash is an escape in a session with
/// `standard_conforming_strings = off`, where `\'` would end the literal early. Values
/// of other statements are bound, never spliced.
pub fn quote_literal(text: &str) -> String {
    if text.contains('\\') {
        format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_sent_whole_is_found_at_the_start_of_a_statement() {
        let commits = [
            "CREATE TABLE a (id int); COMMIT; SELECT 1/0;",
            "BEGIN; CREATE TABLE a (id int); END; SELECT 1/0",
            "-- c\nselect 1;\n/* x */ commit and chain;",
            "SELECT 1; PREPARE TRANSACTION 'x';",
            "CALL backfill()",
            "SELECT 1; DO $$ BEGIN COMMIT; END $$;",
            "SELECT 'unterminated; COMMIT",
        ];
        for sql in commits {
            assert!(may_end_transaction_when_sent_whole(sql), "{sql}");
        }
        let none = [
            "CREATE TABLE a (id int); SELECT CASE WHEN true THEN 1 END;",
            "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql;",
            "SELECT 'commit'; -- end\n SELECT \"end\" FROM t;",
            "PREPARE p AS SELECT 1;",
        ];
        for sql in none {
            assert!(!may_end_transaction_when_sent_whole(sql), "{sql}");
        }
        // Judged on words: a backslash, or a file the scanner cannot read.
        assert!(may_end_transaction_when_sent_whole(
            "SELECT 'a\\'; SELECT 'end'"
        ));
        assert!(!may_end_transaction_when_sent_whole(
            "SELECT 'a\\'; SELECT 'x'"
        ));
    }

    #[test]
    fn statements_that_may_change_how_text_is_read_are_found_in_any_form() {
        let changes = [
            "SET standard_conforming_strings = off",
            "SET LOCAL Standard_Conforming_Strings TO on",
            "RESET standard_conforming_strings",
            "SET client_encoding = 'SJIS'",
            "SET NAMES 'SJIS'",
            "RESET ALL",
            "DISCARD ALL",
            "SELECT set_config('standard_conforming' || '_strings', 'off', false)",
            "SELECT U&\"\\0073et_config\"('client_encoding', 'SJIS', false)",
            "INSERT INTO t SELECT pg_catalog.set_config(name, 'x', false) FROM s",
            "CALL p()",
            "DO $$ BEGIN PERFORM 1; END $$",
            "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'",
            "SELECT pg_reload_conf()",
        ];
        for sql in changes {
            assert!(
                may_change_text_reading(&parse_statements(sql).unwrap()[0]),
                "{sql}"
            );
        }
        let others = [
            "SET search_path = x",
            "RESET search_path",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SELECT current_setting('client_encoding')",
            "CREATE TABLE t (standard_conforming_strings text)",
            "SELECT 'set_config' AS not_a_call",
        ];
        for sql in others {
            assert!(
                !may_change_text_reading(&parse_statements(sql).unwrap()[0]),
                "{sql}"
            );
        }
    }

    #[test]
    fn backslash_escapes_read_strings_as_such_a_session_does() {
        let sql = "-- c\nSELECT 'a\\', ' ; COMMIT ; SELECT 1 -- ';\n;";
        let standard = parse_statements(sql).unwrap();
        assert_eq!(standard.len(), 1);
        let escaped = parse_statements_as(sql, Strings::BackslashEscapes).unwrap();
        let texts: Vec<&str> = escaped.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["SELECT 'a\\', '", "COMMIT", "SELECT 1 -- '"]);
    }

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
    fn cluster_wide_statements_are_found_also_inside_do_blocks() {
        let reason = |sql: &str| {
            let stmts = parse_statements(sql).expect("valid SQL");
            cluster_wide(&stmts[0].node)
        };
        for sql in [
            "CREATE ROLE app_ro",
            "ALTER ROLE app SET statement_timeout = '5s'",
            "ALTER USER app WITH PASSWORD 'x'",
            "DROP ROLE app_ro",
            "GRANT app_ro TO app",
            "ALTER SYSTEM SET work_mem = '64MB'",
            "CREATE TABLESPACE fast LOCATION '/ssd'",
            "ALTER DATABASE app SET timezone = 'UTC'",
            "ALTER DATABASE app OWNER TO app",
            "ALTER DATABASE app RENAME TO app2",
            "COMMENT ON DATABASE app IS 'x'",
            "GRANT CONNECT ON DATABASE app TO app_ro",
            "REASSIGN OWNED BY old TO app",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
            "DO $$ BEGIN ALTER ROLE app SET work_mem = '1MB'; END $$",
            "DO $$ BEGIN EXECUTE 'ALTER SYSTEM SET work_mem = ''1MB'''; END $$",
            "DO $$ BEGIN EXECUTE format('ALTER ROLE %I SET x.y = 1', current_user); END $$",
            "DO $$ DECLARE r text := 'app'; BEGIN EXECUTE 'ALTER ROLE ' || quote_ident(r) || ' SET work_mem = ''1MB'''; END $$",
            "DO LANGUAGE plpython3u $$ plpy.execute('select 1') $$",
        ] {
            assert!(reason(sql).is_some(), "not found: {sql}");
        }
        let other_servers = |sql: &str| reason(sql).map(|c| c.other_servers);
        assert_eq!(
            other_servers("ALTER ROLE app SET work_mem = '1MB'"),
            Some(false)
        );
        assert_eq!(
            other_servers("CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p"),
            Some(true)
        );
        assert_eq!(
            other_servers("SELECT dblink_exec('host=prod', 'DELETE FROM t')"),
            Some(true)
        );
        assert_eq!(
            other_servers(
                "DO $$ BEGIN ALTER ROLE app SET work_mem = '1MB'; PERFORM dblink_exec('host=prod', 'x'); END $$"
            ),
            Some(true),
            "the finding that reaches other servers wins"
        );
        for sql in [
            "CREATE TABLE t (id int)",
            "GRANT SELECT ON t TO app_ro",
            "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO app_ro",
            "COMMENT ON TABLE t IS 'database role'",
            "ALTER TABLE t OWNER TO app",
            "SELECT set_config('search_path', 'x', false)",
            "DO $$ BEGIN CREATE TYPE mood AS ENUM ('a'); EXCEPTION WHEN duplicate_object THEN null; END $$",
            "DO $$ BEGIN RAISE NOTICE 'the database role'; END $$",
        ] {
            assert_eq!(reason(sql), None, "{sql}");
        }
    }

    #[test]
    fn an_enum_value_is_used_early_only_before_the_commit_of_its_transaction() {
        let stmts = parse_statements(
            "ALTER TYPE m ADD VALUE 'a';\nALTER TYPE m ADD VALUE 'b' AFTER 'a';\n\
             SELECT 'x', 'b';\nSELECT 'b';\nCOMMIT;\nSELECT 'a';",
        )
        .expect("valid SQL");
        assert_eq!(
            enum_values_used_before_commit(&stmts),
            vec![EnumValueUsedEarly {
                value: "b".into(),
                enum_name: "m".into(),
                added: 1,
                used: 2,
                offset: 12,
            }],
            "named as a neighbour is no use, the first use only, none after COMMIT"
        );
    }

    #[test]
    fn parse_errors_are_reported() {
        let err = parse_statements("CREATE TABLE (").expect_err("invalid SQL");
        assert!(err.message.contains("syntax error"), "{}", err.message);
    }
}
