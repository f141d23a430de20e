//! End-to-end tests of pgward-report: every command in every `--format` on an empty
//! database, a database with a failed migration and a database with 300 tables; the
//! backup-age alarm (exit 3); who blocks whom; rollbacks and re-applies in the history;
//! the audit log; `render` of every binary's documents (snapshots); and the HTML report
//! opened in headless Chromium, its charts measured and a screenshot kept as an artefact.
//!
//! Every test runs the real binaries against fresh databases of the shared cluster.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgward_tests::{
    cluster, fixtures_dir, path_str, run, temp_dir, workspace_root, write_migrations, Output,
    TestDb,
};
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The report commands, each with the arguments it needs besides the database.
const COMMANDS: [&str; 5] = ["migrations", "health", "backups", "audit", "render"];

/// Every `--format` of pgward-report.
const FORMATS: [&str; 5] = ["json", "text", "markdown", "html", "prometheus"];

/// The chart ids each report command's HTML must hold.
fn charts_of(command: &str) -> &'static [&'static str] {
    match command {
        "migrations" => &["chart-migration-durations"],
        "health" => &["chart-largest-tables"],
        "backups" => &["chart-backup-sizes", "chart-backup-age"],
        _ => &[],
    }
}

/// `pgward-report ARGS... --database-url URL`.
fn report(args: &[&str], db: &TestDb) -> Output {
    let url = db.url();
    let mut all = args.to_vec();
    all.extend(["--database-url", url.as_str()]);
    run("report", &all, &[])
}

/// One database of the matrix, with what the reports read besides it.
struct Scenario<'c> {
    name: &'static str,
    db: TestDb<'c>,
    dir: TempDir,
}

impl Scenario<'_> {
    fn migrations_dir(&self) -> PathBuf {
        self.dir.path().join("migrations")
    }
    fn backups_dir(&self) -> PathBuf {
        self.dir.path().join("backups")
    }
    fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// The arguments of `command` for this scenario.
    fn args(&self, command: &str) -> Vec<String> {
        let mut args = vec![command.to_string()];
        match command {
            "migrations" => args.extend(["--dir".into(), path_str(&self.migrations_dir()).into()]),
            "backups" => args.extend(["--from".into(), path_str(&self.backups_dir()).into()]),
            "audit" => args.extend(["--audit-log".into(), path_str(&self.audit_log()).into()]),
            _ => {}
        }
        args
    }

    /// Runs `command` in `format`. `render` renders this scenario's migrations report.
    fn run(&self, command: &str, format: &str) -> Output {
        if command == "render" {
            let document = self.dir.path().join("migrations.json");
            if !document.exists() {
                let out = self.run("migrations", "json");
                std::fs::write(&document, &out.stdout).expect("the document can be saved");
            }
            return run(
                "report",
                &["render", path_str(&document), "--format", format],
                &[],
            );
        }
        let args = self.args(command);
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["--format", format]);
        report(&all, &self.db)
    }

    /// Takes a backup of the database, audited.
    fn backup(&self) {
        let url = self.db.url();
        let out = run(
            "backup",
            &[
                "backup",
                "--to",
                path_str(&self.backups_dir()),
                "--database-url",
                &url,
                "--audit-log",
                path_str(&self.audit_log()),
            ],
            &cluster().pg_tools_env(),
        );
        out.assert_code(0);
    }

    /// Deploys the migrations folder, audited; returns the exit code.
    fn deploy(&self) -> i32 {
        let url = self.db.url();
        run(
            "migrate",
            &[
                "deploy",
                "--dir",
                path_str(&self.migrations_dir()),
                "--database-url",
                &url,
                "--audit-log",
                path_str(&self.audit_log()),
            ],
            &[],
        )
        .code
    }
}

/// An empty database (an empty migrations folder, one backup).
fn empty_scenario() -> Scenario<'static> {
    let scenario = Scenario {
        name: "empty",
        db: cluster().create_database(),
        dir: temp_dir("report_empty_"),
    };
    write_migrations(&scenario.migrations_dir(), &[]);
    scenario.backup();
    scenario
}

/// A database whose second migration failed (the third is pending), one backup.
fn failed_scenario() -> Scenario<'static> {
    let scenario = Scenario {
        name: "failed_migration",
        db: cluster().create_database(),
        dir: temp_dir("report_failed_"),
    };
    write_migrations(
        &scenario.migrations_dir(),
        &[
            (
                "20240101000000_init",
                "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);\n\
                 INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 2000) g;\n",
            ),
            (
                "20240102000000_add_age",
                "ALTER TABLE users ADD COLUMN age int;\nALTER TABLE nope ADD COLUMN x int;\n",
            ),
            ("20240103000000_later", "CREATE TABLE later (id int);\n"),
        ],
    );
    assert_eq!(scenario.deploy(), 1, "the second migration fails");
    scenario.backup();
    scenario
}

/// A database with 300 tables of different sizes (every seventh with an extra index),
/// applied as one migration, and two backups.
fn many_tables_scenario() -> Scenario<'static> {
    let scenario = Scenario {
        name: "300_tables",
        db: cluster().create_database(),
        dir: temp_dir("report_300_"),
    };
    write_migrations(
        &scenario.migrations_dir(),
        &[(
            "20240101000000_three_hundred_tables",
            "DO $$ BEGIN FOR i IN 1..300 LOOP\n\
               EXECUTE format('CREATE TABLE t_%s (id bigserial PRIMARY KEY, payload text, n int)', i);\n\
               EXECUTE format('INSERT INTO t_%s (payload, n) SELECT repeat(''x'', %s), g FROM generate_series(1, %s) g', i, i % 50, i * 5);\n\
               IF i % 7 = 0 THEN EXECUTE format('CREATE INDEX t_%s_n ON t_%s (n)', i, i); END IF;\n\
             END LOOP; END $$;\n",
        )],
    );
    assert_eq!(scenario.deploy(), 0);
    scenario.backup();
    // Backup ids carry the second; the next one needs a second of its own.
    std::thread::sleep(Duration::from_millis(1100));
    scenario.backup();
    scenario
}

/// Checks what every output of `format` must be, whatever the command.
fn assert_format(out: &Output, command: &str, format: &str, scenario: &str) {
    let what = format!("{command} --format {format} on {scenario}");
    let shown = if command == "render" {
        "migrations"
    } else {
        command
    };
    match format {
        "json" => {
            let json = out.json();
            assert_eq!(json["tool"], "report", "{what}\n{out}");
            assert_eq!(json["command"], shown, "{what}\n{out}");
            assert_eq!(json["ok"], true, "{what}\n{out}");
        }
        // Each command's designed view (tests/tests/text_views_report.rs snapshots them).
        "text" => assert!(
            out.stdout.contains(match shown {
                "migrations" => "Migrations of schema ",
                "health" => "Health of ",
                "backups" => "Backups of ",
                _ => " in ",
            }) && !out.stdout.trim_start().starts_with('{'),
            "{what}\n{out}"
        ),
        "markdown" => assert!(
            out.stdout
                .starts_with(&format!("## pgward-report {shown}: ")),
            "{what}\n{out}"
        ),
        "html" => {
            let html = out.stdout.trim_end();
            assert!(html.starts_with("<!DOCTYPE html>"), "{what}\n{out}");
            assert!(html.ends_with("</html>"), "{what}\n{out}");
            assert!(
                html.contains("<meta name=\"viewport\""),
                "{what}: phone-ready"
            );
            assert!(html.contains("@media print"), "{what}: print CSS");
            for forbidden in [
                "<script", "<link", "src=", "url(", "@import", "http://", "https://",
            ] {
                let allowed = html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
                let found = html.matches(forbidden).count();
                assert!(
                    found == 0 || (forbidden == "http://" && found == allowed),
                    "{what}: self-contained, but it holds `{forbidden}`"
                );
            }
            for chart in charts_of(shown) {
                assert!(
                    html.contains(&format!("id=\"{chart}\"")),
                    "{what}: has {chart}"
                );
            }
        }
        "prometheus" => assert_prometheus(&out.stdout, &what),
        other => panic!("unknown format {other}"),
    }
}

/// The textfile collector's format: HELP and TYPE once per family, then samples
/// `name{label="value",...} number`.
fn assert_prometheus(text: &str, what: &str) {
    assert!(text.ends_with('\n'), "{what}: ends with a newline");
    assert!(text.contains("pgward_last_run_ok{"), "{what}\n{text}");
    let mut families = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or_default().to_string();
            assert!(!families.contains(&name), "{what}: {name} typed twice");
            assert!(rest.ends_with(" gauge"), "{what}: {line}");
            families.push(name);
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("{what}: not a sample: {line}"));
        assert!(
            value.parse::<f64>().is_ok(),
            "{what}: `{value}` is not a number: {line}"
        );
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{what}: metric name {name}"
        );
        assert_eq!(
            families.last().map(String::as_str),
            Some(name),
            "{what}: {name} follows its own TYPE line"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{what}: {line}"
            );
        }
    }
}

/// The value of the sample of `metric` (first with that name) in `text`.
fn sample(text: &str, metric: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample of {metric} in\n{text}"))
}

// ---------------------------------------------------------------------------------------
// 1. Every command, every format, three databases
// ---------------------------------------------------------------------------------------

#[test]
fn every_format_of_every_command_on_empty_failed_and_300_table_databases() {
    let scenarios = [empty_scenario(), failed_scenario(), many_tables_scenario()];
    for scenario in &scenarios {
        for command in COMMANDS {
            for format in FORMATS {
                let out = scenario.run(command, format);
                out.assert_code(0);
                assert_format(&out, command, format, scenario.name);
            }
        }
    }

    // What each database shows.
    let [empty, failed, many] = &scenarios;
    let json = |sc: &Scenario, command: &str| sc.run(command, "json").json()["result"].clone();

    let m = json(empty, "migrations");
    assert_eq!(m["totals"]["attempts"], 0, "{m}");
    assert_eq!(m["history_table"], false);
    assert_eq!(json(empty, "health")["totals"]["tables"], 0);
    assert_eq!(json(empty, "backups")["count"], 1);

    let out = failed.run("migrations", "json");
    let doc = out.json();
    let m = &doc["result"];
    assert_eq!(m["totals"]["failed"], 1, "{out}");
    assert_eq!(m["totals"]["pending"], 1, "{out}");
    assert_eq!(m["totals"]["applied"], 1, "{out}");
    let failed_row = m["migrations"]
        .as_array()
        .and_then(|ms| ms.iter().find(|x| x["name"] == "20240102000000_add_age"))
        .expect("the failed migration is listed");
    assert_eq!(failed_row["status"], "failed");
    assert!(
        failed_row["last_failure_logs"]
            .as_str()
            .is_some_and(|l| l.contains("relation \"nope\" does not exist")),
        "the failure's logs are in the report\n{out}"
    );
    let codes: Vec<&str> = doc["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert_eq!(codes, ["FAILED_MIGRATION", "PENDING_MIGRATIONS"], "{out}");
    let prom = failed.run("migrations", "prometheus").stdout;
    assert_eq!(sample(&prom, "pgward_migrations_failed"), 1.0, "{prom}");
    assert_eq!(sample(&prom, "pgward_migrations_pending"), 1.0, "{prom}");
    assert!(
        prom.contains("pgward_migration_last_duration_seconds{database=")
            && prom.contains("migration=\"20240101000000_init\"}"),
        "{prom}"
    );
    let md = failed.run("migrations", "markdown").stdout;
    assert!(md.contains("`FAILED_MIGRATION`"), "{md}");
    assert!(
        md.contains("| 20240102000000\\_add\\_age | failed |"),
        "{md}"
    );

    let h = json(many, "health");
    // 300 tables and _prisma_migrations; their primary keys and 42 more indexes.
    assert_eq!(h["totals"]["tables"], 301, "{}", h["totals"]);
    assert_eq!(h["totals"]["indexes"], 343, "{}", h["totals"]);
    assert_eq!(h["tables"].as_array().map(Vec::len), Some(50), "--limit 50");
    let sizes: Vec<u64> = h["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|t| t["total_bytes"].as_u64())
        .collect();
    assert!(
        sizes.windows(2).all(|w| w[0] >= w[1]),
        "largest first: {sizes:?}"
    );
    assert_eq!(
        h["unused_indexes"].as_array().map(Vec::len),
        Some(42),
        "the never-scanned extra indexes, not the primary keys"
    );
    let html = many.run("health", "html").stdout;
    assert!(
        html.contains("The 10 largest of 301 table(s)"),
        "the chart knows all tables"
    );
    let b = json(many, "backups");
    assert_eq!(b["count"], 2);
    assert_eq!(b["too_old"], false);
    assert!(
        b["backups"][0]["since_previous_s"].as_f64().is_some(),
        "{b}"
    );
    let text = many.run("backups", "text").stdout;
    assert!(
        text.contains("Backups of ") && !text.contains("! the newest backup is"),
        "{text}"
    );
    let audit = json(many, "audit");
    let commands: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["command"].as_str())
        .collect();
    assert_eq!(commands, ["backup", "backup", "deploy"], "newest first");
}

// ---------------------------------------------------------------------------------------
// 2. The backup-age alarm
// ---------------------------------------------------------------------------------------

#[test]
fn backups_exit_3_when_the_newest_is_older_than_max_age_or_there_is_none() {
    let dir = temp_dir("report_age_");
    let location = dir.path().join("backups");
    std::fs::create_dir_all(&location).expect("the location can be created");
    let backups = |extra: &[&str]| {
        let mut args = vec!["backups", "--from", path_str(&location)];
        args.extend_from_slice(extra);
        run("report", &args, &[])
    };

    let out = backups(&[]);
    out.assert_code(3);
    let json = out.json();
    assert_eq!(json["ok"], true, "attention, not failure\n{out}");
    assert_eq!(json["warnings"][0]["code"], "NO_BACKUPS", "{out}");
    assert_eq!(json["result"]["too_old"], true);
    let prom = backups(&["--format", "prometheus"]);
    prom.assert_code(3);
    assert_eq!(sample(&prom.stdout, "pgward_backups"), 0.0);
    assert_eq!(sample(&prom.stdout, "pgward_backup_too_old"), 1.0);
    assert!(!prom.stdout.contains("pgward_backup_newest_age_seconds"));

    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);");
    run(
        "backup",
        &[
            "backup",
            "--to",
            path_str(&location),
            "--database-url",
            &db.url(),
        ],
        &cluster().pg_tools_env(),
    )
    .assert_code(0);
    let out = backups(&["--max-age", "26h"]);
    out.assert_code(0);
    assert_eq!(out.json()["warnings"], serde_json::json!([]), "{out}");

    std::thread::sleep(Duration::from_millis(1100));
    let out = backups(&["--max-age", "1s"]);
    out.assert_code(3);
    let json = out.json();
    assert_eq!(json["warnings"][0]["code"], "BACKUP_TOO_OLD", "{out}");
    assert!(
        json["result"]["newest"]["age_s"].as_f64() > Some(1.0),
        "{out}"
    );
    let prom = backups(&["--max-age", "1s", "--format", "prometheus"]);
    prom.assert_code(3);
    assert_eq!(sample(&prom.stdout, "pgward_backup_too_old"), 1.0);
    assert_eq!(sample(&prom.stdout, "pgward_backup_max_age_seconds"), 1.0);
    assert!(sample(&prom.stdout, "pgward_backup_newest_age_seconds") > 1.0);
    assert!(sample(&prom.stdout, "pgward_backup_newest_size_bytes") > 0.0);

    // A backup whose manifest cannot be read is named, not silently skipped.
    let damaged = location.join("app-default-20200101T000000Z");
    std::fs::create_dir_all(&damaged).expect("the folder can be created");
    std::fs::write(damaged.join("manifest.json"), "{").expect("the manifest can be written");
    let out = backups(&["--max-age", "26h"]);
    out.assert_code(0);
    let warnings = out.json()["warnings"].clone();
    assert_eq!(warnings[0]["code"], "DAMAGED_BACKUPS", "{out}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("app-default-20200101T000000Z")),
        "{out}"
    );
    assert_eq!(out.json()["result"]["count"], 1, "{out}");

    let out = run("report", &["backups", "--from", "/nonexistent/pgward"], &[]);
    assert_eq!(
        out.code, 7,
        "an unreadable location is a storage error\n{out}"
    );
    let out = run("report", &["backups"], &[]);
    out.assert_code(2);
}

// ---------------------------------------------------------------------------------------
// 3. Locks and long-running queries
// ---------------------------------------------------------------------------------------

#[test]
fn health_shows_who_blocks_whom_and_long_running_transactions() {
    let db = cluster().create_database();
    db.psql("CREATE TABLE accounts (id int PRIMARY KEY, balance int); INSERT INTO accounts VALUES (1, 10);");
    let mut holder = db.client();
    holder
        .batch_execute("SET application_name = 'report-test-holder'; BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE;")
        .expect("the lock is taken");
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pid")
        .get(0);
    let mut waiter = db.client();
    let waiting = std::thread::spawn(move || {
        waiter
            .batch_execute(
                "SET application_name = 'report-test-waiter'; SELECT count(*) FROM accounts;",
            )
            .expect("the waiter gets its answer once the lock is gone");
    });
    let started = Instant::now();
    while db.query_one_string(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'report-test-waiter' AND wait_event_type = 'Lock'",
    ) != "1"
    {
        assert!(started.elapsed() < Duration::from_secs(30), "the waiter never waited");
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = report(&["health", "--long-running", "0s"], &db);
    out.assert_code(0);
    let json = out.json();
    let blocking = &json["result"]["blocking"];
    assert_eq!(blocking.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(
        blocking[0]["application_name"], "report-test-waiter",
        "{out}"
    );
    assert_eq!(blocking[0]["blocked_by"][0]["pid"], holder_pid, "{out}");
    assert_eq!(
        blocking[0]["blocked_by"][0]["state"], "idle in transaction",
        "{out}"
    );
    assert!(
        blocking[0]["query"]
            .as_str()
            .is_some_and(|q| q.contains("SELECT count(*) FROM accounts")),
        "{out}"
    );
    let long: Vec<&str> = json["result"]["long_running"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|l| l["application_name"].as_str())
        .collect();
    assert!(long.contains(&"report-test-holder"), "{out}");
    let codes: Vec<&str> = json["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert!(codes.contains(&"BLOCKED_SESSIONS"), "{out}");
    assert!(codes.contains(&"LONG_RUNNING_QUERIES"), "{out}");
    let accounts = json["result"]["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "accounts"))
        .expect("the locked table is listed");
    assert_eq!(accounts["size_estimated"], true, "{out}");
    assert!(codes.contains(&"SIZES_ESTIMATED"), "{out}");
    let prom = report(&["health", "--format", "prometheus"], &db).stdout;
    assert_eq!(
        sample(&prom, "pgward_health_blocked_sessions"),
        1.0,
        "{prom}"
    );

    holder
        .batch_execute("COMMIT")
        .expect("the lock is released");
    waiting.join().expect("the waiter finishes");
    let out = report(&["health"], &db);
    let json = out.json();
    assert_eq!(json["result"]["blocking"], serde_json::json!([]), "{out}");
    assert_eq!(
        json["result"]["tables"][0]["size_estimated"], false,
        "{out}"
    );
}

#[test]
fn health_lists_the_databases_pgward_made_and_warns_of_those_a_killed_run_left() {
    let db = cluster().create_database();
    let left = format!("pgward_restoring_{}", db.name);
    let mut admin = cluster().client("postgres");
    // The mark pgward's restore and verify --deep put on their databases (shared/src/workdb.rs).
    admin
        .batch_execute(&format!("CREATE DATABASE {left}"))
        .expect("a database");
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {left} IS \
             'pgward work in progress: restore of backup b1 into {0}, renamed to {0} once complete'",
            db.name
        ))
        .expect("a marked database");
    let entry = |json: &Value| {
        json["result"]["work_databases"]
            .as_array()
            .expect("result.work_databases")
            .iter()
            .find(|w| w["name"] == left.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{left} is listed: {json}"))
    };

    let out = report(&["health"], &db);
    out.assert_code(0);
    let json = out.json();
    let listed = entry(&json);
    assert_eq!(listed["sessions"], 0, "{out}");
    assert!(listed["bytes"].as_i64().is_some_and(|b| b > 0), "{out}");
    assert!(
        listed["what"]
            .as_str()
            .is_some_and(|w| w.starts_with("restore of backup b1 into")),
        "{out}"
    );
    assert!(
        pgward_tests::warning_codes(&json).contains(&"WORK_DATABASES_LEFT".to_string())
            && json.to_string().contains(&format!("{left} (")),
        "a leftover is warned about, with its size: {out}"
    );

    // With a session on it, the run is alive: listed, not warned about.
    let _alive = cluster().client(&left);
    let out = report(&["health"], &db);
    let json = out.json();
    assert!(
        entry(&json)["sessions"].as_i64().is_some_and(|n| n >= 1),
        "{out}"
    );
    assert!(
        !pgward_tests::warning_codes(&json).contains(&"WORK_DATABASES_LEFT".to_string()),
        "{out}"
    );
    drop(_alive);
    admin
        .batch_execute(&format!("DROP DATABASE {left} WITH (FORCE)"))
        .expect("drop it");
}

// ---------------------------------------------------------------------------------------
// 4. Rollbacks, re-applies and the slowest migrations
// ---------------------------------------------------------------------------------------

#[test]
fn migrations_report_rollbacks_reapplies_and_the_slowest() {
    let db = cluster().create_database();
    let dir = temp_dir("report_history_");
    let migrations = dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[
            ("20240101000000_init", "CREATE TABLE a (id int);\n"),
            (
                "20240102000000_slow",
                "SELECT pg_sleep(0.3);\nCREATE TABLE b (id int);\n",
            ),
            (
                "20240103000000_flaky",
                "CREATE TABLE c (id int REFERENCES missing);\n",
            ),
        ],
    );
    let url = db.url();
    let migrate = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--dir",
            path_str(&migrations),
            "--database-url",
            url.as_str(),
        ]);
        run("migrate", &all, &[])
    };
    migrate(&["deploy"]).assert_code(1);
    migrate(&["resolve", "--rolled-back", "20240103000000_flaky"]).assert_code(0);
    std::fs::write(
        migrations.join("20240103000000_flaky/migration.sql"),
        "CREATE TABLE c (id int);\n",
    )
    .expect("the fix is written");
    migrate(&["deploy"]).assert_code(0);

    let out = report(&["migrations", "--dir", path_str(&migrations)], &db);
    out.assert_code(0);
    let r = &out.json()["result"];
    assert_eq!(r["totals"]["attempts"], 4, "{out}");
    assert_eq!(r["totals"]["rolled_back_attempts"], 1, "{out}");
    assert_eq!(r["totals"]["failed"], 0, "{out}");
    assert_eq!(r["totals"]["reapplied"], 1, "{out}");
    let flaky = &r["migrations"][2];
    assert_eq!(flaky["name"], "20240103000000_flaky");
    assert_eq!(flaky["status"], "applied");
    assert_eq!(flaky["reapplied"], true);
    assert_eq!(flaky["attempts"], 2);
    assert!(
        flaky["last_failure_logs"]
            .as_str()
            .is_some_and(|l| l.contains("missing")),
        "{out}"
    );
    let outcomes: Vec<&str> = r["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes,
        ["applied", "applied", "rolled_back", "applied"],
        "{out}"
    );
    assert_eq!(r["slowest"][0]["migration"], "20240102000000_slow", "{out}");
    assert!(
        r["slowest"][0]["duration_ms"].as_u64() >= Some(300),
        "{out}"
    );
    assert_eq!(
        r["last_applied"]["migration"], "20240103000000_flaky",
        "{out}"
    );

    // Without the folder, the history alone.
    let out = report(&["migrations", "--dir", "/nonexistent/migrations"], &db);
    out.assert_code(0);
    let json = out.json();
    assert_eq!(json["warnings"][0]["code"], "NO_MIGRATIONS_DIR", "{out}");
    assert_eq!(json["result"]["totals"]["applied"], 3, "{out}");
    assert_eq!(json["result"]["totals"]["missing_locally"], 0, "{out}");
}

// ---------------------------------------------------------------------------------------
// 5. The audit log
// ---------------------------------------------------------------------------------------

#[test]
fn audit_lists_the_log_newest_first_and_skips_broken_lines() {
    let db = cluster().create_database();
    let dir = temp_dir("report_audit_");
    let log = dir.path().join("audit.jsonl");
    let migrations = dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[("20240101000000_init", "CREATE TABLE a (id int);\n")],
    );
    run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&migrations),
            "--database-url",
            &db.url(),
            "--audit-log",
            path_str(&log),
        ],
        &[],
    )
    .assert_code(0);
    run(
        "backup",
        &[
            "backup",
            "--to",
            path_str(&dir.path().join("b")),
            "--database-url",
            &db.url(),
            "--audit-log",
            path_str(&log),
        ],
        &cluster().pg_tools_env(),
    )
    .assert_code(0);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(b"{\"at\": \"2026-01-0\n"))
        .expect("a broken line is appended");

    let out = run("report", &["audit", "--audit-log", path_str(&log)], &[]);
    out.assert_code(0);
    let json = out.json();
    let entries = json["result"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{out}");
    assert_eq!(entries[0]["tool"], "backup");
    assert_eq!(entries[1]["tool"], "migrate");
    assert_eq!(entries[1]["ok"], true);
    assert!(
        entries[1]["target"]
            .as_str()
            .is_some_and(|t| t.contains("***")),
        "the password is redacted in the log and the report\n{out}"
    );
    assert!(
        !out.stdout.contains(pgward_tests::SUPERUSER_PASSWORD),
        "{out}"
    );
    assert_eq!(json["result"]["invalid_lines"], serde_json::json!([3]));
    assert_eq!(json["warnings"][0]["code"], "AUDIT_LINES_INVALID", "{out}");

    let out = run(
        "report",
        &[
            "audit", "--tool", "migrate", "--since", "1h", "--format", "text",
        ],
        &[("PGWARD_AUDIT_LOG", path_str(&log))],
    );
    out.assert_code(0);
    assert!(out.stdout.contains(" migrate deploy "), "{out}");
    assert!(!out.stdout.contains(" backup backup "), "{out}");

    let out = run(
        "report",
        &[
            "audit",
            "--audit-log",
            path_str(&dir.path().join("none.jsonl")),
        ],
        &[],
    );
    out.assert_code(0);
    assert_eq!(
        out.json()["warnings"][0]["code"],
        "AUDIT_LOG_MISSING",
        "{out}"
    );
    let out = run("report", &["audit"], &[]);
    out.assert_code(2);
    assert_eq!(out.json()["error"]["code"], "USAGE", "{out}");
}

// ---------------------------------------------------------------------------------------
// 6. render: every binary's documents
// ---------------------------------------------------------------------------------------

/// Set to rewrite the expected renders from the current renderer.
const UPDATE_SNAPSHOTS: &str = "PGWARD_UPDATE_SNAPSHOTS";

/// Every format `render` turns a document into, besides JSON.
const RENDER_FORMATS: [&str; 4] = ["text", "markdown", "prometheus", "html"];

/// `pgward-report render FILE --format F` for each format, as one snapshot text.
fn render_all(document: &Path) -> String {
    let mut snapshot = String::new();
    for format in RENDER_FORMATS {
        let out = run(
            "report",
            &["render", path_str(document), "--format", format],
            &[],
        );
        out.assert_code(0);
        assert!(out.stderr.is_empty(), "render logs nothing\n{out}");
        snapshot.push_str(&format!("=== {format} ===\n{}", out.stdout));
    }
    snapshot
}

#[test]
fn render_snapshots_of_every_binarys_documents() {
    // The documents were printed by the binaries against a real database (see
    // fixtures/report_render/README.md), with times, ports and names made fixed.
    let root = fixtures_dir().join("report_render");
    let mut documents: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("the render fixtures exist")
        .map(|e| e.expect("a readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    documents.sort();
    assert!(
        documents.len() >= 20,
        "documents of every binary: {documents:?}"
    );
    let mut tools = std::collections::BTreeSet::new();
    let mut mismatched = Vec::new();
    for document in &documents {
        let doc: Value = serde_json::from_str(
            &std::fs::read_to_string(document).expect("the document is readable"),
        )
        .expect("the document is JSON");
        tools.insert(doc["tool"].as_str().unwrap_or_default().to_string());
        let actual = render_all(document);
        let expected_path = document.with_extension("snap");
        if std::env::var_os(UPDATE_SNAPSHOTS).is_some() {
            std::fs::write(&expected_path, &actual).expect("the snapshot is writable");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            let new = document.with_extension("snap.new");
            std::fs::write(&new, &actual).expect("the new snapshot is writable");
            mismatched.push(format!(
                "{}\n  diff -u {} {}",
                document.display(),
                expected_path.display(),
                new.display()
            ));
        }
    }
    assert!(
        mismatched.is_empty(),
        "renders differ from their snapshots (rerun with {UPDATE_SNAPSHOTS}=1 to accept):\n{}",
        mismatched.join("\n")
    );
    assert_eq!(
        tools.into_iter().collect::<Vec<_>>(),
        ["backup", "migrate", "report", "restore", "validate"]
    );
}

#[test]
fn render_reads_what_every_binary_prints_today() {
    let db = cluster().create_database();
    let dir = temp_dir("report_render_live_");
    let migrations = dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[(
            "20240101000000_init",
            "CREATE TABLE users (id int);\nCREATE INDEX users_id ON users (id);\n",
        )],
    );
    let backups = dir.path().join("backups");
    let url = db.url();
    let m = path_str(&migrations);
    let b = path_str(&backups);
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "migrate",
            vec!["status", "--dir", m, "--database-url", &url],
        ),
        (
            "migrate",
            vec!["deploy", "--dir", m, "--database-url", &url],
        ),
        ("migrate", vec!["deploy", "--frobnicate"]),
        ("validate", vec!["lint", "--all", "--dir", m]),
        (
            "validate",
            vec!["schema", "--dir", m, "--database-url", &url],
        ),
        ("backup", vec!["backup", "--to", b, "--database-url", &url]),
        ("backup", vec!["list", "--from", b]),
        ("backup", vec!["verify", "latest", "--from", b]),
        ("report", vec!["backups", "--from", b]),
        ("report", vec!["health", "--database-url", &url]),
    ];
    for (tool, args) in runs {
        let out = run(tool, &args, &cluster().pg_tools_env());
        let doc = out.json();
        let file = dir.path().join(format!("{tool}-{}.json", args[0]));
        std::fs::write(&file, &out.stdout).expect("the document can be saved");
        for format in RENDER_FORMATS {
            let rendered = run(
                "report",
                &["render", path_str(&file), "--format", format],
                &[],
            );
            rendered.assert_code(0);
            let what = format!("pgward-{tool} {} rendered as {format}", args[0]);
            match format {
                // A designed view or the generic summary: words, never JSON, and a
                // failed run's error code.
                "text" => assert!(
                    !rendered.stdout.trim().is_empty()
                        && !rendered.stdout.trim_start().starts_with('{')
                        && doc["error"]["code"]
                            .as_str()
                            .is_none_or(|code| rendered.stdout.contains(code)),
                    "{what}\n{rendered}"
                ),
                "prometheus" => {
                    assert_prometheus(&rendered.stdout, &what);
                    assert_eq!(
                        sample(&rendered.stdout, "pgward_last_run_exit_code"),
                        out.code as f64,
                        "{what}"
                    );
                }
                "html" => assert!(rendered.stdout.trim_end().ends_with("</html>"), "{what}"),
                _ => assert!(rendered.stdout.starts_with("## pgward-"), "{what}"),
            }
        }
        // The same document through stdin, and back as JSON unchanged.
        let mut child = Command::new(pgward_tests::bin("report"))
            .args(["render", "-", "--format", "json"])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pgward-report starts");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(out.stdout.as_bytes())
            .expect("the document is sent");
        let echoed = child.wait_with_output().expect("pgward-report finishes");
        assert!(echoed.status.success());
        let echoed: Value = serde_json::from_slice(&echoed.stdout).expect("JSON comes back");
        assert_eq!(echoed, doc, "render --format json keeps the document");
    }

    let out = run("report", &["render", "/nonexistent.json"], &[]);
    out.assert_code(2);
    let not_pgward = dir.path().join("other.json");
    std::fs::write(&not_pgward, "{\"hello\": 1}").expect("written");
    let out = run(
        "report",
        &["render", path_str(&not_pgward), "--format", "text"],
        &[],
    );
    out.assert_code(2);
    // The text view wraps prose at 100 columns: the words, not the line breaks.
    let words = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("not a pgward document"), "{out}");
}

// ---------------------------------------------------------------------------------------
// 7. The HTML report in a real browser
// ---------------------------------------------------------------------------------------

/// Debian's Chromium (`apt-get install chromium`).
const CHROMIUM: &str = "/usr/bin/chromium";

/// A page that shows the report, unchanged, in a frame `WIDTH` pixels wide (a phone's or
/// a desktop's: headless Chromium's own window is never narrower than 500 pixels) and,
/// once it has loaded, measures in the browser every chart and the report's width, and
/// writes the numbers into the DOM for `--dump-dom`. The report itself has no script.
const PROBE_PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>body { margin: 0; } iframe { border: 0; }</style>
<script>
function measure(frame) {
  var doc = frame.contentDocument, win = frame.contentWindow;
  var out = { innerWidth: win.innerWidth, scrollWidth: doc.documentElement.scrollWidth, charts: [] };
  doc.querySelectorAll('figure.chart').forEach(function (figure) {
    var svg = figure.querySelector('svg');
    var box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0, right: 0 };
    var marks = svg ? Array.prototype.slice.call(svg.querySelectorAll('.mark')) : [];
    var painted = marks.filter(function (m) {
      var b = m.getBoundingClientRect();
      return b.width > 0 || b.height > 0;
    });
    var texts = svg ? svg.querySelectorAll('text').length : 0;
    out.charts.push({ id: figure.id, width: box.width, height: box.height, right: box.right,
                      marks: marks.length, painted: painted.length, texts: texts });
  });
  var pre = document.createElement('pre');
  pre.id = 'pgward-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}
</script></head>
<body><iframe src="REPORT" style="width: WIDTHpx; height: 1200px" onload="measure(this)"></iframe></body></html>
"#;

/// Where screenshots and pages are kept for people to look at.
fn artefacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = target.join("test-artifacts").join("report");
    std::fs::create_dir_all(&dir).expect("the artefacts folder can be created");
    dir
}

/// Runs headless Chromium on `page` with `extra` arguments; returns its stdout.
fn chromium(page: &Path, width: u32, height: u32, extra: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
    );
    let profile = temp_dir("report_chromium_");
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", path_str(profile.path())))
        .arg(format!("--window-size={width},{height}"))
        .args(extra)
        .arg(format!("file://{}", path_str(page)))
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed on {}: {}",
        page.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The probe's measurements of the report `page` shown `width` pixels wide.
fn measure(page: &Path, width: u32) -> Value {
    let name = page
        .file_name()
        .and_then(|n| n.to_str())
        .expect("the page has a name");
    let probe = page.with_file_name(format!("{name}.probe-{width}.html"));
    std::fs::write(
        &probe,
        PROBE_PAGE
            .replace("REPORT", name)
            .replace("WIDTH", &width.to_string()),
    )
    .expect("the probe page is writable");
    let dom = chromium(
        &probe,
        width.max(1280),
        1300,
        &["--allow-file-access-from-files", "--dump-dom"],
    );
    let start = dom
        .find("<pre id=\"pgward-probe\">")
        .map(|i| i + "<pre id=\"pgward-probe\">".len())
        .unwrap_or_else(|| panic!("the probe did not run on {name}:\n{dom}"));
    let end = dom[start..]
        .find("</pre>")
        .expect("the probe's output ends")
        + start;
    serde_json::from_str(&dom[start..end].replace("&quot;", "\""))
        .unwrap_or_else(|e| panic!("the probe's output is JSON ({e}): {}", &dom[start..end]))
}

/// Pixels of exactly `rgb` in a PNG screenshot.
fn count_pixels(png_path: &Path, rgb: [u8; 3]) -> (usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("the screenshot exists"),
    ));
    let mut reader = decoder.read_info().expect("the screenshot is a PNG");
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).expect("the PNG decodes");
    let channels = info.color_type.samples();
    let pixels = &buffer[..info.buffer_size()];
    let total = pixels.len() / channels;
    let matching = pixels.chunks(channels).filter(|p| p[..3] == rgb).count();
    (matching, total)
}

#[test]
fn html_reports_render_their_charts_in_headless_chromium() {
    let failed = failed_scenario();
    let many = many_tables_scenario();
    let pages = [
        ("migrations", failed.run("migrations", "html")),
        ("health", many.run("health", "html")),
        ("backups", many.run("backups", "html")),
    ];
    // The charts' colours (shared/src/render/charts.rs): applied and table data, failed.
    const BLUE: [u8; 3] = [0x25, 0x63, 0xeb];
    const RED: [u8; 3] = [0xdc, 0x26, 0x26];
    for (name, out) in &pages {
        out.assert_code(0);
        let page = artefacts_dir().join(format!("{name}.html"));
        std::fs::write(&page, &out.stdout).expect("the page is writable");

        for width in [390, 1280] {
            let probe = measure(&page, width);
            assert_eq!(
                probe["innerWidth"], width,
                "{name}: the frame is {width}px wide"
            );
            let charts = probe["charts"].as_array().expect("charts were measured");
            let ids: Vec<&str> = charts.iter().filter_map(|c| c["id"].as_str()).collect();
            assert_eq!(ids, charts_of(name), "{name} at {width}px: {probe}");
            for chart in charts {
                let w = chart["width"].as_f64().unwrap_or(0.0);
                let h = chart["height"].as_f64().unwrap_or(0.0);
                assert!(w > 200.0 && h > 80.0, "{name} at {width}px: {chart}");
                assert!(
                    chart["right"].as_f64().unwrap_or(f64::MAX) <= f64::from(width),
                    "{name} at {width}px: the chart fits the window: {chart}"
                );
                assert!(chart["marks"].as_u64() > Some(0), "{name}: {chart}");
                assert_eq!(
                    chart["painted"], chart["marks"],
                    "{name}: every mark has a size: {chart}"
                );
                assert!(
                    chart["texts"].as_u64() >= Some(2),
                    "{name}: axis labels: {chart}"
                );
            }
            assert!(
                probe["scrollWidth"].as_f64() <= probe["innerWidth"].as_f64(),
                "{name} at {width}px: no sideways scrolling of the page (wide tables scroll in their box): {probe}"
            );
        }

        let screenshot = artefacts_dir().join(format!("{name}.png"));
        let _ = std::fs::remove_file(&screenshot);
        chromium(
            &page,
            1280,
            1600,
            &[&format!("--screenshot={}", path_str(&screenshot))],
        );
        let (blue, total) = count_pixels(&screenshot, BLUE);
        assert!(
            total == 1280 * 1600,
            "{name}: the whole window was captured"
        );
        assert!(
            blue > 500,
            "{name}: the charts' bars and lines are painted ({blue} blue pixels)"
        );
        if *name == "migrations" {
            let (red, _) = count_pixels(&screenshot, RED);
            assert!(red > 50, "the failed attempt is painted red ({red} pixels)");
        }
        let phone = artefacts_dir().join(format!("{name}.phone.png"));
        chromium(
            &page.with_file_name(format!("{name}.html.probe-390.html")),
            500,
            1300,
            &[
                "--allow-file-access-from-files",
                &format!("--screenshot={}", path_str(&phone)),
            ],
        );

        let pdf = artefacts_dir().join(format!("{name}.pdf"));
        let _ = std::fs::remove_file(&pdf);
        chromium(
            &page,
            1280,
            1600,
            &[
                "--no-pdf-header-footer",
                &format!("--print-to-pdf={}", path_str(&pdf)),
            ],
        );
        let bytes = std::fs::read(&pdf).expect("the PDF was printed");
        assert!(
            bytes.starts_with(b"%PDF") && bytes.len() > 5000,
            "{name}: printed"
        );
    }
}
