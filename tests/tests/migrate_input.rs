//! End-to-end tests of what users feed `pgward-migrate` before any migration runs: the
//! database URL (as Prisma users write it, or wrong), the libpq variables, the migrations
//! folder (missing, empty, broken), the flags, and how the one JSON document on stdout
//! behaves (text format, --quiet, --help, a reader that goes away). Also that a password
//! never shows up in anything pgward prints or writes.
//!
//! Every failure here must be one the user can act on: the right exit code, a stable
//! `error.code`, a message naming what is wrong and a hint, and still exactly one JSON
//! document on stdout for the scripts that read it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgward_tests::{
    bin, cluster, fixtures_dir, path_str, run, spawn, temp_dir, Output, TestDb, SUPERUSER_PASSWORD,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A valid one-migration folder: `widget` with one row, and a down.sql dropping it.
fn simple_migrations() -> PathBuf {
    fixtures_dir().join("input_simple")
}

/// `pgward-migrate <command> --dir <dir> <extra...> --database-url <url>`.
fn migrate_url(command: &str, dir: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec![command, "--dir", path_str(dir)];
    args.extend_from_slice(extra);
    args.extend(["--database-url", url]);
    run("migrate", &args, &[])
}

/// Asserts the exit code and that stdout is one envelope agreeing with it.
fn expect(out: &Output, code: i32) -> Value {
    let envelope = out.assert_envelope(code);
    assert_eq!(envelope["tool"], "migrate", "{out}");
    envelope
}

/// Asserts a failure a user can act on: exit code, `error.code`, a message that
/// mentions every one of `named`, and a non-empty hint. Returns the envelope.
fn expect_error(out: &Output, code: i32, error_code: &str, named: &[&str]) -> Value {
    let envelope = expect(out, code);
    let error = &envelope["error"];
    assert_eq!(error["code"], error_code, "{out}");
    let message = error["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error.message is a string\n{out}"));
    for part in named {
        assert!(
            message.contains(part),
            "error.message should name `{part}`: {message}\n{out}"
        );
    }
    let hint = error["hint"]
        .as_str()
        .unwrap_or_else(|| panic!("error.hint is a string\n{out}"));
    assert!(!hint.trim().is_empty(), "error.hint is empty\n{out}");
    envelope
}

/// Whether `table` exists anywhere in the database.
fn table_exists(db: &TestDb, table: &str) -> bool {
    db.query_one_string(&format!(
        "select count(*) from pg_tables where tablename = '{table}'"
    )) != "0"
}

/// A port on 127.0.0.1 nobody listens on (bound a moment ago, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}

/// Runs `pgward-migrate args` but fails the test (killing the binary) if it has not
/// finished within `limit`: for tests where the bug would be a hang.
fn run_within(limit: Duration, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = spawn("migrate", args, &[]);
    loop {
        if child.try_wait().expect("try_wait works").is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child
                .wait_with_output()
                .expect("output of the killed binary");
            panic!(
                "pgward-migrate {args:?} did not finish within {limit:?}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let output = child.wait_with_output().expect("output of the binary");
    (
        Output {
            code: output
                .status
                .code()
                .expect("exited, not killed by a signal"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        elapsed,
    )
}

// ---------------------------------------------------------------------------------------
// Bad database URLs and unreachable servers
// ---------------------------------------------------------------------------------------

#[test]
fn url_with_a_port_that_is_not_a_number_is_a_usage_error() {
    let out = migrate_url(
        "status",
        &simple_migrations(),
        "postgresql://u:pw@host:notaport/db",
        &[],
    );
    expect_error(&out, 2, "INVALID_DATABASE_URL", &["port", "--database-url"]);
}

#[test]
fn url_of_another_database_kind_is_a_usage_error() {
    let out = migrate_url(
        "deploy",
        &simple_migrations(),
        "mysql://u:pw@localhost:3306/db",
        &[],
    );
    expect_error(&out, 2, "INVALID_DATABASE_URL", &["postgresql://", "mysql"]);
}

#[test]
fn closed_port_fails_to_connect_at_once() {
    let port = closed_port();
    let url = format!("postgresql://pgward:x@127.0.0.1:{port}/db");
    let (out, elapsed) = run_within(
        Duration::from_secs(30),
        &[
            "status",
            "--dir",
            path_str(&simple_migrations()),
            "--database-url",
            &url,
        ],
    );
    let envelope = expect_error(
        &out,
        4,
        "CONNECTION_FAILED",
        &[&format!("127.0.0.1:{port}/db")],
    );
    let message = envelope["error"]["message"].as_str().unwrap_or_default();
    assert!(message.to_lowercase().contains("refused"), "{out}");
    assert!(
        elapsed < Duration::from_secs(3),
        "a refused connection is reported at once, not after {elapsed:?}"
    );
    assert_eq!(envelope["target"]["port"], port, "{out}");
}

#[test]
fn server_that_never_answers_times_out_after_connect_timeout() {
    // Accepts TCP connections (the kernel completes the handshake) but never says a word,
    // like a hung server or a proxy without a backend.
    let silent = TcpListener::bind("127.0.0.1:0").expect("a listener on 127.0.0.1");
    let port = silent.local_addr().expect("its address").port();
    let url = format!("postgresql://pgward:x@127.0.0.1:{port}/db?connect_timeout=1");
    let (out, elapsed) = run_within(
        Duration::from_secs(20),
        &[
            "status",
            "--dir",
            path_str(&simple_migrations()),
            "--database-url",
            &url,
        ],
    );
    expect_error(&out, 4, "CONNECTION_FAILED", &["connect_timeout"]);
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "connect_timeout=1 gives up after about a second, took {elapsed:?}"
    );
    drop(silent);
}

#[test]
fn wrong_password_is_an_authentication_failure() {
    let db = cluster().create_database();
    let url = db.url().replace(SUPERUSER_PASSWORD, "not-the-password-77");
    let out = migrate_url("deploy", &simple_migrations(), &url, &[]);
    expect_error(
        &out,
        4,
        "AUTHENTICATION_FAILED",
        &["password authentication failed", "pgward"],
    );
    assert!(!table_exists(&db, "_prisma_migrations"));
}

#[test]
fn database_that_does_not_exist_cannot_be_connected_to() {
    let db = cluster().create_database();
    let missing = format!("{}_missing", db.name);
    let url = db.url().replace(&db.name, &missing);
    let out = migrate_url("status", &simple_migrations(), &url, &[]);
    expect_error(&out, 4, "CONNECTION_FAILED", &[&missing, "does not exist"]);
}

#[test]
fn no_database_url_anywhere_is_a_usage_error() {
    // The harness clears the environment: no DATABASE_URL, PGHOST or PGDATABASE.
    let out = run(
        "migrate",
        &["status", "--dir", path_str(&simple_migrations())],
        &[],
    );
    expect_error(
        &out,
        2,
        "NO_DATABASE_URL",
        &["DATABASE_URL", "--database-url"],
    );
}

// ---------------------------------------------------------------------------------------
// Bad migrations folders: refused before anything touches the database
// ---------------------------------------------------------------------------------------

#[test]
fn missing_migrations_folder_is_a_usage_error() {
    let db = cluster().create_database();
    let tmp = temp_dir("pgward-input-");
    let missing = tmp.path().join("prisma").join("migrations");
    for command in ["deploy", "status"] {
        let out = migrate_url(command, &missing, &db.url(), &[]);
        let envelope = expect_error(&out, 2, "MIGRATIONS_DIR_MISSING", &[path_str(&missing)]);
        assert_eq!(envelope["error"]["details"]["path"], path_str(&missing));
    }
    assert!(!table_exists(&db, "_prisma_migrations"));
}

#[test]
fn empty_migrations_folder_is_a_usage_error() {
    let db = cluster().create_database();
    let tmp = temp_dir("pgward-input-");
    // migration_lock.toml alone is not a migration.
    std::fs::write(
        tmp.path().join("migration_lock.toml"),
        "provider = \"postgresql\"\n",
    )
    .expect("write the lock file");
    for command in ["deploy", "status"] {
        let out = migrate_url(command, tmp.path(), &db.url(), &[]);
        expect_error(&out, 2, "MIGRATIONS_DIR_EMPTY", &[path_str(tmp.path())]);
    }
    assert!(!table_exists(&db, "_prisma_migrations"));
}

#[test]
fn migration_folder_without_migration_sql_is_p3015() {
    let db = cluster().create_database();
    let tmp = temp_dir("pgward-input-");
    let good = tmp.path().join("20240101000000_init");
    std::fs::create_dir(&good).expect("mkdir");
    std::fs::write(good.join("migration.sql"), "CREATE TABLE early (id int);\n").expect("write");
    let broken = tmp.path().join("20240102000000_forgotten");
    std::fs::create_dir(&broken).expect("mkdir");
    std::fs::write(broken.join("README.md"), "the SQL went missing\n").expect("write");
    let expected = broken.join("migration.sql");
    let out = migrate_url("deploy", tmp.path(), &db.url(), &[]);
    let envelope = expect_error(
        &out,
        2,
        "MIGRATION_SQL_MISSING",
        &["P3015", path_str(&expected)],
    );
    assert_eq!(envelope["error"]["details"]["path"], path_str(&expected));
    // Nothing ran, not even the good first migration.
    assert!(!table_exists(&db, "early"));
    assert!(!table_exists(&db, "_prisma_migrations"));
}

#[test]
fn migration_sql_that_is_not_utf8_is_named() {
    let db = cluster().create_database();
    let tmp = temp_dir("pgward-input-");
    let folder = tmp.path().join("20240101000000_latin1");
    std::fs::create_dir(&folder).expect("mkdir");
    let file = folder.join("migration.sql");
    let mut bytes = b"CREATE TABLE latin (name text DEFAULT '".to_vec();
    let offset = bytes.len();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(b"');\n");
    std::fs::write(&file, &bytes).expect("write");
    for command in ["deploy", "status"] {
        let out = migrate_url(command, tmp.path(), &db.url(), &[]);
        let envelope = expect_error(&out, 2, "MIGRATION_NOT_UTF8", &[path_str(&file), "UTF-8"]);
        assert_eq!(
            envelope["error"]["details"]["path"],
            path_str(&file),
            "{out}"
        );
        assert_eq!(envelope["error"]["details"]["offset"], offset, "{out}");
    }
    assert!(!table_exists(&db, "latin"));
    assert!(!table_exists(&db, "_prisma_migrations"));
}

#[test]
fn migrations_for_another_provider_are_p3019() {
    let db = cluster().create_database();
    let tmp = temp_dir("pgward-input-");
    let folder = tmp.path().join("20240101000000_init");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::write(
        folder.join("migration.sql"),
        "CREATE TABLE `widget` (`id` INTEGER NOT NULL AUTO_INCREMENT, PRIMARY KEY (`id`));\n",
    )
    .expect("write");
    let lock = tmp.path().join("migration_lock.toml");
    std::fs::write(
        &lock,
        "# Please do not edit this file manually\nprovider = \"mysql\"\n",
    )
    .expect("write");
    for command in ["deploy", "status"] {
        let out = migrate_url(command, tmp.path(), &db.url(), &[]);
        expect_error(
            &out,
            2,
            "PROVIDER_MISMATCH",
            &["P3019", "mysql", path_str(&lock)],
        );
    }
    assert!(!table_exists(&db, "_prisma_migrations"));
}

#[test]
fn seed_of_a_missing_folder_is_a_usage_error_with_a_hint_that_works() {
    let db = cluster().create_database();
    let tmp = temp_dir("pgward-input-");
    let missing = tmp.path().join("prisma").join("seeds");
    let out = run(
        "migrate",
        &[
            "seed",
            "--dir",
            path_str(&missing),
            "--database-url",
            &db.url(),
        ],
        &[],
    );
    let envelope = expect_error(&out, 2, "USAGE", &[path_str(&missing), "does not exist"]);
    // The hint names the flag that sets the folder, and that flag exists.
    let hint = envelope["error"]["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("--dir"), "{out}");
    let help = run("migrate", &["seed", "--help"], &[]);
    help.assert_code(0);
    assert!(help.stdout.contains("--dir <PATH>"), "{help}");
}

// ---------------------------------------------------------------------------------------
// Bad flags
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_flag_prints_an_envelope_and_clap_explains_on_stderr() {
    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&simple_migrations()),
            "--frobnicate",
        ],
        &[],
    );
    expect_error(&out, 2, "USAGE", &["--frobnicate"]);
    assert!(
        out.stderr.contains("unexpected argument '--frobnicate'"),
        "clap's own message goes to stderr\n{out}"
    );
    assert!(out.stderr.contains("Usage:"), "{out}");
}

#[test]
fn invalid_duration_is_a_usage_error_naming_the_flag() {
    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&simple_migrations()),
            "--lock-wait",
            "soon",
        ],
        &[],
    );
    expect_error(&out, 2, "USAGE", &["--lock-wait", "soon"]);
    assert!(out.stderr.contains("'soon'"), "{out}");
}

// ---------------------------------------------------------------------------------------
// Passwords never leak
// ---------------------------------------------------------------------------------------

/// A login role with a password full of URL-special characters, dropped when this is.
struct EncodedPasswordRole {
    name: String,
}

/// The role's password, and how a Prisma user writes it in a URL.
const ODD_PASSWORD: &str = "p@ss/w:rd%x";
const ODD_PASSWORD_ENCODED: &str = "p%40ss%2Fw%3Ard%25x";

impl EncodedPasswordRole {
    fn create(db: &TestDb) -> EncodedPasswordRole {
        let name = format!("{}_odd", db.name);
        db.psql(&format!(
            "CREATE ROLE \"{name}\" LOGIN SUPERUSER PASSWORD '{ODD_PASSWORD}'"
        ));
        EncodedPasswordRole { name }
    }

    fn url(&self, db: &TestDb) -> String {
        format!(
            "postgresql://{}:{ODD_PASSWORD_ENCODED}@127.0.0.1:{}/{}",
            self.name,
            db.cluster().port,
            db.name
        )
    }
}

impl Drop for EncodedPasswordRole {
    fn drop(&mut self) {
        let _ = cluster().try_psql(
            &cluster().socket_conninfo("postgres"),
            &format!("DROP ROLE IF EXISTS \"{}\"", self.name),
        );
    }
}

/// Runs every command of pgward-migrate against `url` with an audit log, and asserts
/// that none of `secrets` appears in any stdout, stderr or audit line.
fn assert_commands_never_show(db: &TestDb, url: &str, wrong_url: &str, secrets: &[&str]) {
    let tmp = temp_dir("pgward-input-");
    let audit = tmp.path().join("audit.jsonl");
    let audit_flag = ["--audit-log", path_str(&audit)];
    let dir = simple_migrations();
    let dir = path_str(&dir);
    let new_dir = tmp.path().join("new-migrations");
    let new_dir = path_str(&new_dir);
    let missing_seeds = tmp.path().join("no-seeds");
    let missing_seeds = path_str(&missing_seeds);

    let runs: Vec<(&str, Vec<&str>, i32)> = vec![
        ("deploy", vec!["deploy", "--dir", dir], 0),
        ("status", vec!["status", "--dir", dir], 0),
        (
            "resolve of a migration that did not fail",
            vec![
                "resolve",
                "--dir",
                dir,
                "--rolled-back",
                "20240101000000_init",
            ],
            1,
        ),
        ("rollback", vec!["rollback", "--dir", dir], 0),
        (
            "deploy --dry-run",
            vec!["deploy", "--dir", dir, "--dry-run"],
            0,
        ),
        ("new", vec!["new", "--dir", new_dir, "add_things"], 0),
        (
            "seed of a missing folder",
            vec!["seed", "--dir", missing_seeds],
            2,
        ),
    ];
    let mut outputs = Vec::new();
    // The URL typed where a flag or a value of another flag belongs: clap quotes it.
    for (what, args) in [
        (
            "URL without --database-url",
            vec!["deploy", "--dir", dir, url],
        ),
        (
            "URL as the value of --format",
            vec!["status", "--dir", dir, "--format", url],
        ),
    ] {
        let out = run("migrate", &args, &[]);
        expect_error(&out, 2, "USAGE", &[":***@"]);
        assert!(
            out.stderr.contains(":***@"),
            "clap's message is redacted too\n{out}"
        );
        outputs.push((what.to_string(), out));
    }
    for (what, mut args, code) in runs {
        args.extend(audit_flag);
        args.extend(["--database-url", url]);
        let out = run("migrate", &args, &[]);
        expect(&out, code);
        outputs.push((what.to_string(), out));
    }
    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            dir,
            audit_flag[0],
            audit_flag[1],
            "--database-url",
            wrong_url,
        ],
        &[],
    );
    expect_error(&out, 4, "AUTHENTICATION_FAILED", &[]);
    outputs.push(("deploy with the wrong password".into(), out));
    // The same through the environment and in text format.
    let out = run(
        "migrate",
        &["status", "--dir", dir, "--format", "text"],
        &[("DATABASE_URL", wrong_url)],
    );
    out.assert_code(4);
    outputs.push(("status --format text, URL from DATABASE_URL".into(), out));

    for (what, out) in &outputs {
        for secret in secrets {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "{what} shows the password `{secret}`\n{out}"
            );
        }
    }

    // The commands really ran as that user: deploy created the history table and the
    // widget table, rollback removed both the table and the history row again.
    assert_eq!(
        db.query_one_string("select count(*) from _prisma_migrations"),
        "0"
    );
    assert!(!table_exists(db, "widget"));

    let audit_text = std::fs::read_to_string(&audit).expect("the audit log was written");
    let lines: Vec<Value> = audit_text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each audit line is JSON"))
        .collect();
    // Which attempts are audited is not this test's business (a refused seed may be),
    // but the changing commands must be there for their lines to be checked below.
    let commands: Vec<&str> = lines
        .iter()
        .map(|line| line["command"].as_str().unwrap_or_default())
        .filter(|command| *command != "seed")
        .collect();
    assert_eq!(
        commands,
        ["deploy", "resolve", "rollback", "deploy"],
        "changing commands (and the failed deploy) are audited\n{audit_text}"
    );
    for secret in secrets {
        assert!(
            !audit_text.contains(secret),
            "the audit log shows the password `{secret}`:\n{audit_text}"
        );
    }
    for line in &lines {
        let target = line["target"].as_str().unwrap_or_default();
        assert!(target.contains(":***@"), "redacted target: {line}");
        let args: Vec<&str> = line["args"]
            .as_array()
            .expect("args is an array")
            .iter()
            .map(|a| a.as_str().unwrap_or_default())
            .collect();
        let url_arg = args
            .iter()
            .find(|a| a.starts_with("postgresql://"))
            .unwrap_or_else(|| panic!("the URL argument is kept, redacted: {line}"));
        assert!(url_arg.contains(":***@"), "redacted URL argument: {line}");
    }
}

#[test]
fn password_never_appears_in_output_or_audit_log() {
    let db = cluster().create_database();
    let wrong = db.url().replace(SUPERUSER_PASSWORD, "wrong-secret-pw-4711");
    assert_commands_never_show(
        &db,
        &db.url(),
        &wrong,
        &[SUPERUSER_PASSWORD, "wrong-secret-pw-4711"],
    );
}

#[test]
fn percent_encoded_password_never_appears_in_any_form() {
    let db = cluster().create_database();
    let role = EncodedPasswordRole::create(&db);
    let url = role.url(&db);
    let wrong_raw = "wr@ng/p:ss%y";
    let wrong = url.replace(ODD_PASSWORD_ENCODED, "wr%40ng%2Fp%3Ass%25y");
    assert_commands_never_show(
        &db,
        &url,
        &wrong,
        &[
            ODD_PASSWORD,
            ODD_PASSWORD_ENCODED,
            &ODD_PASSWORD_ENCODED.to_lowercase(),
            wrong_raw,
            "wr%40ng%2Fp%3Ass%25y",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// URLs as Prisma users write them
// ---------------------------------------------------------------------------------------

#[test]
fn postgres_and_postgresql_schemes_both_work() {
    let db = cluster().create_database();
    let postgres_url = db.url().replacen("postgresql://", "postgres://", 1);
    let deployed = expect(
        &migrate_url("deploy", &simple_migrations(), &postgres_url, &[]),
        0,
    );
    assert_eq!(
        deployed["result"]["applied"][0]["name"],
        "20240101000000_init"
    );
    let status = expect(
        &migrate_url("status", &simple_migrations(), &db.url(), &[]),
        0,
    );
    assert_eq!(status["result"]["up_to_date"], true);
    assert_eq!(db.query_one_string("select label from widget"), "one");
}

#[test]
fn socket_directory_as_host_works() {
    let db = cluster().create_database();
    let url = db.socket_url();
    let deployed = expect(&migrate_url("deploy", &simple_migrations(), &url, &[]), 0);
    assert_eq!(
        deployed["target"]["host"],
        path_str(&db.cluster().socket_dir),
        "the socket directory is the target host"
    );
    assert_eq!(deployed["target"]["database"], db.name.as_str());
    expect(&migrate_url("status", &simple_migrations(), &url, &[]), 0);
    assert_eq!(
        db.query_one_string(
            "select count(*) from _prisma_migrations where finished_at is not null"
        ),
        "1"
    );
}

#[test]
fn schema_parameter_puts_history_and_tables_in_that_schema() {
    let db = cluster().create_database();
    let url = format!("{}?schema=myschema", db.url());
    let pending = expect(&migrate_url("status", &simple_migrations(), &url, &[]), 3);
    assert_eq!(pending["result"]["schema"], "myschema");
    assert_eq!(pending["result"]["history_table"], false);

    let deployed = expect(&migrate_url("deploy", &simple_migrations(), &url, &[]), 0);
    assert_eq!(deployed["result"]["schema"], "myschema");
    assert_eq!(
        db.psql(
            "select schemaname || '.' || tablename from pg_tables \
             where tablename in ('_prisma_migrations', 'widget') order by 1"
        ),
        "myschema._prisma_migrations\nmyschema.widget"
    );
    assert_eq!(
        db.query_one_string("select migration_name from myschema._prisma_migrations"),
        "20240101000000_init"
    );
    let status = expect(&migrate_url("status", &simple_migrations(), &url, &[]), 0);
    assert_eq!(status["result"]["schema"], "myschema");
    assert_eq!(status["result"]["up_to_date"], true);
    // Without the parameter, public holds no history: everything is pending there.
    let public = expect(
        &migrate_url("status", &simple_migrations(), &db.url(), &[]),
        3,
    );
    assert_eq!(public["result"]["schema"], "public");
    assert_eq!(public["result"]["history_table"], false);
}

#[test]
fn prisma_pool_parameters_are_accepted_without_warnings() {
    let db = cluster().create_database();
    let url = format!(
        "{}?connection_limit=5&pool_timeout=10&pgbouncer=true&connect_timeout=5&socket_timeout=3",
        db.url()
    );
    for (command, code) in [("deploy", 0), ("status", 0)] {
        let out = migrate_url(command, &simple_migrations(), &url, &[]);
        let envelope = expect(&out, code);
        assert_eq!(envelope["warnings"], serde_json::json!([]), "{out}");
    }
    assert!(table_exists(&db, "widget"));
}

#[test]
fn unknown_url_parameter_is_a_warning_not_an_error() {
    let db = cluster().create_database();
    let url = format!("{}?frobnicate=1", db.url());
    let out = migrate_url("deploy", &simple_migrations(), &url, &[]);
    let envelope = expect(&out, 0);
    let warnings = envelope["warnings"]
        .as_array()
        .expect("warnings is an array");
    let unknown: Vec<&Value> = warnings
        .iter()
        .filter(|w| w["code"] == "UNKNOWN_URL_PARAMETER")
        .collect();
    assert_eq!(unknown.len(), 1, "{out}");
    assert!(
        unknown[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("frobnicate"),
        "{out}"
    );
    assert!(table_exists(&db, "widget"));
}

#[test]
fn libpq_variables_alone_are_enough() {
    let db = cluster().create_database();
    let socket_dir = path_str(&db.cluster().socket_dir).to_string();
    let port = db.cluster().port.to_string();
    let env = [
        ("PGHOST", socket_dir.as_str()),
        ("PGPORT", port.as_str()),
        ("PGUSER", "pgward"),
        ("PGDATABASE", db.name.as_str()),
    ];
    let dir = simple_migrations();
    let out = run("migrate", &["deploy", "--dir", path_str(&dir)], &env);
    let envelope = expect(&out, 0);
    assert_eq!(envelope["target"]["host"], socket_dir.as_str());
    assert_eq!(envelope["target"]["port"], db.cluster().port);
    assert_eq!(envelope["target"]["user"], "pgward");
    assert_eq!(envelope["target"]["database"], db.name.as_str());
    expect(
        &run("migrate", &["status", "--dir", path_str(&dir)], &env),
        0,
    );
    assert_eq!(db.query_one_string("select label from widget"), "one");
}

// ---------------------------------------------------------------------------------------
// Output for people and for pipes
// ---------------------------------------------------------------------------------------

#[test]
fn text_format_prints_a_human_summary() {
    let db = cluster().create_database();
    let out = migrate_url(
        "deploy",
        &simple_migrations(),
        &db.url(),
        &["--format", "text"],
    );
    out.assert_code(0);
    assert!(
        serde_json::from_str::<Value>(&out.stdout).is_err(),
        "text format is not JSON\n{out}"
    );
    assert!(
        out.stdout
            .starts_with(&format!("Applied 1 migration to {}@", db.name)),
        "the target is shown\n{out}"
    );
    assert!(out.stdout.contains("20240101000000_init"), "{out}");

    let out = migrate_url(
        "status",
        Path::new("/nonexistent/pgward/migrations"),
        &db.url(),
        &["--format", "text"],
    );
    out.assert_code(2);
    assert!(
        out.stdout.starts_with("error[MIGRATIONS_DIR_MISSING]: "),
        "{out}"
    );
    assert!(out.stdout.contains("\n  = hint: "), "{out}");
}

#[test]
fn quiet_leaves_stderr_empty_on_success() {
    let db = cluster().create_database();
    let loud = migrate_url("deploy", &simple_migrations(), &db.url(), &[]);
    expect(&loud, 0);
    assert!(
        !loud.stderr.is_empty(),
        "without --quiet deploy logs progress\n{loud}"
    );
    expect(
        &migrate_url("rollback", &simple_migrations(), &db.url(), &[]),
        0,
    );

    for flag in ["--quiet", "-q"] {
        let out = migrate_url("deploy", &simple_migrations(), &db.url(), &[flag]);
        let envelope = expect(&out, 0);
        assert_eq!(out.stderr, "", "{flag} leaves stderr empty\n{out}");
        assert_eq!(
            envelope["result"]["applied"][0]["name"],
            "20240101000000_init"
        );
        expect(
            &migrate_url("rollback", &simple_migrations(), &db.url(), &[]),
            0,
        );
    }
}

#[test]
fn help_of_the_binary_and_every_command_has_examples() {
    for args in [
        vec!["--help"],
        vec!["deploy", "--help"],
        vec!["status", "--help"],
        vec!["resolve", "--help"],
        vec!["rollback", "--help"],
        vec!["new", "--help"],
        vec!["seed", "--help"],
        vec!["help", "deploy"],
    ] {
        let out = run("migrate", &args, &[]);
        out.assert_code(0);
        assert!(
            out.stdout.contains("Example"),
            "{args:?} shows an example\n{out}"
        );
        assert!(out.stdout.contains("Usage:"), "{args:?}\n{out}");
    }
}

/// Runs `script` with bash (`$@` = pgward-migrate and `args`) and returns what the
/// script printed: it reports pgward's own exit status, not the pipe's.
fn run_piped(script: &str, args: &[&str]) -> Output {
    let output = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .arg(bin("migrate"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "the script itself runs: {output:?}"
    );
    Output {
        code: String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("the script prints pgward's exit status: {output:?}")),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn reader_that_goes_away_is_not_a_crash() {
    let db = cluster().create_database();
    let url = db.url();
    let dir = simple_migrations();
    // Nothing deployed: status exits 3 (pending), whoever reads stdout.
    let args = ["status", "--dir", path_str(&dir), "--database-url", &url];
    for (reader, format) in [
        // Takes one byte, then closes the pipe.
        ("head -c 1 >/dev/null", "json"),
        ("head -c 1 >/dev/null", "text"),
        // Closes the pipe before pgward has connected, let alone written.
        ("true", "json"),
        ("true", "text"),
    ] {
        let script = format!(
            "\"$@\" --format {format} | {reader}; code=${{PIPESTATUS[0]}}; echo; echo \"$code\""
        );
        let out = run_piped(&script, &args);
        assert_eq!(
            out.code, 3,
            "pgward exits as usual when `{reader}` closes its stdout ({format})\n{out}"
        );
        assert!(
            !out.stderr.contains("panicked"),
            "no panic ({reader}, {format})\n{out}"
        );
        assert!(
            !out.stderr.contains("Broken pipe"),
            "no error about the pipe\n{out}"
        );
    }
}
