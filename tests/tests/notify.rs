//! `--notify URL` on every binary: a Slack-compatible POST on failure (and on success with
//! `--notify-on success`), received by a real HTTP listener on 127.0.0.1; an undeliverable
//! notification never changes the exit code.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use pgward_tests::{cluster, path_str, run, SUPERUSER_PASSWORD};
use serde_json::Value;

/// The harness's listener, the bodies parsed as JSON.
fn webhook() -> (String, mpsc::Receiver<(String, Value)>) {
    let (url, raw) = pgward_tests::webhook("/services/T000/B000/secret-token");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (request, body) in raw {
            let _ = tx.send((request, serde_json::from_str(&body).unwrap_or(Value::Null)));
        }
    });
    (url, rx)
}

fn failing_migrations() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("20260101000000_broken")).expect("mkdir");
    std::fs::write(
        dir.path().join("20260101000000_broken/migration.sql"),
        "CREATE TABLE a (id int);\nSELECT 1/0;\n",
    )
    .expect("write");
    dir
}

#[test]
fn a_failure_is_posted_as_a_slack_message_and_the_exit_code_is_kept() {
    let db = cluster().create_database();
    let (url, received) = webhook();
    let dir = failing_migrations();
    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(dir.path()),
            "--database-url",
            &db.url(),
            "--notify",
            &url,
        ],
        &[],
    );
    out.assert_code(1);
    let (request, body) = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the failure was posted");
    assert!(
        request.starts_with("POST /services/T000/B000/secret-token"),
        "{request}"
    );
    let text = body["text"].as_str().unwrap_or_default();
    assert!(text.contains("pgward-migrate deploy FAILED"), "{body}");
    assert!(text.contains("MIGRATION_FAILED"), "{body}");
    assert!(text.contains(&db.name), "the target is named: {body}");
    assert!(!body.to_string().contains(SUPERUSER_PASSWORD), "{body}");
    assert_eq!(body["pgward"]["exit_code"], 1, "{body}");
    let envelope = out.json();
    let warnings = envelope["warnings"].as_array().expect("warnings");
    assert!(
        !warnings.iter().any(|w| w["code"] == "NOTIFY_FAILED"),
        "delivered: {out}"
    );
}

#[test]
fn success_is_posted_only_with_notify_on_success() {
    let db = cluster().create_database();
    let (url, received) = webhook();
    let dir = tempfile::tempdir().expect("temp dir");
    let args = |on: &'static str| {
        vec![
            "schema".to_string(),
            "--dir".into(),
            dir.path().display().to_string(),
            "--database-url".into(),
            db.url(),
            "--notify".into(),
            url.clone(),
            "--notify-on".into(),
            on.into(),
        ]
    };
    let quiet: Vec<String> = args("failure");
    run(
        "validate",
        &quiet.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    )
    .assert_code(0);
    assert!(
        received.recv_timeout(Duration::from_millis(500)).is_err(),
        "nothing is posted for a success by default"
    );
    let loud: Vec<String> = args("success");
    run(
        "validate",
        &loud.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    )
    .assert_code(0);
    let (_, body) = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the success was posted");
    assert!(
        body["text"]
            .as_str()
            .unwrap_or_default()
            .contains("pgward-validate schema succeeded"),
        "{body}"
    );
    assert_eq!(body["pgward"]["ok"], true, "{body}");
}

#[test]
fn the_environment_variable_works_like_the_flag_for_every_binary() {
    let (url, received) = webhook();
    for (tool, args) in [
        (
            "backup",
            vec!["list", "--from", "/nonexistent/pgward-backups"],
        ),
        (
            "restore",
            vec!["restore", "--from", "/nonexistent/pgward-backups/latest"],
        ),
        ("validate", vec!["lint", "/nonexistent/migration.sql"]),
    ] {
        let out = run(tool, &args, &[("PGWARD_NOTIFY_URL", url.as_str())]);
        assert_ne!(out.code, 0, "{out}");
        let (_, body) = received
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("pgward-{tool} posted its failure"));
        assert_eq!(body["pgward"]["tool"], tool, "{body}");
    }
}

#[test]
fn an_undeliverable_notification_is_a_warning_not_a_new_exit_code() {
    let db = cluster().create_database();
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/secret-token");
    let dir = failing_migrations();
    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(dir.path()),
            "--database-url",
            &db.url(),
            "--notify",
            &url,
        ],
        &[],
    );
    out.assert_code(1);
    let envelope = out.json();
    assert_eq!(envelope["error"]["code"], "MIGRATION_FAILED", "{out}");
    let warnings = envelope["warnings"].as_array().expect("warnings");
    assert!(
        warnings.iter().any(|w| w["code"] == "NOTIFY_FAILED"),
        "{out}"
    );
    assert!(
        !out.stdout.contains("secret-token") && !out.stderr.contains("secret-token"),
        "the webhook's secret stays hidden: {out}"
    );
}
