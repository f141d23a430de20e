//! Issue 20, points 1-3: what the scripts do around the database work. migrate.sh's
//! `pre_deploy` / `post_deploy` hooks and `health_url` check (against a real HTTP server on
//! 127.0.0.1 answering healthy or not) and what an unhealthy application undoes
//! (`on_unhealthy`); ONE notification per script run, right about the outcome (received
//! by a real webhook listener); and the per-run log file under `log_dir`.
//!
//! The scripts run as a user runs them: bash, from a project folder holding pgward.toml,
//! the binaries of this build through PGWARD_BIN, against the harness's cluster.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pgward_tests::{
    bin, cluster, path_str, run_script, webhook, workspace_root, write_migration, write_migrations,
    Output, TestDb, SUPERUSER_PASSWORD,
};
use serde_json::Value;
use tempfile::TempDir;

const INIT: &str = "20240101000000_init";
const ORDERS: &str = "20240102000000_orders";

/// A project folder: pgward.toml with `[env.dev]` (its URL in DEV_DATABASE_URL, backups
/// in `backups`) plus `keys`, and prisma/migrations holding INIT (with down.sql).
fn project(keys: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("workflow_hooks_")
        .tempdir()
        .expect("a temp project dir");
    std::fs::write(
        dir.path().join("pgward.toml"),
        format!(
            "migrations = \"prisma/migrations\"\n\n[env.dev]\n\
             database_url_env = \"DEV_DATABASE_URL\"\nbackups = \"backups\"\n{keys}\n"
        ),
    )
    .expect("pgward.toml is writable");
    write_migrations(&dir.path().join("prisma/migrations"), &[]);
    add_migration(
        dir.path(),
        INIT,
        "CREATE TABLE account (id bigserial PRIMARY KEY, name text NOT NULL);\n",
        Some("DROP TABLE account;\n"),
    );
    dir
}

fn add_migration(dir: &Path, name: &str, sql: &str, down: Option<&str>) {
    write_migration(&dir.join("prisma/migrations"), name, sql, down);
}

/// `scripts/SCRIPT ARGS` in `dir` as the harness runs scripts (the binaries of this build,
/// the cluster's client tools, no stdin), with `dir` as HOME, plus `envs`; no password in
/// its output.
fn script(dir: &Path, name: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let home = path_str(dir);
    let mut all = vec![("HOME", home)];
    all.extend_from_slice(envs);
    let out = run_script(dir, name, args, &all);
    assert!(
        !out.stdout.contains(SUPERUSER_PASSWORD) && !out.stderr.contains(SUPERUSER_PASSWORD),
        "the password leaked\n{out}"
    );
    out
}

/// The script's document, checked against the exit code.
fn document(out: &Output, code: i32) -> Value {
    out.assert_envelope(code)
}

fn step_names(json: &Value) -> Vec<String> {
    json["result"]["steps"]
        .as_array()
        .expect("result.steps")
        .iter()
        .map(|s| s["step"].as_str().expect("a name").to_string())
        .collect()
}

fn step<'j>(json: &'j Value, name: &str) -> &'j Value {
    json["result"]["steps"]
        .as_array()
        .expect("result.steps")
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {json}"))
}

fn position(names: &[String], name: &str) -> usize {
    names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no step {name} in {names:?}"))
}

fn applied(db: &TestDb) -> Vec<String> {
    if !db.relation_exists("public._prisma_migrations") {
        return Vec::new();
    }
    db.psql(
        "SELECT migration_name FROM _prisma_migrations \
         WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Every notification posted while the script ran: the bodies the webhook received, once
/// nothing more arrives for a second.
fn received(rx: &mpsc::Receiver<(String, String)>) -> Vec<Value> {
    let mut bodies = Vec::new();
    while let Ok((request, body)) = rx.recv_timeout(Duration::from_secs(1)) {
        assert!(request.starts_with("POST "), "{request}");
        bodies.push(serde_json::from_str(&body).expect("a JSON body"));
    }
    bodies
}

/// The one notification of a run, its Slack `text`.
fn one_notification(rx: &mpsc::Receiver<(String, String)>, out: &Output) -> (Value, String) {
    let bodies = received(rx);
    assert_eq!(
        bodies.len(),
        1,
        "one notification per run: {bodies:#?}\n{out}"
    );
    let body = bodies.into_iter().next().expect("one");
    let text = body["text"].as_str().expect("a text").to_string();
    assert!(!text.contains(SUPERUSER_PASSWORD), "{text}");
    (body, text)
}

/// A real HTTP server on 127.0.0.1 standing in for the application: it answers each GET
/// with the next status of `first`, then with `status` (which a test may change).
struct App {
    url: String,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
}

fn app(first: &[u16], status: u16) -> App {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let url = format!(
        "http://127.0.0.1:{}/healthz",
        listener.local_addr().expect("an address").port()
    );
    let queue = Arc::new(Mutex::new(first.iter().copied().collect::<VecDeque<u16>>()));
    let status = Arc::new(AtomicU16::new(status));
    let hits = Arc::new(AtomicUsize::new(0));
    let (s, h) = (status.clone(), hits.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            h.fetch_add(1, Ordering::SeqCst);
            let code = queue
                .lock()
                .expect("the queue")
                .pop_front()
                .unwrap_or_else(|| s.load(Ordering::SeqCst));
            let mut stream = stream;
            let _ = stream.write_all(
                format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    App { url, status, hits }
}

fn health_keys(app: &App, extra: &str) -> String {
    format!(
        "health_url = \"{}\"\nhealth_retries = 3\nhealth_timeout = \"20s\"\n{extra}",
        app.url
    )
}

// ---------------------------------------------------------------------------------------
// Point 1: hooks and the health check
// ---------------------------------------------------------------------------------------

#[test]
fn a_failing_pre_deploy_stops_before_anything_is_touched() {
    let db = cluster().create_database();
    let url = db.url();
    let dir = project(
        "pre_deploy = \"echo draining from $DEV_DATABASE_URL; echo 'cannot reach the load balancer' >&2; exit 7\"\n\
         post_deploy = \"touch post-ran\"\n",
    );
    let out = script(
        dir.path(),
        "migrate.sh",
        &["deploy", "dev", "--no-drift"],
        &[("DEV_DATABASE_URL", &url)],
    );
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "HOOK_FAILED", "{out}");
    let message = json["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("exit 7") && message.contains("cannot reach the load balancer"),
        "{message}"
    );
    assert!(
        json["error"]["hint"]
            .as_str()
            .expect("a hint")
            .contains("nothing was touched"),
        "{out}"
    );
    let names = step_names(&json);
    assert_eq!(
        names.last().map(String::as_str),
        Some("pre-deploy"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "backup" || n == "deploy"),
        "{names:?}"
    );
    // Nothing touched: no migration, no table, no backup, no post_deploy.
    assert!(applied(&db).is_empty());
    assert!(!db.relation_exists("public.account"));
    assert!(!dir.path().join("backups").exists(), "a backup was taken");
    assert!(!dir.path().join("post-ran").exists(), "post_deploy ran");
    // The hook's output is logged, timestamped, as it comes.
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("[pre-deploy] | cannot reach the load balancer"))
        .unwrap_or_else(|| panic!("the hook's output is logged\n{out}"));
    assert!(
        line.starts_with("20") && line.as_bytes()[23] == b'Z',
        "{line}"
    );
    // What a hook prints is masked like everything else the script logs.
    assert!(
        out.stderr
            .contains("[pre-deploy] | draining from postgresql://"),
        "{out}"
    );
    assert!(out.stderr.contains(":***@"), "{out}");
}

#[test]
fn a_pre_deploy_that_hangs_is_stopped_at_its_timeout() {
    let db = cluster().create_database();
    let url = db.url();
    let dir = project("pre_deploy = \"sleep 60\"\nhook_timeout = \"1s\"\n");
    let started = Instant::now();
    let out = script(
        dir.path(),
        "migrate.sh",
        &["deploy", "dev", "--no-drift"],
        &[("DEV_DATABASE_URL", &url)],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "HOOK_TIMEOUT", "{out}");
    assert!(applied(&db).is_empty());
    assert!(!dir.path().join("backups").exists(), "a backup was taken");
}

#[test]
fn hooks_run_around_the_deploy_and_a_health_url_that_recovers_passes() {
    let db = cluster().create_database();
    let url = db.url();
    let app = app(&[503, 503], 200);
    let (hook_url, rx) = webhook("/services/T0/B0/secret");
    let dir = project(&health_keys(
        &app,
        "pre_deploy = \"echo pre >> order.txt\"\n\
         post_deploy = \"echo post $PGWARD_HOOK $PGWARD_ENV >> order.txt\"\n\
         notify_on = \"success\"\nlog_dir = \"logs\"\n",
    ));
    let out = script(
        dir.path(),
        "migrate.sh",
        &["deploy", "dev"],
        &[("DEV_DATABASE_URL", &url), ("PGWARD_NOTIFY_URL", &hook_url)],
    );
    let json = document(&out, 0);
    let names = step_names(&json);
    // pre_deploy before the backup; post_deploy after the checks; health after it.
    assert!(
        position(&names, "baseline-drift") < position(&names, "pre-deploy"),
        "{names:?}"
    );
    assert!(
        position(&names, "pre-deploy") < position(&names, "backup"),
        "{names:?}"
    );
    assert!(
        position(&names, "drift") < position(&names, "post-deploy"),
        "{names:?}"
    );
    assert!(
        position(&names, "post-deploy") < position(&names, "health"),
        "{names:?}"
    );
    let health = step(&json, "health");
    assert_eq!(health["exit_code"], 0);
    assert_eq!(
        health["result"]["attempts"].as_array().map(Vec::len),
        Some(3),
        "{health}"
    );
    assert_eq!(app.hits.load(Ordering::SeqCst), 3);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("order.txt")).expect("the hooks wrote"),
        "pre\npost post-deploy dev\n"
    );
    assert_eq!(applied(&db), [INIT]);
    // Off a terminal, the run log holds the binaries' own lines too, and the hooks'.
    let log = std::fs::read_to_string(json["result"]["log_file"].as_str().expect("a log"))
        .expect("the run log");
    for needle in [
        &format!("INFO  applying {INIT}"),
        "[pre-deploy] 'echo pre >> order.txt'",
        "health: http://127.0.0.1:",
    ] {
        assert!(log.contains(needle), "{needle} in the log:\n{log}");
    }
    // The preflight failed as the script expects (no recent backup yet): the binary did
    // not post a FAILED of its own; the run's one notification says it succeeded.
    assert_eq!(step(&json, "preflight")["exit_code"], 1);
    let (body, text) = one_notification(&rx, &out);
    let target = &json["target"];
    assert!(
        text.starts_with(&format!(
            "migrate.sh deploy dev succeeded on {}:{}/{} (exit 0, ",
            target["host"].as_str().expect("host"),
            target["port"],
            db.name
        )),
        "{text}"
    );
    assert_eq!(body["pgward"]["outcome"], "succeeded");
    let steps = body["pgward"]["steps"].to_string();
    assert!(
        steps.contains("preflight 1") && steps.contains("health 0"),
        "{steps}"
    );
}

#[test]
fn an_unhealthy_application_is_reported_and_left_as_is_by_default() {
    let db = cluster().create_database();
    let url = db.url();
    let app = app(&[], 503);
    let (hook_url, rx) = webhook("/services/T0/B0/secret");
    // The URL from pgward.toml this time, notify_on at its default.
    let dir = project(&health_keys(
        &app,
        &format!("notify_url = \"{hook_url}\"\n"),
    ));
    let out = script(
        dir.path(),
        "migrate.sh",
        &["deploy", "dev", "--no-drift"],
        &[("DEV_DATABASE_URL", &url)],
    );
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "APP_UNHEALTHY", "{out}");
    assert_eq!(json["result"]["on_unhealthy"], "stop");
    let hint = json["error"]["hint"].as_str().expect("a hint");
    assert!(
        hint.contains("scripts/migrate.sh rollback dev --steps 1")
            && hint.contains("pgward-restore"),
        "{hint}"
    );
    assert_eq!(app.hits.load(Ordering::SeqCst), 3, "health_retries = 3");
    assert_eq!(applied(&db), [INIT], "nothing undone");
    let (body, text) = one_notification(&rx, &out);
    assert!(
        text.starts_with("migrate.sh deploy dev FAILED on "),
        "{text}"
    );
    assert!(
        text.contains("APP_UNHEALTHY") && text.contains("next step: "),
        "{text}"
    );
    assert_eq!(body["attachments"][0]["color"], "danger");
}

#[test]
fn a_failing_post_deploy_is_a_failed_check_after_the_deploy() {
    let db = cluster().create_database();
    let url = db.url();
    let dir = project("post_deploy = \"echo restart failed; exit 3\"\n");
    let out = script(
        dir.path(),
        "migrate.sh",
        &["deploy", "dev", "--no-drift"],
        &[("DEV_DATABASE_URL", &url)],
    );
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "HOOK_FAILED", "{out}");
    assert!(json["error"]["hint"]
        .as_str()
        .expect("hint")
        .contains("rollback dev --steps 1"));
    assert_eq!(applied(&db), [INIT]);
}

#[test]
fn an_unhealthy_application_is_rolled_back_with_down_sql_where_the_environment_opted_in() {
    let db = cluster().create_database();
    let url = db.url();
    let app = app(&[], 200);
    let dir = project(&health_keys(&app, "on_unhealthy = \"rollback\"\n"));
    let envs = [("DEV_DATABASE_URL", url.as_str())];
    document(
        &script(
            dir.path(),
            "migrate.sh",
            &["deploy", "dev", "--no-drift"],
            &envs,
        ),
        0,
    );
    db.psql("INSERT INTO account (name) VALUES ('written by the app')");
    add_migration(
        dir.path(),
        ORDERS,
        "CREATE TABLE orders (id bigserial PRIMARY KEY, cents bigint NOT NULL);\n",
        Some("DROP TABLE orders;\n"),
    );
    app.status.store(500, Ordering::SeqCst);
    let out = script(
        dir.path(),
        "migrate.sh",
        &["deploy", "dev", "--no-drift"],
        &envs,
    );
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "APP_UNHEALTHY", "{out}");
    assert_eq!(step(&json, "rollback-after-deploy")["exit_code"], 0);
    assert_eq!(json["result"]["rolled_back"], serde_json::json!([ORDERS]));
    // Only this deploy's migration went back; the application's write stays.
    assert!(!db.relation_exists("public.orders"));
    assert_eq!(applied(&db), [INIT]);
    assert_eq!(
        db.query_one_string("SELECT name FROM account"),
        "written by the app"
    );
}

#[test]
fn an_unhealthy_application_restores_the_backup_under_auto_restore() {
    let db = cluster().create_database();
    let url = db.url();
    let app = app(&[], 200);
    let dir = project(&health_keys(&app, "auto_restore = true\n"));
    let envs = [("DEV_DATABASE_URL", url.as_str())];
    document(
        &script(
            dir.path(),
            "migrate.sh",
            &["deploy", "dev", "--no-drift"],
            &envs,
        ),
        0,
    );
    db.psql("INSERT INTO account (name) VALUES ('before')");
    // No down.sql: only the backup can take it back.
    add_migration(
        dir.path(),
        ORDERS,
        "CREATE TABLE orders (id bigserial PRIMARY KEY);\n",
        None,
    );
    app.status.store(503, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1100)); // backup ids carry the second
    let out = script(
        dir.path(),
        "migrate.sh",
        &["deploy", "dev", "--no-drift"],
        &envs,
    );
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "APP_UNHEALTHY", "{out}");
    assert_eq!(json["result"]["on_unhealthy"], "restore");
    assert_eq!(json["result"]["restored"]["ok"], true, "{out}");
    assert!(!db.relation_exists("public.orders"));
    assert_eq!(applied(&db), [INIT]);
    assert_eq!(db.query_one_string("SELECT name FROM account"), "before");
}

#[test]
fn the_health_check_keeps_to_its_total_timeout_and_its_expected_status() {
    // Always unhealthy, many retries allowed: the total timeout ends it.
    let sick = app(&[], 503);
    let started = Instant::now();
    let out = pgward_tests::run(
        "report",
        &[
            "app-health",
            "--url",
            &sick.url,
            "--retries",
            "100",
            "--timeout",
            "3s",
        ],
        &[],
    );
    let json = out.assert_error(1, "APP_UNHEALTHY");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let attempts = json["result"]["attempts"]
        .as_array()
        .expect("attempts")
        .len();
    // 1 s, 2 s pauses: three GETs fit in 3 s, not a hundred.
    assert!((2..=4).contains(&attempts), "{attempts} attempts\n{out}");
    assert_eq!(attempts, sick.hits.load(Ordering::SeqCst));

    // A server that accepts and never answers: each GET is cut at the time left.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent = format!("http://{}/healthz", listener.local_addr().expect("addr"));
    let started = Instant::now();
    let out = pgward_tests::run(
        "report",
        &[
            "app-health",
            "--url",
            &silent,
            "--retries",
            "5",
            "--timeout",
            "2s",
        ],
        &[],
    );
    out.assert_error(1, "APP_UNHEALTHY");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    drop(listener);

    // The expected status is the one configured, not any 2xx.
    let no_content = app(&[], 204);
    let dir = project(&format!(
        "health_url = \"{}\"\nhealth_status = 204\nhealth_retries = 1\n",
        no_content.url
    ));
    let out = pgward_tests::run_in(dir.path(), "report", &["app-health", "--env", "dev"], &[]);
    out.assert_code(0);
    let ok = app(&[], 200);
    let out = pgward_tests::run(
        "report",
        &[
            "app-health",
            "--url",
            &ok.url,
            "--expect",
            "204",
            "--retries",
            "1",
        ],
        &[],
    );
    let json = out.assert_error(1, "APP_UNHEALTHY");
    assert!(
        json["error"]["message"]
            .as_str()
            .expect("a message")
            .contains("HTTP 200"),
        "{out}"
    );
}

#[test]
fn bad_hook_and_health_keys_are_refused_before_anything_runs() {
    for (keys, says) in [
        ("health_url = \"ftp://app/health\"\n", "health_url"),
        ("on_unhealthy = \"pray\"\n", "unknown variant"),
        ("hook_timeout = \"soon\"\n", "not a duration"),
        ("health_retries = 0\n", "health_retries"),
        ("notify_on = \"sometimes\"\n", "unknown variant"),
    ] {
        let dir = project(&format!("pre_deploy = \"touch pre-ran\"\n{keys}"));
        let out = script(
            dir.path(),
            "migrate.sh",
            &["deploy", "dev"],
            &[("DEV_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")],
        );
        let json = document(&out, 2);
        assert_eq!(json["error"]["code"], "CONFIG_INVALID", "{keys}\n{out}");
        let message = json["error"]["message"].as_str().expect("a message");
        assert!(message.contains(says), "{keys}: {message}");
        assert!(!dir.path().join("pre-ran").exists());
    }
}

// ---------------------------------------------------------------------------------------
// Point 2: one notification per run, right about the outcome
// ---------------------------------------------------------------------------------------

#[test]
fn a_deploy_undone_because_drift_appeared_fails_and_is_notified() {
    let db = cluster().create_database();
    let url = db.url();
    let (hook_url, rx) = webhook("/services/T0/B0/secret");
    let dir = project("auto_restore = true\n");
    let envs = [
        ("DEV_DATABASE_URL", url.as_str()),
        ("PGWARD_NOTIFY_URL", hook_url.as_str()),
    ];
    document(
        &script(dir.path(), "migrate.sh", &["deploy", "dev", "-q"], &envs),
        0,
    );
    let _ = received(&rx); // success is not notified by default
    db.psql("INSERT INTO account (name) VALUES ('a row')");
    // What the live database gets depends on its rows: a replay on an empty shadow
    // database does not create the table, so drift appears after the deploy.
    add_migration(
        dir.path(),
        ORDERS,
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM account) THEN \
         CREATE TABLE seen (id int PRIMARY KEY); END IF; END $$;\n",
        None,
    );
    std::thread::sleep(Duration::from_millis(1100));
    let out = script(dir.path(), "migrate.sh", &["deploy", "dev"], &envs);
    let json = document(&out, 1);
    assert_eq!(json["ok"], false);
    assert_eq!(json["error"]["code"], "DRIFT_AFTER_DEPLOY", "{out}");
    assert!(
        json["error"]["message"]
            .as_str()
            .expect("a message")
            .contains("seen"),
        "{out}"
    );
    assert_eq!(json["result"]["restored"]["ok"], true, "{out}");
    assert!(!db.relation_exists("public.seen"));
    assert_eq!(applied(&db), [INIT]);
    let (_, text) = one_notification(&rx, &out);
    assert!(
        text.contains("FAILED") && text.contains("DRIFT_AFTER_DEPLOY"),
        "{text}"
    );
}

#[test]
fn a_rollback_by_backup_for_lack_of_down_sql_posts_one_success() {
    let db = cluster().create_database();
    let url = db.url();
    let (hook_url, rx) = webhook("/services/T0/B0/secret");
    let dir = project("notify_on = \"always\"\n");
    std::fs::remove_file(
        dir.path()
            .join("prisma/migrations")
            .join(INIT)
            .join("down.sql"),
    )
    .expect("down.sql removed");
    let envs = [
        ("DEV_DATABASE_URL", url.as_str()),
        ("PGWARD_NOTIFY_URL", hook_url.as_str()),
    ];
    document(
        &script(
            dir.path(),
            "migrate.sh",
            &["deploy", "dev", "--no-drift"],
            &envs,
        ),
        0,
    );
    assert_eq!(received(&rx).len(), 1, "the deploy's one notification");
    let out = script(
        dir.path(),
        "migrate.sh",
        &["rollback", "dev", "--no-drift"],
        &envs,
    );
    let json = document(&out, 0);
    // The plan refused (no down.sql), which the script expects and handles by restoring.
    assert_eq!(step(&json, "plan")["exit_code"], 1);
    assert_eq!(step(&json, "restore")["exit_code"], 0);
    let (_, text) = one_notification(&rx, &out);
    assert!(
        text.starts_with("migrate.sh rollback dev succeeded"),
        "{text}"
    );
    assert!(!db.relation_exists("public.account"));
}

#[test]
fn a_run_refused_for_its_config_still_sends_its_one_failure() {
    let (hook_url, rx) = webhook("/services/T0/B0/secret");
    let dir = project("protcted = true\n");
    let out = script(
        dir.path(),
        "backup-cron.sh",
        &["dev"],
        &[("PGWARD_NOTIFY_URL", &hook_url)],
    );
    let json = document(&out, 2);
    assert_eq!(json["error"]["code"], "CONFIG_INVALID");
    let (_, text) = one_notification(&rx, &out);
    assert!(text.starts_with("backup-cron.sh dev FAILED"), "{text}");
    assert!(
        text.contains("CONFIG_INVALID") && text.contains("next step: "),
        "{text}"
    );
}

#[test]
fn an_undeliverable_notification_is_a_warning_and_keeps_the_exit_code() {
    let dir = project(
        "notify_url = \"http://127.0.0.1:1/services/T0/B0/secret\"\nnotify_on = \"success\"\n",
    );
    let out = script(
        dir.path(),
        "maintenance.sh",
        &[
            "dev",
            "--dry-run",
            "--database-url",
            "postgresql://x@127.0.0.1:1/none",
        ],
        &[],
    );
    // maintenance cannot connect (exit 4): that code stays; the notification's failure
    // is a warning, without the webhook's secret path.
    let json = document(&out, 4);
    let warning = json["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .find(|w| w["code"] == "NOTIFY_FAILED")
        .unwrap_or_else(|| panic!("a NOTIFY_FAILED warning\n{out}"));
    let message = warning["message"].as_str().expect("a message");
    assert!(
        message.contains("127.0.0.1:1/***") && !message.contains("secret"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------
// Point 3: a log file per run
// ---------------------------------------------------------------------------------------

fn age(path: &Path, days: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("a file");
    file.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .expect("set the mtime");
}

#[test]
fn backup_cron_writes_a_private_log_per_run_prunes_old_ones_and_notifies_attention() {
    let db = cluster().create_database();
    let url = db.url();
    let (hook_url, rx) = webhook("/services/T0/B0/secret");
    let dir = project(&format!(
        "log_dir = \"logs\"\nlog_keep_days = 7\nnotify_url = \"{hook_url}\"\n"
    ));
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let old = logs.join("backup-cron-dev-20200101T000000.000Z.log");
    let recent = logs.join("backup-cron-dev-20200102T000000.000Z.log");
    let other_script = logs.join("migrate-dev-20200101T000000.000Z.log");
    let other_env = logs.join("backup-cron-prod-20200101T000000.000Z.log");
    let longer_env = logs.join("backup-cron-dev-eu-20200101T000000.000Z.log");
    let not_a_log = logs.join("notes.txt");
    age(&old, 8);
    age(&recent, 6);
    for path in [&other_script, &other_env, &longer_env, &not_a_log] {
        age(path, 30);
    }
    // --max-age 0s: the new backup is already "too old", exit 3, needs attention.
    let out = script(
        dir.path(),
        "backup-cron.sh",
        &["dev", "--max-age", "0s", "-q"],
        &[("DEV_DATABASE_URL", &url)],
    );
    let json = document(&out, 3);
    assert!(!old.exists(), "a log older than log_keep_days is removed");
    for path in [&recent, &other_script, &other_env, &longer_env, &not_a_log] {
        assert!(path.exists(), "{} was kept", path.display());
    }
    let log = json["result"]["log_file"]
        .as_str()
        .expect("result.log_file");
    let name = Path::new(log)
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    // backup-cron-dev-YYYYMMDDTHHMMSS.mmmZ.log
    let stamp = name
        .strip_prefix("backup-cron-dev-")
        .and_then(|s| s.strip_suffix("Z.log"))
        .unwrap_or_else(|| panic!("{name}"));
    assert!(
        stamp.len() == 19 && stamp.as_bytes()[8] == b'T' && stamp.as_bytes()[15] == b'.',
        "{name}"
    );
    assert_eq!(Path::new(log).parent(), Some(logs.as_path()));
    let meta = std::fs::metadata(log).expect("the log exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(log).expect("readable");
    // Quiet on stderr, complete in the file: each step's line, timestamped, the binaries'
    // own lines, and the final JSON as the last line, as printed on stdout.
    for needle in [
        "backup-cron.sh dev: [backup] pgward-backup",
        "[verify] ok",
        "[report] needs attention",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in the log:\n{text}"));
        assert!(
            line.starts_with("20") && line.as_bytes()[23] == b'Z',
            "{line}"
        );
    }
    assert!(
        !out.stderr.contains("[verify] ok"),
        "-q keeps stderr quiet\n{out}"
    );
    let last: Value = serde_json::from_str(text.lines().last().expect("a last line"))
        .expect("the last line is the JSON");
    assert_eq!(last, json);
    assert!(!text.contains(SUPERUSER_PASSWORD));
    let (body, text) = one_notification(&rx, &out);
    assert!(
        text.starts_with("backup-cron.sh dev needs attention on "),
        "{text}"
    );
    assert_eq!(body["attachments"][0]["color"], "warning");
    assert!(
        body["attachments"][0]["fields"].to_string().contains(&name),
        "the log is named"
    );
}

#[test]
fn maintenance_logs_its_run_and_a_log_dir_it_cannot_write_is_a_warning() {
    let db = cluster().create_database();
    let url = db.url();
    let dir = project("log_dir = \"/proc/pgward-cannot-write-here\"\n");
    let out = script(
        dir.path(),
        "maintenance.sh",
        &["dev", "--dry-run"],
        &[("DEV_DATABASE_URL", &url)],
    );
    let json = document(&out, 0);
    assert!(
        json["warnings"].to_string().contains("LOG_FILE_FAILED"),
        "the run goes on and says so\n{out}"
    );
    let (hook_url, rx) = webhook("/services/T0/B0/secret");
    let dir = project(&format!(
        "log_dir = \"logs\"\nnotify_url = \"{hook_url}\"\nnotify_on = \"success\"\n"
    ));
    let out = script(
        dir.path(),
        "maintenance.sh",
        &["dev", "--dry-run"],
        &[("DEV_DATABASE_URL", &url)],
    );
    let json = document(&out, 0);
    let (_, text) = one_notification(&rx, &out);
    assert!(
        text.starts_with("maintenance.sh dev succeeded on "),
        "{text}"
    );
    let log = json["result"]["log_file"]
        .as_str()
        .expect("result.log_file");
    assert!(log.contains("/logs/maintenance-dev-"), "{log}");
    let folder = std::fs::metadata(dir.path().join("logs")).expect("the folder was made");
    assert_eq!(folder.permissions().mode() & 0o777, 0o700);
    let text = std::fs::read_to_string(log).expect("readable");
    assert!(text.contains("[health] ok"), "{text}");
}

#[test]
fn ctrl_c_during_a_hook_stops_the_hook_and_the_deploy() {
    let db = cluster().create_database();
    let url = db.url();
    let dir = project("pre_deploy = \"echo $$ > hook.pid; sleep 30; touch late\"\n");
    let mut command = Command::new("bash");
    command
        .arg(workspace_root().join("scripts/migrate.sh"))
        .args(["deploy", "dev", "--no-drift"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PGWARD_BIN", bin("migrate").parent().expect("a folder"))
        .env("PGWARD_PG_BINDIR", &cluster().bin_dir)
        .env("DEV_DATABASE_URL", &url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = pgward_tests::in_its_own_terminal_group(&mut command)
        .spawn()
        .expect("the script starts");
    let pid_file = dir.path().join("hook.pid");
    let started = Instant::now();
    while !pid_file.exists()
        || std::fs::read_to_string(&pid_file)
            .unwrap_or_default()
            .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the hook never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let hook: i32 = std::fs::read_to_string(&pid_file)
        .expect("the pid")
        .trim()
        .parse()
        .expect("a pid");
    // As a terminal's Ctrl-C: SIGINT to the script's process group (the hook runs in
    // timeout's own group, so only the script can stop it).
    // SAFETY: kill has no memory-safety preconditions; the negative pid names the
    // script's own process group.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGINT) };
    let interrupted = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            break status;
        }
        assert!(
            interrupted.elapsed() < Duration::from_secs(20),
            "the script did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut stdout)
        .expect("stdout");
    let json: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(json["error"]["code"], "INTERRUPTED", "{stdout}");
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(hook, 0) } == 0;
    assert!(!alive, "the hook (pid {hook}) still runs");
    assert!(!dir.path().join("late").exists());
    assert!(applied(&db).is_empty());
    assert!(!dir.path().join("backups").exists());
}

#[test]
fn a_binary_notifies_needs_attention_with_notify_on_attention_only() {
    let db = cluster().create_database();
    let url = db.url();
    let dir = project("");
    let migrations = dir.path().join("prisma/migrations");
    let migrations = migrations.to_str().expect("UTF-8");
    for (on, expected) in [("failure", 0), ("attention", 1)] {
        let (hook_url, rx) = webhook("/services/T0/B0/secret");
        let out = pgward_tests::run(
            "migrate",
            &[
                "status",
                "--dir",
                migrations,
                "--database-url",
                &url,
                "--notify",
                &hook_url,
                "--notify-on",
                on,
            ],
            &[],
        );
        out.assert_code(3); // pending
        let bodies = received(&rx);
        assert_eq!(bodies.len(), expected, "--notify-on {on}: {bodies:?}");
        if let Some(body) = bodies.first() {
            let text = body["text"].as_str().expect("a text");
            assert!(text.contains("status needs attention on "), "{text}");
            assert_eq!(body["attachments"][0]["color"], "warning");
        }
    }
}
