//! End-to-end tests of pgward-backup and pgward-restore with backups on S3 (a real
//! S3-compatible server, SeaweedFS, from the harness): a round trip of the rich fixture
//! database, the server dying in the middle of an upload, and a missing bucket and wrong
//! credentials. The local-folder tests live in `backup_restore.rs`.

use std::time::{Duration, Instant};

use pgward_tests::{
    assert_same_state, cluster, env_refs, error_message, json_ids, load_rich_fixture, run, s3,
    spawn, state, wait_child, Output, S3Server,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The environment a run gets: the cluster's client tools (pg_dump, pg_restore) and the
/// S3 server's endpoint, credentials and region.
fn env_for(server: &S3Server) -> Vec<(&'static str, String)> {
    let mut env = server.env();
    env.extend(cluster().pg_tools_env().map(|(k, v)| (k, v.to_string())));
    env
}

/// `env` with `key` set to `value`.
fn with(
    env: &[(&'static str, String)],
    key: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    env.iter()
        .map(|(k, v)| {
            (
                *k,
                if *k == key {
                    value.to_string()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

/// Runs `pgward-<tool> ARGS` with `env`.
fn run_with(tool: &str, args: &[&str], env: &[(&'static str, String)]) -> Output {
    run(tool, args, &env_refs(env))
}

/// `pgward-backup list --from FROM`, which must succeed; returns its `result`.
fn list(from: &str, env: &[(&'static str, String)]) -> Value {
    let out = run_with("backup", &["list", "--from", from], env);
    out.assert_code(0);
    out.json()["result"].clone()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn a_rich_database_round_trips_exactly_through_s3() {
    let server = s3();
    let env = env_for(server);
    let bucket = server.new_bucket();
    let location = format!("s3://{bucket}/nightly/app");
    let source = cluster().create_database();
    load_rich_fixture(&source);
    let before = state(&source);

    let url = source.url();
    let out = run_with(
        "backup",
        &[
            "backup",
            "--to",
            &location,
            "--database-url",
            &url,
            "--chunk-mib",
            "1",
            "--jobs",
            "2",
        ],
        &env,
    );
    out.assert_code(0);
    let result = out.json()["result"].clone();
    let id = result["id"].as_str().expect("an id").to_string();
    assert_eq!(result["location"], location.as_str(), "{out}");

    let keys = server.keys(&bucket, "");
    let prefix = format!("nightly/app/{id}/");
    assert!(
        keys.iter().all(|k| k.starts_with(&prefix)),
        "every object sits under the backup's prefix: {keys:?}"
    );
    for file in ["manifest.json", "schema.dump", "migrations.json"] {
        assert!(
            keys.contains(&format!("{prefix}{file}")),
            "{file} was uploaded: {keys:?}"
        );
    }
    assert!(
        keys.iter().filter(|k| k.contains("/data/")).count() >= 5,
        "the data went up in chunks: {keys:?}"
    );
    assert_eq!(
        server.open_uploads(&bucket, ""),
        Vec::<String>::new(),
        "no multipart upload is left open"
    );
    let listed = list(&location, &env);
    assert_eq!(json_ids(&listed["backups"]), vec![id.clone()], "{listed}");
    assert_eq!(listed["incomplete"], serde_json::json!([]), "{listed}");
    run_with("backup", &["verify", &id, "--from", &location], &env).assert_code(0);
    assert!(
        server
            .keys(&bucket, &prefix)
            .contains(&format!("{prefix}verified.json")),
        "verify records the verification"
    );

    let target = cluster().vacant_database();
    let from = format!("{location}/{id}");
    let out = run_with(
        "restore",
        &[
            "restore",
            "--from",
            &from,
            "--database-url",
            &url,
            "--target-db",
            &target.name,
            "--create",
            "--jobs",
            "2",
        ],
        &env,
    );
    out.assert_code(0);
    assert_eq!(out.json()["result"]["backup"], id.as_str(), "{out}");
    assert_eq!(
        out.json()["result"]["verify_depth"],
        "while_loading",
        "a new target's data objects are checked as they load\n{out}"
    );
    assert_same_state(&before, &state(&target), "restored from S3");

    // Into an existing empty database every object is checked before the load, and
    // verify's record is read from S3: only the checksums. (A backup goes into another
    // database than its own only named by its id; `latest` on S3 is in
    // backup_targeting.rs.)
    let again = cluster().create_database();
    let from = format!("{location}/{id}");
    let out = run_with(
        "restore",
        &[
            "restore",
            "--from",
            &from,
            "--database-url",
            &url,
            "--target-db",
            &again.name,
        ],
        &env,
    );
    out.assert_code(0);
    assert_eq!(
        out.json()["result"]["verify_depth"],
        "checksums",
        "verify had decompressed these very objects\n{out}"
    );

    // An object altered after the verify: restore still refuses it on its checksum, and
    // the next verify removes the record of the earlier one.
    server.put(
        &bucket,
        &format!("{prefix}migrations.json"),
        b"[{}]".to_vec(),
    );
    let untouched = cluster().vacant_database();
    let out = run_with(
        "restore",
        &[
            "restore",
            "--from",
            &format!("{location}/{id}"),
            "--database-url",
            &url,
            "--target-db",
            &untouched.name,
            "--create",
        ],
        &env,
    );
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert!(error_message(&json).contains("migrations.json"), "{out}");
    let out = run_with("backup", &["verify", &id, "--from", &location], &env);
    out.assert_error(5, "BACKUP_CORRUPT");
    assert!(
        !server
            .keys(&bucket, &prefix)
            .contains(&format!("{prefix}verified.json")),
        "the failed verify removed verified.json"
    );
}

#[test]
fn an_s3_server_dying_mid_upload_fails_the_backup_with_a_storage_error_and_leaves_no_backup() {
    let mut server = S3Server::start();
    let env = env_for(&server);
    let bucket = server.new_bucket();
    let location = format!("s3://{bucket}/crash");
    // About 48 MiB of random bytes: far more than one 16 MiB part even compressed.
    let db = cluster().create_database();
    db.psql(
        "CREATE EXTENSION pgcrypto; \
         CREATE TABLE blobs (id integer PRIMARY KEY, payload bytea NOT NULL); \
         INSERT INTO blobs SELECT g, gen_random_bytes(1024) FROM generate_series(1, 48000) AS g;",
    );

    let url = db.url();
    let child = spawn(
        "backup",
        &[
            "backup",
            "--to",
            &location,
            "--database-url",
            &url,
            "--jobs",
            "1",
        ],
        &env_refs(&env),
    );
    // A multipart upload is open: the data is on its way up. Then the server dies.
    let started = Instant::now();
    while server.open_uploads(&bucket, "crash/").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no multipart upload started within 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
    let out = wait_child(child);
    let json = out.assert_error(7, "STORAGE_ERROR");
    assert!(
        error_message(&json).contains(&location),
        "the message names the location\n{out}"
    );
    assert!(
        !out.stdout.contains(server.secret_key()) && !out.stderr.contains(server.secret_key()),
        "the secret key never shows\n{out}"
    );

    server.restart();
    let keys = server.keys(&bucket, "");
    assert!(
        keys.iter().all(|k| !k.ends_with("/manifest.json")),
        "no manifest was written: {keys:?}"
    );
    let listed = list(&location, &env);
    assert_eq!(
        listed["backups"],
        serde_json::json!([]),
        "nothing is listed as a backup\n{listed}"
    );
    // migrations.json went up first, and the run could not clean up after itself.
    assert!(!keys.is_empty(), "the dead run left objects behind");
    assert_eq!(
        json_ids(&listed["incomplete"]).len(),
        1,
        "what the dead run left is listed as incomplete\n{listed}"
    );
    let out = run_with("backup", &["verify", "latest", "--from", &location], &env);
    out.assert_error(2, "BACKUP_NOT_FOUND");

    // prune clears the leftover (objects and open uploads) and the next backup works.
    let out = run_with(
        "backup",
        &[
            "prune",
            "--from",
            &location,
            "--keep-last",
            "1",
            "--leftover-age",
            "0s",
        ],
        &env,
    );
    out.assert_code(0);
    assert_eq!(server.keys(&bucket, ""), Vec::<String>::new(), "{out}");
    assert_eq!(
        server.open_uploads(&bucket, ""),
        Vec::<String>::new(),
        "{out}"
    );
    db.psql("TRUNCATE blobs; INSERT INTO blobs VALUES (1, '\\x00');");
    let out = run_with(
        "backup",
        &["backup", "--to", &location, "--database-url", &url],
        &env,
    );
    out.assert_code(0);
    assert_eq!(json_ids(&list(&location, &env)["backups"]).len(), 1);
}

#[test]
fn a_missing_bucket_and_wrong_credentials_are_storage_errors() {
    let server = s3();
    let env = env_for(server);
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id integer); INSERT INTO t VALUES (1);");
    let url = db.url();
    let missing = format!("pgward-no-such-bucket-{}", std::process::id());
    let location = format!("s3://{missing}/backups");

    let from_latest = format!("{location}/latest");
    for args in [
        vec!["backup", "list", "--from", location.as_str()],
        vec!["backup", "verify", "latest", "--from", location.as_str()],
        vec![
            "backup",
            "backup",
            "--to",
            location.as_str(),
            "--database-url",
            &url,
        ],
        vec![
            "restore",
            "restore",
            "--from",
            from_latest.as_str(),
            "--database-url",
            &url,
            "--clean",
        ],
    ] {
        let out = run_with(args[0], &args[1..], &env);
        let json = out.assert_error(7, "BUCKET_NOT_FOUND");
        assert!(
            error_message(&json).contains(&missing),
            "the message names the bucket: {args:?}\n{out}"
        );
    }
    assert_eq!(db.query_one_string("SELECT count(*) FROM t"), "1");

    let bucket = server.new_bucket();
    let location = format!("s3://{bucket}/backups");
    for (key, value) in [
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ("AWS_ACCESS_KEY_ID", "NOSUCHACCESSKEY"),
    ] {
        let wrong = with(&env, key, value);
        for args in [
            vec!["list", "--from", location.as_str()],
            vec!["backup", "--to", location.as_str(), "--database-url", &url],
        ] {
            let out = run_with("backup", &args, &wrong);
            let json = out.assert_error(7, "S3_ACCESS_DENIED");
            assert!(
                json["error"]["hint"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("AWS_SECRET_ACCESS_KEY"),
                "the hint says what to check: {key}, {args:?}\n{out}"
            );
            let secret = if key == "AWS_SECRET_ACCESS_KEY" {
                value
            } else {
                server.secret_key()
            };
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "the secret key never shows\n{out}"
            );
        }
    }
    assert_eq!(
        server.keys(&bucket, ""),
        Vec::<String>::new(),
        "nothing was written with wrong credentials"
    );
}
