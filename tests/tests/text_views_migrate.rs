//! `--format text` of every pgward-migrate command, success and failure, as insta
//! snapshots (tests/tests/snapshots/): the real binary against a throwaway database,
//! output piped (so no colour). Only what varies from run to run is filtered: the test
//! database's name, the port, temp folders, times and durations, and the timestamp `new`
//! puts in a folder name. Under `CI=true` a missing or changed snapshot fails the test
//! (insta writes nothing there); locally `cargo insta review` (or `INSTA_UPDATE=always`)
//! accepts a reviewed change.

use std::path::Path;

use pgward_tests::{cluster, redact_temp_paths, run, temp_dir, Migrations, Output, TestDb};

const INIT: (&str, &str) = (
    "20240101000000_init",
    "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n",
);
const ORDERS: (&str, &str) = (
    "20240102000000_orders",
    "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id));\n",
);
const BROKEN: (&str, &str) = (
    "20240103000000_broken",
    "ALTER TABLE orders ADD COLUMN note text;\nALTER TABLE order_items ADD COLUMN note text;\n",
);

/// The filters for what varies between runs (applied after temp paths are redacted).
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\bt_\d+_\d+\b", "[db]");
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]");
    settings.add_filter(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "[time]");
    // A duration's width varies, and so does the padding of its column after it.
    settings.add_filter(r"\b\d+(\.\d+)? (ms|s|min)\b +", "[duration] ");
    settings.add_filter(r"\b\d+(\.\d+)? (ms|s|min)\b", "[duration]");
    settings.add_filter(r"pid \d+", "pid [pid]");
    settings
}

/// Asserts the snapshot `name` of `out`'s stdout, after checking its exit code.
fn snapshot(name: &str, out: &Output, code: i32) {
    out.assert_code(code);
    assert!(
        !out.stdout.contains('\u{1b}'),
        "piped output has no colour\n{out}"
    );
    let text = redact_temp_paths(&out.stdout);
    settings().bind(|| insta::assert_snapshot!(name, text));
}

fn migrate(db: &TestDb, command: &str, dir: &str, extra: &[&str]) -> Output {
    let url = db.url();
    let mut args = vec![
        command,
        "--dir",
        dir,
        "--database-url",
        &url,
        "--format",
        "text",
    ];
    args.extend_from_slice(extra);
    run("migrate", &args, &[])
}

#[test]
fn status_pending_up_to_date_and_edited() {
    let db = cluster().create_database();
    let m = Migrations::new(&[INIT, ORDERS]);
    snapshot("status_pending", &migrate(&db, "status", m.arg(), &[]), 3);
    migrate(&db, "deploy", m.arg(), &[]).assert_code(0);
    snapshot(
        "status_up_to_date",
        &migrate(&db, "status", m.arg(), &[]),
        0,
    );
    std::fs::write(
        m.path().join(ORDERS.0).join("migration.sql"),
        "CREATE TABLE orders (id bigint PRIMARY KEY);\n",
    )
    .expect("the migration is writable");
    m.add("20240104000000_later", "CREATE TABLE later (id int);\n");
    snapshot("status_edited", &migrate(&db, "status", m.arg(), &[]), 5);
}

#[test]
fn deploy_failure_then_status_deploy_and_resolve_of_the_failed_migration() {
    let db = cluster().create_database();
    let m = Migrations::new(&[INIT, ORDERS, BROKEN]);
    snapshot("deploy_failed", &migrate(&db, "deploy", m.arg(), &[]), 1);
    let status = migrate(&db, "status", m.arg(), &[]);
    snapshot("status_failed", &status, 5);
    // The resolve command the view gives is the one to run, word for word.
    let line = status
        .stdout
        .lines()
        .find_map(|l| l.split_once(": pgward-migrate ").map(|(_, c)| c))
        .expect("status names the resolve command");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words,
        ["resolve", "--rolled-back", BROKEN.0, "--dir", m.arg()],
        "{status}"
    );
    snapshot(
        "deploy_refused_by_a_failed_migration",
        &migrate(&db, "deploy", m.arg(), &[]),
        5,
    );
    let url = db.url();
    let mut args = words.clone();
    args.extend(["--database-url", &url, "--format", "text"]);
    snapshot("resolve", &run("migrate", &args, &[]), 0);
    snapshot(
        "resolve_not_failed",
        &migrate(&db, "resolve", m.arg(), &["--rolled-back", INIT.0]),
        1,
    );
}

#[test]
fn deploy_success_dry_run_and_trace_with_a_lock_over_budget() {
    let db = cluster().create_database();
    let m = Migrations::new(&[INIT]);
    snapshot(
        "deploy_dry_run",
        &migrate(&db, "deploy", m.arg(), &["--dry-run"]),
        0,
    );
    snapshot("deploy", &migrate(&db, "deploy", m.arg(), &[]), 0);
    snapshot(
        "deploy_nothing_to_apply",
        &migrate(&db, "deploy", m.arg(), &[]),
        0,
    );
    // ACCESS EXCLUSIVE on users, held through a 50 ms sleep: well over a 1 ms budget.
    m.add(
        "20240105000000_slow",
        "ALTER TABLE users ADD COLUMN nickname text;\nSELECT pg_sleep(0.05);\n",
    );
    snapshot(
        "deploy_trace_over_budget",
        &migrate(&db, "deploy", m.arg(), &["--trace", "--max-lock", "1ms"]),
        3,
    );
}

#[test]
fn rollback_success_and_refusal_without_down_sql() {
    let db = cluster().create_database();
    let m = Migrations::new(&[INIT]);
    m.add_with_down("20240102000000_orders", ORDERS.1, "DROP TABLE orders;\n");
    migrate(&db, "deploy", m.arg(), &[]).assert_code(0);
    snapshot(
        "rollback_dry_run",
        &migrate(&db, "rollback", m.arg(), &["--dry-run"]),
        0,
    );
    snapshot("rollback", &migrate(&db, "rollback", m.arg(), &[]), 0);
    // A down.sql that fails: nothing of it is kept and the migration stays applied.
    migrate(&db, "deploy", m.arg(), &[]).assert_code(0);
    std::fs::write(
        m.path().join("20240102000000_orders/down.sql"),
        "DROP TABLE orders;\nDROP TABLE no_such_table;\n",
    )
    .expect("down.sql is writable");
    snapshot(
        "rollback_failed",
        &migrate(&db, "rollback", m.arg(), &[]),
        1,
    );
    assert!(
        db.relation_exists("orders"),
        "the failed down.sql left the table"
    );
    snapshot(
        "rollback_refused_without_down_sql",
        &migrate(&db, "rollback", m.arg(), &[]),
        1,
    );
}

#[test]
fn new_and_seed() {
    let db = cluster().create_database();
    let dir = temp_dir("text_views_new_");
    let dir_arg = pgward_tests::path_str(dir.path());
    let out = migrate(&db, "new", dir_arg, &["add_invoices"]);
    out.assert_code(0);
    let mut settings = settings();
    settings.add_filter(r"\b\d{14}_add_invoices", "[timestamp]_add_invoices");
    settings.bind(|| snapshot("new", &out, 0));
    // A folder that is a file: the error and its hint, nothing created.
    let file = dir.path().join("a-file");
    write(dir.path(), "a-file", "x");
    let out = migrate(&db, "new", pgward_tests::path_str(&file), &["add_invoices"]);
    settings.bind(|| snapshot("new_failed", &out, 7));
    assert_eq!(std::fs::read_to_string(&file).expect("the file"), "x");

    let seeds = temp_dir("text_views_seeds_");
    write(seeds.path(), "01_users.sql", INIT.1);
    write(
        seeds.path(),
        "02_index.sql",
        "CREATE INDEX CONCURRENTLY users_email ON users (email);\n",
    );
    let seeds_arg = pgward_tests::path_str(seeds.path());
    snapshot("seed", &migrate(&db, "seed", seeds_arg, &[]), 0);
    snapshot("seed_failed", &migrate(&db, "seed", seeds_arg, &[]), 1);
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("the file is writable");
}

/// Failures before any result: the error and its hint are the whole view. (A flag clap
/// rejects prints the JSON envelope whatever `--format` says: the format is not parsed.)
#[test]
fn errors_without_a_result() {
    let db = cluster().create_database();
    let m = Migrations::new(&[INIT]);
    let wrong = db
        .url()
        .replace(pgward_tests::SUPERUSER_PASSWORD, "wrong-password");
    assert_ne!(wrong, db.url());
    snapshot(
        "status_wrong_password",
        &run(
            "migrate",
            &[
                "status",
                "--dir",
                m.arg(),
                "--database-url",
                &wrong,
                "--format",
                "text",
            ],
            &[],
        ),
        4,
    );
    snapshot(
        "status_missing_folder",
        &migrate(&db, "status", "/nonexistent/pgward/migrations", &[]),
        2,
    );
}

#[test]
fn status_with_a_migration_missing_locally_and_the_lock_held() {
    let db = cluster().create_database();
    let m = Migrations::new(&[INIT, ORDERS]);
    migrate(&db, "deploy", m.arg(), &[]).assert_code(0);
    std::fs::remove_dir_all(m.path().join(ORDERS.0)).expect("the folder is removable");
    let mut holder = db.client();
    holder
        .batch_execute(&format!(
            "SELECT pg_advisory_lock({})",
            pgward_shared::migrations::history::PRISMA_LOCK_KEY
        ))
        .expect("the lock is free");
    snapshot(
        "status_missing_locally_lock_held",
        &migrate(&db, "status", m.arg(), &[]),
        5,
    );
}

#[test]
fn deploy_to_leaves_the_rest_pending() {
    let db = cluster().create_database();
    let m = Migrations::new(&[INIT, ORDERS]);
    snapshot(
        "deploy_to",
        &migrate(&db, "deploy", m.arg(), &["--to", INIT.0]),
        0,
    );
}
