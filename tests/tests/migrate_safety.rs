//! End-to-end tests of pgward-migrate's safety machinery: the advisory lock under
//! concurrent deploys, a lock held by someone else, a deploy killed or interrupted in the
//! middle of a migration, lock-timeout retries, protected environments and the audit log.
//!
//! Every test builds its migrations folder in a temp dir, runs the real binary against a
//! fresh database of the shared cluster, and checks the exit code, the JSON envelope and
//! what the database really holds afterwards.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use pgward_tests::{
    cluster, json_strings, path_str, run, run_in, spawn, wait_child, wait_until, warning_codes,
    write_migration, write_migrations, Migrations, Output, TestDb, SUPERUSER, SUPERUSER_PASSWORD,
};
use serde_json::Value;
use tempfile::TempDir;

/// Prisma's migration advisory lock key.
const PRISMA_LOCK_KEY: i64 = 72707369;

/// The application_name pgward-migrate's sessions carry.
const PGWARD_APP: &str = "pgward-migrate";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `pgward-migrate deploy --dir DIR --database-url URL EXTRA...`
fn deploy(dir: &str, db: &TestDb, extra: &[&str], envs: &[(&str, &str)]) -> Output {
    let url = db.url();
    let mut args = vec!["deploy", "--dir", dir, "--database-url", &url];
    args.extend_from_slice(extra);
    run("migrate", &args, envs)
}

/// `pgward-migrate status --dir DIR --database-url URL`
fn status(dir: &str, db: &TestDb) -> Output {
    run(
        "migrate",
        &["status", "--dir", dir, "--database-url", &db.url()],
        &[],
    )
}

/// How many of pgward-migrate's sessions on `db` the server shows running a query like
/// `pattern`.
fn active_pgward_queries(db: &TestDb, pattern: &str) -> i64 {
    db.query_one_string(&format!(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND application_name = '{PGWARD_APP}' AND state = 'active' AND query LIKE '{pattern}'"
    ))
    .parse()
    .expect("count(*) is a number")
}

/// How many of pgward-migrate's sessions on `db` the server still has.
fn pgward_sessions(db: &TestDb) -> i64 {
    db.query_one_string(&format!(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = '{PGWARD_APP}'"
    ))
    .parse()
    .expect("count(*) is a number")
}

/// `SELECT count(*) FROM _prisma_migrations WHERE <condition>`, 0 when there is no table.
fn history_count(db: &TestDb, condition: &str) -> i64 {
    if !db.relation_exists("public._prisma_migrations") {
        return 0;
    }
    db.query_one_string(&format!(
        "SELECT count(*) FROM public._prisma_migrations WHERE {condition}"
    ))
    .parse()
    .expect("count(*) is a number")
}

/// A migration that sleeps in the middle: a table first, then a slow statement, then
/// more. The sleep's length comes from a per-database setting ([`set_migration_sleep`]),
/// so the run a test kills or interrupts is slow and the later deploy that applies the
/// same file (same checksum) is not.
fn slow_migration(table: &str) -> String {
    format!(
        "CREATE TABLE {table} (id int PRIMARY KEY);\n\
         SELECT pg_sleep(current_setting('pgward_test.sleep_seconds')::float8);\n\
         CREATE TABLE {table}_after_sleep (id int);\n\
         INSERT INTO {table} VALUES (1);\n"
    )
}

/// How long [`slow_migration`]'s `pg_sleep` sleeps in sessions opened from now on.
fn set_migration_sleep(db: &TestDb, seconds: &str) {
    db.psql(&format!(
        "ALTER DATABASE \"{}\" SET pgward_test.sleep_seconds = '{seconds}'",
        db.name
    ));
}

// ---------------------------------------------------------------------------------------
// 1. Concurrent deploys
// ---------------------------------------------------------------------------------------

#[test]
fn eight_concurrent_deploys_apply_every_migration_exactly_once() {
    let db = cluster().create_database();
    let mut migrations = vec![(
        "20240101000001_m01".to_string(),
        "CREATE TABLE deploy_log (migration text NOT NULL);\nCREATE TABLE t01 (id int);\n"
            .to_string(),
    )];
    for i in 2..=10 {
        let slow = if i % 3 == 0 {
            "SELECT pg_sleep(0.2);\n"
        } else {
            ""
        };
        migrations.push((
            format!("202401010000{i:02}_m{i:02}"),
            format!(
                "CREATE TABLE t{i:02} (id int);\n{slow}INSERT INTO deploy_log VALUES ('m{i:02}');\n"
            ),
        ));
    }
    let folder = Migrations::new(
        &migrations
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()))
            .collect::<Vec<_>>(),
    );
    let url = db.url();
    let children: Vec<Child> = (0..8)
        .map(|_| {
            spawn(
                "migrate",
                &[
                    "deploy",
                    "--dir",
                    folder.arg(),
                    "--database-url",
                    &url,
                    "--lock-wait",
                    "60s",
                ],
                &[],
            )
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(wait_child).collect();

    let mut applied_by_anyone = Vec::new();
    for out in &outputs {
        out.assert_code(0);
        let json = out.json();
        assert_eq!(json["ok"], true, "{out}");
        let applied = json_strings(&json["result"]["applied"], "name");
        assert_eq!(
            json["result"]["already_applied"].as_u64().expect("a count") as usize + applied.len(),
            10,
            "every deploy sees all ten migrations applied in the end\n{out}"
        );
        applied_by_anyone.extend(applied);
    }
    applied_by_anyone.sort();
    let expected: Vec<String> = migrations.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        applied_by_anyone, expected,
        "each migration is applied by exactly one of the eight deploys"
    );

    assert_eq!(
        db.psql(
            "SELECT count(*), count(DISTINCT migration_name), count(finished_at), \
             count(rolled_back_at), count(logs), sum(applied_steps_count) FROM _prisma_migrations"
        ),
        "10|10|10|0|0|10",
        "one finished row per migration, no failed or rolled-back attempt"
    );
    assert_eq!(
        db.query_one_string(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename ~ '^t[0-9]{2}$'"
        ),
        "10"
    );
    assert_eq!(
        db.psql("SELECT count(*), count(DISTINCT migration) FROM deploy_log"),
        "9|9",
        "no migration's statements ran twice"
    );
    status(folder.arg(), &db).assert_code(0);
}

// ---------------------------------------------------------------------------------------
// 2. A lock held by another session
// ---------------------------------------------------------------------------------------

/// A session that holds Prisma's migration lock on `db` until dropped; returns it and its
/// backend pid.
fn hold_migration_lock(db: &TestDb, application_name: &str) -> (postgres::Client, i32) {
    let mut holder = db.client();
    holder
        .batch_execute(&format!("SET application_name = '{application_name}'"))
        .expect("application_name can be set");
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("pg_backend_pid() answers")
        .get(0);
    holder
        .batch_execute(&format!("SELECT pg_advisory_lock({PRISMA_LOCK_KEY})"))
        .expect("the free lock is taken at once");
    (holder, pid)
}

#[test]
fn deploy_gives_up_after_lock_wait_and_names_the_holder() {
    let db = cluster().create_database();
    let folder = Migrations::new(&[("20240101000000_init", "CREATE TABLE t (id int);")]);
    let (_holder, holder_pid) = hold_migration_lock(&db, "safety-lock-holder");

    let started = Instant::now();
    let out = deploy(folder.arg(), &db, &["--lock-wait", "1s"], &[]);
    let took = started.elapsed();

    let json = out.assert_error(6, "LOCK_HELD");
    assert!(
        took >= Duration::from_secs(1),
        "deploy waited the whole --lock-wait 1s before giving up, took {took:?}\n{out}"
    );
    assert!(
        took < Duration::from_secs(10),
        "deploy gave up soon after --lock-wait 1s, took {took:?}\n{out}"
    );
    let error = &json["error"];
    let message = error["message"].as_str().expect("a message");
    assert!(message.contains("P1002"), "{out}");
    assert!(message.contains(&holder_pid.to_string()), "{out}");
    assert!(
        error["details"]["waited_ms"].as_u64().expect("waited_ms") >= 1000,
        "{out}"
    );
    let holder = &error["details"]["holder"];
    assert_eq!(holder["pid"], holder_pid, "{out}");
    assert_eq!(holder["application_name"], "safety-lock-holder", "{out}");
    assert!(
        holder["query"]
            .as_str()
            .expect("the holder's last query")
            .contains("pg_advisory_lock"),
        "{out}"
    );
    assert_eq!(holder["state"], "idle", "{out}");

    assert!(
        !db.relation_exists("public._prisma_migrations") && !db.relation_exists("public.t"),
        "nothing is touched without the lock"
    );
    // status reports the holder too.
    let st = status(folder.arg(), &db);
    st.assert_code(3);
    assert_eq!(
        st.json()["result"]["lock_holder"]["pid"],
        holder_pid,
        "{st}"
    );
}

#[test]
fn disable_advisory_lock_variable_skips_the_lock_only_when_set_to_a_true_value() {
    let db = cluster().create_database();
    let folder = Migrations::new(&[("20240101000000_init", "CREATE TABLE t (id int);")]);
    let (_holder, _) = hold_migration_lock(&db, "safety-lock-holder");

    for value in ["0", ""] {
        let out = deploy(
            folder.arg(),
            &db,
            &["--lock-wait", "1s"],
            &[("PRISMA_SCHEMA_DISABLE_ADVISORY_LOCK", value)],
        );
        out.assert_error(6, "LOCK_HELD");
        assert!(
            !db.relation_exists("public.t"),
            "PRISMA_SCHEMA_DISABLE_ADVISORY_LOCK={value:?} still waits for the lock"
        );
    }

    let out = deploy(
        folder.arg(),
        &db,
        &["--lock-wait", "1s"],
        &[("PRISMA_SCHEMA_DISABLE_ADVISORY_LOCK", "1")],
    );
    out.assert_code(0);
    assert_eq!(
        json_strings(&out.json()["result"]["applied"], "name"),
        ["20240101000000_init"]
    );
    assert!(db.relation_exists("public.t"));
    assert_eq!(history_count(&db, "finished_at IS NOT NULL"), 1);
}

// ---------------------------------------------------------------------------------------
// 3. kill -9 in the middle of a migration
// ---------------------------------------------------------------------------------------

#[test]
fn deploy_killed_mid_migration_leaves_it_pending_and_the_schema_untouched() {
    let db = cluster().create_database();
    set_migration_sleep(&db, "3");
    let slow = "20240102000000_slow";
    let folder = Migrations::new(&[
        ("20240101000000_first", "CREATE TABLE first_table (id int);"),
        (slow, &slow_migration("killed_midway")),
    ]);
    let child = spawn(
        "migrate",
        &["deploy", "--dir", folder.arg(), "--database-url", &db.url()],
        &[],
    );
    let pid = child.id();
    wait_until(
        Duration::from_secs(30),
        "the server runs the migration's pg_sleep",
        || active_pgward_queries(&db, "%pg_sleep%") == 1,
    );
    // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet, so
    // the pid still names it.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    let out = wait_child(child);
    assert_eq!(out.code, 128 + libc::SIGKILL, "{out}");

    // The server only notices the dead client once pg_sleep returns; then it rolls back.
    wait_until(
        Duration::from_secs(15),
        "the server ends the killed deploy's session",
        || pgward_sessions(&db) == 0,
    );

    let st = status(folder.arg(), &db);
    let json = st.json();
    let listed_applied =
        json_strings(&json["result"]["applied"], "name").contains(&slow.to_string());
    assert_eq!(
        listed_applied,
        db.relation_exists("public.killed_midway"),
        "status says applied if and only if the server committed the migration\n{st}"
    );
    // The atomic engine: nothing committed, nothing recorded.
    st.assert_code(3);
    assert_eq!(
        json_strings(&json["result"]["applied"], "name"),
        ["20240101000000_first"]
    );
    assert_eq!(json_strings(&json["result"]["pending"], "name"), [slow]);
    assert_eq!(json["result"]["failed"], serde_json::json!([]), "{st}");
    assert!(!db.relation_exists("public.killed_midway"));
    assert!(!db.relation_exists("public.killed_midway_after_sleep"));
    assert!(db.relation_exists("public.first_table"));
    assert_eq!(history_count(&db, &format!("migration_name = '{slow}'")), 0);

    // The dead session's advisory lock went with it: the next deploy applies the file.
    set_migration_sleep(&db, "0");
    let again = deploy(folder.arg(), &db, &["--lock-wait", "1s"], &[]);
    again.assert_code(0);
    assert_eq!(
        json_strings(&again.json()["result"]["applied"], "name"),
        [slow]
    );
    assert_eq!(
        db.query_one_string("SELECT count(*) FROM killed_midway"),
        "1"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Ctrl-C in the middle of a migration
// ---------------------------------------------------------------------------------------

#[test]
fn sigint_cancels_the_running_statement_exits_130_and_leaves_the_migration_pending() {
    interrupt_mid_migration(libc::SIGINT);
}

#[test]
fn sigterm_is_handled_like_sigint() {
    interrupt_mid_migration(libc::SIGTERM);
}

/// Sends `signal` to a deploy while the server runs a long statement of a
/// transaction-mode migration, and checks the clean exit 130 and what it left behind.
fn interrupt_mid_migration(signal: libc::c_int) {
    let db = cluster().create_database();
    // Far longer than the test waits: only a cancelled statement ends in time.
    set_migration_sleep(&db, "60");
    let slow = "20240102000000_slow";
    let folder = Migrations::new(&[
        ("20240101000000_first", "CREATE TABLE first_table (id int);"),
        (slow, &slow_migration("interrupted_midway")),
    ]);
    let mut child = spawn(
        "migrate",
        &["deploy", "--dir", folder.arg(), "--database-url", &db.url()],
        &[],
    );
    wait_until(
        Duration::from_secs(30),
        "the server runs the migration's pg_sleep",
        || active_pgward_queries(&db, "%pg_sleep%") == 1,
    );
    let (out, took) = signal_and_finish(&mut child, signal);
    assert!(
        took < Duration::from_secs(5),
        "deploy exits within seconds of signal {signal}, not after the 60 s statement: \
         {took:?}\n{out}"
    );
    out.assert_error(130, "INTERRUPTED");
    assert_eq!(
        active_pgward_queries(&db, "%pg_sleep%"),
        0,
        "the server query was cancelled, not left running after pgward exited"
    );

    wait_until(
        Duration::from_secs(15),
        "the interrupted deploy's session ends",
        || pgward_sessions(&db) == 0,
    );
    assert!(!db.relation_exists("public.interrupted_midway"));
    assert_eq!(
        history_count(&db, &format!("migration_name = '{slow}'")),
        0,
        "an interrupted transaction-mode migration leaves no failed row"
    );
    let st = status(folder.arg(), &db);
    st.assert_code(3);
    assert_eq!(
        json_strings(&st.json()["result"]["pending"], "name"),
        [slow]
    );

    set_migration_sleep(&db, "0");
    let again = deploy(folder.arg(), &db, &[], &[]);
    again.assert_code(0);
    assert_eq!(
        json_strings(&again.json()["result"]["applied"], "name"),
        [slow]
    );
    assert_eq!(
        db.query_one_string("SELECT count(*) FROM interrupted_midway"),
        "1"
    );
    status(folder.arg(), &db).assert_code(0);
}

/// Sends `signal` to the spawned `child` and waits (at most 10 s) for it to exit; returns
/// its output and how long it took to exit after the signal.
fn signal_and_finish(child: &mut Child, signal: libc::c_int) -> (Output, Duration) {
    // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet, so
    // the pid still names it.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let signalled = Instant::now();
    while child.try_wait().expect("the child can be polled").is_none() {
        if signalled.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the child did not exit within 10 s of signal {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = signalled.elapsed();
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let status = child.wait().expect("the exited child can be reaped");
    let out = Output {
        code: status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .expect("a finished process has an exit code or a signal"),
        stdout,
        stderr,
    };
    (out, took)
}

fn read_all(pipe: Option<impl std::io::Read>) -> String {
    let mut text = String::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_string(&mut text)
            .expect("the child's output is readable UTF-8");
    }
    text
}

#[test]
fn sigint_while_waiting_for_the_lock_exits_130_and_changes_nothing() {
    let db = cluster().create_database();
    let folder = Migrations::new(&[("20240101000000_init", "CREATE TABLE t (id int);")]);
    let (_holder, _) = hold_migration_lock(&db, "safety-lock-holder");
    let started = Instant::now();
    let mut child = spawn(
        "migrate",
        &[
            "deploy",
            "--dir",
            folder.arg(),
            "--database-url",
            &db.url(),
            "--lock-wait",
            "60s",
        ],
        &[],
    );
    wait_until(
        Duration::from_secs(30),
        "deploy connects and waits for the migration lock",
        || pgward_sessions(&db) == 1,
    );
    // Let it find the lock taken and start polling.
    std::thread::sleep(Duration::from_millis(300));
    let (out, took) = signal_and_finish(&mut child, libc::SIGINT);
    assert!(took < Duration::from_secs(5), "{took:?}\n{out}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "deploy did not wait out --lock-wait"
    );
    out.assert_error(130, "INTERRUPTED");
    assert!(!db.relation_exists("public._prisma_migrations"));
    assert!(!db.relation_exists("public.t"));
}

// ---------------------------------------------------------------------------------------
// 5. lock_timeout and retries
// ---------------------------------------------------------------------------------------

const CREATE_T: &str = "20240101000000_create_t";
const ALTER_T: &str = "20240102000000_alter_t";

/// A database where `t` was created by a first deploy, a folder whose second migration
/// ALTERs `t`, and a session holding ACCESS EXCLUSIVE on `t` in an open transaction.
fn table_locked_by_another_session(db: &TestDb) -> (Migrations, postgres::Client) {
    let folder = Migrations::new(&[
        (CREATE_T, "CREATE TABLE t (id int);"),
        (ALTER_T, "ALTER TABLE t ADD COLUMN note text;"),
    ]);
    deploy(folder.arg(), db, &["--to", CREATE_T], &[]).assert_code(0);
    let mut blocker = db.client();
    blocker
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .expect("the blocker takes the table lock");
    (folder, blocker)
}

#[test]
fn lock_timeout_without_retries_fails_the_migration_with_55p03() {
    let db = cluster().create_database();
    let (folder, mut blocker) = table_locked_by_another_session(&db);

    let started = Instant::now();
    let out = deploy(
        folder.arg(),
        &db,
        &["--lock-timeout", "200ms", "--retries", "0"],
        &[],
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "lock_timeout ended the wait"
    );
    let json = out.assert_error(1, "MIGRATION_FAILED");
    assert!(
        json["error"]["message"]
            .as_str()
            .expect("a message")
            .contains("P3018"),
        "{out}"
    );
    assert_eq!(json["error"]["details"]["sqlstate"], "55P03", "{out}");
    assert_eq!(json["error"]["details"]["migration"], ALTER_T, "{out}");
    blocker.batch_execute("ROLLBACK").expect("the blocker ends");

    assert_eq!(
        history_count(
            &db,
            &format!(
                "migration_name = '{ALTER_T}' AND finished_at IS NULL AND rolled_back_at IS NULL \
                 AND logs LIKE '%55P03%'"
            )
        ),
        1,
        "the timed-out attempt is recorded as failed"
    );
    assert_eq!(
        history_count(&db, &format!("migration_name = '{ALTER_T}'")),
        1
    );
    assert!(!db.column_exists("t", "note"));
    let st = status(folder.arg(), &db);
    st.assert_error(5, "FAILED_MIGRATIONS");
    assert_eq!(
        json_strings(&st.json()["result"]["failed"], "name"),
        [ALTER_T]
    );
}

#[test]
fn lock_timeout_is_retried_until_the_blocker_lets_go() {
    let db = cluster().create_database();
    let (folder, mut blocker) = table_locked_by_another_session(&db);
    let mut watcher = db.client();
    // Lets go of the table once the history shows deploy's first timed-out attempt (so at
    // least one retry is certain), and no sooner than 700 ms after the deploy started.
    let releaser = std::thread::spawn(move || {
        let started = Instant::now();
        let timed_out_attempts = format!(
            "SELECT count(*) FROM public._prisma_migrations \
             WHERE migration_name = '{ALTER_T}' AND finished_at IS NULL"
        );
        wait_until(
            Duration::from_secs(30),
            "deploy records a timed-out attempt",
            || {
                let n: i64 = watcher
                    .query_one(timed_out_attempts.as_str(), &[])
                    .expect("the history can be read")
                    .get(0);
                n >= 1
            },
        );
        std::thread::sleep(Duration::from_millis(700).saturating_sub(started.elapsed()));
        blocker.batch_execute("ROLLBACK").expect("the blocker ends");
    });

    let out = deploy(
        folder.arg(),
        &db,
        &[
            "--lock-timeout",
            "200ms",
            "--retries",
            "5",
            "--retry-backoff",
            "200ms",
        ],
        &[],
    );
    releaser.join().expect("the releasing thread succeeds");

    out.assert_code(0);
    let json = out.json();
    let applied = &json["result"]["applied"];
    assert_eq!(json_strings(applied, "name"), [ALTER_T], "{out}");
    let retries = applied[0]["retries"].as_i64().expect("retries is a number");
    assert!(retries >= 1, "the migration needed a retry\n{out}");
    let warnings = warning_codes(&json);
    assert_eq!(
        warnings
            .iter()
            .filter(|c| c.as_str() == "LOCK_TIMEOUT_RETRY")
            .count() as i64,
        retries,
        "one LOCK_TIMEOUT_RETRY warning per retry\n{out}"
    );

    assert_eq!(
        history_count(
            &db,
            &format!(
                "migration_name = '{ALTER_T}' AND finished_at IS NULL \
                 AND rolled_back_at IS NOT NULL AND logs LIKE '%55P03%'"
            )
        ),
        retries,
        "every timed-out attempt stays in the history, marked rolled back"
    );
    assert_eq!(
        history_count(
            &db,
            &format!(
                "migration_name = '{ALTER_T}' AND finished_at IS NOT NULL AND rolled_back_at IS NULL"
            )
        ),
        1,
        "exactly one finished attempt"
    );
    assert_eq!(
        history_count(&db, &format!("migration_name = '{ALTER_T}'")),
        retries + 1
    );
    assert!(db.column_exists("t", "note"));
    status(folder.arg(), &db).assert_code(0);
}

#[test]
fn sigint_during_the_retry_backoff_exits_at_once() {
    let db = cluster().create_database();
    let (folder, mut blocker) = table_locked_by_another_session(&db);
    let mut child = spawn(
        "migrate",
        &[
            "deploy",
            "--dir",
            folder.arg(),
            "--database-url",
            &db.url(),
            "--lock-timeout",
            "200ms",
            "--retries",
            "3",
            "--retry-backoff",
            "60s",
        ],
        &[],
    );
    // Once the timed-out attempt is marked rolled back, deploy is in its 60 s back-off.
    wait_until(
        Duration::from_secs(30),
        "deploy marks its timed-out attempt rolled back",
        || {
            history_count(
                &db,
                &format!("migration_name = '{ALTER_T}' AND rolled_back_at IS NOT NULL"),
            ) == 1
        },
    );
    std::thread::sleep(Duration::from_millis(200));
    let (out, took) = signal_and_finish(&mut child, libc::SIGINT);
    blocker.batch_execute("ROLLBACK").expect("the blocker ends");
    assert!(
        took < Duration::from_secs(5),
        "Ctrl-C during the retry back-off exits within seconds, not after the back-off: \
         {took:?}\n{out}"
    );
    out.assert_error(130, "INTERRUPTED");
    assert!(!db.column_exists("t", "note"));
    let st = status(folder.arg(), &db);
    st.assert_code(3);
    assert_eq!(
        json_strings(&st.json()["result"]["pending"], "name"),
        [ALTER_T],
        "{st}"
    );
}

// ---------------------------------------------------------------------------------------
// 6. Protected environments
// ---------------------------------------------------------------------------------------

const ACCOUNTS: &str = "20240101000000_accounts";
const INVOICES: &str = "20240102000000_invoices";

/// A project dir with pgward.toml (`prod` protected, `dev` not, `ghost` naming a
/// variable nobody sets), a migrations folder with down.sql files and a seeds folder.
fn project_dir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("safety_project_")
        .tempdir()
        .expect("a temp project dir");
    std::fs::write(
        dir.path().join("pgward.toml"),
        "migrations = \"migrations\"\n\
         \n\
         [env.prod]\n\
         database_url_env = \"PROD_DATABASE_URL\"\n\
         protected = true\n\
         \n\
         [env.dev]\n\
         database_url_env = \"DEV_DATABASE_URL\"\n\
         \n\
         [env.ghost]\n\
         database_url_env = \"GHOST_DATABASE_URL\"\n",
    )
    .expect("pgward.toml is writable");
    let migrations = dir.path().join("migrations");
    write_migrations(&migrations, &[]);
    write_migration(
        &migrations,
        ACCOUNTS,
        "CREATE TABLE account (id int PRIMARY KEY);",
        Some("DROP TABLE account;"),
    );
    write_migration(
        &migrations,
        INVOICES,
        "CREATE TABLE invoice (id int PRIMARY KEY);",
        Some("DROP TABLE invoice;"),
    );
    let seeds = dir.path().join("seeds");
    std::fs::create_dir(&seeds).expect("the seeds folder can be created");
    std::fs::write(
        seeds.join("01_seeded.sql"),
        "CREATE TABLE seeded (id int);\nINSERT INTO seeded VALUES (1);\n",
    )
    .expect("the seed file is writable");
    dir
}

#[test]
fn protected_environment_needs_yes_to_deploy_force_to_rollback_or_resolve_and_never_seeds() {
    let prod = cluster().create_database();
    let dev = cluster().create_database();
    let project = project_dir();
    let (prod_url, dev_url) = (prod.url(), dev.url());
    let envs = [
        ("PROD_DATABASE_URL", prod_url.as_str()),
        ("DEV_DATABASE_URL", dev_url.as_str()),
    ];
    let migrate = |args: &[&str]| run_in(project.path(), "migrate", args, &envs);

    // deploy: --yes, and only --yes, approves it.
    for args in [
        &["deploy", "--env", "prod"][..],
        &["deploy", "--env", "prod", "--force"][..],
    ] {
        let out = migrate(args);
        let json = out.assert_error(6, "PROTECTED_NEEDS_YES");
        assert!(
            json["error"]["hint"]
                .as_str()
                .expect("a hint")
                .contains("--yes"),
            "{out}"
        );
        assert!(
            !prod.relation_exists("public._prisma_migrations")
                && !prod.relation_exists("public.account"),
            "a refused deploy changes nothing: {args:?}"
        );
    }
    let out = run_in(
        project.path(),
        "migrate",
        &["deploy"],
        &[("PGWARD_ENV", "prod"), ("PROD_DATABASE_URL", &prod_url)],
    );
    out.assert_error(6, "PROTECTED_NEEDS_YES");
    // Naming the database on the command line does not leave the protected environment.
    let out = migrate(&["deploy", "--env", "prod", "--database-url", &prod_url]);
    out.assert_error(6, "PROTECTED_NEEDS_YES");
    assert!(!prod.relation_exists("public._prisma_migrations"));
    // A dry run changes nothing, so it needs no approval.
    let out = migrate(&["deploy", "--env", "prod", "--dry-run"]);
    out.assert_code(0);
    assert_eq!(
        json_strings(&out.json()["result"]["applied"], "name"),
        [ACCOUNTS, INVOICES]
    );
    assert!(!prod.relation_exists("public._prisma_migrations"));
    let out = migrate(&["deploy", "--env", "prod", "--yes", "--to", ACCOUNTS]);
    out.assert_code(0);
    assert_eq!(
        json_strings(&out.json()["result"]["applied"], "name"),
        [ACCOUNTS]
    );
    assert!(prod.relation_exists("public.account"));

    // rollback and resolve: --force, and only --force.
    for args in [
        &["rollback", "--env", "prod"][..],
        &["rollback", "--env", "prod", "--yes"][..],
        &["resolve", "--env", "prod", "--applied", INVOICES][..],
        &["resolve", "--env", "prod", "--applied", INVOICES, "--yes"][..],
    ] {
        let out = migrate(args);
        let json = out.assert_error(6, "PROTECTED_NEEDS_FORCE");
        assert!(
            json["error"]["hint"]
                .as_str()
                .expect("a hint")
                .contains("--force"),
            "the hint names --force\n{out}"
        );
    }
    assert!(prod.relation_exists("public.account"));
    migrate(&["rollback", "--env", "prod", "--dry-run"]).assert_code(0);
    migrate(&[
        "resolve",
        "--env",
        "prod",
        "--applied",
        INVOICES,
        "--dry-run",
    ])
    .assert_code(0);
    assert!(prod.relation_exists("public.account"));
    assert_eq!(
        prod.psql("SELECT migration_name FROM _prisma_migrations"),
        ACCOUNTS,
        "refused rollbacks and resolves leave the history alone"
    );

    // seed: refused outright. seed has no --force flag at all, so `--force` cannot talk
    // it into running either: clap rejects the flag.
    let out = migrate(&["seed", "--env", "prod", "--dir", "seeds"]);
    let json = out.assert_error(6, "PROTECTED_FORBIDDEN");
    assert!(json["error"]["message"]
        .as_str()
        .expect("a message")
        .contains("seed"));
    let out = migrate(&["seed", "--env", "prod", "--dir", "seeds", "--force"]);
    out.assert_error(2, "USAGE");
    assert!(!prod.relation_exists("public.seeded"), "nothing was seeded");

    // With --force, rollback and resolve go ahead.
    migrate(&["rollback", "--env", "prod", "--force"]).assert_code(0);
    assert!(!prod.relation_exists("public.account"));
    migrate(&["resolve", "--env", "prod", "--force", "--applied", ACCOUNTS]).assert_code(0);
    assert_eq!(
        prod.query_one_string(&format!(
            "SELECT count(*) FROM _prisma_migrations \
             WHERE migration_name = '{ACCOUNTS}' AND finished_at IS NOT NULL"
        )),
        "1"
    );

    // An unprotected environment needs no flags.
    let out = migrate(&["deploy", "--env", "dev"]);
    out.assert_code(0);
    assert_eq!(
        json_strings(&out.json()["result"]["applied"], "name"),
        [ACCOUNTS, INVOICES]
    );
    migrate(&["rollback", "--env", "dev"]).assert_code(0);
    assert!(!dev.relation_exists("public.invoice"));
    migrate(&["seed", "--env", "dev", "--dir", "seeds"]).assert_code(0);
    assert_eq!(dev.query_one_string("SELECT count(*) FROM seeded"), "1");
}

#[test]
fn unknown_environment_and_unset_url_variable_are_usage_errors() {
    let project = project_dir();
    let out = run_in(
        project.path(),
        "migrate",
        &["deploy", "--env", "nosuch"],
        &[],
    );
    let json = out.assert_error(2, "UNKNOWN_ENV");
    let hint = json["error"]["hint"].as_str().expect("a hint");
    assert!(
        hint.contains("dev") && hint.contains("prod"),
        "the hint lists the known environments\n{out}"
    );

    let out = run_in(
        project.path(),
        "migrate",
        &["deploy", "--env", "ghost", "--yes"],
        &[],
    );
    let json = out.assert_error(2, "ENV_URL_UNSET");
    assert!(
        json["error"]["hint"]
            .as_str()
            .expect("a hint")
            .contains("GHOST_DATABASE_URL"),
        "{out}"
    );
    // An empty variable is as good as unset.
    let out = run_in(
        project.path(),
        "migrate",
        &["status", "--env", "ghost"],
        &[("GHOST_DATABASE_URL", "")],
    );
    out.assert_error(2, "ENV_URL_UNSET");
}

// ---------------------------------------------------------------------------------------
// 7. Audit log
// ---------------------------------------------------------------------------------------

/// The audit file's lines, parsed; none when it does not exist.
fn audit_lines(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {line}"))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

/// Checks one audit line's shape and content.
fn assert_audit_line(line: &Value, db: &TestDb, command: &str, exit_code: i32) {
    assert!(
        line["at"].as_str().is_some_and(|at| at.ends_with('Z')),
        "{line}"
    );
    assert_eq!(line["os_user"], "safety-auditor", "{line}");
    assert_eq!(line["db_user"], SUPERUSER, "{line}");
    let target = line["target"].as_str().expect("target is a string");
    assert!(target.contains(&db.name), "{line}");
    assert!(target.contains("***"), "the password is redacted: {line}");
    assert_eq!(line["tool"], "migrate", "{line}");
    assert_eq!(line["command"], command, "{line}");
    let args = line["args"].as_array().expect("args is an array");
    assert_eq!(args[0], command, "{line}");
    assert_eq!(
        line["outcome"]["ok"],
        exit_code == 0 || exit_code == 3,
        "{line}"
    );
    assert_eq!(line["outcome"]["exit_code"], exit_code, "{line}");
}

#[test]
fn changing_commands_append_one_redacted_audit_line_each() {
    let db = cluster().create_database();
    let folder = Migrations::new(&[]);
    folder.add_with_down(
        ACCOUNTS,
        "CREATE TABLE account (id int PRIMARY KEY);",
        "DROP TABLE account;",
    );
    folder.add(INVOICES, "CREATE TABLE invoice (id int PRIMARY KEY);");
    let audit_dir = tempfile::tempdir().expect("a temp dir for the audit log");
    let audit: PathBuf = audit_dir.path().join("audit.jsonl");
    let audit_arg = path_str(&audit);
    let url = db.url();
    let migrate = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&[
            "--dir",
            folder.arg(),
            "--database-url",
            &url,
            "--audit-log",
            audit_arg,
        ]);
        run("migrate", &all, &[("USER", "safety-auditor")])
    };

    // Reading and dry runs write nothing.
    migrate(&["status"]).assert_code(3);
    migrate(&["deploy", "--dry-run"]).assert_code(0);
    assert!(!audit.exists(), "status and --dry-run leave no audit line");

    migrate(&["deploy", "--to", ACCOUNTS]).assert_code(0);
    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 1);
    assert_audit_line(&lines[0], &db, "deploy", 0);
    assert_eq!(
        std::fs::metadata(&audit)
            .expect("the audit log exists")
            .permissions()
            .mode()
            & 0o777,
        0o600,
        "the audit log is readable by its owner only"
    );

    migrate(&["rollback", "--dry-run"]).assert_code(0);
    migrate(&["resolve", "--applied", INVOICES, "--dry-run"]).assert_code(0);
    migrate(&["status"]).assert_code(3);
    assert_eq!(
        audit_lines(&audit).len(),
        1,
        "dry runs and status append nothing"
    );

    migrate(&["rollback"]).assert_code(0);
    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 2);
    assert_audit_line(&lines[1], &db, "rollback", 0);

    migrate(&["resolve", "--applied", ACCOUNTS]).assert_code(0);
    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 3);
    assert_audit_line(&lines[2], &db, "resolve", 0);
    assert_eq!(
        lines[2]["args"],
        serde_json::json!([
            "resolve",
            "--applied",
            ACCOUNTS,
            "--dir",
            folder.arg(),
            "--database-url",
            url.replace(SUPERUSER_PASSWORD, "***"),
            "--audit-log",
            audit_arg
        ]),
        "args are the command line with the password redacted"
    );

    // A refused change is audited too, with its failed outcome.
    let out = migrate(&["resolve", "--rolled-back", ACCOUNTS]);
    out.assert_error(1, "INVALID_HISTORY_ACTION");
    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 4);
    assert_audit_line(&lines[3], &db, "resolve", 1);
    assert_eq!(lines[3]["outcome"]["error"], "INVALID_HISTORY_ACTION");

    migrate(&["status"]).assert_code(3);
    assert_eq!(audit_lines(&audit).len(), 4);

    let text = std::fs::read_to_string(&audit).expect("the audit log is readable");
    assert!(
        !text.contains(SUPERUSER_PASSWORD),
        "the password appears nowhere in the audit log:\n{text}"
    );
}

#[test]
fn audit_log_variable_works_like_the_flag() {
    let db = cluster().create_database();
    let folder = Migrations::new(&[(ACCOUNTS, "CREATE TABLE account (id int PRIMARY KEY);")]);
    let audit_dir = tempfile::tempdir().expect("a temp dir for the audit log");
    let audit = audit_dir.path().join("audit.jsonl");
    let envs = [
        ("PGWARD_AUDIT_LOG", path_str(&audit)),
        ("USER", "safety-auditor"),
    ];

    let url = db.url();
    let with_var = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--dir", folder.arg(), "--database-url", &url]);
        run("migrate", &all, &envs)
    };
    with_var(&["status"]).assert_code(3);
    with_var(&["deploy", "--dry-run"]).assert_code(0);
    assert!(!audit.exists(), "status and --dry-run leave no audit line");

    // The password in the query string and the URL glued to its flag: still redacted.
    let query_url = format!(
        "--database-url=postgresql://{SUPERUSER}@127.0.0.1:{}/{}?password={SUPERUSER_PASSWORD}",
        db.cluster().port,
        db.name
    );
    run(
        "migrate",
        &["deploy", "--dir", folder.arg(), &query_url],
        &envs,
    )
    .assert_code(0);
    with_var(&["status"]).assert_code(0);
    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 1);
    assert_audit_line(&lines[0], &db, "deploy", 0);
    assert_eq!(
        std::fs::metadata(&audit)
            .expect("the audit log exists")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&audit).expect("the audit log is readable");
    assert!(!text.contains(SUPERUSER_PASSWORD), "{text}");
}

#[test]
fn refused_attempts_on_a_protected_database_are_audited() {
    let prod = cluster().create_database();
    let project = project_dir();
    let audit = project.path().join("audit.jsonl");
    let prod_url = prod.url();
    let audit_arg = path_str(&audit);
    for (args, code) in [
        (
            &["deploy", "--env", "prod", "--audit-log", audit_arg][..],
            "PROTECTED_NEEDS_YES",
        ),
        (
            &["rollback", "--env", "prod", "--audit-log", audit_arg][..],
            "PROTECTED_NEEDS_FORCE",
        ),
    ] {
        let out = run_in(
            project.path(),
            "migrate",
            args,
            &[("PROD_DATABASE_URL", &prod_url)],
        );
        out.assert_error(6, code);
    }
    let text = std::fs::read_to_string(&audit).expect("the refusals were audited");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each audit line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["command"], "deploy", "{text}");
    assert_eq!(
        lines[0]["outcome"]["error"], "PROTECTED_NEEDS_YES",
        "{text}"
    );
    assert_eq!(
        lines[1]["outcome"]["error"], "PROTECTED_NEEDS_FORCE",
        "{text}"
    );
    assert!(!text.contains(SUPERUSER_PASSWORD), "{text}");
}
