//! `pgward-validate lint --pg-version MAJOR`: the rules whose danger depends on the server's
//! major judge for the major the migrations will run on (docs/validate.md, "Versions"),
//! each tested on both sides of its version; in the default mode the major is read from
//! the database.

use std::path::{Path, PathBuf};

use pgward_tests::{cluster, fixtures_dir, path_str, run, temp_dir, write_migrations, Cluster};
use serde_json::Value;

/// `pgward-validate lint ARGS...`; returns the envelope (exit 0, or 1 when a rule found an
/// error: the result is there either way).
fn lint(args: &[&str]) -> Value {
    let mut all = vec!["lint"];
    all.extend_from_slice(args);
    let out = run("validate", &all, &[]);
    assert!(
        out.code == 0 || out.code == 1,
        "lint ran (exit 0, or 1 with errors found)\n{out}"
    );
    out.json()
}

/// The findings of `rule` in an envelope.
fn findings_of<'a>(envelope: &'a Value, rule: &str) -> Vec<&'a Value> {
    envelope["result"]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no result.findings in {envelope}"))
        .iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

/// Files in a temp folder, in order: `(name, sql)`.
fn files(dir: &Path, files: &[(&str, &str)]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|(name, sql)| {
            let path = dir.join(name);
            std::fs::write(&path, sql).expect("the file is written");
            path
        })
        .collect()
}

fn lint_files(paths: &[PathBuf], version: Option<&str>) -> Value {
    let mut args: Vec<&str> = paths.iter().map(|p| path_str(p)).collect();
    if let Some(version) = version {
        args.extend(["--pg-version", version]);
    }
    lint(&args)
}

#[test]
fn a_constant_default_rewrites_the_table_before_11_only() {
    let dir = temp_dir("lint_versions_default_");
    let paths = files(
        dir.path(),
        &[
            ("1.sql", "CREATE TABLE accounts (id bigint PRIMARY KEY);"),
            (
                "2.sql",
                "SET lock_timeout = '5s';\nALTER TABLE accounts ADD COLUMN active boolean NOT NULL DEFAULT true;",
            ),
        ],
    );
    let on_10 = lint_files(&paths, Some("10"));
    let found = findings_of(&on_10, "add-column-volatile-default");
    assert_eq!(found.len(), 1, "{on_10}");
    assert!(
        found[0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("before PostgreSQL 11")),
        "{on_10}"
    );
    assert_eq!(on_10["result"]["pg_version"], 10, "{on_10}");
    for version in [Some("11"), Some("18"), None] {
        let envelope = lint_files(&paths, version);
        assert_eq!(
            findings_of(&envelope, "add-column-volatile-default").len(),
            0,
            "{version:?}: {envelope}"
        );
    }
    // A volatile default rewrites on every major.
    let volatile = files(
        dir.path(),
        &[(
            "3.sql",
            "SET lock_timeout = '5s';\nALTER TABLE accounts ADD COLUMN token uuid DEFAULT gen_random_uuid();",
        )],
    );
    let paths = [paths[0].clone(), volatile[0].clone()];
    for version in ["10", "14", "18"] {
        let envelope = lint_files(&paths, Some(version));
        assert_eq!(
            findings_of(&envelope, "add-column-volatile-default").len(),
            1,
            "{version}: {envelope}"
        );
    }
}

/// The set-not-null fixture: `before*.sql`, then `name`.
fn set_not_null_fixture(name: &str) -> Vec<PathBuf> {
    let dir = fixtures_dir().join("lint/rules/set-not-null");
    vec![
        dir.join("before1.sql"),
        dir.join("before2.sql"),
        dir.join(name),
    ]
}

#[test]
fn set_not_null_after_a_valid_check_still_scans_before_12_only() {
    let good = set_not_null_fixture("good.sql");
    let on_11 = lint_files(&good, Some("11"));
    let found = findings_of(&on_11, "set-not-null");
    assert_eq!(found.len(), 1, "{on_11}");
    assert!(
        found[0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("before PostgreSQL 12")),
        "{on_11}"
    );
    for version in [Some("12"), Some("14"), None] {
        let envelope = lint_files(&good, version);
        assert_eq!(
            findings_of(&envelope, "set-not-null").len(),
            0,
            "{version:?}: {envelope}"
        );
    }
}

/// The set-not-null fix lint gives for `bad.sql` on `version`.
fn set_not_null_fix(version: &str) -> String {
    let envelope = lint_files(&set_not_null_fixture("bad.sql"), Some(version));
    findings_of(&envelope, "set-not-null")[0]["fix"]
        .as_str()
        .expect("a fix")
        .to_string()
}

/// The statements of a fix: its `backquoted` parts.
fn statements_of(fix: &str) -> String {
    fix.split('`')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn set_not_null_fix_is_a_not_valid_not_null_constraint_from_18() {
    let bad = set_not_null_fixture("bad.sql");
    let fix_18 = set_not_null_fix("18");
    assert!(
        fix_18.contains("ADD CONSTRAINT email_not_null NOT NULL email NOT VALID"),
        "{fix_18}"
    );
    for version in [Some("17"), None] {
        let envelope = lint_files(&bad, version);
        let fix = findings_of(&envelope, "set-not-null")[0]["fix"]
            .as_str()
            .expect("a fix")
            .to_string();
        assert!(
            fix.contains("CHECK (email IS NOT NULL) NOT VALID") && !fix.contains("NOT NULL email"),
            "{version:?}: {fix}"
        );
    }
}

/// Runs the statements of lint's fix for 18 on `cluster`; returns psql's error, if any,
/// and whether the column ended NOT NULL.
fn apply_18_fix(cluster: &Cluster) -> (Result<String, String>, bool) {
    let db = cluster.create_database();
    db.psql("CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 1000) g;");
    let statements = statements_of(&set_not_null_fix("18"));
    assert_eq!(statements.lines().count(), 2, "{statements}");
    let result = cluster.try_psql(&cluster.socket_conninfo(&db.name), &statements);
    let not_null = db.query_one_string(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email'",
    ) == "t";
    (result, not_null)
}

#[test]
fn the_18_fix_makes_the_column_not_null_on_18_and_is_not_17_syntax() {
    let (on_18, not_null) = apply_18_fix(&Cluster::start_major(18));
    on_18.unwrap_or_else(|e| panic!("the fix runs on 18: {e}"));
    assert!(
        not_null,
        "the validated NOT NULL constraint makes the column NOT NULL"
    );
    let (on_17, not_null) = apply_18_fix(&Cluster::start_major(17));
    assert!(
        on_17.is_err(),
        "17 has no NOT NULL ... NOT VALID: {on_17:?}"
    );
    assert!(!not_null);
}

#[test]
fn the_default_mode_judges_for_the_databases_major_unless_told() {
    let db = cluster().create_database();
    let dir = temp_dir("lint_versions_pending_");
    write_migrations(
        dir.path(),
        &[(
            "20240101000000_init",
            "CREATE TABLE accounts (id bigint PRIMARY KEY);",
        )],
    );
    let url = db.url();
    let args = [
        "--dir",
        path_str(dir.path()),
        "--database-url",
        url.as_str(),
    ];
    let envelope = lint(&args);
    assert_eq!(
        envelope["result"]["pg_version"],
        cluster().major,
        "read from the database: {envelope}"
    );
    let mut told = args.to_vec();
    told.extend(["--pg-version", "12"]);
    let envelope = lint(&told);
    assert_eq!(envelope["result"]["pg_version"], 12, "{envelope}");
    // Without a database and without the flag: not known, the current majors' rules.
    let envelope = lint(&["--all", "--dir", path_str(dir.path())]);
    assert_eq!(envelope["result"]["pg_version"], Value::Null, "{envelope}");
}

#[test]
fn a_version_that_is_no_postgresql_major_is_a_usage_error() {
    let dir = temp_dir("lint_versions_bad_");
    let paths = files(dir.path(), &[("1.sql", "SELECT 1;")]);
    for bad in ["8", "abc", "150000"] {
        let out = run(
            "validate",
            &["lint", path_str(&paths[0]), "--pg-version", bad],
            &[],
        );
        out.assert_code(2);
        assert!(out.stderr.contains("--pg-version"), "{bad}: {out}");
    }
}
