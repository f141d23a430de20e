//! Files whose statements depend on how the session reads string literals
//! (`standard_conforming_strings`). With the setting on (PostgreSQL's default) a
//! backslash in `'...'` is an ordinary character; with it off (set for a server, a
//! database, a role, or by an earlier migration's `SET`) it escapes the next one. So
//!
//! ```sql
//! INSERT INTO t VALUES ('a\', ' ) ; COMMIT ; SELECT 1 -- ');
//! ```
//!
//! is one INSERT of two values in one session, and an INSERT, a COMMIT and a SELECT in
//! the other. pgward splits files itself; splitting this one the default way in a session
//! that reads escapes sent a hidden COMMIT to the server, which committed half of the
//! migration, while deploy reported that nothing of it was kept. What must hold, tried
//! against a real server:
//!
//! - deploy splits a file the way its session reads it, so the COMMIT is seen and a
//!   failure after it says the migration was partly committed (and what was committed
//!   is really there);
//! - in a default session the same file is one transaction, and its failure keeps nothing;
//! - a file that may change the setting itself is sent whole, as Prisma sends it, and a
//!   failure of it that may have passed a COMMIT is reported as partly committed;
//! - drift's replay never runs, in a shadow on the live server, an `ALTER SYSTEM` that
//!   only a session reading escapes would see.

use std::path::Path;

use pgward_tests::{cluster, path_str, run, Migrations, Output, TestDb};

/// Half a migration committed in a session that reads backslashes as escapes, then a
/// failure: the CREATE and the INSERT before the hidden COMMIT stay, `SELECT 1/0` fails.
const HIDDEN_COMMIT: &str = "CREATE TABLE sr_t (v text, w text);\n\
                             INSERT INTO sr_t VALUES ('a\\', ' ) ; COMMIT ; SELECT 1 -- ');\n\
                             ;\n\
                             SELECT 1/0;\n";

fn deploy(dir: &Path, db: &TestDb) -> Output {
    let url = db.url();
    run(
        "migrate",
        &["deploy", "--dir", path_str(dir), "--database-url", &url],
        &[],
    )
}

/// A database whose sessions read backslashes in strings as escapes.
fn escaping_database() -> TestDb<'static> {
    let db = cluster().create_database();
    db.psql(&format!(
        "ALTER DATABASE \"{}\" SET standard_conforming_strings = off",
        db.name
    ));
    db
}

#[test]
fn a_commit_only_an_escaping_session_sees_is_seen_and_its_failure_is_partly_committed() {
    let db = escaping_database();
    let folder = Migrations::new(&[("20240101000000_hidden", HIDDEN_COMMIT)]);
    let out = deploy(folder.path(), &db);
    let envelope = out.assert_error(1, "MIGRATION_FAILED");
    let details = &envelope["error"]["details"];
    assert_eq!(details["sqlstate"], "22012", "{out}");
    assert_eq!(details["partly_committed"], true, "{out}");
    assert_eq!(details["line"], 4, "SELECT 1/0 is on line 4: {out}");
    let hint = envelope["error"]["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("were committed"), "{out}");
    // What the report says is what the server kept: the table and its one row, with the
    // value as the escaping session read it.
    assert_eq!(db.query_one_string("SELECT v FROM sr_t"), "a', ");
    // The attempt is recorded as failed, with the statements it ran.
    let logs = db.query_one_string(
        "SELECT logs FROM _prisma_migrations WHERE migration_name = '20240101000000_hidden'",
    );
    assert!(
        logs.contains("some of the migration was committed"),
        "{logs}"
    );
}

#[test]
fn the_same_file_in_a_default_session_is_one_transaction_and_keeps_nothing() {
    let db = cluster().create_database();
    let folder = Migrations::new(&[("20240101000000_hidden", HIDDEN_COMMIT)]);
    let out = deploy(folder.path(), &db);
    let envelope = out.assert_error(1, "MIGRATION_FAILED");
    assert_eq!(
        envelope["error"]["details"]["partly_committed"], false,
        "{out}"
    );
    assert!(!db.relation_exists("sr_t"), "rolled back: {out}");
}

#[test]
fn an_earlier_migrations_set_changes_how_the_next_file_is_split() {
    // The SET of migration 1 lasts for the session: migration 2 runs in a session that
    // reads escapes though the database's default is standard.
    let db = cluster().create_database();
    let folder = Migrations::new(&[
        (
            "20240101000000_escapes",
            "SET standard_conforming_strings = off;\n",
        ),
        ("20240102000000_hidden", HIDDEN_COMMIT),
    ]);
    let out = deploy(folder.path(), &db);
    let envelope = out.assert_error(1, "MIGRATION_FAILED");
    assert_eq!(
        envelope["error"]["details"]["migration"],
        "20240102000000_hidden"
    );
    assert_eq!(
        envelope["error"]["details"]["partly_committed"], true,
        "{out}"
    );
    assert!(
        db.relation_exists("sr_t"),
        "committed by the hidden COMMIT: {out}"
    );
}

#[test]
fn an_escaping_session_runs_escaped_literals_statement_by_statement() {
    let db = escaping_database();
    let folder = Migrations::new(&[(
        "20240101000000_quotes",
        "CREATE TABLE sr_q (v text);\nINSERT INTO sr_q VALUES ('it\\'s');\n",
    )]);
    let out = deploy(folder.path(), &db);
    let envelope = out.assert_envelope(0);
    let applied = &envelope["result"]["applied"][0];
    assert_eq!(applied["mode"], "transaction", "{out}");
    assert_eq!(applied["statements"], 2, "{out}");
    assert_eq!(db.query_one_string("SELECT v FROM sr_q"), "it's");
}

#[test]
fn a_file_that_changes_the_setting_itself_is_sent_whole() {
    let db = escaping_database();
    let ok = "SET standard_conforming_strings = off;\n\
              CREATE TABLE sr_w (v text);\n\
              INSERT INTO sr_w VALUES ('it\\'s');\n";
    let folder = Migrations::new(&[("20240101000000_sets", ok)]);
    let out = deploy(folder.path(), &db);
    let envelope = out.assert_envelope(0);
    let applied = &envelope["result"]["applied"][0];
    assert_eq!(applied["mode"], "whole", "{out}");
    assert!(
        applied["reason"]
            .as_str()
            .is_some_and(|r| r.contains("standard_conforming_strings")),
        "{out}"
    );
    assert_eq!(db.query_one_string("SELECT v FROM sr_w"), "it's");

    // The same way, a failure after a COMMIT the server may have run is reported as
    // partly committed: pgward cannot tell what a file sent whole kept.
    let failing = format!("RESET ALL;\n{HIDDEN_COMMIT}");
    folder.add("20240102000000_hidden", &failing);
    let out = deploy(folder.path(), &db);
    let envelope = out.assert_error(1, "MIGRATION_FAILED");
    assert_eq!(
        envelope["error"]["details"]["partly_committed"], true,
        "{out}"
    );
    assert!(db.relation_exists("sr_t"), "{out}");
}

#[test]
fn drift_never_replays_an_alter_system_only_an_escaping_session_would_run() {
    // In a default session this is one SELECT of two strings, and deploys as such.
    let db = cluster().create_database();
    let hidden = "SELECT 'a\\', ' ; ALTER SYSTEM SET work_mem TO 1024 ; SELECT 1 -- ';\n;\n";
    let folder = Migrations::new(&[("20240101000000_hidden_system", hidden)]);
    deploy(folder.path(), &db).assert_code(0);
    let url = db.url();
    let out = run(
        "validate",
        &["drift", "--dir", folder.arg(), "--database-url", &url],
        &[],
    );
    let json = out.assert_error(6, "CLUSTER_WIDE_REPLAY");
    let statements = json["error"]["details"]["statements"].to_string();
    assert!(statements.contains("ALTER SYSTEM"), "{out}");
    assert!(
        statements.contains("standard_conforming_strings = off"),
        "says why a SELECT is refused: {out}"
    );
    assert_eq!(
        db.query_one_string(
            "SELECT count(*) FROM pg_file_settings \
             WHERE name = 'work_mem' AND sourcefile LIKE '%postgresql.auto.conf'"
        ),
        "0",
        "nothing was replayed: {out}"
    );
}
