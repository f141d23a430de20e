//! End-to-end tests of `pgward-migrate` over TLS, with libpq's `sslmode` meanings:
//! verify-full checks the CA and the host name, verify-ca the CA only, require encrypts
//! without checking, disable never encrypts. Each failure is exit 4 with error.code
//! TLS_FAILED and a message saying which check failed.
//!
//! The clusters' server certificate names `localhost` only (see the harness's tls.rs),
//! so the same server is a "right host" as `localhost` and a "wrong host" as `127.0.0.1`.

use std::path::Path;
use std::sync::OnceLock;

use pgward_tests::{
    fixtures_dir, path_str, run, Cluster, Output, TestDb, TlsMode, SUPERUSER, SUPERUSER_PASSWORD,
};

/// A cluster offering TLS but accepting plain TCP too, shared by this file's tests.
fn optional_tls() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start_tls(TlsMode::Optional))
}

/// A cluster whose pg_hba.conf accepts TCP connections only with TLS.
fn required_tls() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start_tls(TlsMode::Required))
}

/// `postgresql://pgward:PW@<host>:PORT/DB?<params>`.
fn url(db: &TestDb, host: &str, params: &str) -> String {
    format!(
        "postgresql://{SUPERUSER}:{SUPERUSER_PASSWORD}@{host}:{}/{}?{params}",
        db.cluster().port,
        db.name
    )
}

/// `pgward-migrate <command> --dir <one-migration fixture> --database-url <url>`, with
/// extra environment variables.
fn migrate(command: &str, url: &str, envs: &[(&str, &str)]) -> Output {
    let dir = fixtures_dir().join("input_simple");
    run(
        "migrate",
        &[command, "--dir", path_str(&dir), "--database-url", url],
        envs,
    )
}

/// `pgward-backup backup --to <to> --database-url <url> EXTRA...`
fn backup(cluster: &Cluster, to: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["backup", "--to", path_str(to), "--database-url", url];
    args.extend_from_slice(extra);
    run("backup", &args, &cluster.pg_tools_env())
}

/// Asserts exit 4, TLS_FAILED, a message containing `says` and a hint; returns the
/// message.
fn expect_tls_failure(out: &Output, says: &str) -> String {
    let envelope = out.assert_envelope(4);
    assert_eq!(envelope["error"]["code"], "TLS_FAILED", "{out}");
    let message = envelope["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains(says),
        "the message should say `{says}`\n{out}"
    );
    assert!(
        !envelope["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{out}"
    );
    message
}

fn history_exists(db: &TestDb) -> bool {
    db.query_one_string("select count(*) from pg_tables where tablename = '_prisma_migrations'")
        != "0"
}

// ---------------------------------------------------------------------------------------
// TLS offered, plain TCP allowed
// ---------------------------------------------------------------------------------------

#[test]
fn verify_full_with_the_right_ca_and_host_deploys() {
    let tls = optional_tls();
    let db = tls.create_database();
    let ca = path_str(tls.ca_cert_path());
    let url = url(
        &db,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let pending = migrate("status", &url, &[]).assert_envelope(3);
    assert_eq!(pending["target"]["host"], "localhost");
    let deployed = migrate("deploy", &url, &[]).assert_envelope(0);
    assert_eq!(
        deployed["result"]["applied"][0]["name"],
        "20240101000000_init"
    );
    migrate("status", &url, &[]).assert_envelope(0);
    assert_eq!(db.query_one_string("select label from widget"), "one");
}

#[test]
fn verify_full_rejects_a_certificate_from_another_ca() {
    let tls = optional_tls();
    let db = tls.create_database();
    let other = path_str(tls.other_ca_cert_path());
    let url = url(
        &db,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    );
    for command in ["deploy", "status"] {
        expect_tls_failure(&migrate(command, &url, &[]), "not signed by a CA");
    }
    assert!(
        !history_exists(&db),
        "nothing ran over the untrusted connection"
    );
}

#[test]
fn verify_full_rejects_a_host_the_certificate_does_not_name() {
    let tls = optional_tls();
    let db = tls.create_database();
    let ca = path_str(tls.ca_cert_path());
    let url = url(
        &db,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let message = expect_tls_failure(&migrate("deploy", &url, &[]), "does not name the host");
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(!history_exists(&db));
}

#[test]
fn verify_ca_checks_the_ca_but_not_the_host_name() {
    let tls = optional_tls();
    let db = tls.create_database();
    let ca = path_str(tls.ca_cert_path());
    let url_ca = url(
        &db,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    migrate("deploy", &url_ca, &[]).assert_envelope(0);
    migrate("status", &url_ca, &[]).assert_envelope(0);
    // ... and it still checks the CA.
    let other = path_str(tls.other_ca_cert_path());
    let url_other = url(
        &db,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={other}"),
    );
    expect_tls_failure(&migrate("status", &url_other, &[]), "not signed by a CA");
}

#[test]
fn require_encrypts_without_a_ca() {
    let tls = optional_tls();
    let db = tls.create_database();
    let url = url(&db, "127.0.0.1", "sslmode=require");
    migrate("deploy", &url, &[]).assert_envelope(0);
    migrate("status", &url, &[]).assert_envelope(0);
    assert!(history_exists(&db));
}

#[test]
fn verify_full_without_sslrootcert_says_it_needs_one() {
    let tls = optional_tls();
    let db = tls.create_database();
    // libpq falls back to ~/.postgresql/root.crt; this HOME has none.
    let home = tempfile::tempdir().expect("a temp HOME");
    let url = url(&db, "localhost", "sslmode=verify-full");
    let out = migrate("deploy", &url, &[("HOME", path_str(home.path()))]);
    let message = expect_tls_failure(&out, "sslrootcert");
    assert!(message.contains("verify-full"), "{message}");
    assert!(!history_exists(&db));
}

// ---------------------------------------------------------------------------------------
// TLS required by the server
// ---------------------------------------------------------------------------------------

#[test]
fn tls_only_server_refuses_sslmode_disable_with_a_clear_message() {
    let tls = required_tls();
    let db = tls.create_database();
    let url = url(&db, "127.0.0.1", "sslmode=disable");
    for command in ["deploy", "status"] {
        expect_tls_failure(&migrate(command, &url, &[]), "accepts only TLS");
    }
    assert!(!history_exists(&db));
}

#[test]
fn tls_only_server_accepts_sslmode_require() {
    let tls = required_tls();
    let db = tls.create_database();
    // The server rejects every connection without TLS, so success proves encryption.
    for (command, code) in [("status", 3), ("deploy", 0), ("status", 0)] {
        migrate(command, &url(&db, "127.0.0.1", "sslmode=require"), &[]).assert_envelope(code);
    }
    // The default (prefer) upgrades to TLS as well.
    migrate("status", &url(&db, "127.0.0.1", ""), &[]).assert_envelope(0);
    assert_eq!(db.query_one_string("select label from widget"), "one");
}

#[test]
fn backup_workers_read_their_copy_streams_over_verified_tls() {
    let tls = required_tls();
    let db = tls.create_database();
    db.psql(
        "create table reading (id int primary key, note text); \
         insert into reading select g, md5(g::text) from generate_series(1, 20000) g;",
    );
    let ca = path_str(tls.ca_cert_path());
    let verified = url(
        &db,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let to = tempfile::tempdir().expect("a backup folder");
    // Two workers, each reading 1 MiB ctid ranges of the 1.4 MB table: the server rejects
    // every connection without TLS, so success proves each worker's session had it.
    let out = backup(
        tls,
        to.path(),
        &verified,
        &["--jobs", "2", "--chunk-mib", "1"],
    );
    let envelope = out.assert_envelope(0);
    assert_eq!(envelope["result"]["rows"], 20000, "{out}");
    assert!(
        envelope["result"]["tables"][0]["chunks"].as_u64() > Some(1),
        "{out}"
    );
    // Every session said goodbye (this cluster serves no other backup).
    let log = tls.server_log();
    assert!(
        !log.contains("unexpected EOF on client connection"),
        "the workers closed their sessions cleanly:\n{log}"
    );
    // ... and a backup refuses a server certificate from another CA before reading anything.
    let other = path_str(tls.other_ca_cert_path());
    let url_other = url(
        &db,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    );
    let out = backup(tls, to.path(), &url_other, &[]);
    expect_tls_failure(&out, "not signed by a CA");
}
