//! Guards that cannot be walked around (issue 15, points 9, 13 and 14), end to end
//! against a real PostgreSQL server:
//!
//! - a CREATE INDEX CONCURRENTLY that times out in its wait phase (another session holds
//!   a lock on the table) leaves an INVALID index: deploy drops that index, the one it
//!   created, before retrying, and never records a migration applied over an INVALID
//!   index (IF NOT EXISTS would skip it);
//! - drift refuses to replay migrations holding cluster-wide statements (ALTER ROLE, ...)
//!   into a shadow database on the live server, where they would run again;
//! - history text is bound, not spliced into SQL, so a session with
//!   `standard_conforming_strings = off` cannot turn a failure's logs into SQL.
//!
//! The script side (migrate.sh's automatic restore) is in `scripts.rs`; the crafted
//! pgward.toml values, and database names libpq would read as a connection string, in
//! `adversarial/config_values.rs` and `adversarial/urls.rs`.

use std::path::Path;
use std::time::Duration;

use pgward_tests::{
    cluster, path_str, run, wait_until, warning_codes, Cluster, Migrations, Output, TestDb,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `pgward-migrate deploy --dir DIR --database-url URL EXTRA...`.
fn deploy(dir: &Path, db: &TestDb, extra: &[&str]) -> Output {
    let url = db.url();
    let mut args = vec![
        "deploy",
        "--dir",
        path_str(dir),
        "--database-url",
        url.as_str(),
    ];
    args.extend_from_slice(extra);
    run("migrate", &args, &[])
}

/// `(name, valid)` of every index on `table`, by name.
fn indexes(db: &TestDb, table: &str) -> Vec<(String, bool)> {
    db.client()
        .query(
            "SELECT c.relname::text, i.indisvalid FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::text::regclass \
             ORDER BY 1",
            &[&table],
        )
        .expect("the indexes can be listed")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The names of the migrations recorded as applied.
fn applied(db: &TestDb) -> Vec<String> {
    db.client()
        .query(
            "SELECT migration_name::text FROM _prisma_migrations \
             WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY 1",
            &[],
        )
        .expect("the history can be read")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const CREATE_T: &str = "20240101000000_create_t";
const INDEX_T: &str = "20240102000000_index_t";

/// A database where a first deploy created `t (a int)` with rows, and the folder.
fn table_t(db: &TestDb) -> Migrations {
    let folder = Migrations::new(&[(
        CREATE_T,
        "CREATE TABLE t (id int PRIMARY KEY, a int);\n\
         INSERT INTO t SELECT g, g % 7 FROM generate_series(1, 1000) g;\n",
    )]);
    deploy(folder.path(), db, &[]).assert_code(0);
    folder
}

// ---------------------------------------------------------------------------------------
// 9. CREATE INDEX CONCURRENTLY and its INVALID index
// ---------------------------------------------------------------------------------------

/// [`table_t`], a pending `CREATE INDEX CONCURRENTLY t_a_idx ON t (a)`, and another
/// session with a write on `t` in an open transaction: its ROW EXCLUSIVE lock lets the
/// build create its (INVALID) index, then makes it wait, and time out, in the phase that
/// waits for every transaction using the table.
fn concurrent_build_blocked(db: &TestDb) -> (Migrations, postgres::Client) {
    let folder = table_t(db);
    folder.add(INDEX_T, "CREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n");
    let mut writer = db.client();
    writer
        .batch_execute("BEGIN; INSERT INTO t VALUES (100001, 1)")
        .expect("the writer opens its transaction");
    (folder, writer)
}

/// `pgward-migrate resolve --rolled-back NAME`; must succeed.
fn resolve_rolled_back(dir: &Path, db: &TestDb, name: &str) {
    run(
        "migrate",
        &[
            "resolve",
            "--rolled-back",
            name,
            "--dir",
            path_str(dir),
            "--database-url",
            &db.url(),
        ],
        &[],
    )
    .assert_code(0);
}

#[test]
fn a_concurrent_index_build_that_times_out_is_cleaned_before_its_retry() {
    let db = cluster().create_database();
    let (folder, mut writer) = concurrent_build_blocked(&db);
    let mut watcher = db.client();
    // Lets go once the first attempt has timed out (its failure is in the history) and
    // a retry has had time to meet the lock again.
    let releaser = std::thread::spawn(move || {
        wait_until(
            Duration::from_secs(60),
            "deploy records the timed-out attempt",
            || {
                let n: i64 = watcher
                    .query_one(
                        "SELECT count(*) FROM public._prisma_migrations \
                         WHERE migration_name = $1 AND logs LIKE '%55P03%'",
                        &[&INDEX_T],
                    )
                    .expect("the history can be read")
                    .get(0);
                n >= 1
            },
        );
        std::thread::sleep(Duration::from_millis(1200));
        writer.batch_execute("COMMIT").expect("the writer commits");
    });

    let out = deploy(
        folder.path(),
        &db,
        &[
            "--lock-timeout",
            "300ms",
            "--retries",
            "8",
            "--retry-backoff",
            "200ms",
        ],
    );
    releaser.join().expect("the releasing thread succeeds");

    out.assert_code(0);
    let json = out.json();
    let retries = json["result"]["applied"][0]["retries"]
        .as_i64()
        .expect("retries is a number");
    assert!(retries >= 1, "the build needed a retry\n{out}");
    assert!(
        warning_codes(&json)
            .iter()
            .any(|c| c == "LOCK_TIMEOUT_RETRY"),
        "{out}"
    );
    assert!(
        out.stderr.contains("dropped the INVALID index"),
        "the index the timed-out build left was dropped before the retry\n{out}"
    );
    assert_eq!(
        indexes(&db, "t"),
        [("t_a_idx".to_string(), true), ("t_pkey".to_string(), true)],
        "one valid index, nothing INVALID left\n{out}"
    );
    assert_eq!(applied(&db), [CREATE_T, INDEX_T]);
    assert_eq!(
        db.query_one_string("SELECT count(*) FROM t"),
        "1001",
        "the writer's row is kept"
    );
}

#[test]
fn a_concurrent_index_build_that_times_out_without_retries_leaves_nothing_or_names_it() {
    let db = cluster().create_database();
    let (folder, mut writer) = concurrent_build_blocked(&db);

    // The writer still holds its lock when deploy gives up: the INVALID index cannot be
    // dropped either (that needs the same wait), and the error says so and names it.
    let out = deploy(folder.path(), &db, &["--lock-timeout", "300ms"]);
    let json = out.assert_error(1, "MIGRATION_FAILED");
    assert_eq!(json["error"]["details"]["sqlstate"], "55P03", "{out}");
    assert_eq!(json["error"]["details"]["partly_committed"], false, "{out}");
    assert_eq!(
        json["error"]["details"]["left_behind"],
        serde_json::json!(["t_a_idx"]),
        "{out}"
    );
    let hint = json["error"]["hint"].as_str().expect("a hint");
    assert!(
        hint.contains("DROP INDEX CONCURRENTLY t_a_idx"),
        "the hint says how to drop it\n{out}"
    );
    writer.batch_execute("COMMIT").expect("the writer commits");

    // A unique build that fails on duplicates (no lock involved) leaves its INVALID
    // index too; deploy drops it at once, and only it: the INVALID index of the same
    // table the first run left stays, it is not this statement's.
    let unique = "20240103000000_unique_t";
    folder.add(
        unique,
        "CREATE UNIQUE INDEX CONCURRENTLY t_a_key ON t (a);\n",
    );
    resolve_rolled_back(folder.path(), &db, INDEX_T);
    std::fs::remove_dir_all(folder.path().join(INDEX_T)).expect("the migration can be removed");
    let out = deploy(folder.path(), &db, &[]);
    let json = out.assert_error(1, "MIGRATION_FAILED");
    assert_eq!(json["error"]["details"]["sqlstate"], "23505", "{out}");
    assert_eq!(
        json["error"]["details"]["left_behind"],
        serde_json::json!([]),
        "{out}"
    );
    assert_eq!(
        indexes(&db, "t"),
        [("t_a_idx".to_string(), false), ("t_pkey".to_string(), true)],
        "t_a_key is gone; t_a_idx, which another statement left, is not touched\n{out}"
    );
}

#[test]
fn a_timed_out_statement_that_may_have_left_work_pgward_cannot_clean_is_not_retried() {
    let db = cluster().create_database();
    let folder = table_t(&db);
    // REINDEX CONCURRENTLY builds t_pkey_ccnew, then waits for the writer like a
    // concurrent build does; its leftovers are not pgward's to guess at.
    folder.add(INDEX_T, "REINDEX INDEX CONCURRENTLY t_pkey;\n");
    let mut writer = db.client();
    writer
        .batch_execute("BEGIN; INSERT INTO t VALUES (100001, 1)")
        .expect("the writer opens its transaction");
    let out = deploy(
        folder.path(),
        &db,
        &[
            "--lock-timeout",
            "300ms",
            "--retries",
            "3",
            "--retry-backoff",
            "100ms",
        ],
    );
    writer.batch_execute("COMMIT").expect("the writer commits");
    let json = out.assert_error(1, "MIGRATION_FAILED");
    assert_eq!(json["error"]["details"]["sqlstate"], "55P03", "{out}");
    let warnings = warning_codes(&json);
    assert!(
        warnings.iter().any(|c| c == "LOCK_TIMEOUT_NOT_RETRIED")
            && !warnings.iter().any(|c| c == "LOCK_TIMEOUT_RETRY"),
        "{out}"
    );
    assert_eq!(
        db.query_one_string(&format!(
            "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '{INDEX_T}'"
        )),
        "1",
        "one attempt, not retried"
    );
}

#[test]
fn a_failed_concurrent_build_in_a_down_sql_leaves_no_invalid_index() {
    let db = cluster().create_database();
    let folder = table_t(&db);
    // The migration dropped a unique index; its down.sql builds it again, concurrently,
    // and fails on the duplicates written since.
    folder.add(INDEX_T, "SELECT 1;\n");
    std::fs::write(
        folder.path().join(INDEX_T).join("down.sql"),
        "CREATE UNIQUE INDEX CONCURRENTLY t_a_key ON t (a);\n",
    )
    .expect("down.sql is writable");
    deploy(folder.path(), &db, &[]).assert_code(0);
    let out = run(
        "migrate",
        &[
            "rollback",
            "--dir",
            path_str(folder.path()),
            "--database-url",
            &db.url(),
        ],
        &[],
    );
    let json = out.assert_error(1, "ROLLBACK_FAILED");
    assert_eq!(json["error"]["details"]["sqlstate"], "23505", "{out}");
    assert_eq!(
        indexes(&db, "t"),
        [("t_pkey".to_string(), true)],
        "the INVALID t_a_key the failed build left is dropped\n{out}"
    );
    assert_eq!(applied(&db), [CREATE_T, INDEX_T], "{INDEX_T} stays applied");
}

#[test]
fn a_migration_is_never_recorded_applied_over_an_invalid_index() {
    let db = cluster().create_database();
    let folder = table_t(&db);
    // An INVALID t_a_idx, as a concurrent build that failed outside pgward leaves it.
    db.psql(
        "CREATE INDEX t_a_idx ON t (a);\n\
         UPDATE pg_index SET indisvalid = false WHERE indexrelid = 't_a_idx'::regclass;",
    );
    for (name, sql) in [
        (
            INDEX_T,
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a_idx ON t (a);\n",
        ),
        (
            "20240102000000_index_t_in_a_transaction",
            "CREATE INDEX IF NOT EXISTS t_a_idx ON t (a);\nCREATE TABLE u (id int);\n",
        ),
    ] {
        folder.add(name, sql);
        let out = deploy(folder.path(), &db, &[]);
        let json = out.assert_error(1, "MIGRATION_FAILED");
        let message = json["error"]["message"].as_str().expect("a message");
        assert!(
            message.contains("t_a_idx") && message.contains("INVALID"),
            "{name}: the error names the INVALID index\n{out}"
        );
        assert_eq!(json["error"]["details"]["migration"], name, "{out}");
        assert_eq!(
            applied(&db),
            [CREATE_T],
            "{name} is not recorded as applied"
        );
        assert_eq!(
            indexes(&db, "t"),
            [("t_a_idx".to_string(), false), ("t_pkey".to_string(), true)],
            "an index pgward did not create is never dropped\n{out}"
        );
        resolve_rolled_back(folder.path(), &db, name);
        std::fs::remove_dir_all(folder.path().join(name)).expect("the migration can be removed");
    }
    assert_eq!(
        db.query_one_string("SELECT to_regclass('u') IS NULL"),
        "t",
        "the transactional migration was rolled back whole"
    );

    // An index ON ONLY a partitioned table is INVALID by design until every partition's
    // index is attached, which a later migration may do: that one is not held against it.
    let partitioned = "20240103000000_partitioned";
    folder.add(
        partitioned,
        "CREATE TABLE p (id int, a int) PARTITION BY RANGE (id);\n\
         CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);\n\
         CREATE INDEX IF NOT EXISTS p_a_idx ON ONLY p (a);\n",
    );
    deploy(folder.path(), &db, &[]).assert_code(0);
    assert_eq!(applied(&db), [CREATE_T, partitioned]);
    assert_eq!(indexes(&db, "p"), [("p_a_idx".to_string(), false)]);
}

// ---------------------------------------------------------------------------------------
// 13. drift and cluster-wide statements
// ---------------------------------------------------------------------------------------

/// A role of this test's own, and the `work_mem` its settings hold on the live server.
fn role_work_mem(db: &TestDb, role: &str) -> String {
    db.query_one_string(&format!(
        "SELECT coalesce((SELECT array_to_string(s.setconfig, ',') FROM pg_db_role_setting s \
           JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = '{role}' AND s.setdatabase = 0), '')"
    ))
}

/// A migration the parser cannot read cannot be checked for server-wide statements: drift
/// refuses to replay it on the live server (it replays on a separate one).
#[test]
fn drift_refuses_to_replay_an_unparseable_migration_on_the_live_server() {
    let db = cluster().create_database();
    let folder = Migrations::new(&[(CREATE_T, "CREATE TABLE t (id int PRIMARY KEY);\n")]);
    deploy(folder.path(), &db, &[]).assert_code(0);
    // Recorded as applied by hand (as `resolve --applied` does for a migration run
    // elsewhere): its text is nothing the parser reads.
    let odd = "20240102000000_odd";
    folder.add(odd, "ALTER ROLE CURRENT_USER SET work_mem = '17MB' +;\n");
    let url = db.url();
    run(
        "migrate",
        &[
            "resolve",
            "--applied",
            odd,
            "--dir",
            path_str(folder.path()),
            "--database-url",
            &url,
        ],
        &[],
    )
    .assert_code(0);
    let out = run(
        "validate",
        &[
            "drift",
            "--dir",
            path_str(folder.path()),
            "--database-url",
            &url,
        ],
        &[],
    );
    let json = out.assert_error(6, "CLUSTER_WIDE_REPLAY");
    assert!(
        json["error"]["details"]["statements"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s
                .as_str()
                .is_some_and(|s| s.contains("could not be parsed")))),
        "{out}"
    );
}

#[test]
fn drift_refuses_to_replay_cluster_wide_statements_on_the_live_server() {
    let db = cluster().create_database();
    let role = format!("guard_{}", db.name);
    db.psql(&format!("CREATE ROLE \"{role}\""));
    let folder = Migrations::new(&[
        (CREATE_T, "CREATE TABLE t (id int PRIMARY KEY);\n"),
        (
            "20240102000000_role_settings",
            &format!("ALTER ROLE \"{role}\" SET work_mem = '17MB';\n"),
        ),
        (
            "20240103000000_dynamic",
            &format!(
                "DO $$ BEGIN EXECUTE format('ALTER ROLE %I SET work_mem = ''17MB''', '{role}'); END $$;\n"
            ),
        ),
    ]);
    deploy(folder.path(), &db, &[]).assert_code(0);
    // Someone tuned the role since; a replay on this server would undo it.
    db.psql(&format!("ALTER ROLE \"{role}\" SET work_mem = '20MB'"));

    let check = |extra: &[&str]| {
        let url = db.url();
        let mut args = vec![
            "drift",
            "--dir",
            path_str(folder.path()),
            "--database-url",
            url.as_str(),
        ];
        args.extend_from_slice(extra);
        run("validate", &args, &[])
    };
    let out = check(&[]);
    let json = out.assert_error(6, "CLUSTER_WIDE_REPLAY");
    let statements: Vec<&str> = json["error"]["details"]["statements"]
        .as_array()
        .expect("the statements are listed")
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect();
    assert_eq!(
        statements,
        [
            "20240102000000_role_settings line 1: ALTER ROLE ... SET",
            "20240103000000_dynamic line 1: ALTER ROLE ... SET",
        ],
        "{out}"
    );
    assert!(
        json["error"]["hint"]
            .as_str()
            .expect("a hint")
            .contains("--shadow-url"),
        "{out}"
    );
    assert_eq!(
        role_work_mem(&db, &role),
        "work_mem=20MB",
        "nothing was replayed"
    );

    // A --shadow-url database on the same server is the same server.
    let same_server = cluster().create_database();
    let out = check(&["--shadow-url", &same_server.url()]);
    out.assert_error(6, "CLUSTER_WIDE_REPLAY");
    assert_eq!(role_work_mem(&db, &role), "work_mem=20MB");

    // A shadow on a separate server: the replay runs there, and the live role keeps its
    // setting.
    let other = Cluster::start();
    let shadow = other.create_database();
    shadow.psql(&format!("CREATE ROLE \"{role}\""));
    let out = check(&["--shadow-url", &shadow.url()]);
    assert!(
        out.code == 0 || out.code == 3,
        "drift runs with a shadow on another server\n{out}"
    );
    assert_eq!(role_work_mem(&db, &role), "work_mem=20MB");
    assert_eq!(role_work_mem(&shadow, &role), "work_mem=17MB", "{out}");

    // A subscription connects to its publisher from wherever it is replayed: refused
    // whichever server the shadow is on.
    folder.add(
        "20240104000000_subscription",
        "CREATE SUBSCRIPTION guard_sub CONNECTION 'host=/nonexistent dbname=app' \
         PUBLICATION p WITH (connect = false);\n",
    );
    deploy(folder.path(), &db, &[]).assert_code(0);
    let empty = other.create_database();
    let out = check(&["--shadow-url", &empty.url()]);
    let json = out.assert_error(6, "CLUSTER_WIDE_REPLAY");
    assert_eq!(json["error"]["details"]["other_servers"], true, "{out}");
    assert_eq!(
        json["error"]["details"]["statements"],
        serde_json::json!([
            "20240104000000_subscription line 1: CREATE SUBSCRIPTION (connects to the publisher and creates a replication slot there)"
        ]),
        "{out}"
    );
    db.psql(
        "ALTER SUBSCRIPTION guard_sub SET (slot_name = NONE);\n\
         DROP SUBSCRIPTION guard_sub;",
    );
    db.psql(&format!("DROP ROLE \"{role}\""));
}

// ---------------------------------------------------------------------------------------
// 14. History text is bound; database names are names
// ---------------------------------------------------------------------------------------

#[test]
fn failure_logs_are_bound_parameters_even_with_standard_conforming_strings_off() {
    let db = cluster().create_database();
    // A database that still reads backslashes in literals as escapes (a legacy setting).
    db.psql(&format!(
        "ALTER DATABASE \"{}\" SET standard_conforming_strings = off;\n\
         CREATE SCHEMA other; CREATE TABLE other.victim (id int);",
        db.name
    ));
    let payload = r#"\'); DROP TABLE other.victim; --"#;
    let folder = Migrations::new(&[(
        "20240101000000_fails",
        &format!("CREATE TABLE x (id int);\nSELECT 1/0 AS \"{payload}\";\n"),
    )]);
    let out = deploy(folder.path(), &db, &[]);
    let json = out.assert_error(1, "MIGRATION_FAILED");
    assert_eq!(json["error"]["details"]["sqlstate"], "22012", "{out}");
    let logs = db.query_one_string(
        "SELECT logs FROM _prisma_migrations WHERE migration_name = '20240101000000_fails'",
    );
    assert!(
        logs.contains(payload),
        "the failure's logs hold the statement verbatim\n{logs}"
    );
    assert_eq!(
        db.query_one_string("SELECT to_regclass('other.victim') IS NOT NULL"),
        "t"
    );
}

#[test]
fn quoted_literals_read_back_verbatim_whatever_standard_conforming_strings_says() {
    let db = cluster().create_database();
    let mut client = db.client();
    for setting in ["on", "off"] {
        client
            .batch_execute(&format!("SET standard_conforming_strings = {setting}"))
            .expect("the setting can be changed");
        for text in [
            r"plain",
            r"it's",
            r"\'); DROP TABLE t; --",
            r"C:\temp\new",
            r"\\",
            r"ends with \",
        ] {
            let sql = format!("SELECT {}::text", pgward_shared::sql::quote_literal(text));
            let read: String = client
                .simple_query(&sql)
                .expect("the literal parses")
                .iter()
                .find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                })
                .expect("one row");
            assert_eq!(read, text, "standard_conforming_strings = {setting}: {sql}");
        }
    }
}
