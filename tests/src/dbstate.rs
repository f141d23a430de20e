//! Comparing two databases whole: schema, every table's rows, sequence values. The
//! backup round-trip tests (local, S3, sql format) all ask "is the restored database the
//! same as the source?" the same way.

use std::collections::BTreeMap;

use crate::{fixtures_dir, TestDb};

/// Loads the rich fixture (every common type and kind of object).
pub fn load_rich_fixture(db: &TestDb) {
    let sql = std::fs::read_to_string(fixtures_dir().join("backup_rich/fixture.sql"))
        .expect("tests/fixtures/backup_rich/fixture.sql is readable");
    db.psql(&sql);
}

/// What a database holds, for comparing two of them: its schema as `pg_dump -s` prints
/// it, every table's and materialized view's rows (count and a hash of the rows in
/// order), and every sequence's value.
#[derive(Debug, PartialEq, Eq)]
pub struct DbState {
    /// `pg_dump -s`.
    pub schema: String,
    /// Relation → row count and hash.
    pub tables: BTreeMap<String, String>,
    /// Sequence → last value.
    pub sequences: BTreeMap<String, String>,
}

/// Reads what `db` holds.
pub fn state(db: &TestDb) -> DbState {
    let mut client = db.client();
    let relations: Vec<String> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_%' \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                               AND d.objid = c.oid AND d.deptype = 'e') \
             ORDER BY 1",
            &[],
        )
        .expect("the relations can be listed")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut tables = BTreeMap::new();
    for relation in relations {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*)::text || ' rows, md5 ' || \
                            coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '-') \
                     FROM {relation} t"
                ),
                &[],
            )
            .unwrap_or_else(|e| panic!("cannot hash the rows of {relation} in {}: {e}", db.name));
        tables.insert(relation, row.get(0));
    }
    let sequences = client
        .query(
            "SELECT format('%I.%I', schemaname, sequencename), \
                    coalesce(last_value::text, 'never called') \
             FROM pg_sequences ORDER BY 1",
            &[],
        )
        .expect("the sequences can be read")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    DbState {
        schema: db.pg_dump_schema(),
        tables,
        sequences,
    }
}

/// Asserts two databases hold the same schema, rows and sequence values.
pub fn assert_same_state(expected: &DbState, actual: &DbState, what: &str) {
    assert_eq!(
        expected.tables, actual.tables,
        "{what}: the rows differ (left: expected, right: actual)"
    );
    assert_eq!(
        expected.sequences, actual.sequences,
        "{what}: the sequence values differ (left: expected, right: actual)"
    );
    if expected.schema != actual.schema {
        let diff: Vec<String> = diff_lines(&expected.schema, &actual.schema);
        panic!(
            "{what}: the schemas (pg_dump -s) differ; lines only in the expected (-) or the \
             actual (+) one:\n{}",
            diff.join("\n")
        );
    }
}

/// The lines only one of two texts has (a crude diff, enough to see what differs).
/// The lines only one side has, `-` expected, `+` actual.
pub fn diff_lines(expected: &str, actual: &str) -> Vec<String> {
    let mut out: Vec<String> = expected
        .lines()
        .filter(|l| !actual.lines().any(|a| a == *l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        actual
            .lines()
            .filter(|l| !expected.lines().any(|e| e == *l))
            .map(|l| format!("+ {l}")),
    );
    out
}
