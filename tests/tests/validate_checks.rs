//! End-to-end tests of `pgward-validate schema` and `pgward-validate data`: for each check,
//! a database built to violate it is reported precisely (rule, object, severity), and its
//! clean twin is not.

use std::path::Path;

use pgward_tests::{cluster, path_str, run, Output, TestDb};
use serde_json::Value;

fn validate(db: &TestDb, args: &[&str]) -> Output {
    let url = db.url();
    let mut all = args.to_vec();
    all.extend(["--database-url", url.as_str()]);
    run("validate", &all, &[])
}

/// `(rule, object)` of every finding.
fn findings(envelope: &Value) -> Vec<(String, String)> {
    envelope["result"]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array in {envelope}"))
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["object"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn has(envelope: &Value, rule: &str, object: &str) -> bool {
    findings(envelope)
        .iter()
        .any(|(r, o)| r == rule && o == object)
}

fn schema_check(sql: &str) -> (Value, Output) {
    let db = cluster().create_database();
    db.psql(sql);
    let out = validate(&db, &["schema", "--dir", "/nonexistent"]);
    (out.json(), out)
}

/// Runs `violating` and `clean` setups and asserts the rule fires on exactly the first.
fn schema_twins(rule: &str, object: &str, violating: &str, clean: &str) {
    let (bad, out) = schema_check(violating);
    assert!(
        has(&bad, rule, object),
        "{rule} on {object} not reported: {out}"
    );
    let (good, out) = schema_check(clean);
    assert!(
        !findings(&good).iter().any(|(r, _)| r == rule),
        "{rule} reported on the clean twin: {out}"
    );
}

#[test]
fn table_without_primary_key() {
    schema_twins(
        "table-without-primary-key",
        "public.events",
        "CREATE TABLE events (id bigint, at timestamptz)",
        "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz)",
    );
}

#[test]
fn invalid_index_is_an_error() {
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY, k int); INSERT INTO t VALUES (1, 1), (2, 1);");
    // A failed CREATE INDEX CONCURRENTLY leaves the index behind, INVALID.
    let mut client = db.client();
    client
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY t_k_key ON t (k)")
        .expect_err("duplicates make the index build fail");
    let out = validate(&db, &["schema", "--dir", "/nonexistent"]);
    out.assert_code(1);
    let envelope = out.json();
    assert_eq!(envelope["error"]["code"], "CHECKS_FAILED", "{out}");
    assert!(has(&envelope, "invalid-index", "public.t_k_key"), "{out}");

    let (clean, out) = schema_check(
        "CREATE TABLE t (id int PRIMARY KEY, k int); CREATE UNIQUE INDEX t_k_key ON t (k);",
    );
    assert!(!has(&clean, "invalid-index", "public.t_k_key"), "{out}");
    assert_eq!(clean["exit_code"], 0, "{out}");
}

#[test]
fn not_valid_constraints() {
    schema_twins(
        "not-valid-constraint",
        "public.t.t_price_check",
        "CREATE TABLE t (id int PRIMARY KEY, price int); ALTER TABLE t ADD CONSTRAINT t_price_check CHECK (price > 0) NOT VALID;",
        "CREATE TABLE t (id int PRIMARY KEY, price int); ALTER TABLE t ADD CONSTRAINT t_price_check CHECK (price > 0) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT t_price_check;",
    );
}

#[test]
fn foreign_key_without_covering_index() {
    let parent = "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY, a int, b int REFERENCES p);";
    schema_twins(
        "foreign-key-without-index",
        "public.c.c_b_fkey",
        parent,
        // An index whose leading column is the foreign key covers it.
        &format!("{parent} CREATE INDEX c_b_a ON c (b, a);"),
    );
    // An index on other leading columns does not.
    let (bad, out) = schema_check(&format!("{parent} CREATE INDEX c_a_b ON c (a, b);"));
    assert!(
        has(&bad, "foreign-key-without-index", "public.c.c_b_fkey"),
        "{out}"
    );
}

#[test]
fn duplicate_indexes() {
    let table = "CREATE TABLE t (id int PRIMARY KEY, k int, j int);";
    schema_twins(
        "duplicate-index",
        "public.t_k1, public.t_k2",
        &format!("{table} CREATE INDEX t_k1 ON t (k); CREATE INDEX t_k2 ON t (k);"),
        &format!("{table} CREATE INDEX t_k1 ON t (k); CREATE INDEX t_k2 ON t (k) WHERE j > 0;"),
    );
}

#[test]
fn sequences_and_serial_columns_near_their_maximum() {
    // 80% of a sequence's maximum: a warning; 95% of an int4 serial column: an error.
    let (bad, out) = schema_check(
        "CREATE SEQUENCE s AS int MAXVALUE 100; SELECT setval('s', 80); \
         CREATE TABLE t (id serial PRIMARY KEY); SELECT setval('t_id_seq', 2040109465);",
    );
    assert!(has(&bad, "sequence-near-max", "public.s"), "{out}");
    let serial = bad["result"]["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["object"] == "public.t_id_seq").cloned())
        .unwrap_or_else(|| panic!("serial sequence not reported: {out}"));
    assert_eq!(serial["severity"], "error", "{out}");
    assert!(
        serial["message"]
            .as_str()
            .unwrap_or_default()
            .contains("public.t.id"),
        "the owning column is named: {out}"
    );
    let (good, out) = schema_check(
        "CREATE SEQUENCE s AS int MAXVALUE 100; SELECT setval('s', 70); CREATE TABLE t (id bigserial PRIMARY KEY); SELECT setval('t_id_seq', 2040109465);",
    );
    assert!(
        !findings(&good)
            .iter()
            .any(|(r, _)| r == "sequence-near-max"),
        "{out}"
    );
}

#[test]
fn failed_and_pending_migrations_in_the_history() {
    let db = cluster().create_database();
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, sql) in [
        ("20260101000000_a", "CREATE TABLE a (id int PRIMARY KEY);"),
        (
            "20260102000000_b",
            "CREATE TABLE b (id int PRIMARY KEY); SELECT 1/0;",
        ),
        ("20260103000000_c", "CREATE TABLE c (id int PRIMARY KEY);"),
    ] {
        std::fs::create_dir_all(dir.path().join(name)).expect("create fixture");
        std::fs::write(dir.path().join(name).join("migration.sql"), sql).expect("write fixture");
    }
    let dir_arg = path_str(dir.path());
    let url = db.url();
    run(
        "migrate",
        &["deploy", "--dir", dir_arg, "--database-url", &url],
        &[],
    )
    .assert_code(1);
    let out = validate(&db, &["schema", "--dir", dir_arg]);
    out.assert_code(1);
    let envelope = out.json();
    assert!(
        has(&envelope, "failed-migration", "20260102000000_b"),
        "{out}"
    );
    assert!(
        has(&envelope, "pending-migration", "20260103000000_c"),
        "{out}"
    );
    assert!(
        !has(&envelope, "pending-migration", "20260101000000_a"),
        "{out}"
    );
}

#[test]
fn warnings_exit_zero_unless_strict() {
    let db = cluster().create_database();
    db.psql("CREATE TABLE events (id bigint)");
    let out = validate(&db, &["schema", "--dir", "/nonexistent"]);
    out.assert_code(0);
    assert_eq!(out.json()["result"]["totals"]["warnings"], 1, "{out}");
    let strict = validate(&db, &["schema", "--dir", "/nonexistent", "--strict"]);
    strict.assert_code(3);
    assert_eq!(strict.json()["ok"], true, "{strict}");
}

#[test]
fn clean_database_passes_every_schema_check() {
    let (clean, out) = schema_check(
        "CREATE TABLE p (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY); \
         CREATE TABLE c (id bigint PRIMARY KEY, p_id bigint NOT NULL REFERENCES p); CREATE INDEX ON c (p_id);",
    );
    assert_eq!(clean["exit_code"], 0, "{out}");
    assert_eq!(findings(&clean), Vec::<(String, String)>::new(), "{out}");
}

// ---------------------------------------------------------------------------------------
// data
// ---------------------------------------------------------------------------------------

const DATA_FIXTURE: &str = "
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int);
CREATE TABLE prices (id int PRIMARY KEY, price int, email text);
CREATE TABLE dup (id int PRIMARY KEY, k int);
INSERT INTO parent VALUES (1);
";

fn data_db(rows: &str) -> TestDb<'static> {
    let db = cluster().create_database();
    db.psql(DATA_FIXTURE);
    db.psql(rows);
    db.psql(
        "ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent NOT VALID;
         ALTER TABLE prices ADD CONSTRAINT prices_positive CHECK (price > 0) NOT VALID;
         ALTER TABLE prices ADD CONSTRAINT prices_email_present CHECK (email IS NOT NULL) NOT VALID;",
    );
    // An invalid unique index: built concurrently over duplicates it fails and stays INVALID;
    // over clean data it succeeds and is valid (so the clean twin has no such check at all).
    let _ = db
        .client()
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY dup_k_key ON dup (k)");
    db
}

#[test]
fn data_checks_find_each_kind_of_violation() {
    let db = data_db(
        "INSERT INTO child VALUES (1, 1), (2, 42), (3, NULL);
         INSERT INTO prices VALUES (1, -5, 'a@x'), (2, 10, NULL), (3, NULL, 'c@x');
         INSERT INTO dup VALUES (1, 7), (2, 7), (3, NULL), (4, NULL);",
    );
    let out = validate(&db, &["data"]);
    out.assert_code(1);
    let envelope = out.json();
    let got = findings(&envelope);
    for (rule, object) in [
        (
            "not-valid-foreign-key-violation",
            "public.child.child_parent_fk",
        ),
        ("not-valid-check-violation", "public.prices.prices_positive"),
        (
            "null-under-not-valid-not-null-check",
            "public.prices.prices_email_present",
        ),
        ("duplicates-under-invalid-unique-index", "public.dup_k_key"),
    ] {
        assert!(
            has(&envelope, rule, object),
            "{rule} on {object} missing: {got:?}\n{out}"
        );
    }
    assert_eq!(got.len(), 4, "nothing else is reported: {got:?}");
    // One orphan (NULL references nothing and passes), one negative price (NULL passes a
    // CHECK), one missing email, one duplicated key (NULLs are distinct).
    for check in envelope["result"]["checks"]
        .as_array()
        .expect("checks array")
    {
        assert_eq!(check["rows"], 1, "{check}");
    }
}

#[test]
fn data_checks_pass_on_the_clean_twin() {
    let db = data_db(
        "INSERT INTO child VALUES (1, 1), (3, NULL);
         INSERT INTO prices VALUES (1, 5, 'a@x'), (3, NULL, 'c@x');
         INSERT INTO dup VALUES (1, 7), (2, 8), (3, NULL), (4, NULL);",
    );
    let out = validate(&db, &["data"]);
    out.assert_code(0);
    assert_eq!(
        findings(&out.json()),
        Vec::<(String, String)>::new(),
        "{out}"
    );
}

fn write_check(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).expect("write check");
}

#[test]
fn user_checks_with_max_rows_run_read_only_and_in_parallel() {
    let db = data_db(
        "INSERT INTO child VALUES (1, 1); INSERT INTO prices VALUES (1, 5, 'a'), (2, 6, 'b');",
    );
    let checks = tempfile::tempdir().expect("temp dir");
    write_check(
        checks.path(),
        "01_cheap_prices.sql",
        "-- prices under 10\nSELECT id FROM prices WHERE price < 10;\n",
    );
    write_check(
        checks.path(),
        "02_tolerated.sql",
        "-- max-rows: 2\nSELECT id FROM prices;\n",
    );
    write_check(
        checks.path(),
        "03_clean.sql",
        "SELECT id FROM child WHERE id < 0",
    );
    let dir = path_str(checks.path());
    let out = validate(&db, &["data", "--checks", dir, "--jobs", "3"]);
    out.assert_code(1);
    let envelope = out.json();
    assert_eq!(
        findings(&envelope),
        vec![("user-check".to_string(), "01_cheap_prices.sql".to_string())],
        "{out}"
    );
    let finding = &envelope["result"]["findings"][0];
    assert!(
        finding["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2 violating row(s)"),
        "{out}"
    );
    assert_eq!(
        finding["file"],
        format!("{dir}/01_cheap_prices.sql"),
        "{out}"
    );

    // A check that tries to write is refused before it runs (see tests/tests/adversarial).
    write_check(
        checks.path(),
        "05_writer.sql",
        "WITH d AS (DELETE FROM prices RETURNING id) SELECT id FROM d",
    );
    let out = validate(&db, &["data", "--checks", dir]);
    let envelope = out.json();
    assert!(has(&envelope, "check-refused", "05_writer.sql"), "{out}");
    assert_eq!(
        db.query_one_string("SELECT count(*) FROM prices"),
        "2",
        "nothing was deleted"
    );
}

#[test]
fn user_check_timeout_is_reported() {
    let db = cluster().create_database();
    let checks = tempfile::tempdir().expect("temp dir");
    write_check(checks.path(), "slow.sql", "SELECT 1 FROM pg_sleep(5)");
    let dir = path_str(checks.path());
    let started = std::time::Instant::now();
    let out = validate(
        &db,
        &["data", "--checks", dir, "--statement-timeout", "300ms"],
    );
    out.assert_code(1);
    assert!(
        started.elapsed().as_secs() < 4,
        "the timeout stopped the check"
    );
    assert!(has(&out.json(), "check-timed-out", "slow.sql"), "{out}");
}

#[test]
fn bad_check_input_is_a_clear_usage_error() {
    let db = cluster().create_database();
    let out = validate(&db, &["data", "--checks", "/nonexistent/checks"]);
    out.assert_code(2);
    let envelope = out.json();
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist"),
        "{out}"
    );
    assert!(
        !envelope["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{out}"
    );

    let checks = tempfile::tempdir().expect("temp dir");
    write_check(
        checks.path(),
        "bad_header.sql",
        "-- max-rows: lots\nSELECT 1",
    );
    let out = validate(&db, &["data", "--checks", path_str(checks.path())]);
    out.assert_code(2);
    assert!(
        out.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max-rows"),
        "{out}"
    );

    // A check file that cannot be read (a directory named like one).
    let unreadable = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(unreadable.path().join("broken.sql")).expect("mkdir");
    let out = validate(&db, &["data", "--checks", path_str(unreadable.path())]);
    assert_ne!(out.code, 0, "{out}");
    let envelope = out.json();
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("broken.sql"),
        "{out}"
    );
}
