//! A backup takes ACCESS SHARE on every table it reads, with a lock timeout: a session
//! holding a conflicting lock (a migration's ALTER TABLE) makes it stop with exit 6 and the
//! holder named, leaving no backup behind.

use std::time::{Duration, Instant};

use pgward_tests::{cluster, path_str, run};

#[test]
fn a_table_locked_by_another_session_stops_the_backup_and_names_the_holder() {
    let db = cluster().create_database();
    db.psql("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1);");
    let mut holder = db.client();
    holder
        .batch_execute("SET application_name = 'deploy-in-progress'; BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .expect("hold the lock");
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pid")
        .get(0);
    let root = tempfile::tempdir().expect("temp dir");
    let to = root.path().join("backups");
    let started = Instant::now();
    let out = run(
        "backup",
        &[
            "backup",
            "--to",
            path_str(&to),
            "--lock-timeout",
            "500ms",
            "--database-url",
            &db.url(),
        ],
        &[],
    );
    out.assert_code(6);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it gave up after the lock timeout"
    );
    let envelope = out.json();
    assert_eq!(envelope["error"]["code"], "TABLE_LOCKED", "{out}");
    assert_eq!(
        envelope["error"]["details"]["holder"]["pid"], holder_pid,
        "{out}"
    );
    assert_eq!(
        envelope["error"]["details"]["holder"]["application_name"], "deploy-in-progress",
        "{out}"
    );
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("orders"),
        "{out}"
    );
    let listed = run("backup", &["list", "--from", path_str(&to)], &[]);
    if listed.code == 0 {
        assert_eq!(
            listed.json()["result"]["backups"],
            serde_json::json!([]),
            "{listed}"
        );
    }
    holder.batch_execute("ROLLBACK").expect("release");
    run(
        "backup",
        &["backup", "--to", path_str(&to), "--database-url", &db.url()],
        &[],
    )
    .assert_code(0);
}
