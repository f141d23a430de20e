//! End-to-end tests of `pgward-validate preflight`: each item of the pre-migration
//! checklist passes on a database ready to migrate and fails, with its fix, on one that is
//! not.

use std::path::Path;

use pgward_tests::{cluster, path_str, run, Migrations, Output, TestDb};
use serde_json::Value;

/// A migrations folder: one applied-to-be migration and one pending, both lint-clean
/// unless `pending_sql` says otherwise.
fn migrations(pending_sql: &str) -> Migrations {
    Migrations::new(&[
        (
            "20260101000000_init",
            "SET lock_timeout = '2s';\nCREATE TABLE account (id bigint PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);\n",
        ),
        ("20260102000000_next", pending_sql),
    ])
}

fn deploy_first(db: &TestDb, dir: &Path) {
    run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(dir),
            "--to",
            "20260101000000_init",
            "--database-url",
            &db.url(),
        ],
        &[],
    )
    .assert_code(0);
}

fn preflight(db_url: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "preflight",
        "--dir",
        path_str(dir),
        "--database-url",
        db_url,
    ];
    args.extend_from_slice(extra);
    run("validate", &args, &[])
}

/// status of the named check.
fn check(envelope: &Value, name: &str) -> String {
    envelope["result"]["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .map(|c| c["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| format!("absent: {envelope}"))
}

fn verified_backup(db: &TestDb, to: &Path) {
    run(
        "backup",
        &["backup", "--to", path_str(to), "--database-url", &db.url()],
        &[],
    )
    .assert_code(0);
    run("backup", &["verify", "latest", "--from", path_str(to)], &[]).assert_code(0);
}

#[test]
fn a_database_ready_to_migrate_passes_every_check() {
    let db = cluster().create_database();
    let dir = migrations("SET lock_timeout = '2s';\nALTER TABLE account ADD COLUMN note text;\n");
    deploy_first(&db, dir.path());
    let backups = tempfile::tempdir().expect("temp dir");
    verified_backup(&db, backups.path());
    let out = preflight(
        &db.url(),
        dir.path(),
        &["--backups", path_str(backups.path())],
    );
    out.assert_code(0);
    let envelope = out.json();
    for name in [
        "connectable",
        "server-version",
        "privileges",
        "advisory-lock-free",
        "no-failed-migration",
        "pending-lint-clean",
        "recent-verified-backup",
        "pg-dump-version",
    ] {
        assert_eq!(check(&envelope, name), "pass", "{name}: {out}");
    }
}

#[test]
fn each_failing_item_is_reported_with_its_fix() {
    let db = cluster().create_database();
    // The pending migration builds an index without CONCURRENTLY on an existing table.
    let dir = migrations("CREATE INDEX account_balance_idx ON account (balance);\n");
    deploy_first(&db, dir.path());
    let mut holder = db.client();
    holder
        .batch_execute("SELECT pg_advisory_lock(72707369)")
        .expect("hold the migration lock");
    let empty = tempfile::tempdir().expect("temp dir");
    let out = preflight(
        &db.url(),
        dir.path(),
        &["--backups", path_str(empty.path())],
    );
    out.assert_code(1);
    let envelope = out.json();
    assert_eq!(envelope["error"]["code"], "CHECKS_FAILED", "{out}");
    assert_eq!(check(&envelope, "advisory-lock-free"), "fail", "{out}");
    assert_eq!(check(&envelope, "pending-lint-clean"), "fail", "{out}");
    assert_eq!(check(&envelope, "recent-verified-backup"), "fail", "{out}");
    assert_eq!(check(&envelope, "connectable"), "pass", "{out}");
    for c in envelope["result"]["checks"].as_array().expect("checks") {
        if c["status"] == "fail" {
            assert!(
                !c["fix"].as_str().unwrap_or_default().is_empty(),
                "a fix for {c}"
            );
        }
    }
    drop(holder);
}

#[test]
fn a_failed_migration_and_an_old_backup_fail() {
    let db = cluster().create_database();
    let dir = migrations("SELECT 1/0;\n");
    deploy_first(&db, dir.path());
    run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(dir.path()),
            "--database-url",
            &db.url(),
        ],
        &[],
    )
    .assert_code(1);
    let backups = tempfile::tempdir().expect("temp dir");
    verified_backup(&db, backups.path());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = preflight(
        &db.url(),
        dir.path(),
        &[
            "--backups",
            path_str(backups.path()),
            "--max-backup-age",
            "1s",
        ],
    );
    out.assert_code(1);
    let envelope = out.json();
    assert_eq!(check(&envelope, "no-failed-migration"), "fail", "{out}");
    assert_eq!(check(&envelope, "recent-verified-backup"), "fail", "{out}");
}

#[test]
fn privileges_fail_for_a_user_that_does_not_own_the_altered_table() {
    let db = cluster().create_database();
    let dir = migrations("SET lock_timeout = '2s';\nALTER TABLE account ADD COLUMN note text;\n");
    deploy_first(&db, dir.path());
    let role = format!("{}_app", db.name);
    db.psql(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'app-pw-1234'; GRANT CREATE ON SCHEMA public TO {role}; GRANT SELECT ON _prisma_migrations TO {role};"
    ));
    let url = db.url().replacen(
        "pgward:pgward-test-secret-pw",
        &format!("{role}:app-pw-1234"),
        1,
    );
    let out = preflight(&url, dir.path(), &[]);
    let envelope = out.json();
    assert_eq!(check(&envelope, "privileges"), "fail", "{out}");
    assert!(
        envelope.to_string().contains("account"),
        "the table it cannot alter is named: {out}"
    );
    db.psql(&format!("DROP OWNED BY {role}; DROP ROLE {role};"));
}

#[test]
fn no_backup_location_is_a_skip_that_fails_only_under_strict() {
    let db = cluster().create_database();
    let dir = migrations("SET lock_timeout = '2s';\nALTER TABLE account ADD COLUMN note text;\n");
    deploy_first(&db, dir.path());
    let out = preflight(&db.url(), dir.path(), &[]);
    out.assert_code(0);
    assert_eq!(
        check(&out.json(), "recent-verified-backup"),
        "skip",
        "{out}"
    );
    preflight(&db.url(), dir.path(), &["--strict"]).assert_code(3);
}

#[test]
fn an_unreachable_server_fails_the_first_check_only() {
    let dir = migrations("SELECT 1;\n");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let url = format!("postgresql://pgward:pw@127.0.0.1:{port}/nothing");
    let out = preflight(&url, dir.path(), &[]);
    out.assert_code(1);
    let envelope = out.json();
    assert_eq!(check(&envelope, "connectable"), "fail", "{out}");
    assert!(
        check(&envelope, "advisory-lock-free").starts_with("absent"),
        "{out}"
    );
    assert!(
        !out.stdout.contains("pw@"),
        "no password in the output: {out}"
    );
}
