//! `pgward-validate data` user checks (`checks/*.sql`) that try to escape read-only: a
//! second statement after a `)` and a `;`, transaction control, `SET transaction_read_only`,
//! data-modifying WITH, SELECT INTO, row locks, and functions with side effects called from
//! a SELECT. Each case asserts the rule pgward reports and that the data is unchanged.

use pgward_tests::{cluster, path_str, run, Output, TestDb};
use serde_json::Value;

/// A table the checks try to empty, a sequence they try to advance, and a function that
/// deletes when called.
const FIXTURE: &str = "
CREATE TABLE users (id serial PRIMARY KEY, email text);
INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 20) g;
CREATE FUNCTION wipe_users() RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN DELETE FROM users; RETURN 1; END $$;
CREATE FUNCTION writable_then_wipe() RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN SET LOCAL transaction_read_only = off; DELETE FROM users; RETURN 1; END $$;
";

/// What the checks must leave as it was.
fn data_state(db: &TestDb) -> String {
    db.query_one_string(
        "SELECT count(*) || ' rows, sum ' || coalesce(sum(id), 0) || ', seq ' || \
         (SELECT last_value FROM users_id_seq) || ', tables ' || \
         (SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace) || \
         ', large objects ' || (SELECT count(*) FROM pg_largeobject_metadata) \
         FROM users",
    )
}

/// Runs `validate data` with a checks folder holding `files` (name, SQL).
fn validate_data(db: &TestDb, files: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, sql) in files {
        std::fs::write(dir.path().join(name), sql).expect("write the check");
    }
    let url = db.url();
    run(
        "validate",
        &[
            "data",
            "--checks",
            path_str(dir.path()),
            "--database-url",
            &url,
        ],
        &[],
    )
}

/// Runs `validate data` with one check file holding `sql`; returns the run and the rules of
/// its findings on that file.
fn run_check(db: &TestDb, sql: &str) -> (Output, Vec<String>) {
    let out = validate_data(db, &[("crafted.sql", sql)]);
    let json = out.json();
    let rules = json["result"]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array\n{out}"))
        .iter()
        .filter(|f| f["object"] == "crafted.sql")
        .map(|f| f["rule"].as_str().unwrap_or_default().to_string())
        .collect();
    (out, rules)
}

/// Every case: the reported rule (None: the check ran and passed) and the data unchanged.
const CASES: &[(&str, &str, Option<&str>)] = &[
    (
        "the issue's escape: close the wrapper, COMMIT, DELETE",
        "SELECT 1) x; COMMIT; DELETE FROM users; SELECT (1",
        Some("check-refused"),
    ),
    (
        "a second statement after the SELECT",
        "SELECT id FROM users WHERE false; DELETE FROM users",
        Some("check-refused"),
    ),
    (
        "the escape hidden behind a block comment",
        "SELECT 1 /* harmless */) x; COMMIT; DELETE FROM users; SELECT (1 /* */",
        Some("check-refused"),
    ),
    (
        "the escape after a line comment's newline",
        "SELECT 1 -- a comment\n) x; END; TRUNCATE users; SELECT (1",
        Some("check-refused"),
    ),
    (
        "transaction control alone",
        "COMMIT",
        Some("check-refused"),
    ),
    (
        "ROLLBACK then a write",
        "ROLLBACK; BEGIN READ WRITE; DELETE FROM users; COMMIT",
        Some("check-refused"),
    ),
    (
        "SET transaction_read_only",
        "SET transaction_read_only = off",
        Some("check-refused"),
    ),
    (
        "set_config of transaction_read_only inside the SELECT",
        "SELECT set_config('transaction_read_only', 'off', true) AS x FROM users WHERE id = 1",
        Some("check-failed"),
    ),
    (
        "a data-modifying WITH",
        "WITH d AS (DELETE FROM users RETURNING id) SELECT id FROM d",
        Some("check-refused"),
    ),
    (
        "SELECT INTO creates a table",
        "SELECT * INTO stolen FROM users",
        Some("check-refused"),
    ),
    (
        "FOR UPDATE locks the application's rows",
        "SELECT id FROM users WHERE false FOR UPDATE",
        Some("check-refused"),
    ),
    (
        "a function that deletes, called from the SELECT",
        "SELECT wipe_users() AS wiped",
        Some("check-failed"),
    ),
    (
        "a function that turns read-only off, then deletes",
        "SELECT writable_then_wipe() AS wiped",
        Some("check-failed"),
    ),
    (
        "nextval advances a sequence",
        "SELECT nextval('users_id_seq') AS n",
        Some("check-failed"),
    ),
    (
        "setval resets a sequence",
        "SELECT setval('users_id_seq', 1) AS n",
        Some("check-failed"),
    ),
    (
        // READ ONLY lets lo_create through; the rollback that ends every check undoes it.
        "lo_create writes pg_largeobject",
        "SELECT lo_create(0) AS oid",
        Some("user-check"),
    ),
    (
        "semicolons and the escape inside a string: a plain SELECT",
        "SELECT 'x) y; COMMIT; DELETE FROM users; --' AS s WHERE false",
        None,
    ),
    (
        "the escape inside a dollar quote: a plain SELECT",
        "SELECT $q$) y; COMMIT; DELETE FROM users; $q$ AS s WHERE false",
        None,
    ),
    (
        "the escape inside comments: a plain SELECT",
        "SELECT id FROM users WHERE false /* ) y; COMMIT; DELETE FROM users; */ -- ; TRUNCATE users",
        None,
    ),
    (
        "a column named like the wrapper's alias",
        "-- max-rows: 100\nSELECT id AS pgward_check, email FROM users",
        None,
    ),
];

#[test]
fn crafted_checks_never_change_data() {
    let db = cluster().create_database();
    db.psql(FIXTURE);
    let before = data_state(&db);
    let mut failures = Vec::new();
    for (what, sql, expected) in CASES {
        let (out, rules) = run_check(&db, sql);
        let after = data_state(&db);
        if after != before {
            failures.push(format!(
                "{what}: the data changed ({before} -> {after})\n{out}"
            ));
            // Put it back, so the next case is judged on its own.
            db.psql(
                "DROP TABLE IF EXISTS stolen; TRUNCATE users RESTART IDENTITY; \
                 INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 20) g;",
            );
            continue;
        }
        let expected: Vec<String> = expected.iter().map(|r| r.to_string()).collect();
        if rules != expected {
            failures.push(format!(
                "{what}: rules {rules:?}, expected {expected:?}\n{out}"
            ));
        }
        let want_code = if expected.is_empty() { 0 } else { 1 };
        if out.code != want_code {
            failures.push(format!(
                "{what}: exit {}, expected {want_code}\n{out}",
                out.code
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_refused_check_says_why_and_the_others_still_run() {
    let db = cluster().create_database();
    db.psql(FIXTURE);
    let out = validate_data(
        &db,
        &[
            (
                "01_escape.sql",
                "SELECT 1) x; COMMIT; DELETE FROM users; SELECT (1",
            ),
            ("02_two.sql", "SELECT 1;\nUPDATE users SET email = NULL"),
            (
                "03_no_email.sql",
                "SELECT id FROM users WHERE email IS NULL",
            ),
        ],
    );
    out.assert_code(1);
    let json = out.json();
    let findings = json["result"]["findings"].as_array().expect("findings");
    let of = |object: &str| -> &Value {
        findings
            .iter()
            .find(|f| f["object"] == object)
            .unwrap_or_else(|| panic!("no finding on {object}\n{out}"))
    };
    let escape = of("01_escape.sql");
    assert_eq!(escape["rule"], "check-refused", "{out}");
    assert!(
        escape["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not parse"),
        "{out}"
    );
    let two = of("02_two.sql");
    assert_eq!(two["rule"], "check-refused", "{out}");
    assert!(
        two["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2 statements"),
        "{out}"
    );
    assert!(
        !two["fix"].as_str().unwrap_or_default().is_empty(),
        "a refusal says what to do: {out}"
    );
    let checks = json["result"]["checks"].as_array().expect("checks");
    let clean = checks
        .iter()
        .find(|c| c["object"] == "03_no_email.sql")
        .unwrap_or_else(|| panic!("the clean check ran\n{out}"));
    assert_eq!(clean["passed"], true, "{out}");
    assert_eq!(
        db.query_one_string("SELECT count(*) FROM users WHERE email IS NOT NULL"),
        "20"
    );
}
