//! Hostile backups: manifests whose id or file paths point outside their backup, a
//! manifest moved into another backup's folder or altered after `verify`, column names
//! that carry SQL, and SQL-format backups that carry psql meta-commands. A manifest is
//! data, never an address: each is refused (listed as damaged, never pruned, never
//! verified, never restored) and nothing outside the backup is read, written or deleted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgward_tests::{
    cluster, env_refs, error_message, json_ids, path_str, restore_into_new_database_with, run, s3,
    temp_dir, Output, TestDb,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn env() -> Vec<(&'static str, String)> {
    cluster()
        .pg_tools_env()
        .map(|(k, v)| (k, v.to_string()))
        .to_vec()
}

fn run_env(tool: &str, args: &[&str], env: &[(&'static str, String)]) -> Output {
    run(tool, args, &env_refs(env))
}

fn backup(db: &TestDb, to: &str, env: &[(&'static str, String)], extra: &[&str]) -> String {
    let url = db.url();
    let mut args = vec!["backup", "--to", to, "--database-url", &url];
    args.extend_from_slice(extra);
    let out = run_env("backup", &args, env);
    out.assert_code(0);
    out.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string()
}

fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("JSON")
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).expect("JSON")).expect("write");
}

/// A database with a table, and a local location with one backup of it.
fn source() -> TestDb<'static> {
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int, note text); INSERT INTO t VALUES (1, 'one'), (2, 'two');");
    db
}

/// `pgward-restore restore --from FROM` of `db`'s backup into a new database beside it
/// (returned, so that it is dropped only when the caller is done looking).
fn restore_new(
    db: &TestDb,
    from: &str,
    env: &[(&'static str, String)],
) -> (Output, TestDb<'static>) {
    let target = cluster().vacant_database();
    let out = restore_into_new_database_with(db, from, &target, &[], &env_refs(env));
    (out, target)
}

/// `prune --keep-last 0`, which would delete every backup it counts as one: it must
/// delete none.
fn prune_deletes_nothing(location: &str, env: &[(&'static str, String)]) -> Output {
    let out = run_env(
        "backup",
        &["prune", "--from", location, "--keep-last", "0"],
        env,
    );
    out.assert_code(0);
    assert_eq!(
        json_ids(&out.json()["result"]["deleted"]),
        Vec::<String>::new(),
        "{out}"
    );
    out
}

/// Asserts `id` is listed as damaged and neither verifies nor restores.
fn assert_refused(location: &str, id: &str, env: &[(&'static str, String)], db: &TestDb) {
    let out = run_env("backup", &["list", "--from", location], env);
    out.assert_code(0);
    let damaged = json_ids(&out.json()["result"]["damaged"]);
    assert!(
        damaged.contains(&id.to_string()),
        "{id} is listed as damaged: {out}"
    );
    assert!(
        !json_ids(&out.json()["result"]["backups"]).contains(&id.to_string()),
        "{out}"
    );
    let out = run_env("backup", &["verify", id, "--from", location], env);
    out.assert_error(5, "BACKUP_CORRUPT");
    let (out, _) = restore_new(db, &format!("{location}/{id}"), env);
    out.assert_error(5, "BACKUP_CORRUPT");
}

/// A manifest whose id leaves the location (`../victim`, an absolute path): prune,
/// pre-fix, deleted that folder. Now the backup is damaged: listed, never pruned.
#[test]
fn a_manifest_id_outside_the_location_is_never_deleted() {
    let base = temp_dir("pgward-adversarial");
    let root = base.path().join("backups");
    let victim = base.path().join("victim");
    let absolute = base.path().join("absolute-victim");
    for dir in [&victim, &absolute] {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("precious.txt"), "keep me").expect("write");
    }
    let db = source();
    let env = env();
    let location = path_str(&root).to_string();
    let relative = backup(&db, &location, &env, &[]);
    next_second();
    let abs = backup(&db, &location, &env, &[]);
    for (id, crafted) in [
        (&relative, "../victim".to_string()),
        (&abs, path_str(&absolute).to_string()),
    ] {
        let path = root.join(id).join("manifest.json");
        let mut manifest = read_json(&path);
        manifest["id"] = Value::String(crafted);
        write_json(&path, &manifest);
    }
    let out = prune_deletes_nothing(&location, &env);
    for dir in [&victim, &absolute] {
        assert!(
            dir.join("precious.txt").is_file(),
            "{} survives prune: {out}",
            dir.display()
        );
    }
    for id in [&relative, &abs] {
        assert!(
            root.join(id).is_dir(),
            "the damaged backup is kept for someone to look at"
        );
        assert_refused(&location, id, &env, &db);
    }
    let listed = run_env("backup", &["list", "--from", &location], &env);
    assert!(
        listed.stdout.contains("is not the name of the folder"),
        "{listed}"
    );
}

/// The same on S3: a manifest naming `../victim` never deletes the objects beside the
/// location's prefix.
#[test]
fn an_s3_manifest_id_outside_the_prefix_is_never_deleted() {
    let server = s3();
    let bucket = server.new_bucket();
    let mut env = env();
    env.extend(server.env());
    server.put(&bucket, "victim/precious.txt", b"keep me".to_vec());
    let location = format!("s3://{bucket}/backups");
    let db = source();
    let id = backup(&db, &location, &env, &[]);
    let key = format!("backups/{id}/manifest.json");
    let mut manifest: Value = serde_json::from_slice(&server.get(&bucket, &key)).expect("JSON");
    manifest["id"] = Value::String("../victim".into());
    server.put(&bucket, &key, serde_json::to_vec(&manifest).expect("JSON"));
    let out = prune_deletes_nothing(&location, &env);
    assert!(
        server
            .keys(&bucket, "victim/")
            .contains(&"victim/precious.txt".to_string()),
        "the objects beside the location survive prune: {out}"
    );
    assert_refused(&location, &id, &env, &db);
}

/// One backup's manifest put into another's folder (or prefix): verify used to check the
/// files the manifest's id named, and restore to load them, whatever folder it was read
/// from. Now the id must be the folder's name.
#[test]
fn a_manifest_moved_into_another_backup_is_refused() {
    let db = source();
    let env_local = env();
    let dir = temp_dir("pgward-adversarial");
    let local = path_str(dir.path()).to_string();
    let server = s3();
    let bucket = server.new_bucket();
    let mut env_s3 = env();
    env_s3.extend(server.env());
    let remote = format!("s3://{bucket}/moved");
    for (location, env) in [(&local, &env_local), (&remote, &env_s3)] {
        let a = backup(&db, location, env, &[]);
        next_second();
        let b = backup(&db, location, env, &[]);
        match location.strip_prefix("s3://") {
            None => std::fs::copy(
                dir.path().join(&a).join("manifest.json"),
                dir.path().join(&b).join("manifest.json"),
            )
            .map(|_| ())
            .expect("copy the manifest"),
            Some(_) => {
                let bytes = server.get(&bucket, &format!("moved/{a}/manifest.json"));
                server.put(&bucket, &format!("moved/{b}/manifest.json"), bytes);
            }
        }
        assert_refused(location, &b, env, &db);
    }
}

/// A manifest of a newer format than this pgward reads (as a version-1 reader would have
/// read a backup with large objects, restoring it without them): listed as damaged, never
/// verified or restored, with the reason.
#[test]
fn a_manifest_from_a_newer_pgward_is_refused() {
    let db = source();
    let env = env();
    let dir = temp_dir("pgward-adversarial");
    let location = path_str(dir.path()).to_string();
    let id = backup(&db, &location, &env, &[]);
    let path = dir.path().join(&id).join("manifest.json");
    let mut manifest = read_json(&path);
    manifest["format_version"] = Value::from(99);
    write_json(&path, &manifest);
    assert_refused(&location, &id, &env, &db);
    let out = run_env("backup", &["verify", &id, "--from", &location], &env);
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert!(
        error_message(&json).contains("newer pgward"),
        "the refusal says why: {out}"
    );
}

/// A file path that leaves the backup (`../OTHER/schema.dump`, with that file's checksum):
/// verify used to pass by reading another backup's file.
#[test]
fn a_file_path_outside_the_backup_is_refused() {
    let db = source();
    let env = env();
    let dir = temp_dir("pgward-adversarial");
    let location = path_str(dir.path()).to_string();
    let a = backup(&db, &location, &env, &[]);
    next_second();
    let b = backup(&db, &location, &env, &[]);
    let path = dir.path().join(&b).join("manifest.json");
    let mut manifest = read_json(&path);
    let borrowed = std::fs::read(dir.path().join(&a).join("schema.dump")).expect("read");
    for file in manifest["files"].as_array_mut().expect("files") {
        if file["path"] == "schema.dump" {
            file["path"] = Value::String(format!("../{a}/schema.dump"));
            file["size"] = Value::from(borrowed.len());
            file["sha256"] = Value::String(sha256_hex(&borrowed));
        }
    }
    write_json(&path, &manifest);
    assert_refused(&location, &b, &env, &db);
    for bad in ["/etc/passwd", "data/../../x", "data//x"] {
        manifest["files"][0]["path"] = Value::String(bad.into());
        write_json(&path, &manifest);
        let out = run_env("backup", &["verify", &b, "--from", &location], &env);
        let json = out.assert_error(5, "BACKUP_CORRUPT");
        assert!(
            error_message(&json).contains("not a backup file path"),
            "{bad}: {out}"
        );
    }
}

/// A manifest altered after `verify` recorded its SHA-256 in verified.json is refused.
#[test]
fn a_manifest_altered_after_verify_is_refused() {
    let db = source();
    let env = env();
    let dir = temp_dir("pgward-adversarial");
    let location = path_str(dir.path()).to_string();
    let id = backup(&db, &location, &env, &[]);
    run_env("backup", &["verify", &id, "--from", &location], &env).assert_code(0);
    let path = dir.path().join(&id).join("manifest.json");
    let mut manifest = read_json(&path);
    manifest["tables"][0]["rows"] = Value::from(1);
    write_json(&path, &manifest);
    assert_refused(&location, &id, &env, &db);
    let out = run_env("backup", &["verify", &id, "--from", &location], &env);
    assert!(out.stdout.contains("altered after verification"), "{out}");
}

/// Column names carrying SQL (`id) TO PROGRAM '...' --`) used to be spliced into restore's
/// COPY; the server ran the program. Now they are refused before anything is touched.
#[test]
fn column_names_in_a_manifest_cannot_inject_sql() {
    let db = source();
    let env = env();
    let dir = temp_dir("pgward-adversarial");
    let location = path_str(dir.path()).to_string();
    let id = backup(&db, &location, &env, &[]);
    let marker = proof_file("column");
    let path = dir.path().join(&id).join("manifest.json");
    let mut manifest = read_json(&path);
    manifest["tables"][0]["columns"][0] =
        Value::String(format!("id) TO PROGRAM 'touch {}' --", marker.display()));
    write_json(&path, &manifest);
    assert_refused(&location, &id, &env, &db);
    assert!(!marker.exists(), "the server never ran the program");
}

/// A path in /tmp the server (and this test) can write, not there yet.
fn proof_file(what: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "pgward-adversarial-{what}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// A `--backup-format sql` backup rewritten with `line` inserted before its first CREATE,
/// its manifest updated to match (as someone who can write the location would).
fn crafted_sql_backup(db: &TestDb, location: &Path, line: &str) -> String {
    crafted_sql_backup_at(db, location, line, "CREATE TABLE")
}

/// [`crafted_sql_backup`] with `line` inserted before the last occurrence of `before`.
fn crafted_sql_backup_at(db: &TestDb, location: &Path, line: &str, before: &str) -> String {
    let env = env();
    let id = backup(db, path_str(location), &env, &["--backup-format", "sql"]);
    let file = location.join(&id).join("backup.sql.zst");
    let sql = String::from_utf8(
        zstd::decode_all(&std::fs::read(&file).expect("read")[..]).expect("zstd"),
    )
    .expect("UTF-8");
    let at = sql.rfind(before).expect("the text to insert before");
    let crafted = format!("{}{line}\n{}", &sql[..at], &sql[at..]);
    let bytes = zstd::encode_all(crafted.as_bytes(), 3).expect("zstd");
    std::fs::write(&file, &bytes).expect("write");
    let path = location.join(&id).join("manifest.json");
    let mut manifest = read_json(&path);
    for f in manifest["files"].as_array_mut().expect("files") {
        if f["path"] == "backup.sql.zst" {
            f["size"] = Value::from(bytes.len());
            f["sha256"] = Value::String(sha256_hex(&bytes));
        }
    }
    write_json(&path, &manifest);
    id
}

/// psql obeyed `\!` in a SQL backup. A line beginning with a meta-command makes the file
/// bad when it is checked before anything is touched (restore, verify); a backup whose
/// verified.json lets restore skip that scan (as an older pgward's verify wrote it) is
/// stopped by the same check as the lines stream into psql; one later in a line is refused
/// by psql's restricted mode. Either way the command never runs and the target is never
/// created.
#[test]
fn a_sql_backup_cannot_run_shell_commands() {
    let db = source();
    let env = env();
    let dir = temp_dir("pgward-adversarial");
    let location = path_str(dir.path()).to_string();
    let cases = [
        ("sql-line", "\\! touch", false, 5, "BACKUP_CORRUPT"),
        (
            "sql-line-verified",
            "\\! touch",
            true,
            5,
            "UNSAFE_SQL_BACKUP",
        ),
        (
            "sql-inline",
            "SELECT 1; \\! touch",
            false,
            1,
            "PG_DUMP_FAILED",
        ),
    ];
    for (what, command, verified, code, error) in cases {
        let marker = proof_file(what);
        let line = format!("{command} {}", marker.display());
        let id = crafted_sql_backup(&db, dir.path(), &line);
        next_second();
        if verified {
            let manifest = std::fs::read(dir.path().join(&id).join("manifest.json")).expect("read");
            let record = serde_json::json!({
                "verified_at": "2026-01-01T00:00:00Z", "deep": false, "tool_version": "0.1.0",
                "manifest_sha256": sha256_hex(&manifest),
            });
            write_json(&dir.path().join(&id).join("verified.json"), &record);
        } else if code == 5 {
            let out = run_env("backup", &["verify", &id, "--from", &location], &env);
            let json = out.assert_error(5, "BACKUP_CORRUPT");
            assert!(
                error_message(&json).contains("meta-command"),
                "{what}: {out}"
            );
        }
        let (out, target) = restore_new(&db, &format!("{location}/{id}"), &env);
        out.assert_error(code, error);
        assert!(!marker.exists(), "{what}: `{line}` never ran: {out}");
        let exists = cluster()
            .client("postgres")
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&target.name],
            )
            .expect("pg_database")
            .get::<_, i64>(0);
        assert_eq!(exists, 0, "{what}: the target was never created: {out}");
    }
}

/// A meta-command after the schema and data: the load stops there, and nothing psql had
/// already run is committed. The target, an existing empty database loaded in place, is
/// still empty afterwards (its verified.json forged so that only the load-time check
/// stands).
#[test]
fn a_sql_backup_stopped_late_commits_nothing() {
    let db = source();
    let (out, target) = restore_stopped_late(&db, "sql-late");
    assert_eq!(
        target.query_one_string(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        ),
        "0",
        "the tables psql had created were rolled back: {out}"
    );
}

/// pg_dump's plain output wraps large-object data in its own BEGIN/COMMIT. Inside psql's
/// one transaction that COMMIT would commit every table loaded before it, so a load that
/// failed after the large objects (here on an SQL error near the end) left a
/// half-restored database. The restore drops those two lines: nothing is committed.
#[test]
fn a_sql_backup_with_large_objects_stopped_late_commits_nothing() {
    let db = source();
    db.psql("SELECT lo_from_bytea(0, 'large object'::bytea);");
    let env = env();
    let dir = temp_dir("pgward-adversarial");
    // An error psql itself reaches near the end, after the large objects' COMMIT.
    let id = crafted_sql_backup_at(&db, dir.path(), "SELECT 1/0;", "\\unrestrict");
    let target = cluster().create_database();
    let url = db.url();
    let from = format!("{}/{id}", path_str(dir.path()));
    let out = run_env(
        "restore",
        &[
            "restore",
            "--from",
            &from,
            "--database-url",
            &url,
            "--target-db",
            &target.name,
        ],
        &env,
    );
    assert_eq!(out.code, 1, "psql's error fails the restore: {out}");
    assert!(
        error_message(&out.json()).contains("division by zero"),
        "{out}"
    );
    assert_eq!(
        target.query_one_string(
            "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace) \
                    + (SELECT count(*) FROM pg_largeobject_metadata)"
        ),
        "0",
        "neither the tables nor the large object psql had loaded were committed: {out}"
    );
}

/// Restores a sql-format backup of `db` with a `\!` line near its end, found only as the
/// file streams (a verify is recorded, so no check reads the file first): the restore is
/// refused there (`UNSAFE_SQL_BACKUP`) and the command never runs. Returns the output and
/// the target, for the caller to check that nothing was committed.
fn restore_stopped_late(db: &TestDb, what: &str) -> (Output, TestDb<'static>) {
    let env = env();
    let dir = temp_dir("pgward-adversarial");
    let marker = proof_file(what);
    let line = format!("\\! touch {}", marker.display());
    let id = crafted_sql_backup_at(db, dir.path(), &line, "\\unrestrict");
    let manifest = std::fs::read(dir.path().join(&id).join("manifest.json")).expect("read");
    write_json(
        &dir.path().join(&id).join("verified.json"),
        &serde_json::json!({
            "verified_at": "2026-01-01T00:00:00Z", "deep": false, "tool_version": "0.1.0",
            "manifest_sha256": sha256_hex(&manifest),
        }),
    );
    let target = cluster().create_database();
    let url = db.url();
    let from = format!("{}/{id}", path_str(dir.path()));
    let out = run_env(
        "restore",
        &[
            "restore",
            "--from",
            &from,
            "--database-url",
            &url,
            "--target-db",
            &target.name,
        ],
        &env,
    );
    out.assert_error(5, "UNSAFE_SQL_BACKUP");
    assert!(!marker.exists(), "the command never ran: {out}");
    (out, target)
}

/// A leftover whose name is no backup id (`.partial-..`: "the leftover `..`") used to make
/// prune delete the location's parent folder. Such a name is never acted on, and does not
/// stop prune from removing the real leftovers beside it.
#[test]
fn a_leftover_named_dot_dot_never_deletes_the_parent() {
    let base = temp_dir("pgward-adversarial");
    let root = base.path().join("backups");
    let precious = base.path().join("precious.txt");
    std::fs::write(&precious, "keep me").expect("write");
    std::fs::create_dir_all(root.join(".partial-..")).expect("mkdir");
    let real = root.join(".partial-app-default-20260101T000000Z");
    std::fs::create_dir_all(&real).expect("mkdir");
    let env = env();
    let location = path_str(&root).to_string();
    let out = run_env(
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
    assert!(
        precious.is_file(),
        "the parent folder survives prune: {out}"
    );
    assert!(root.join(".partial-..").is_dir(), "{out}");
    assert_eq!(
        json_ids(&out.json()["result"]["leftovers_deleted"]),
        vec!["app-default-20260101T000000Z".to_string()],
        "{out}"
    );
    assert!(!real.exists(), "{out}");
}
