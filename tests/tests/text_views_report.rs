//! The `--format text` views of every pgward-report command — `migrations`, `backups`,
//! `health`, `audit`, `settings`, `app-health`, `notify`, and `render` (a saved document
//! keeps its own command's view) — success and failure, as insta snapshots of the real
//! binary's stdout (piped: no colour). Only what varies from run to run is filtered
//! ([`pgward_tests::TEXT_FILTERS`]); the alarms-first order is asserted on the text as
//! printed.

use std::path::Path;
use std::time::{Duration, Instant};

use pgward_tests::{
    cluster, path_str, redact_temp_paths, run, run_in, temp_dir, text_view, webhook,
    write_migrations, Output, TestDb, TEXT_FILTERS,
};
use serde_json::{json, Value};

/// A URL no server listens on.
const NOWHERE: &str = "postgresql://pgward@127.0.0.1:1/nowhere?connect_timeout=5";

/// Asserts `out` ended with `code`, snapshots its text view as `name` with `extra`
/// filters besides the shared ones, and returns the view as printed.
fn snapshot(name: &str, out: &Output, code: i32, extra: &[(&str, &str)]) -> String {
    out.assert_code(code);
    let mut filters = TEXT_FILTERS.to_vec();
    filters.extend_from_slice(extra);
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!(name, text_view(out));
    });
    redact_temp_paths(&out.stdout)
}

/// `pgward-report ARGS... --format text` (with the cluster's PostgreSQL tools).
fn report(args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--format", "text"]);
    run("report", &all, &cluster().pg_tools_env())
}

/// Asserts the lines starting with `!` (the alarms) come first, before the title.
fn assert_alarms_first(view: &str, alarms: usize) {
    let lines: Vec<&str> = view.lines().collect();
    assert!(lines.len() > alarms, "{view}");
    for line in &lines[..alarms] {
        assert!(line.starts_with("! "), "an alarm is not first:\n{view}");
    }
    assert!(
        lines[alarms..].iter().all(|l| !l.starts_with("! ")),
        "an alarm after the first lines:\n{view}"
    );
}

/// A database whose second migration failed (the third is pending); returns its folder.
fn failed_migration(db: &TestDb, dir: &Path) -> String {
    let migrations = dir.join("migrations");
    write_migrations(
        &migrations,
        &[
            (
                "20240101000000_init",
                "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);\n",
            ),
            (
                "20240102000000_add_age",
                "ALTER TABLE users ADD COLUMN age int;\nALTER TABLE nope ADD COLUMN x int;\n",
            ),
            ("20240103000000_later", "CREATE TABLE later (id int);\n"),
        ],
    );
    let url = db.url();
    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&migrations),
            "--database-url",
            &url,
        ],
        &[],
    );
    out.assert_code(1);
    path_str(&migrations).to_string()
}

#[test]
fn migrations_puts_the_failed_migration_first_and_render_keeps_its_view() {
    let db = cluster().create_database();
    let dir = temp_dir("text_report_migrations_");
    let migrations = failed_migration(&db, dir.path());
    let url = db.url();
    let args = ["migrations", "--dir", &migrations, "--database-url", &url];

    let view = snapshot("migrations", &report(&args), 0, &[]);
    assert_alarms_first(&view, 1);
    assert!(
        view.starts_with("! 20240102000000_add_age failed: "),
        "{view}"
    );
    assert!(
        view.contains("pgward-migrate resolve --rolled-back 20240102000000_add_age"),
        "{view}"
    );

    // The same document saved as JSON and rendered later reads the same.
    let json = run("report", &args, &[]);
    json.assert_code(0);
    let saved = dir.path().join("migrations.json");
    std::fs::write(&saved, &json.stdout).expect("the saved document");
    let rendered = report(&["render", path_str(&saved)]);
    rendered.assert_code(0);
    let direct = report(&args);
    assert_eq!(
        rendered.stdout, direct.stdout,
        "render keeps the command's view"
    );

    snapshot(
        "migrations_failed",
        &report(&[
            "migrations",
            "--dir",
            &migrations,
            "--database-url",
            NOWHERE,
        ]),
        4,
        &[],
    );
    let missing = dir.path().join("missing.json");
    let view = snapshot(
        "render_failed",
        &report(&["render", path_str(&missing)]),
        2,
        &[],
    );
    assert!(
        view.starts_with("report render: FAILED (exit 2)\n"),
        "{view}"
    );
}

#[test]
fn backups_alarms_when_the_newest_is_too_old_or_there_is_none() {
    let db = cluster().create_database();
    db.psql("CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 100);");
    let dir = temp_dir("text_report_backups_");
    let folder = path_str(dir.path()).to_string();
    let url = db.url();

    let view = snapshot(
        "backups_none",
        &report(&["backups", "--from", &folder, "--database-url", &url]),
        3,
        &[],
    );
    assert!(view.starts_with("! no backup in "), "{view}");
    assert_alarms_first(&view, 1);

    run(
        "backup",
        &["--to", &folder, "--database-url", &url],
        &cluster().pg_tools_env(),
    )
    .assert_code(0);
    let view = snapshot(
        "backups",
        &report(&["backups", "--from", &folder, "--database-url", &url]),
        0,
        &[],
    );
    // Not verified yet: that is the alarm.
    assert!(
        view.starts_with("! no backup has been verified\n"),
        "{view}"
    );
    assert_alarms_first(&view, 1);

    std::thread::sleep(Duration::from_millis(1100));
    let view = snapshot(
        "backups_too_old",
        &report(&[
            "backups",
            "--from",
            &folder,
            "--database-url",
            &url,
            "--max-age",
            "1s",
        ]),
        3,
        &[],
    );
    assert!(view.starts_with("! the newest backup is "), "{view}");
    assert!(
        view.contains(&format!(
            "pgward-backup --to {}",
            redact_temp_paths(&folder)
        )),
        "{view}"
    );
    assert_alarms_first(&view, 2);

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").expect("a file");
    let out = report(&["backups", "--from", path_str(&file), "--database-url", &url]);
    let view = snapshot("backups_failed", &out, out.code, &[]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        view.contains("error[") && view.contains("\n  = hint: "),
        "{view}"
    );
}

/// `health`'s JSON with every number the statistics views make vary set to a fixed value,
/// so that its view can be snapshotted: the shape is the binary's own.
fn steady(mut health: Value) -> Value {
    let result = &mut health["result"];
    result["server_version"] = json!("17.0");
    result["database_bytes"] = json!(7_654_321);
    result["cache_hit_ratio"] = json!(0.987);
    result["max_connections"] = json!(100);
    result["connections"] = json!([{"state": "active", "count": 2}, {"state": "idle", "count": 3}]);
    result["totals"]["live_rows"] = json!(12_000);
    result["totals"]["dead_rows"] = json!(40);
    if let Some(tables) = result["tables"].as_array_mut() {
        for (i, t) in tables.iter_mut().enumerate() {
            t["live_rows"] = json!(4000 - 1000 * i as i64);
            t["dead_rows"] = json!(10 * i);
            t["dead_ratio"] = json!(0.0025 * i as f64);
            t["seq_scan"] = json!(i + 1);
        }
    }
    if let Some(indexes) = result["unused_indexes"].as_array_mut() {
        for i in indexes.iter_mut() {
            i["idx_scan"] = json!(0);
        }
    }
    result["maintenance_due"] = json!([{
        "schema": "public", "table": "orders", "vacuum": true, "analyze": false,
        "dead_rows": 1234, "modified_since_analyze": 56
    }]);
    health
}

#[test]
fn health_shows_its_alarms_first_and_its_tables_aligned() {
    let db = cluster().create_database();
    db.psql(
        "CREATE TABLE orders (id int PRIMARY KEY, note text);
         CREATE INDEX orders_note ON orders (note);
         INSERT INTO orders SELECT i, 'n' || i FROM generate_series(1, 3000) i;
         CREATE TABLE users (id int PRIMARY KEY);
         INSERT INTO users SELECT generate_series(1, 1000);
         CREATE TABLE tags (id int PRIMARY KEY);",
    );
    let url = db.url();

    // A real lock queue: the waiting session is the alarm, before the title.
    let mut holder = db.client();
    holder
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;")
        .expect("the lock is taken");
    let mut waiter = db.client();
    let waiting = std::thread::spawn(move || {
        waiter
            .batch_execute("SET application_name = 'text-view-waiter'; SELECT count(*) FROM users;")
            .expect("the waiter gets its answer once the lock is gone");
    });
    let started = Instant::now();
    while db.query_one_string(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'text-view-waiter' AND wait_event_type = 'Lock'",
    ) != "1"
    {
        assert!(started.elapsed() < Duration::from_secs(60), "the waiter never waited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = report(&["health", "--database-url", &url]);
    out.assert_code(0);
    let view = redact_temp_paths(&out.stdout);
    assert!(
        view.starts_with("! pid "),
        "the blocked session first:\n{view}"
    );
    assert!(view.contains("for a lock held by pid "), "{view}");
    let title = view.find("\nHealth of ").expect("the title");
    assert!(view[..title].lines().all(|l| l.starts_with("! ")), "{view}");
    holder
        .batch_execute("COMMIT")
        .expect("the lock is released");
    waiting.join().expect("the waiter ends");

    // The view of a health document, its varying numbers fixed.
    let json = run("report", &["health", "--database-url", &url], &[]);
    json.assert_code(0);
    let saved = temp_dir("text_report_health_");
    let file = saved.path().join("health.json");
    std::fs::write(&file, steady(json.json()).to_string()).expect("the document");
    let view = snapshot("health", &report(&["render", path_str(&file)]), 0, &[]);
    assert!(
        view.starts_with("! 1 table due for VACUUM or ANALYZE"),
        "{view}"
    );
    assert_alarms_first(&view, 1);
    // Numbers line up on the right: every row of "Largest tables" as wide as its header.
    let largest: Vec<&str> = view
        .split("\nLargest tables\n")
        .nth(1)
        .expect("the largest tables")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.trim_start().starts_with('─'))
        .collect();
    assert!(largest.len() >= 4, "{view}");
    let width = largest[0].chars().count();
    assert!(largest.iter().all(|l| l.chars().count() == width), "{view}");

    snapshot(
        "health_failed",
        &report(&["health", "--database-url", NOWHERE]),
        4,
        &[],
    );
}

#[test]
fn audit_settings_app_health_and_notify_have_brief_views() {
    let db = cluster().create_database();
    let dir = temp_dir("text_report_brief_");
    let log = dir.path().join("audit.jsonl");
    let migrations = dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[("20240101000000_init", "CREATE TABLE a (id int);\n")],
    );
    let url = db.url();
    for args in [
        vec!["deploy", "--dir", path_str(&migrations)],
        vec!["deploy", "--dir", path_str(&dir.path().join("nope"))],
    ] {
        let mut args = args.clone();
        args.extend(["--database-url", &url, "--audit-log", path_str(&log)]);
        run("migrate", &args, &[]);
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let user_filter = format!(r"\b{}\b", regex::escape(&user));
    let view = snapshot(
        "audit",
        &report(&["audit", "--audit-log", path_str(&log)]),
        0,
        &[(user_filter.as_str(), "[USER]")],
    );
    assert!(view.contains("migrate deploy"), "{view}");
    let view = snapshot(
        "audit_missing",
        &report(&[
            "audit",
            "--audit-log",
            path_str(&dir.path().join("none.jsonl")),
        ]),
        0,
        &[],
    );
    assert!(view.contains("\nwarning[AUDIT_LOG_MISSING]: "), "{view}");
    // A folder is no audit log.
    let out = report(&["audit", "--audit-log", path_str(dir.path())]);
    let view = snapshot("audit_failed", &out, out.code, &[]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        view.contains("error[") && view.contains("\n  = hint: "),
        "{view}"
    );

    std::fs::write(
        dir.path().join("pgward.toml"),
        "[env.staging]\n\
         database_url_env = \"STAGING_DATABASE_URL\"\n\
         backups = \"/var/backups/pgward/staging\"\n\
         pre_deploy = \"./bin/drain\"\n\
         health_url = \"http://127.0.0.1:8080/healthz\"\n\
         on_unhealthy = \"rollback\"\n\
         notify_on = \"failure\"\n",
    )
    .expect("pgward.toml");
    let text_in = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--format", "text"]);
        run_in(dir.path(), "report", &all, &[])
    };
    let view = snapshot(
        "settings",
        &text_in(&["settings", "--env", "staging"]),
        0,
        &[],
    );
    assert!(view.contains("rollback"), "{view}");
    snapshot(
        "settings_failed",
        &text_in(&["settings", "--env", "nosuch"]),
        2,
        &[],
    );

    let (app, _requests) = webhook("/healthz");
    let view = snapshot(
        "app_health",
        &report(&["app-health", "--url", &app]),
        0,
        &[],
    );
    assert!(view.contains(" is healthy\n"), "{view}");
    let view = snapshot(
        "app_health_failed",
        &report(&[
            "app-health",
            "--url",
            "http://127.0.0.1:1/healthz",
            "--retries",
            "1",
        ]),
        1,
        &[(r"(?m)^(  1  ).*$", "$1[CONNECTION ERROR]")],
    );
    assert!(
        view.contains("NOT healthy") && view.contains("error[APP_UNHEALTHY]"),
        "{view}"
    );

    let run_json = dir.path().join("run.json");
    std::fs::write(
        &run_json,
        json!({"tool": "migrate.sh", "command": "deploy", "ok": false, "exit_code": 1,
               "duration_ms": 1200, "result": null, "warnings": [],
               "error": {"code": "MIGRATION_FAILED", "message": "it failed", "hint": "fix it"}})
        .to_string(),
    )
    .expect("run.json");
    snapshot(
        "notify_unset",
        &report(&["notify", path_str(&run_json)]),
        0,
        &[],
    );
    let (hook, requests) = webhook("/hook");
    let out = run(
        "report",
        &["notify", path_str(&run_json), "--format", "text"],
        &[("PGWARD_NOTIFY_URL", hook.as_str())],
    );
    let view = snapshot("notify", &out, 0, &[]);
    assert!(
        view.starts_with("Notification sent to http://[HOST]")
            || view.starts_with("Notification sent to http://127.0.0.1:"),
        "{view}"
    );
    requests
        .recv_timeout(Duration::from_secs(60))
        .expect("the webhook got the notification");
    snapshot(
        "notify_failed",
        &report(&["notify", path_str(&dir.path().join("none.json"))]),
        7,
        &[],
    );
}
