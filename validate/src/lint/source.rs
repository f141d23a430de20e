//! One SQL file as lint reads it: the statements with their parse trees (from
//! `pgward_shared::sql`), the tokens PostgreSQL's scanner sees, the `-- pgward-ignore`
//! comments, and, for a file the parser rejects, where it stopped.
//!
//! libpg_query knows the byte at which a syntax error occurs, but the `pg_query` crate
//! passes on only the message. The position is recovered with the parser itself: the
//! error sits at the first token whose prefix of the file can no longer be completed into
//! valid SQL, which a binary search over token prefixes finds in a few parses.

use pg_query::protobuf;
use pgward_shared::sql::{self, ParsedStatement};

/// The comment that suppresses rules for one statement: `-- pgward-ignore rule-a, rule-b`.
pub const IGNORE_MARKER: &str = "pgward-ignore";

/// One token of the file.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
    /// What the scanner took it for (`None` for a kind this crate's version does not name).
    pub kind: Option<protobuf::Token>,
}

/// A `-- pgward-ignore` comment.
#[derive(Debug, Clone)]
pub struct IgnoreComment {
    /// Byte offset of the comment.
    pub offset: usize,
    /// The rule ids it names.
    pub rules: Vec<String>,
}

/// A file the parser accepted.
#[derive(Debug)]
pub struct ParsedFile {
    /// Its statements, in order.
    pub statements: Vec<ParsedStatement>,
    /// Every token but comments, in order.
    pub tokens: Vec<Token>,
    /// Its `-- pgward-ignore` comments.
    pub ignores: Vec<IgnoreComment>,
}

/// A file the parser rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseFailure {
    /// The parser's message.
    pub message: String,
    /// Byte offset of the token the parser stopped at, when it could be found (not for
    /// errors of the scanner itself, such as an unterminated string).
    pub offset: Option<usize>,
}

impl ParsedFile {
    /// Parses `text` (a BOM already removed).
    pub fn parse(text: &str) -> Result<ParsedFile, ParseFailure> {
        let scanned = scan(text);
        let statements = sql::parse_statements(text).map_err(|e| ParseFailure {
            offset: scanned
                .as_ref()
                .ok()
                .and_then(|(tokens, _)| locate_parse_error(text, tokens)),
            message: e.message,
        })?;
        let (tokens, ignores) = scanned.map_err(|message| ParseFailure {
            message,
            offset: None,
        })?;
        Ok(ParsedFile {
            statements,
            tokens,
            ignores,
        })
    }

    /// Byte offset just past statement `index` (its semicolon excluded).
    pub fn statement_end(&self, index: usize) -> usize {
        self.statements[index].end()
    }

    /// The tokens of statement `index`.
    pub fn tokens_of(&self, index: usize) -> &[Token] {
        let (start, end) = (self.statements[index].offset, self.statement_end(index));
        let from = self.tokens.partition_point(|t| t.start < start);
        let to = self.tokens.partition_point(|t| t.start < end);
        &self.tokens[from..to]
    }

    /// The statement whose text holds `offset`.
    pub fn statement_at(&self, offset: usize) -> Option<usize> {
        let after = self.statements.partition_point(|s| s.offset <= offset);
        let index = after.checked_sub(1)?;
        (offset < self.statement_end(index)).then_some(index)
    }

    /// Where each command of an `ALTER TABLE name cmd, cmd, ...` statement starts: the
    /// statement's tokens after the table name, split at commas outside brackets. Empty
    /// when the split does not give `count` commands (the caller then points at the
    /// statement).
    pub fn command_offsets(
        &self,
        text: &str,
        index: usize,
        relation_location: usize,
        count: usize,
    ) -> Vec<usize> {
        let tokens = self.tokens_of(index);
        let source = |t: &Token| text.get(t.start..t.end).unwrap_or_default();
        let Some(name_at) = tokens.iter().position(|t| t.start == relation_location) else {
            return Vec::new();
        };
        // Skip the (possibly qualified) name and an inheritance `*`.
        let mut i = name_at + 1;
        while i + 1 < tokens.len() && source(&tokens[i]) == "." {
            i += 2;
        }
        if tokens.get(i).is_some_and(|t| source(t) == "*") {
            i += 1;
        }
        let mut starts = Vec::new();
        let mut depth = 0i32;
        let mut at_command_start = true;
        for t in tokens.iter().skip(i) {
            if at_command_start {
                starts.push(t.start);
                at_command_start = false;
            }
            match source(t) {
                "(" | "[" => depth += 1,
                ")" | "]" => depth -= 1,
                "," if depth == 0 => at_command_start = true,
                _ => {}
            }
        }
        if starts.len() == count {
            starts
        } else {
            Vec::new()
        }
    }

    /// The statement each `-- pgward-ignore` comment applies to: the statement it sits in
    /// or trails on the same line, else the next statement.
    pub fn ignored_rules(&self, text: &str) -> Vec<(usize, &IgnoreComment)> {
        let line_of = |offset: usize| sql::position_of(text, offset).line;
        self.ignores
            .iter()
            .filter_map(|comment| {
                if let Some(index) = self.statement_at(comment.offset) {
                    return Some((index, comment));
                }
                let next = self
                    .statements
                    .partition_point(|s| s.offset < comment.offset);
                let trailing = next
                    .checked_sub(1)
                    .filter(|&prev| line_of(self.statement_end(prev)) == line_of(comment.offset));
                trailing
                    .or((next < self.statements.len()).then_some(next))
                    .map(|index| (index, comment))
            })
            .collect()
    }
}

/// The file's tokens without comments, and its ignore comments; the scanner's message on
/// failure.
fn scan(text: &str) -> Result<(Vec<Token>, Vec<IgnoreComment>), String> {
    let scanned = pg_query::scan(text).map_err(|e| match e {
        pg_query::Error::Scan(m) | pg_query::Error::Parse(m) => m,
        other => other.to_string(),
    })?;
    let mut tokens = Vec::with_capacity(scanned.tokens.len());
    let mut ignores = Vec::new();
    for t in &scanned.tokens {
        let (start, end) = (t.start.max(0) as usize, t.end.max(0) as usize);
        let kind = protobuf::Token::try_from(t.token).ok();
        match kind {
            Some(protobuf::Token::SqlComment) => {
                if let Some(rules) = text.get(start..end).and_then(ignore_comment_rules) {
                    ignores.push(IgnoreComment {
                        offset: start,
                        rules,
                    });
                }
            }
            Some(protobuf::Token::CComment) => {}
            _ => tokens.push(Token { start, end, kind }),
        }
    }
    Ok((tokens, ignores))
}

/// The rule ids of `-- pgward-ignore a, b`, or `None` for any other comment.
fn ignore_comment_rules(comment: &str) -> Option<Vec<String>> {
    let body = comment.strip_prefix("--")?.trim_start();
    let rest = body.strip_prefix(IGNORE_MARKER)?;
    // `-- pgward-ignored` is not the marker.
    if rest
        .chars()
        .next()
        .is_some_and(|c| !c.is_whitespace() && c != ':')
    {
        return None;
    }
    Some(
        rest.trim_start_matches(':')
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Whether the parser can still complete `prefix` into valid SQL: it parses, or fails only
/// because the input ended.
fn is_viable_prefix(prefix: &str) -> bool {
    match pg_query::parse(prefix, pg_query::ParserOptions::DEFAULT) {
        Ok(_) => true,
        Err(pg_query::Error::Parse(message)) => message.ends_with("at end of input"),
        Err(_) => false,
    }
}

/// The byte offset of the token a rejected file fails at. A prefix that cannot be
/// completed stays so however much is added, so the first such token is found by binary
/// search; a file that is only cut short fails just past its last token.
fn locate_parse_error(text: &str, tokens: &[Token]) -> Option<usize> {
    let last = tokens.last()?;
    if is_viable_prefix(text) {
        return Some(last.end);
    }
    let (mut viable, mut failing) = (0usize, tokens.len());
    // Invariant: the prefix ending with token `failing - 1` fails; the prefixes ending
    // before token `viable` are viable.
    while viable < failing {
        let middle = (viable + failing) / 2;
        if is_viable_prefix(&text[..tokens[middle].end]) {
            viable = middle + 1;
        } else {
            failing = middle;
        }
    }
    tokens.get(failing).map(|t| t.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_point_at_the_failing_token() {
        let text = "CREATE TABLE a (id int);\nALTER TABLE a ADD COLUMN;\n";
        let failure = ParsedFile::parse(text).expect_err("invalid SQL");
        assert!(
            failure.message.contains("syntax error"),
            "{}",
            failure.message
        );
        assert_eq!(
            failure.offset,
            text.find("COLUMN;").map(|i| i + "COLUMN".len())
        );

        let cut_short = "CREATE TABLE a (id int";
        let failure = ParsedFile::parse(cut_short).expect_err("cut short");
        assert_eq!(failure.offset, Some(cut_short.len()));

        let unterminated = "SELECT 'abc";
        let failure = ParsedFile::parse(unterminated).expect_err("scanner error");
        assert_eq!(failure.offset, None);
    }

    #[test]
    fn alter_table_commands_are_located() {
        let text = "ALTER TABLE \"public\".\"T\" ADD COLUMN x int[] DEFAULT ARRAY[1,2],\n  ALTER COLUMN y SET NOT NULL, ADD CONSTRAINT c CHECK (f(a, b))";
        let file = ParsedFile::parse(text).expect("valid SQL");
        let offsets = file.command_offsets(text, 0, text.find("\"public\"").expect("name"), 3);
        assert_eq!(
            offsets,
            vec![
                text.find("ADD COLUMN").expect("first"),
                text.find("ALTER COLUMN").expect("second"),
                text.find("ADD CONSTRAINT").expect("third"),
            ]
        );
    }

    #[test]
    fn ignore_comments_apply_to_their_statement() {
        let text = "-- pgward-ignore a, b\nSELECT 1;\nSELECT 2; -- pgward-ignore c\nSELECT 3,\n  -- pgward-ignore: d\n  4;\n-- pgward-ignored e\nSELECT 4;";
        let file = ParsedFile::parse(text).expect("valid SQL");
        let applied: Vec<(usize, Vec<String>)> = file
            .ignored_rules(text)
            .into_iter()
            .map(|(i, c)| (i, c.rules.clone()))
            .collect();
        assert_eq!(
            applied,
            vec![
                (0, vec!["a".to_string(), "b".to_string()]),
                (1, vec!["c".to_string()]),
                (2, vec!["d".to_string()]),
            ]
        );
    }
}
