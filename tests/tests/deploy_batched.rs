//! End-to-end tests of deploy's batched path (shared/src/migrations/batch.rs): a
//! migration in Prisma's transaction mode without transaction control of its own sends
//! `BEGIN` with its first statement and its history row with the `COMMIT`. What it must
//! still guarantee, tried against a real server:
//!
//! - a failing statement in migration 57 of 200 leaves 1-56 applied and recorded, 57
//!   neither applied nor recorded as applied (its failure recorded, with the same file,
//!   statement, line, column and logs as the unbatched path gives), 58 on untouched;
//! - a failure at COMMIT (a deferred constraint) keeps nothing of the migration;
//! - files with their own BEGIN/COMMIT, or a statement that cannot run in a transaction
//!   block, still run the old way, and work;
//! - a concurrent deploy still waits for Prisma's advisory lock, or gives up after
//!   `--lock-wait` naming the holder;
//! - the history rows are Prisma's, with the same values as the bound writes, also for a
//!   migration name holding quotes and backslashes in a session that reads backslashes as
//!   escapes (`standard_conforming_strings = off`).
//!
//! "The unbatched path" is the same deploy with `--trace`, which runs every statement
//! through the tracer and writes the history row bound, as every deploy did before.
//! Which queries the server received is read from its log (`log_statement = all` on the
//! test's database).

use std::path::Path;
use std::time::{Duration, Instant};

use pgward_tests::{
    cluster, json_strings, path_str, run, spawn, wait_child, wait_until, Migrations, Output, TestDb,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Prisma's migration advisory lock key.
const PRISMA_LOCK_KEY: i64 = 72707369;

/// `pgward-migrate deploy --dir DIR --database-url URL EXTRA...`
fn deploy(dir: &Path, db: &TestDb, extra: &[&str]) -> Output {
    let url = db.url();
    let mut args = vec!["deploy", "--dir", path_str(dir), "--database-url", &url];
    args.extend_from_slice(extra);
    run("migrate", &args, &[])
}

/// The name of migration `i` (1-based) of a generated folder.
fn name(i: usize) -> String {
    format!("2024{i:010}_m{i}")
}

/// `count` one-statement migrations creating `<prefix>_<i>`, with `replace` giving the
/// SQL of some of them instead.
fn generated(count: usize, prefix: &str, replace: &[(usize, &str)]) -> Migrations {
    let folder = Migrations::new(&[]);
    for i in 1..=count {
        let sql = match replace.iter().find(|(at, _)| *at == i) {
            Some((_, sql)) => sql.to_string(),
            None => format!("CREATE TABLE {prefix}_{i} (id bigint PRIMARY KEY, note text);\n"),
        };
        folder.add(&name(i), &sql);
    }
    folder
}

/// Makes the server log every statement `db`'s new sessions send.
fn log_statements(db: &TestDb) {
    db.psql(&format!(
        "ALTER DATABASE \"{}\" SET log_statement = 'all'",
        db.name
    ));
}

/// The statements the server logged (`statement: ...`) that contain `needle`.
fn logged_statements(needle: &str) -> Vec<String> {
    cluster()
        .server_log()
        .split("LOG:  ")
        .filter_map(|entry| entry.strip_prefix("statement: "))
        // A statement's own lines go on with a tab; the next log line does not.
        .map(|entry| {
            let mut lines = entry.split('\n');
            let first = lines.next().unwrap_or_default();
            std::iter::once(first)
                .chain(lines.take_while(|l| l.starts_with('\t')))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| s.contains(needle))
        .collect()
}

/// One row of `_prisma_migrations`, with what Prisma's columns hold.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: String,
    checksum: String,
    migration_name: String,
    finished: bool,
    started_before_finished: bool,
    logs: Option<String>,
    rolled_back: bool,
    applied_steps_count: i32,
}

fn history(db: &TestDb) -> Vec<Row> {
    db.client()
        .query(
            "SELECT id, checksum, migration_name, finished_at IS NOT NULL, \
                    coalesce(started_at <= finished_at, false), logs, rolled_back_at IS NOT NULL, \
                    applied_steps_count \
             FROM public._prisma_migrations ORDER BY started_at, migration_name",
            &[],
        )
        .expect("_prisma_migrations can be read")
        .iter()
        .map(|r| Row {
            id: r.get(0),
            checksum: r.get(1),
            migration_name: r.get(2),
            finished: r.get(3),
            started_before_finished: r.get(4),
            logs: r.get(5),
            rolled_back: r.get(6),
            applied_steps_count: r.get(7),
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn checksum_of(dir: &Path, name: &str) -> String {
    sha256_hex(&std::fs::read(dir.join(name).join("migration.sql")).expect("migration.sql"))
}

/// Whether `id` is a lowercase UUID version 4, as Prisma writes.
fn is_uuid_v4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
        && groups[2].starts_with('4')
}

/// Asserts `row` is Prisma's finished row of `name` in `dir`.
fn assert_applied_row(row: &Row, dir: &Path, name: &str) {
    assert_eq!(row.migration_name, name, "{row:?}");
    assert!(is_uuid_v4(&row.id), "{row:?}");
    assert_eq!(row.checksum, checksum_of(dir, name), "{row:?}");
    assert!(row.finished && row.started_before_finished, "{row:?}");
    assert_eq!(row.logs, None, "{row:?}");
    assert!(!row.rolled_back, "{row:?}");
    assert_eq!(row.applied_steps_count, 1, "{row:?}");
}

/// The error details a user sees, without what differs from run to run.
fn error_details(envelope: &Value) -> Value {
    let mut details = envelope["error"]["details"].clone();
    assert!(details.is_object(), "{envelope}");
    details["message"] = envelope["error"]["message"].clone();
    details
}

/// Deploys `dir` the unbatched way (`--trace`) into a new database, asserts it fails with
/// the same `details` (migration, statement, line, column, SQLSTATE, message), and returns
/// the database.
fn same_failure_unbatched(dir: &Path, details: &Value) -> TestDb<'static> {
    let traced = cluster().create_database();
    let out = deploy(dir, &traced, &["--trace"]);
    assert_eq!(
        &error_details(&out.assert_error(1, "MIGRATION_FAILED")),
        details,
        "{out}"
    );
    traced
}

#[test]
fn failing_statement_in_migration_57_of_200_keeps_1_to_56_and_touches_nothing_after() {
    let failing = "CREATE TABLE bt57_first (id int);\n\
                   INSERT INTO bt57_first VALUES (1);\n\
                   INSERT INTO bt57_first (id, missing) VALUES (2, 3);\n\
                   CREATE TABLE bt57_last (id int);\n";
    let folder = generated(200, "bt57", &[(57, failing)]);
    let dir = folder.path();
    let db = cluster().create_database();
    log_statements(&db);

    let out = deploy(dir, &db, &[]);
    let envelope = out.assert_error(1, "MIGRATION_FAILED");
    let details = error_details(&envelope);
    assert_eq!(details["migration"], name(57), "{out}");
    assert_eq!(details["sqlstate"], "42703", "{out}");
    assert_eq!(
        (details["line"].as_u64(), details["column"].as_u64()),
        (Some(3), Some(29)),
        "the position of `missing` in the file: {out}"
    );
    assert_eq!(
        details["statement"], "INSERT INTO bt57_first (id, missing) VALUES (2, 3)",
        "{out}"
    );
    assert_eq!(details["partly_committed"], false, "{out}");
    let applied = json_strings(&envelope["result"]["applied"], "name");
    assert_eq!(applied, (1..=56).map(name).collect::<Vec<_>>(), "{out}");

    // 1-56 applied and recorded; 57 recorded failed with nothing of it kept; 58+ untouched.
    let rows = history(&db);
    assert_eq!(rows.len(), 57, "{rows:?}");
    for (i, row) in rows.iter().take(56).enumerate() {
        assert_applied_row(row, dir, &name(i + 1));
        assert!(db.relation_exists(&format!("public.bt57_{}", i + 1)));
    }
    let failed = &rows[56];
    assert_eq!(failed.migration_name, name(57));
    assert!(!failed.finished && !failed.rolled_back, "{failed:?}");
    assert_eq!(failed.checksum, checksum_of(dir, &name(57)));
    let logs = failed.logs.clone().expect("the failure's logs");
    assert!(
        logs.contains("42703") && logs.contains("line 3, column 29"),
        "{logs}"
    );
    assert!(!db.relation_exists("public.bt57_first"), "rolled back");
    assert!(!db.relation_exists("public.bt57_last"), "never ran");
    for i in 58..=200 {
        assert!(!db.relation_exists(&format!("public.bt57_{i}")), "{i}");
    }

    // It went the batched way: BEGIN with the first statement, the row with the COMMIT.
    assert_eq!(
        logged_statements("bt57_56 (").len(),
        1,
        "one query for BEGIN and the statement"
    );
    assert!(logged_statements("BEGIN;CREATE TABLE bt57_56 (").len() == 1);
    let commits = logged_statements(&format!("'{}'", name(56)));
    assert!(
        commits.len() == 1 && commits[0].trim_end().ends_with(";COMMIT"),
        "the finish record travels with the COMMIT: {commits:?}"
    );

    // The unbatched path reports the same failure, with the same logs.
    let traced = same_failure_unbatched(dir, &details);
    let traced_rows = history(&traced);
    assert_eq!(traced_rows.len(), 57);
    assert_eq!(traced_rows[56].logs.as_deref(), Some(logs.as_str()));
}

#[test]
fn a_failing_first_statement_is_placed_in_the_file_not_after_the_begin() {
    // The first statement travels behind `BEGIN;`: its position must still count from
    // the file.
    let folder = Migrations::new(&[
        ("20240101000000_ok", "CREATE TABLE bfirst_ok (id int);\n"),
        (
            "20240102000000_bad",
            "-- the first statement fails\nINSERT INTO bfirst_ok (id, nope) VALUES (1, 2);\n",
        ),
    ]);
    let db = cluster().create_database();
    let out = deploy(folder.path(), &db, &[]);
    let envelope = out.assert_error(1, "MIGRATION_FAILED");
    let details = error_details(&envelope);
    assert_eq!(
        (details["line"].as_u64(), details["column"].as_u64()),
        (Some(2), Some(28)),
        "{out}"
    );
    assert_eq!(details["migration"], "20240102000000_bad");

    same_failure_unbatched(folder.path(), &details);
}

#[test]
fn a_deferred_constraint_failing_at_commit_keeps_nothing_of_the_migration() {
    let deferred = "CREATE TABLE bdef_parent (id int PRIMARY KEY);\n\
                    CREATE TABLE bdef_child (parent int REFERENCES bdef_parent DEFERRABLE INITIALLY DEFERRED);\n\
                    INSERT INTO bdef_child VALUES (1);\n";
    let folder = Migrations::new(&[
        ("20240101000000_ok", "CREATE TABLE bdef_ok (id int);\n"),
        ("20240102000000_deferred", deferred),
        (
            "20240103000000_after",
            "CREATE TABLE bdef_after (id int);\n",
        ),
    ]);
    let db = cluster().create_database();
    let out = deploy(folder.path(), &db, &[]);
    let envelope = out.assert_error(1, "MIGRATION_FAILED");
    let details = error_details(&envelope);
    assert_eq!(details["migration"], "20240102000000_deferred", "{out}");
    assert_eq!(details["sqlstate"], "23503", "{out}");
    assert_eq!(details["partly_committed"], false, "{out}");
    assert!(db.relation_exists("public.bdef_ok"));
    for gone in ["bdef_parent", "bdef_child", "bdef_after"] {
        assert!(!db.relation_exists(&format!("public.{gone}")), "{gone}");
    }
    let rows = history(&db);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_applied_row(&rows[0], folder.path(), "20240101000000_ok");
    assert!(!rows[1].finished && rows[1].logs.as_deref().unwrap_or("").contains("23503"));

    same_failure_unbatched(folder.path(), &details);
}

#[test]
fn own_transaction_control_and_non_transactional_statements_run_the_old_way() {
    let folder = Migrations::new(&[
        ("20240101000000_plain", "CREATE TABLE bold_plain (id int);\n"),
        (
            "20240102000000_own_block",
            "BEGIN;\nCREATE TABLE bold_block (id int);\nCOMMIT;\nCREATE TABLE bold_after_block (id int);\n",
        ),
        (
            "20240103000000_concurrently",
            "CREATE TABLE bold_idx (id int);\nCREATE INDEX CONCURRENTLY bold_idx_id ON bold_idx (id);\n",
        ),
        ("20240104000000_last", "CREATE TABLE bold_last (id int);\n"),
    ]);
    let db = cluster().create_database();
    log_statements(&db);
    let out = deploy(folder.path(), &db, &[]);
    let envelope = out.assert_envelope(0);
    let applied = &envelope["result"]["applied"];
    let modes: Vec<&str> = applied
        .as_array()
        .expect("applied")
        .iter()
        .map(|m| m["mode"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        modes,
        ["transaction", "transaction", "statements", "transaction"],
        "{out}"
    );
    for table in [
        "bold_plain",
        "bold_block",
        "bold_after_block",
        "bold_idx",
        "bold_last",
    ] {
        assert!(db.relation_exists(&format!("public.{table}")), "{table}");
    }
    assert_eq!(
        db.query_one_string(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.bold_idx_id'::regclass"
        ),
        "t"
    );
    let rows = history(&db);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for row in &rows {
        assert!(
            row.finished && row.logs.is_none() && !row.rolled_back,
            "{row:?}"
        );
        assert_eq!(
            row.checksum,
            checksum_of(folder.path(), &row.migration_name)
        );
    }

    // The plain files went batched; the others statement by statement with the history
    // row bound (no literal form of their rows reached the server).
    assert_eq!(logged_statements("BEGIN;CREATE TABLE bold_plain ").len(), 1);
    assert_eq!(logged_statements("BEGIN;CREATE TABLE bold_last ").len(), 1);
    for own in [
        "bold_block ",
        "bold_after_block ",
        "bold_idx ",
        "bold_idx_id ",
    ] {
        let sent = logged_statements(own);
        assert!(
            !sent.is_empty() && sent.iter().all(|s| !s.starts_with("BEGIN;")),
            "{own}: {sent:?}"
        );
    }
    for name in ["20240102000000_own_block", "20240103000000_concurrently"] {
        assert!(
            logged_statements(&format!("'{name}'")).is_empty(),
            "{name}'s row was written bound"
        );
    }
}

#[test]
fn concurrent_deploys_wait_for_the_lock_or_give_up_naming_the_holder() {
    let folder = generated(200, "block", &[]);
    let db = cluster().create_database();

    // Held by someone else: a deploy gives up after --lock-wait and touches nothing.
    let mut holder = db.client();
    holder
        .batch_execute("SET application_name = 'batched-lock-holder'")
        .expect("application_name");
    holder
        .batch_execute(&format!("SELECT pg_advisory_lock({PRISMA_LOCK_KEY})"))
        .expect("the free lock is taken");
    let out = deploy(folder.path(), &db, &["--lock-wait", "1s"]);
    let envelope = out.assert_error(6, "LOCK_HELD");
    assert_eq!(
        envelope["error"]["details"]["holder"]["application_name"], "batched-lock-holder",
        "{out}"
    );
    assert!(!db.relation_exists("public._prisma_migrations"));

    // A deploy started while it is held waits, and applies everything once it is free.
    let url = db.url();
    let args = [
        "deploy",
        "--dir",
        folder.arg(),
        "--database-url",
        url.as_str(),
        "--lock-wait",
        "300s",
    ];
    let waiting = spawn("migrate", &args, &[]);
    wait_until(
        Duration::from_secs(60),
        "the deploy to poll the lock",
        || {
            db.query_one_string(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgward-migrate' \
             AND datname = current_database()",
            ) == "1"
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !db.relation_exists("public._prisma_migrations"),
        "nothing happens while the lock is held"
    );
    drop(holder);

    // Two more start at the same time as the freed one: each migration runs once.
    let others: Vec<_> = (0..2).map(|_| spawn("migrate", &args, &[])).collect();
    let started = Instant::now();
    let mut applied = json_strings(
        &wait_child(waiting).assert_envelope(0)["result"]["applied"],
        "name",
    );
    for other in others {
        let out = wait_child(other);
        applied.extend(json_strings(
            &out.assert_envelope(0)["result"]["applied"],
            "name",
        ));
    }
    applied.sort();
    assert_eq!(
        applied,
        (1..=200).map(name).collect::<Vec<_>>(),
        "every migration applied by exactly one deploy (after {:?})",
        started.elapsed()
    );
    let rows = history(&db);
    assert_eq!(rows.len(), 200);
    for (i, row) in rows.iter().enumerate() {
        assert_applied_row(row, folder.path(), &name(i + 1));
    }

    // status names a holder beside the history it reads (one query for both).
    let mut again = db.client();
    again
        .batch_execute(&format!(
            "SET application_name = 'batched-holder-2'; SELECT pg_advisory_lock({PRISMA_LOCK_KEY})"
        ))
        .expect("the free lock is taken");
    let status = run(
        "migrate",
        &["status", "--dir", folder.arg(), "--database-url", &url],
        &[],
    );
    let result = &status.assert_envelope(0)["result"];
    assert_eq!(
        result["lock_holder"]["application_name"], "batched-holder-2",
        "{status}"
    );
    assert_eq!(
        result["applied"].as_array().map(Vec::len),
        Some(200),
        "{status}"
    );
    drop(again);
    let status = run(
        "migrate",
        &["status", "--dir", folder.arg(), "--database-url", &url],
        &[],
    );
    assert!(
        status.assert_envelope(0)["result"]["lock_holder"].is_null(),
        "{status}"
    );
}

#[test]
fn history_rows_match_the_bound_writes_even_for_odd_names_and_escape_strings() {
    let odd = "20240102000000_it's a \\\"weird\\\" näme";
    let folder = Migrations::new(&[
        ("20240101000000_first", "CREATE TABLE bodd_first (id int);\n"),
        (odd, "CREATE TABLE bodd_odd (id int);\n"),
        (
            "20240103000000_sets",
            "SET standard_conforming_strings = off;\nCREATE TABLE bodd_sets (note text DEFAULT 'a\\\\b');\n",
        ),
        ("20240104000000_after", "CREATE TABLE bodd_after (id int);\n"),
    ]);
    let batched = cluster().create_database();
    let traced = cluster().create_database();
    for db in [&batched, &traced] {
        // Backslashes in literals are escapes in every session of these databases.
        db.psql(&format!(
            "ALTER DATABASE \"{}\" SET standard_conforming_strings = off",
            db.name
        ));
    }
    deploy(folder.path(), &batched, &[]).assert_envelope(0);
    deploy(folder.path(), &traced, &["--trace"]).assert_envelope(0);

    let names: Vec<String> = history(&batched)
        .iter()
        .map(|r| r.migration_name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "20240101000000_first",
            odd,
            "20240103000000_sets",
            "20240104000000_after"
        ]
    );
    let (a, b) = (history(&batched), history(&traced));
    for (row, bound) in a.iter().zip(&b) {
        assert_applied_row(row, folder.path(), &row.migration_name);
        // Everything but the attempt's own id is what the bound write records.
        assert_eq!(
            Row {
                id: bound.id.clone(),
                ..row.clone()
            },
            *bound
        );
    }
    assert_eq!(
        batched.query_one_string(
            "SELECT column_default FROM information_schema.columns WHERE table_name = 'bodd_sets'"
        ),
        traced.query_one_string(
            "SELECT column_default FROM information_schema.columns WHERE table_name = 'bodd_sets'"
        ),
    );
    // status agrees that every file is applied as it is.
    let url = batched.url();
    let status = run(
        "migrate",
        &["status", "--dir", folder.arg(), "--database-url", &url],
        &[],
    );
    assert_eq!(
        status.assert_envelope(0)["result"]["up_to_date"],
        true,
        "{status}"
    );
}

// ---------------------------------------------------------------------------------------
// The session opened while the folder is read (shared/src/connect/early.rs)
// ---------------------------------------------------------------------------------------

/// A TCP port that accepts connections and never answers, like a hung server or proxy;
/// [`Silent::accepted`] counts the connections made to it.
struct Silent {
    listener: std::net::TcpListener,
    held: Vec<std::net::TcpStream>,
}

impl Silent {
    fn new() -> Silent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.set_nonblocking(true).expect("non-blocking");
        Silent {
            listener,
            held: Vec::new(),
        }
    }

    fn url(&self) -> String {
        let port = self.listener.local_addr().expect("its address").port();
        format!("postgresql://app@127.0.0.1:{port}/app?connect_timeout=60")
    }

    /// Connections made so far (the kernel completes them before anyone accepts).
    fn accepted(&mut self) -> usize {
        while let Ok((stream, _)) = self.listener.accept() {
            self.held.push(stream);
        }
        self.held.len()
    }
}

#[test]
fn a_missing_folder_is_reported_at_once_while_the_server_never_answers() {
    let mut silent = Silent::new();
    let url = silent.url();
    for command in ["status", "deploy"] {
        let started = Instant::now();
        let out = run(
            "migrate",
            &[
                command,
                "--dir",
                "/nonexistent/migrations",
                "--database-url",
                &url,
            ],
            &[],
        );
        out.assert_error(2, "MIGRATIONS_DIR_MISSING");
        // The 60 s connect_timeout is not waited for (generous bound for a slow machine).
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{command} took {:?}\n{out}",
            started.elapsed()
        );
    }
    // The folder is fine, the server is not: the connect error, after its timeout.
    let folder = Migrations::new(&[("20240101000000_a", "CREATE TABLE a (id int);\n")]);
    let quick = url.replace("connect_timeout=60", "connect_timeout=1");
    let out = run(
        "migrate",
        &["status", "--dir", folder.arg(), "--database-url", &quick],
        &[],
    );
    assert_eq!(out.code, 4, "{out}");
    assert!(silent.accepted() >= 1, "status did try to connect");
}

#[test]
fn a_protected_deploy_without_yes_connects_to_nothing() {
    let mut silent = Silent::new();
    let project = pgward_tests::temp_dir("batched_protected_");
    std::fs::write(
        project.path().join("pgward.toml"),
        "migrations = \"migrations\"\n\n[env.prod]\ndatabase_url_env = \"PROD_DATABASE_URL\"\nprotected = true\n",
    )
    .expect("pgward.toml");
    pgward_tests::write_migrations(
        &project.path().join("migrations"),
        &[("20240101000000_a", "CREATE TABLE a (id int);\n")],
    );
    let url = silent.url();
    let out = pgward_tests::run_in(
        project.path(),
        "migrate",
        &["deploy", "--env", "prod"],
        &[("PROD_DATABASE_URL", url.as_str())],
    );
    out.assert_error(6, "PROTECTED_NEEDS_YES");
    assert_eq!(
        silent.accepted(),
        0,
        "nothing connects before the guard approves\n{out}"
    );
}
