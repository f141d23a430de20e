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
//! - after a statement that may change how the server reads what follows (the setting,
//!   by any name; `client_encoding`, whose multi-byte encodings can swallow a backslash),
//!   every statement of the session is preceded by a look at it (in the replays of
//!   unreviewed files, every statement), and one the server would read otherwise than
//!   pgward cut it is never sent: also when the setting changed as a transaction ended;
//! - a file sent whole (the parser rejected it) that fails without a COMMIT keeps nothing;
//! - drift's replay never runs, in a shadow on the live server, an `ALTER SYSTEM` that
//!   only a session reading escapes would see.

use std::path::Path;

use pgward_tests::{cluster, error_message, path_str, run, Migrations, Output, TestDb};

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

/// `pgward-validate lint --trace` of the pending migrations of `folder` against `db`: a
/// replay on a shadow database on `db`'s server.
fn lint_trace(folder: &Migrations, db: &TestDb) -> Output {
    let url = db.url();
    run(
        "validate",
        &[
            "lint",
            "--dir",
            folder.arg(),
            "--trace",
            "--database-url",
            &url,
        ],
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
fn a_file_that_sets_the_reading_it_already_has_runs_as_it_reads() {
    // The SET changes nothing in a session that reads escapes already.
    let db = escaping_database();
    let ok = "SET standard_conforming_strings = off;\n\
              CREATE TABLE sr_w (v text);\n\
              INSERT INTO sr_w VALUES ('it\\'s');\n";
    let folder = Migrations::new(&[("20240101000000_sets", ok)]);
    let out = deploy(folder.path(), &db);
    let envelope = out.assert_envelope(0);
    assert_eq!(
        envelope["result"]["applied"][0]["mode"], "transaction",
        "{out}"
    );
    assert_eq!(db.query_one_string("SELECT v FROM sr_w"), "it's");
}

/// The deploy in `out` stopped before sending the statement on `line` of `migration`,
/// saying `why`, with nothing of that migration kept.
fn stopped_before(out: &Output, migration: &str, line: u64, why: &str) {
    let envelope = out.assert_error(1, "MIGRATION_FAILED");
    let details = &envelope["error"]["details"];
    assert_eq!(details["migration"], migration, "{out}");
    assert_eq!(details["line"], line, "{out}");
    assert_eq!(details["partly_committed"], false, "{out}");
    assert!(error_message(&envelope).contains("not sent"), "{out}");
    assert!(error_message(&envelope).contains(why), "{out}");
}

#[test]
fn looking_at_the_session_leaves_set_transaction_first_in_its_transaction() {
    // SHOW takes no snapshot: a SET TRANSACTION after a looked-at statement still works,
    // in deploy and in lint --trace's replay (which looks before every statement).
    let db = cluster().create_database();
    let file = "SET client_encoding = 'UTF8';\n\
                SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;\n\
                CREATE TABLE sr_iso (id int);\n";
    let folder = Migrations::new(&[("20240101000000_iso", file)]);
    let out = lint_trace(&folder, &db);
    out.assert_code(0);
    deploy(folder.path(), &db).assert_code(0);
    assert!(db.relation_exists("sr_iso"));
}

#[test]
fn a_file_that_changes_the_reading_part_way_stops_before_the_next_statement() {
    // However the setting is named, every statement after one that may change it is
    // preceded by a look at the session: the hidden COMMIT is never sent, nothing is
    // kept, and the report says so truthfully.
    let db = cluster().create_database();
    let file = format!(
        "SELECT set_config('standard_conforming' || '_strings', 'off', false);\n{HIDDEN_COMMIT}"
    );
    let folder = Migrations::new(&[("20240101000000_turns", &file)]);
    let out = deploy(folder.path(), &db);
    stopped_before(
        &out,
        "20240101000000_turns",
        2,
        "standard_conforming_strings is now off",
    );
    assert!(!db.relation_exists("sr_t"), "{out}");
}

/// A statement in SJIS whose second byte is a backslash: a session reading SJIS reads
/// `E'с\'` (Cyrillic с, bytes D1 81 in UTF-8) as a literal closed before `) ; COMMIT`.
const SJIS_HIDDEN: &str = "SET client_encoding = 'SJIS';\n\
                           CREATE TABLE sr_sj (v text);\n\
                           INSERT INTO sr_sj VALUES (E'\u{441}\\' ) ; COMMIT ; SELECT 1 -- ');\n\
                           SELECT 1/0;\n";

#[test]
fn a_migration_that_changes_the_client_encoding_stops_before_the_server_reads_on() {
    let db = cluster().create_database();
    let folder = Migrations::new(&[("20240101000000_sjis", SJIS_HIDDEN)]);
    let out = deploy(folder.path(), &db);
    stopped_before(
        &out,
        "20240101000000_sjis",
        2,
        "client_encoding is now SJIS",
    );
    assert!(!db.relation_exists("sr_sj"), "{out}");

    // A pg_dump-style header that sets what the session has already runs as before.
    let header = "SET client_encoding = 'UTF8';\n\
                  SET standard_conforming_strings = on;\n\
                  SELECT pg_catalog.set_config('search_path', 'public', false);\n\
                  CREATE TABLE sr_hdr (v text);\n\
                  INSERT INTO sr_hdr VALUES ('C:\\');\n";
    folder.add("20240102000000_header", header);
    std::fs::remove_dir_all(folder.path().join("20240101000000_sjis")).expect("removable");
    let db = cluster().create_database();
    deploy(folder.path(), &db).assert_code(0);
    assert_eq!(db.query_one_string("SELECT v FROM sr_hdr"), "C:\\");
}

#[test]
fn a_setting_changed_when_a_transaction_ends_stops_the_next_file() {
    // SET LOCAL masks the SET until the migration commits; the next file's statement is
    // looked at before it is sent, and never sent.
    let db = cluster().create_database();
    let role = format!("sr_masked_{}", db.name);
    let mask = "SELECT set_config('client_encoding', 'SJIS', false), \
                set_config('client_encoding', 'UTF8', true);\n";
    let payload = format!("SELECT E'\u{441}\\' ; CREATE ROLE {role} ; SELECT 1 -- ';\n");
    let folder = Migrations::new(&[
        ("20240101000000_mask", mask),
        ("20240102000000_payload", &payload),
    ]);
    let out = deploy(folder.path(), &db);
    stopped_before(
        &out,
        "20240102000000_payload",
        1,
        "client_encoding is now SJIS",
    );
    let roles = format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'");
    assert_eq!(db.query_one_string(&roles), "0", "{out}");
}

#[test]
fn lint_trace_looks_before_every_statement_of_a_file_nobody_reviewed() {
    // Nothing in the file after the COMMIT is flagged; the replay looks anyway.
    let db = cluster().create_database();
    let role = format!("sr_unreviewed_{}", db.name);
    let file = format!(
        "CREATE TABLE sr_lt (v text);\n\
         SELECT set_config('standard_conforming_strings', 'off', false), \
         set_config('standard_conforming_strings', 'on', true);\n\
         COMMIT;\n\
         SELECT 'a\\', ' ; COMMIT ; CREATE ROLE {role} ; SELECT 1 -- ';\n\
         SELECT '\\';\n"
    );
    let folder = Migrations::new(&[("20240101000000_unreviewed", &file)]);
    let out = lint_trace(&folder, &db);
    let json = out.assert_error(1, "SHADOW_MIGRATION_FAILED");
    assert!(
        error_message(&json).contains("standard_conforming_strings is now off"),
        "{out}"
    );
    let roles = format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'");
    assert_eq!(db.query_one_string(&roles), "0", "{out}");
}

#[test]
fn lint_trace_looks_after_its_own_queries_right_before_the_statement() {
    // The tracer reads the catalogs before each statement; a file that hijacks an
    // operator those reads use changes the encoding after any earlier look.
    let db = cluster().create_database();
    let role = format!("sr_hijack_{}", db.name);
    let file = format!(
        "CREATE FUNCTION public.sr_eq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS $f$\n\
         BEGIN PERFORM pg_catalog.set_config('client_encoding', 'SJIS', false);\n\
         RETURN pg_catalog.oideq($1, $2); END $f$;\n\
         CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.sr_eq);\n\
         SET search_path = public, pg_catalog;\n\
         SELECT E'\u{441}\\' ; CREATE ROLE {role} ; SELECT 1 -- ';\n"
    );
    let folder = Migrations::new(&[("20240101000000_hijack", &file)]);
    let out = lint_trace(&folder, &db);
    let json = out.assert_error(1, "SHADOW_MIGRATION_FAILED");
    assert!(error_message(&json).contains("not sent"), "{out}");
    let roles = format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'");
    assert_eq!(db.query_one_string(&roles), "0", "{out}");
}

#[test]
fn a_call_only_an_escaping_session_reads_is_refused_by_the_replays() {
    // Cut alike in both readings, but the escaping one reads a call of lo_export where
    // the standard one reads two literals.
    let db = cluster().create_database();
    let file = "SELECT lo_from_bytea(0, 'x');\n\
                SET standard_conforming_strings = off;\n\
                SELECT 'x\\', ' , lo_export(4242, $$/tmp/sr_pwned$$) , ' AS c -- '\n;\n";
    let folder = Migrations::new(&[("20240101000000_export", file)]);
    let out = lint_trace(&folder, &db);
    let json = out.assert_error(6, "CLUSTER_WIDE_REPLAY");
    assert!(
        json["error"]["details"]["statements"]
            .to_string()
            .contains("lo_export"),
        "{out}"
    );
    assert!(!std::path::Path::new("/tmp/sr_pwned").exists());
}

#[test]
fn a_refusal_for_the_encoding_is_recorded_in_utf8() {
    let db = cluster().create_database();
    let mask = "SELECT set_config('client_encoding', 'SJIS', false), \
                set_config('client_encoding', 'UTF8', true);\n";
    let next = "CREATE TABLE sr_rec (v text DEFAULT '\u{430}\u{441}');\n";
    let folder = Migrations::new(&[("20240101000000_mask", mask), ("20240102000000_next", next)]);
    let out = deploy(folder.path(), &db);
    stopped_before(
        &out,
        "20240102000000_next",
        1,
        "client_encoding is now SJIS",
    );
    let logs = db.query_one_string(
        "SELECT logs FROM _prisma_migrations WHERE migration_name = '20240102000000_next'",
    );
    assert!(
        logs.contains("not sent") && logs.contains("\u{430}\u{441}"),
        "{logs}"
    );
}

#[test]
fn lint_trace_never_runs_what_only_another_encoding_reveals() {
    let db = cluster().create_database();
    let role = format!("sr_hidden_{}", db.name);
    let file = format!(
        "SET client_encoding = 'SJIS';\nSELECT E'\u{441}\\' ; CREATE ROLE {role} ; SELECT 1 -- ';\n"
    );
    let folder = Migrations::new(&[("20240101000000_hidden", &file)]);
    let out = lint_trace(&folder, &db);
    let json = out.assert_error(1, "SHADOW_MIGRATION_FAILED");
    assert!(
        error_message(&json).contains("client_encoding is now SJIS"),
        "{out}"
    );
    assert_eq!(
        db.query_one_string(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"
        )),
        "0",
        "{out}"
    );
}

#[test]
fn a_file_sent_whole_is_judged_by_what_comes_before_the_servers_error() {
    // A psql meta-command file: the server rejects its first line, so nothing ran,
    // whatever COMMIT or END follows (here a function body's, after a backslash).
    let db = cluster().create_database();
    let file = "\\set ON_ERROR_STOP on\n\
                CREATE FUNCTION sr_f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n\
                COMMIT;\n";
    let folder = Migrations::new(&[("20240101000000_meta", file)]);
    let out = deploy(folder.path(), &db);
    let envelope = out.assert_error(1, "MIGRATION_FAILED");
    assert_eq!(envelope["error"]["details"]["line"], 1, "{out}");
    assert_eq!(
        envelope["error"]["details"]["partly_committed"], false,
        "{out}"
    );
}

#[test]
fn a_file_sent_whole_that_fails_to_parse_reports_nothing_kept() {
    // The server parses the whole query before it runs any of it: a syntax error means
    // nothing ran, a COMMIT before it included.
    for file in [
        "CREATE TABLE sr_whole (id int);\nCREATE TABLE (;\n",
        "CREATE TABLE sr_whole (id int);\nCOMMIT;\nCREATE TABLE (;\n",
    ] {
        let db = cluster().create_database();
        let folder = Migrations::new(&[("20240101000000_broken", file)]);
        let out = deploy(folder.path(), &db);
        let envelope = out.assert_error(1, "MIGRATION_FAILED");
        let details = &envelope["error"]["details"];
        assert_eq!(details["partly_committed"], false, "{out}");
        assert!(!db.relation_exists("sr_whole"), "{out}");
    }
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
