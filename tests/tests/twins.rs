//! One implementation per concept (issue 16.6–7), seen from outside: where two binaries
//! used to answer the same question each their own way, they now give the same answer.
//!
//! - pg_dump is found and judged once (`shared/src/pgtools.rs`): `pgward-validate
//!   preflight` honours `PGWARD_PG_BINDIR` as `pgward-backup` does, and says what backup
//!   would say.
//! - Work databases are marked once (`shared/src/workdb.rs`): a drift shadow and a restore's
//!   database that killed runs left show alike in `pgward-report health`.
//! - The project reads on its own: no file cites the contract that lived outside it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use pgward_tests::{
    cluster, fixtures_dir, path_str, run, spawn, temp_dir, wait_child, wait_until, warning_codes,
    workspace_root, Migrations, Output, TestDb,
};
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

// ---------------------------------------------------------------------------------------
// Work databases: one mark, one list
// ---------------------------------------------------------------------------------------

/// The entry of `pgward-report health`'s `work_databases` named `name`, if listed.
fn work_database(health: &Value, name: &str) -> Option<Value> {
    health["result"]["work_databases"]
        .as_array()
        .expect("result.work_databases")
        .iter()
        .find(|w| w["name"] == name)
        .cloned()
}

/// The database named `prefix...` in which a statement like `like` runs, once one does.
fn database_running(prefix: &str, like: &str) -> String {
    let mut admin = cluster().client("postgres");
    let mut found = None;
    wait_until(
        Duration::from_secs(60),
        &format!("a statement like {like} runs in {prefix}*"),
        || {
            found = admin
                .query(
                    "SELECT datname::text FROM pg_stat_activity \
                     WHERE starts_with(datname, $1) AND state = 'active' AND query LIKE $2",
                    &[&prefix, &like],
                )
                .expect("pg_stat_activity can be read")
                .first()
                .map(|r| r.get(0));
            found.is_some()
        },
    );
    found.expect("found")
}

/// SIGKILLs a spawned binary and reaps it.
fn kill_9(mut child: std::process::Child) {
    child.kill().expect("kill -9");
    let out = wait_child(child);
    assert_eq!(out.code, 128 + 9, "the run died of SIGKILL\n{out}");
}

/// Waits until the session that created work database `name` (named in its mark) is gone:
/// a killed run's idle session ends only once the server notices its client died.
fn wait_for_creator_to_end(name: &str) {
    let mut admin = cluster().client("postgres");
    wait_until(
        Duration::from_secs(30),
        &format!("the session that created {name} ends"),
        || {
            admin
                .query_one(
                    "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity a \
                     WHERE a.pid::text = (regexp_match(shobj_description(d.oid, 'pg_database'), \
                                                       'creating session ([0-9]+):'))[1]) \
                     FROM pg_database d WHERE datname = $1",
                    &[&name],
                )
                .expect("the mark can be read")
                .get(0)
        },
    );
}

/// Ends every session on database `name` (the statements a killed run left running), and
/// waits until none is left.
fn end_sessions_on(name: &str) {
    cluster()
        .client("postgres")
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .expect("pg_terminate_backend");
    wait_until(
        Duration::from_secs(30),
        &format!("no session is left on {name}"),
        || cluster().sessions_on(name) == 0,
    );
}

#[test]
fn report_health_lists_a_killed_drift_shadow_and_a_killed_restore_alike() {
    let db = cluster().create_database();
    let slow = fixtures_dir().join("validate_drift").join("slow_in_shadow");
    db.deploy(&slow);
    db.psql(
        "CREATE TABLE big (id integer PRIMARY KEY, v text); \
         INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 300000) AS g;",
    );

    // A drift run killed while its replay sleeps in the shadow.
    let drift = spawn(
        "validate",
        &[
            "drift",
            "--dir",
            path_str(&slow),
            "--database-url",
            &db.url(),
        ],
        &[],
    );
    let shadow = database_running("pgward_shadow_", "%pg_sleep%");
    kill_9(drift);

    // A restore into a new database killed while it loads.
    let root = temp_dir("twins_restore_");
    let backup = run(
        "backup",
        &["--to", path_str(root.path()), "--database-url", &db.url()],
        &cluster().pg_tools_env(),
    );
    backup.assert_code(0);
    let id = backup.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let target = cluster().vacant_database();
    let from = format!("{}/{id}", path_str(root.path()));
    let restore = spawn(
        "restore",
        &[
            "--from",
            &from,
            "--database-url",
            &db.url(),
            "--target-db",
            &target.name,
            "--create",
        ],
        &cluster().pg_tools_env(),
    );
    let partial = format!("pgward_restoring_{}", target.name);
    wait_until(
        Duration::from_secs(60),
        "the restore begins loading",
        || cluster().sessions_on(&partial) > 0,
    );
    kill_9(restore);

    // Whatever the killed runs left running in them ends (the server notices a dead
    // client only when it next talks to it).
    end_sessions_on(&shadow);
    end_sessions_on(&partial);
    wait_for_creator_to_end(&shadow);
    wait_for_creator_to_end(&partial);

    let out = run("report", &["health", "--database-url", &db.url()], &[]);
    out.assert_code(0);
    let health = out.json();
    for (name, what) in [
        (&shadow, "shadow database of pgward-validate drift on"),
        (&partial, "restore of backup"),
    ] {
        let listed =
            work_database(&health, name).unwrap_or_else(|| panic!("{name} is listed\n{out}"));
        assert!(
            listed["what"].as_str().is_some_and(|w| w.starts_with(what)),
            "{name} says what it is\n{out}"
        );
        assert_eq!(listed["sessions"], 0, "{out}");
        assert_eq!(listed["creator_running"], false, "{out}");
    }
    let left = health["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .find(|w| w["code"] == "WORK_DATABASES_LEFT")
        .unwrap_or_else(|| panic!("{:?}\n{out}", warning_codes(&health)));
    let message = left["message"].as_str().expect("a message");
    assert!(
        message.contains(&format!("{shadow} (")) && message.contains(&format!("{partial} (")),
        "both leftovers are warned about, with their sizes\n{out}"
    );

    // The next drift drops the shadow; the restore's leftover waits for the next restore
    // into its target (backup_restore.rs covers that), so it is dropped by hand here.
    let other = cluster().create_database();
    let out = run(
        "validate",
        &[
            "drift",
            "--dir",
            path_str(&fixtures_dir().join("validate_drift").join("every_kind")),
            "--database-url",
            &other.url(),
        ],
        &[],
    );
    out.assert_code(0);
    assert!(!cluster().database_exists(&shadow), "{out}");
    cluster()
        .client("postgres")
        .batch_execute(&format!("DROP DATABASE \"{partial}\""))
        .expect("the restore's leftover is dropped");
}

// ---------------------------------------------------------------------------------------
// The project reads on its own
// ---------------------------------------------------------------------------------------

/// Where an optional outside corpus may be named (tests/fixtures/corpus/README.md,
/// bench/lint-vs-squawk.sh): the only places that may mention a folder beside the project.
const MAY_NAME_OUTSIDE: &[&str] = &["tests/fixtures/corpus/", "bench/"];

/// Every file of the repository below `dir` (as `root`-relative paths), leaving out
/// `.git` and the build output.
fn repository_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("a readable folder") {
        let path = entry.expect("a readable entry").path();
        let relative = path
            .strip_prefix(root)
            .expect("below the root")
            .to_string_lossy()
            .into_owned();
        if relative == ".git" || relative == "target" {
            continue;
        }
        if path.is_dir() {
            repository_files(root, &path, out);
        } else {
            out.push(relative);
        }
    }
}

#[test]
fn no_file_cites_a_contract_outside_the_repository() {
    let root = workspace_root();
    let mut files = Vec::new();
    repository_files(&root, &root, &mut files);
    let this_file = "tests/tests/twins.rs";
    let mut citing = Vec::new();
    let mut read = 0;
    for file in files {
        if file == this_file || MAY_NAME_OUTSIDE.iter().any(|p| file.starts_with(p)) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else {
            continue; // not text
        };
        read += 1;
        for (n, line) in text.lines().enumerate() {
            if line.contains("../shared/") || line.contains("SPEC.md") {
                citing.push(format!("{file}:{}: {line}", n + 1));
            }
        }
    }
    assert!(read > 100, "the repository's files were read ({read})");
    assert!(
        citing.is_empty(),
        "these cite files outside the repository; move what they need into docs/:\n{}",
        citing.join("\n")
    );
}
