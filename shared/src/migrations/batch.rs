//! The batched path of the statement engine: the same statements, transactions and
//! history rows in fewer round trips.
//!
//! A migration in Prisma's transaction mode, without transaction control of its own and
//! run untraced, used to cost `BEGIN`, one query per statement, the finish record
//! (prepare, then execute) and `COMMIT`: four round trips besides its statements. On the
//! batched path `BEGIN` travels in the same simple query as the first statement
//! (`BEGIN;<statement>`) and the finish record in the same simple query as the `COMMIT`
//! (`INSERT ...;COMMIT`): one round trip besides its statements.
//!
//! What does not change:
//! - every statement is still its own query, so a failure names the statement that failed
//!   and its position (the server counts the position from the start of the query, and
//!   the runner takes the `BEGIN;` off);
//! - the finish record is written in the migration's transaction, before its `COMMIT`: in
//!   a query holding several statements inside an explicit block, an error skips the rest
//!   of the query (the `COMMIT` included) and leaves the block aborted, which the runner
//!   rolls back; a `COMMIT` that fails (a deferred constraint) rolls the block back with
//!   the record. Either way nothing of the migration is committed and its failure is
//!   recorded as before;
//! - the finish record is Prisma's row, with the same values as the bound form.
//!
//! The finish record's literal form holds no text that could end a string literal: the
//! id is a UUID pgward made, the checksum lowercase hex, the start time an ISO 8601
//! timestamp pgward formatted, and the migration name is spelled in hex
//! (`convert_from(decode('...', 'hex'), 'UTF8')`) unless it is made of letters, digits,
//! `_`, `-`, `.` and spaces only. So no quote or backslash reaches the SQL text, and a
//! session with `standard_conforming_strings = off` (or a migration's own `SET`) reads it
//! as written. A record whose values do not pass these checks has no literal form and is
//! written bound, on its own, as before.

use std::borrow::Cow;

use chrono::SecondsFormat;

use crate::migrations::history::{qualified_table, Attempt};

/// What is sent before the first statement of a batched transaction.
const BEGIN: &str = "BEGIN;";

/// `sql` after the pending `BEGIN`, in one simple query.
pub fn after_begin(sql: &str) -> Cow<'_, str> {
    Cow::Owned(format!("{BEGIN}{sql}"))
}

/// `sql` followed by `COMMIT`, in one simple query.
pub fn then_commit(sql: &str) -> String {
    format!("{sql};COMMIT")
}

/// The finish record of `attempt` as SQL text with its values as literals, or `None`
/// when a value could not be written safely so (it is then bound, as before).
pub fn finish_literal(schema: &str, attempt: &Attempt) -> Option<String> {
    let hex_or_dash = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
    };
    if !hex_or_dash(&attempt.id) || !hex_or_dash(&attempt.checksum) {
        return None;
    }
    let started = attempt
        .started_at
        .to_rfc3339_opts(SecondsFormat::Micros, true);
    Some(format!(
        "INSERT INTO {} (id, checksum, migration_name, started_at, finished_at, applied_steps_count) \
         VALUES ('{}', '{}', {}, '{started}'::pg_catalog.timestamptz, pg_catalog.clock_timestamp(), 1) \
         ON CONFLICT (id) DO UPDATE SET finished_at = pg_catalog.clock_timestamp(), applied_steps_count = 1",
        qualified_table(schema),
        attempt.id,
        attempt.checksum,
        text_literal(&attempt.name),
    ))
}

/// `text` as an SQL expression free of quotes and backslashes inside it: a plain literal
/// when its characters allow, else its UTF-8 bytes in hex.
fn text_literal(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
    if plain {
        format!("'{text}'")
    } else {
        format!(
            "pg_catalog.convert_from(pg_catalog.decode('{}', 'hex'), 'UTF8')",
            hex::encode(text.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_form_has_no_quote_or_backslash_inside_its_literals() {
        let mut attempt = Attempt::new("20240101_it's\\odd", "ab12");
        let sql = finish_literal("public", &attempt).expect("a literal form");
        // Every quote opens or closes a literal: none comes from the values.
        assert!(!sql.contains('\\'), "{sql}");
        assert!(sql.contains(&hex::encode("20240101_it's\\odd")), "{sql}");
        attempt.name = "20240101000000_init".into();
        let sql = finish_literal("public", &attempt).expect("a literal form");
        assert!(sql.contains("'20240101000000_init'"), "{sql}");
        attempt.checksum = "ab'12".into();
        assert_eq!(finish_literal("public", &attempt), None);
    }

    #[test]
    fn begin_and_commit_travel_with_the_statements() {
        assert_eq!(after_begin("CREATE TABLE a ()"), "BEGIN;CREATE TABLE a ()");
        assert_eq!(then_commit("INSERT 1"), "INSERT 1;COMMIT");
    }
}
