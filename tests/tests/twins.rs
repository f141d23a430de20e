//! One implementation per concept (issue 16.6–7), seen from outside: where two binaries
//! used to answer the same question each their own way, they now give the same answer.
//!
//! - pg_dump is found and judged once (`shared/src/pgtools.rs`): `pgward-validate
//!   preflight` honours `PGWARD_PG_BINDIR` as `pgward-backup` does, and says what backup
//!   would say.

use std::os::unix::fs::PermissionsExt;

use pgward_tests::{cluster, path_str, run, temp_dir, Migrations, Output, TestDb};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// pg_dump: one discovery, one version check
// ---------------------------------------------------------------------------------------

/// `pgward-backup --to <temp> --database-url DB` with `PGWARD_PG_BINDIR=bindir`.
fn backup_with_bindir(db: &TestDb, bindir: &str) -> Output {
    let to = temp_dir("twins_backup_");
    run(
        "backup",
        &["--to", path_str(to.path()), "--database-url", &db.url()],
        &[("PGWARD_PG_BINDIR", bindir)],
    )
}

/// The `pg-dump-version` item of `pgward-validate preflight` with `PGWARD_PG_BINDIR=bindir`.
fn preflight_pg_dump_with_bindir(db: &TestDb, bindir: &str) -> Value {
    let migrations = Migrations::new(&[(
        "20260101000000_init",
        "SET lock_timeout = '2s';\nCREATE TABLE account (id bigint PRIMARY KEY);\n",
    )]);
    let out = run(
        "validate",
        &[
            "preflight",
            "--dir",
            migrations.arg(),
            "--database-url",
            &db.url(),
        ],
        &[("PGWARD_PG_BINDIR", bindir)],
    );
    let envelope = out.json();
    envelope["result"]["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == "pg-dump-version"))
        .cloned()
        .unwrap_or_else(|| panic!("no pg-dump-version check\n{out}"))
}

/// Asserts that preflight fails its pg_dump item with backup's own message and hint.
fn assert_preflight_says_what_backup_says(db: &TestDb, bindir: &str, expect_in_message: &str) {
    let backup = backup_with_bindir(db, bindir);
    let json = backup.assert_error(1, "PG_DUMP_FAILED");
    let message = json["error"]["message"].as_str().expect("a message");
    assert!(message.contains(expect_in_message), "{backup}");
    let check = preflight_pg_dump_with_bindir(db, bindir);
    assert_eq!(check["status"], "fail", "{check}");
    assert_eq!(
        check["detail"], json["error"]["message"],
        "{check}\n{backup}"
    );
    assert_eq!(check["fix"], json["error"]["hint"], "{check}\n{backup}");
}

#[test]
fn preflight_finds_and_judges_pg_dump_as_backup_does() {
    let db = cluster().create_database();

    // The cluster's own client tools: both pass, and preflight names that pg_dump.
    let own = path_str(&cluster().bin_dir).to_string();
    backup_with_bindir(&db, &own).assert_code(0);
    let check = preflight_pg_dump_with_bindir(&db, &own);
    assert_eq!(check["status"], "pass", "{check}");
    let version = std::process::Command::new(cluster().pg_bin("pg_dump"))
        .arg("--version")
        .output()
        .expect("the cluster's pg_dump runs");
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        check["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with(version.trim())),
        "{check} names {version}"
    );

    // A folder without pg_dump: preflight no longer falls back to PATH.
    let empty = temp_dir("twins_no_pg_dump_");
    assert_preflight_says_what_backup_says(&db, path_str(empty.path()), "cannot run");

    // A pg_dump too old for the server.
    let old = temp_dir("twins_old_pg_dump_");
    let script = old.path().join("pg_dump");
    std::fs::write(&script, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
        .expect("the wrapper is writable");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("the wrapper is executable");
    assert_preflight_says_what_backup_says(&db, path_str(old.path()), "9.6.24 is older than");
}
