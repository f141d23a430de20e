//! Tests of the test harness itself: if these fail, no end-to-end test result means much.

use pgward_tests::{
    cluster, fixtures_dir, redact_json, redact_temp_paths, s3, workspace_root, Cluster, Output,
    S3Server, TlsMode, SUPERUSER, SUPERUSER_PASSWORD,
};
use serde_json::json;

#[test]
fn shared_cluster_answers_select_1() {
    let db = cluster().create_database();
    let mut client = db.client();
    let row = client.query_one("select 1", &[]).expect("select 1 runs");
    assert_eq!(row.get::<_, i32>(0), 1);
    assert_eq!(db.query_one_string("select 1"), "1");
    assert_eq!(
        db.query_one_string("select current_setting('server_encoding')"),
        "UTF8"
    );
    assert_eq!(
        db.query_one_string("select current_setting('lc_collate')"),
        "C"
    );
}

#[test]
fn databases_are_distinct_and_dropped() {
    let cluster = cluster();
    let first = cluster.create_database();
    let name = {
        let second = cluster.create_database();
        assert_ne!(first.name, second.name);
        first.psql("create table only_in_first (id int)");
        assert_eq!(
            second.query_one_string(
                "select count(*) from pg_tables where tablename = 'only_in_first'"
            ),
            "0"
        );
        second.name.clone()
    };
    let remaining = first.query_one_string(&format!(
        "select count(*) from pg_database where datname = '{name}'"
    ));
    assert_eq!(remaining, "0", "a dropped TestDb removes its database");
}

#[test]
fn tcp_url_uses_password_auth_and_socket_url_works() {
    let db = cluster().create_database();
    assert_eq!(
        db.url(),
        format!(
            "postgresql://{SUPERUSER}:{SUPERUSER_PASSWORD}@127.0.0.1:{}/{}",
            db.cluster().port,
            db.name
        )
    );
    assert!(db.socket_url().starts_with("postgresql://pgward@%2F"));
    let over_tcp = cluster()
        .try_psql(&db.url(), "select current_user")
        .expect("the TCP URL connects with the password");
    assert_eq!(over_tcp.trim(), SUPERUSER);
    let over_socket = cluster()
        .try_psql(&db.socket_url(), "select current_database()")
        .expect("the socket URL connects");
    assert_eq!(over_socket.trim(), db.name);
    let wrong_password = db.url().replace(SUPERUSER_PASSWORD, "wrong");
    let refused = cluster()
        .try_psql(&wrong_password, "select 1")
        .expect_err("a wrong password is refused over TCP");
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
}

#[test]
fn psql_runs_scripts_and_reports_errors() {
    let db = cluster().create_database();
    let out = db.psql(
        "create table t (id int primary key, name text);\n\
         insert into t values (1, 'a'), (2, 'b');\n\
         select id, name from t order by id;",
    );
    assert_eq!(out, "1|a\n2|b");
    let failure = std::panic::catch_unwind(|| db.psql("select * from missing_table"))
        .expect_err("a failing statement panics");
    let message = failure
        .downcast_ref::<String>()
        .expect("the panic message is a String");
    assert!(message.contains("missing_table"), "{message}");
}

#[test]
fn query_one_string_panics_with_the_server_message() {
    let db = cluster().create_database();
    for (sql, expected) in [
        (
            "select * from missing_table",
            "relation \"missing_table\" does not exist",
        ),
        (
            "select 1 union all select 2",
            "expected exactly one row, got 2",
        ),
        ("select null", "the value is NULL"),
    ] {
        let failure = std::panic::catch_unwind(|| db.query_one_string(sql))
            .expect_err("a query without exactly one value panics");
        let message = failure
            .downcast_ref::<String>()
            .expect("the panic message is a String");
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn pg_dump_schema_shows_tables_without_restrict_keys() {
    let db = cluster().create_database();
    db.psql("create table widgets (id bigint primary key, label text not null)");
    let schema = db.pg_dump_schema();
    assert!(schema.contains("CREATE TABLE public.widgets"), "{schema}");
    assert!(!schema.contains("\\restrict"), "{schema}");
    assert!(!schema.contains("OWNER TO"), "{schema}");
    assert_eq!(schema, db.pg_dump_schema(), "two dumps compare equal");
}

#[test]
fn tls_required_cluster_rejects_plain_tcp_and_verifies_its_ca() {
    let tls = Cluster::start_tls(TlsMode::Required);
    let db = tls.create_database();
    let base = format!(
        "port={} dbname={} user={SUPERUSER} password={SUPERUSER_PASSWORD}",
        tls.port, db.name
    );

    let plain = tls
        .try_psql(
            &format!("host=127.0.0.1 {base} sslmode=disable"),
            "select 1",
        )
        .expect_err("plain TCP is rejected");
    assert!(plain.contains("no encryption"), "{plain}");

    let ca = tls.ca_cert_path().display();
    let verified = tls
        .try_psql(
            &format!("host=localhost {base} sslmode=verify-full sslrootcert={ca}"),
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
        )
        .expect("verify-full with the cluster's CA connects");
    assert_eq!(verified.trim(), "t");

    let other = tls.other_ca_cert_path().display();
    let unverified = tls
        .try_psql(
            &format!("host=localhost {base} sslmode=verify-full sslrootcert={other}"),
            "select 1",
        )
        .expect_err("verify-full with an unrelated CA fails");
    assert!(
        unverified.contains("certificate verify failed"),
        "{unverified}"
    );

    // The certificate names localhost only, so the same CA fails on the host name when
    // the server is reached as 127.0.0.1.
    let wrong_name = tls
        .try_psql(
            &format!("host=127.0.0.1 {base} sslmode=verify-full sslrootcert={ca}"),
            "select 1",
        )
        .expect_err("verify-full to 127.0.0.1 fails: the certificate does not name it");
    assert!(
        wrong_name.contains("does not match host name"),
        "{wrong_name}"
    );
}

#[test]
fn tls_optional_cluster_accepts_both() {
    let tls = Cluster::start_tls(TlsMode::Optional);
    assert_eq!(tls.tls_mode(), Some(TlsMode::Optional));
    let db = tls.create_database();
    let ca = tls.ca_cert_path().display();
    for (sslmode, expected) in [
        ("disable", "f"),
        (&format!("verify-full sslrootcert={ca}"), "t"),
    ] {
        let out = tls
            .try_psql(
                // localhost: the server certificate names that host, not 127.0.0.1.
                &format!(
                    "host=localhost port={} dbname={} user={SUPERUSER} \
                     password={SUPERUSER_PASSWORD} sslmode={sslmode}",
                    tls.port, db.name
                ),
                "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            )
            .unwrap_or_else(|e| panic!("sslmode={sslmode} connects: {e}"));
        assert_eq!(out.trim(), expected, "sslmode={sslmode}");
    }
}

#[test]
fn cluster_without_tls_has_no_ca() {
    let failure = std::panic::catch_unwind(|| cluster().ca_cert_path().to_path_buf())
        .expect_err("ca_cert_path needs a TLS cluster");
    let message = failure
        .downcast_ref::<String>()
        .expect("the panic message is a String");
    assert!(message.contains("Cluster::start_tls"), "{message}");
}

#[test]
fn output_json_accepts_exactly_one_document() {
    let output = |stdout: &str| Output {
        code: 0,
        stdout: stdout.to_string(),
        stderr: "log line".to_string(),
    };
    assert_eq!(output("{\"ok\":true}\n").json(), json!({"ok": true}));
    for bad in ["", "{\"ok\":true}{\"ok\":true}", "progress\n{\"ok\":true}"] {
        let failure = std::panic::catch_unwind(|| output(bad).json())
            .expect_err("stdout that is not exactly one JSON document panics");
        let message = failure
            .downcast_ref::<String>()
            .expect("the panic message is a String");
        assert!(message.contains("log line"), "{message}");
    }
}

#[test]
fn redact_json_hides_volatile_values() {
    let socket = cluster().socket_dir.display().to_string();
    let value = json!({
        "tool": "migrate",
        "version": "0.1.0",
        "started_at": "2026-11-22T03:13:00Z",
        "duration_ms": 412,
        "target": {"host": socket, "port": 5432, "database": "t_1_99", "user": "pgward"},
        "result": {"applied": [{"id": "abc", "finished_at": null}]},
        "error": {"message": format!("could not read {}/x.sql", std::env::temp_dir().join(".tmpAb12").display())},
    });
    assert_eq!(
        redact_json(&value),
        json!({
            "tool": "migrate",
            "version": "[version]",
            "started_at": "[started_at]",
            "duration_ms": "[duration_ms]",
            "target": {"host": "[TEMP]/socket", "port": "[port]", "database": "[database]", "user": "pgward"},
            "result": {"applied": [{"id": "[id]", "finished_at": null}]},
            "error": {"message": "could not read [TEMP]/x.sql"},
        })
    );
    assert_eq!(redact_temp_paths("/var/tmp/keep"), "/var/tmp/keep");
}

#[test]
fn paths_point_into_the_workspace() {
    let root = workspace_root();
    assert!(root.join("Cargo.toml").is_file(), "{}", root.display());
    assert_eq!(fixtures_dir(), root.join("tests").join("fixtures"));
}

/// Whether something accepts TCP connections on `port` of 127.0.0.1.
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn shared_s3_server_answers_with_its_credentials() {
    let server = s3();
    assert_eq!(
        server.endpoint(),
        format!("http://127.0.0.1:{}", server.port())
    );
    let env = server.env();
    let get = |key: &str| {
        env.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("env() has no {key}"))
    };
    assert_eq!(get("AWS_ACCESS_KEY_ID"), server.access_key());
    assert_eq!(get("AWS_SECRET_ACCESS_KEY"), server.secret_key());
    assert_eq!(get("AWS_REGION"), "us-east-1");
    assert_eq!(get("AWS_ENDPOINT_URL"), server.endpoint());
    let first = server.new_bucket();
    let second = server.new_bucket();
    assert_ne!(first, second);
    server.create_bucket(&first); // creating an existing bucket of ours is fine
    assert_eq!(server.keys(&first, ""), Vec::<String>::new());
    assert_eq!(server.open_uploads(&first, ""), Vec::<String>::new());
}

#[test]
fn private_s3_server_stops_restarts_and_is_gone_when_dropped() {
    let mut server = S3Server::start();
    let port = server.port();
    assert_ne!(port, s3().port());
    let bucket = server.new_bucket();
    server.stop();
    assert!(!server.is_running());
    assert!(!listening(port), "a stopped server still listens on {port}");
    server.restart();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    // The data survived the kill: the bucket is still there.
    assert_eq!(server.keys(&bucket, ""), Vec::<String>::new());
    drop(server);
    assert!(!listening(port), "a dropped server still listens on {port}");
}
