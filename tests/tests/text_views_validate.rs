//! `--format text` of every pgward-validate command, success and failure, as insta
//! snapshots (tests/tests/snapshots/), and the lint view's promises: the source line with
//! the offending text underlined, exactly under it; colour on a terminal, none with
//! `NO_COLOR` nor when piped. The real binary runs against a throwaway database; only what
//! varies from run to run is filtered (the database's name, the port, temp folders,
//! durations, the server's and pg_dump's versions). Under `CI=true` a missing or changed
//! snapshot fails the test; `cargo insta review` (or `INSTA_UPDATE=always`) accepts a
//! reviewed change locally.

use std::path::Path;

use pgward_tests::{
    cluster, on_a_terminal, path_str, redact_temp_paths, run, run_in, temp_dir, Migrations, Output,
    TestDb,
};

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\bt_\d+_\d+\b", "[db]");
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]");
    settings.add_filter(r"\b\d+(\.\d+)? (ms|s|min)\b +", "[duration] ");
    settings.add_filter(r"\b\d+(\.\d+)? (ms|s|min)\b", "[duration]");
    settings.add_filter(r"\(PostgreSQL\) [^\n]*", "(PostgreSQL) [version]");
    settings.add_filter(
        r"(server-version +)PostgreSQL \d+",
        "${1}PostgreSQL [version]",
    );
    settings
}

fn snapshot(name: &str, out: &Output, code: i32) {
    out.assert_code(code);
    assert!(
        !out.stdout.contains('\u{1b}'),
        "piped output has no colour\n{out}"
    );
    let text = redact_temp_paths(&out.stdout);
    settings().bind(|| insta::assert_snapshot!(name, text));
}

/// `pgward-migrate deploy --to TO` of `dir`.
fn deploy_dir(db: &TestDb, dir: &Path, to: &str) {
    let url = db.url();
    let args = [
        "deploy",
        "--dir",
        path_str(dir),
        "--to",
        to,
        "--database-url",
        &url,
    ];
    run("migrate", &args, &[]).assert_code(0);
}

fn validate(db: &TestDb, args: &[&str]) -> Output {
    let url = db.url();
    let mut all = args.to_vec();
    all.extend(["--database-url", url.as_str(), "--format", "text"]);
    run("validate", &all, &[])
}

/// `pgward-validate lint FILES --format text` in the lint fixtures' folder (so the paths
/// the view shows are relative and the same everywhere).
fn lint_fixtures(files: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut args = vec!["lint"];
    args.extend_from_slice(files);
    args.extend(["--format", "text"]);
    run_in(
        &pgward_tests::fixtures_dir().join("lint/rules"),
        "validate",
        &args,
        envs,
    )
}

#[test]
fn lint_findings_clean_and_parse_error() {
    snapshot(
        "lint_findings",
        &lint_fixtures(
            &[
                "create-index-not-concurrently/bad.sql",
                "add-column-not-null-without-default/bad.sql",
                "drop-column/bad.sql",
            ],
            &[],
        ),
        1,
    );
    snapshot(
        "lint_warning_only",
        &lint_fixtures(&["create-index-not-concurrently/good.sql"], &[]),
        0,
    );
    snapshot(
        "lint_parse_error",
        &lint_fixtures(&["parse-error/bad.sql"], &[]),
        1,
    );
    snapshot(
        "lint_missing_file",
        &lint_fixtures(&["no-such-rule/bad.sql"], &[]),
        7,
    );
    // Nothing to report: one line that says so.
    let dir = temp_dir("text_views_clean_");
    std::fs::write(
        dir.path().join("clean.sql"),
        "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);\n",
    )
    .expect("the file is writable");
    snapshot(
        "lint_clean",
        &run_in(
            dir.path(),
            "validate",
            &["lint", "clean.sql", "--format", "text"],
            &[],
        ),
        0,
    );
}

/// The underline sits under exactly the offending text: the `^` run starts under the
/// finding's column and ends where its statement does (or its line), in a file whose
/// offending text is not at the start of its line.
#[test]
fn lint_underlines_the_offending_text_of_the_source_line() {
    let dir = temp_dir("text_views_lint_");
    let sql = "SET lock_timeout = '2s';\n-- the note column\nALTER TABLE orders ADD COLUMN note text NOT NULL; SELECT 1;\n    CREATE INDEX orders_note ON orders (note);\n";
    std::fs::write(dir.path().join("migration.sql"), sql).expect("the file is writable");
    let out = run_in(
        dir.path(),
        "validate",
        &["lint", "migration.sql", "--format", "text"],
        &[],
    );
    out.assert_code(1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let underlined = |rule: &str| -> (String, String) {
        let title = lines
            .iter()
            .position(|l| l.starts_with(&format!("error[{rule}]")))
            .unwrap_or_else(|| panic!("no {rule} finding\n{out}"));
        let arrow = lines[title + 1];
        let (line_no, column) = arrow
            .trim_start()
            .strip_prefix("--> migration.sql:")
            .and_then(|at| at.split_once(':'))
            .unwrap_or_else(|| panic!("no --> file:line:col under the title\n{out}"));
        let column: usize = column.parse().expect("a column");
        // `N | source`, then ` | ^^^^ label`.
        let source_at = lines[title + 1..]
            .iter()
            .position(|l| l.starts_with(&format!("{line_no} | ")))
            .map(|i| title + 1 + i)
            .unwrap_or_else(|| panic!("no source line {line_no}\n{out}"));
        let (source, marks) = (lines[source_at], lines[source_at + 1]);
        let gutter = format!("{line_no} | ").len();
        let start = marks.find('^').expect("a ^ underline");
        let end = start + marks[start..].chars().take_while(|c| *c == '^').count();
        assert_eq!(
            start - gutter + 1,
            column,
            "the underline starts under the column the arrow names\n{out}"
        );
        (
            source[start..end].to_string(),
            marks[end..].trim().to_string(),
        )
    };
    assert_eq!(
        underlined("add-column-not-null-without-default"),
        (
            "NOT NULL".to_string(),
            "takes ACCESS EXCLUSIVE on orders".to_string()
        )
    );
    assert_eq!(
        underlined("create-index-not-concurrently"),
        (
            "CREATE INDEX orders_note ON orders (note)".to_string(),
            "takes SHARE on orders".to_string()
        )
    );
    // The JSON carries the same span for every other reader.
    let json = run_in(dir.path(), "validate", &["lint", "migration.sql"], &[]);
    let findings = json.json()["result"]["findings"].clone();
    let index = findings
        .as_array()
        .and_then(|f| {
            f.iter()
                .find(|f| f["rule"] == "create-index-not-concurrently")
        })
        .unwrap_or_else(|| panic!("{json}"))
        .clone();
    assert_eq!(index["line"], 4, "{json}");
    assert_eq!(index["column"], 5, "{json}");
    assert_eq!(index["span"]["end_line"], 4, "{json}");
    assert_eq!(index["span"]["end_column"], 46, "{json}");
    assert_eq!(
        index["span"]["source"], "    CREATE INDEX orders_note ON orders (note);",
        "{json}"
    );
}

#[test]
fn lint_is_coloured_on_a_terminal_only_and_never_with_no_color() {
    let fixtures = pgward_tests::fixtures_dir().join("lint/rules");
    let args = [
        "lint",
        "create-index-not-concurrently/bad.sql",
        "--format",
        "text",
        "--quiet",
    ];
    let (_, coloured) = on_a_terminal(Some(&fixtures), "validate", &args, &[]);
    assert!(
        coloured.contains("error[create-index-not-concurrently]")
            || coloured.contains("create-index-not-concurrently"),
        "{coloured}"
    );
    assert!(
        coloured.contains("\u{1b}["),
        "a terminal gets colour\n{coloured:?}"
    );
    let (_, plain) = on_a_terminal(Some(&fixtures), "validate", &args, &[("NO_COLOR", "1")]);
    assert!(
        plain.contains("error[create-index-not-concurrently]: index"),
        "{plain}"
    );
    assert!(!plain.contains('\u{1b}'), "NO_COLOR: no escapes\n{plain:?}");
    // An empty NO_COLOR does not count (no-color.org).
    let (_, empty) = on_a_terminal(Some(&fixtures), "validate", &args, &[("NO_COLOR", "")]);
    assert!(empty.contains("\u{1b}["), "{empty:?}");
    let piped = lint_fixtures(&args[1..2], &[]);
    piped.assert_code(1);
    assert!(
        piped
            .stdout
            .contains("error[create-index-not-concurrently]: index"),
        "{piped}"
    );
    assert!(
        !piped.stdout.contains('\u{1b}'),
        "piped: no escapes\n{piped}"
    );
}

#[test]
fn schema_clean_and_with_findings() {
    let db = cluster().create_database();
    db.psql("CREATE TABLE users (id bigint PRIMARY KEY, email text);");
    snapshot(
        "schema_clean",
        &validate(&db, &["schema", "--dir", "/nonexistent"]),
        0,
    );
    db.psql(
        "CREATE TABLE events (payload text);
         CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint);
         ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users NOT VALID;",
    );
    snapshot(
        "schema_findings",
        &validate(&db, &["schema", "--dir", "/nonexistent", "--strict"]),
        3,
    );
}

#[test]
fn data_clean_and_violated() {
    let with_rows = |rows: &str| {
        let db = cluster().create_database();
        db.psql(&format!(
            "CREATE TABLE prices (id int PRIMARY KEY, price int);
             INSERT INTO prices VALUES {rows};
             ALTER TABLE prices ADD CONSTRAINT prices_positive CHECK (price > 0) NOT VALID;"
        ));
        db
    };
    let clean = with_rows("(1, 10)");
    snapshot("data_clean", &validate(&clean, &["data"]), 0);
    let violated = with_rows("(1, 10), (2, -5)");
    snapshot("data_violated", &validate(&violated, &["data"]), 1);
}

#[test]
fn preflight_passing_and_failing() {
    let db = cluster().create_database();
    let m = Migrations::new(&[(
        "20260101000000_init",
        "SET lock_timeout = '2s';\nCREATE TABLE account (id bigint PRIMARY KEY);\n",
    )]);
    snapshot(
        "preflight_without_backups",
        &validate(&db, &["preflight", "--dir", m.arg()]),
        0,
    );
    m.add(
        "20260102000000_index",
        "CREATE INDEX account_id ON account (id);\n",
    );
    deploy_dir(&db, m.path(), "20260101000000_init");
    snapshot(
        "preflight_lint_fails",
        &validate(&db, &["preflight", "--dir", m.arg()]),
        1,
    );
}

#[test]
fn drift_clean_and_drifted() {
    let db = cluster().create_database();
    let m = Migrations::new(&[(
        "20260101000000_init",
        "CREATE TABLE account (id bigint PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);\n",
    )]);
    deploy_dir(&db, m.path(), "20260101000000_init");
    snapshot(
        "drift_clean",
        &validate(&db, &["drift", "--dir", m.arg()]),
        0,
    );
    db.psql("ALTER TABLE account ADD COLUMN note text; CREATE INDEX account_balance ON account (balance);");
    snapshot(
        "drift_drifted",
        &validate(&db, &["drift", "--dir", m.arg()]),
        3,
    );
}

/// A replay that fails in the shadow (the migration needs a table made by hand) stops
/// drift before any comparison: the view says so instead of giving a verdict.
#[test]
fn drift_stopped_by_a_failing_replay() {
    let db = cluster().create_database();
    // Outside `public`, which deploy wants empty without a history (P3005).
    db.psql("CREATE SCHEMA other; CREATE TABLE other.handmade (id int);");
    let m = Migrations::new(&[(
        "20260101000000_index",
        "CREATE INDEX handmade_id ON other.handmade (id);\n",
    )]);
    deploy_dir(&db, m.path(), "20260101000000_index");
    let out = validate(&db, &["drift", "--dir", m.arg()]);
    assert!(
        out.stdout.contains("nothing was compared") && !out.stdout.contains("no drift"),
        "{out}"
    );
    snapshot("drift_replay_failed", &out, out.code);
}
