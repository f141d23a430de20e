//! End-to-end tests of pgward-backup and pgward-restore with local backup folders: round
//! trips of a database that uses every common type and kind of object (directory and sql
//! formats), a backup taken while money moves between accounts, corrupt and incomplete
//! backups, backups killed with SIGKILL, the restore guards, bad input, `verify --deep`,
//! `prune`, `--before-migration`, `--tables` and file permissions.
//!
//! Every test runs the real binaries against fresh databases of the shared cluster and
//! checks the exit code, the JSON envelope and what the databases and folders really hold
//! afterwards. The S3 variants live in `backup_s3.rs`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgward_tests::{
    assert_same_state, cluster, error_message, json_ids, load_rich_fixture, next_second, path_str,
    restore_after_a_killed_run, restore_into_new_database, run, run_in, spawn, state, temp_dir,
    wait_child, wait_until, Migrations, Output, TestDb,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The application_name of pgward-backup's sessions.
const BACKUP_APP: &str = "pgward-backup";

/// `pgward-backup backup --to TO --database-url URL EXTRA...`
fn backup(db: &TestDb, to: &str, extra: &[&str]) -> Output {
    let url = db.url();
    let mut args = vec!["backup", "--to", to, "--database-url", &url];
    args.extend_from_slice(extra);
    run("backup", &args, &cluster().pg_tools_env())
}

/// Takes a backup that must succeed; returns its `result`.
fn backup_ok(db: &TestDb, to: &str, extra: &[&str]) -> Value {
    let out = backup(db, to, extra);
    out.assert_code(0);
    let json = out.json();
    assert_eq!(json["ok"], true, "{out}");
    let result = json["result"].clone();
    assert!(result["id"].is_string(), "the backup has an id\n{out}");
    result
}

/// The id in a backup `result`.
fn id_of(result: &Value) -> String {
    result["id"].as_str().expect("an id").to_string()
}

/// `pgward-backup list --from FROM`, which must succeed; returns its `result`.
fn list(from: &str) -> Value {
    let out = run(
        "backup",
        &["list", "--from", from],
        &cluster().pg_tools_env(),
    );
    out.assert_code(0);
    out.json()["result"].clone()
}

/// The ids `list` shows as complete backups, newest first.
fn listed_ids(from: &str) -> Vec<String> {
    json_ids(&list(from)["backups"])
}

/// `pgward-backup verify ID --from FROM EXTRA...` (with a database URL for `--deep`).
fn verify(db: Option<&TestDb>, from: &str, id: &str, extra: &[&str]) -> Output {
    let url = db.map(TestDb::url);
    let mut args = vec!["verify", id, "--from", from];
    if let Some(url) = &url {
        args.extend(["--database-url", url.as_str()]);
    }
    args.extend_from_slice(extra);
    run("backup", &args, &cluster().pg_tools_env())
}

/// `pgward-restore restore --from FROM --database-url URL EXTRA...` with `db`'s URL.
fn restore(db: &TestDb, from: &str, extra: &[&str]) -> Output {
    restore_as(&db.url(), from, extra)
}

/// `pgward-restore restore --from FROM --database-url URL EXTRA...`
fn restore_as(url: &str, from: &str, extra: &[&str]) -> Output {
    run(
        "restore",
        &restore_args(url, from, extra),
        &cluster().pg_tools_env(),
    )
}

/// The arguments of `pgward-restore restore --from FROM --database-url URL EXTRA...`.
fn restore_args<'a>(url: &'a str, from: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["restore", "--from", from, "--database-url", url];
    args.extend_from_slice(extra);
    args
}

/// Restores `from` into the database `into` (which must not exist yet) with `--target-db
/// NAME --create`, connecting through `via`; asserts success and returns the `result`.
fn restore_into_new(via: &TestDb, from: &str, into: &TestDb, extra: &[&str]) -> Value {
    let out = restore_into_new_database(via, from, into, extra);
    out.assert_code(0);
    let json = out.json();
    assert_eq!(json["ok"], true, "{out}");
    assert_eq!(json["result"]["created"], true, "{out}");
    json["result"].clone()
}

/// The names in folder `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("a folder entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Every file and folder under `root` (itself excluded), recursively.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).expect("the folder is readable") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out.sort();
    out
}

/// Copies the folder `from` to `to` (which must not exist).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("the copy's folder can be created");
    for entry in std::fs::read_dir(from).expect("the folder is readable") {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("the file can be copied");
        }
    }
}

/// The JSON of a backup's manifest.json.
fn manifest(root: &Path, id: &str) -> Value {
    let path = root.join(id).join("manifest.json");
    serde_json::from_slice(&std::fs::read(&path).expect("manifest.json is readable"))
        .expect("manifest.json is JSON")
}

/// `SELECT count(*) ...` as a number.
fn count(db: &TestDb, sql: &str) -> i64 {
    db.query_one_string(sql).parse().expect("a count")
}

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

#[test]
fn a_rich_database_round_trips_exactly_through_a_chunked_parallel_backup() {
    let source = cluster().create_database();
    load_rich_fixture(&source);
    let before = state(&source);
    let root = temp_dir("backup_rich_");

    let result = backup_ok(
        &source,
        path_str(root.path()),
        &["--chunk-mib", "1", "--jobs", "2", "--label", "round trip"],
    );
    let id = id_of(&result);
    let tables = result["tables"].as_array().expect("result.tables");
    let chunks_of = |name: &str| {
        tables
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("{name} is in result.tables: {result}"))["chunks"]
            .as_u64()
            .expect("chunks is a number")
    };
    assert!(
        chunks_of("public.measurements") >= 3,
        "a table of several MiB is split into chunks with --chunk-mib 1: {result}"
    );
    assert_eq!(chunks_of("public.empty_table"), 1, "{result}");
    for partition in [
        "public.events_2023",
        "public.events_2024",
        "public.events_other",
    ] {
        chunks_of(partition);
    }
    assert!(
        tables.iter().all(|t| t["table"] != "public.events"),
        "a partitioned parent holds no rows of its own; its partitions are backed up: {result}"
    );
    let manifest = manifest(root.path(), &id);
    let copy_format_of = |name: &str| {
        manifest["tables"]
            .as_array()
            .expect("manifest.tables")
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} is in the manifest"))["copy_format"]
            .clone()
    };
    // Built-in types only: binary; an enum, a domain or a composite column: text.
    assert_eq!(copy_format_of("builtin_only"), "binary");
    assert_eq!(copy_format_of("measurements"), "binary");
    assert_eq!(copy_format_of("everything"), "text");
    let listed = list(path_str(root.path()));
    assert_eq!(json_ids(&listed["backups"]), vec![id.clone()], "{listed}");
    assert_eq!(listed["backups"][0]["label"], "round trip", "{listed}");
    assert_eq!(listed["incomplete"], serde_json::json!([]), "{listed}");

    let target = cluster().vacant_database();
    let from = format!("{}/{id}", path_str(root.path()));
    let restored = restore_into_new(&source, &from, &target, &["--jobs", "2"]);
    assert_eq!(restored["backup"], id.as_str(), "{restored}");
    let loaded = restored["load"]["tables"]
        .as_array()
        .expect("result.load.tables");
    for t in loaded {
        assert_eq!(t["rows"], t["expected_rows"], "{restored}");
    }
    let measurements = loaded
        .iter()
        .find(|t| t["table"] == "public.measurements")
        .expect("measurements was loaded");
    assert_eq!(measurements["rows"], 60000, "{restored}");
    // Whether the tail overlapped post-data depends on timing; the state check below
    // holds either way (an index built twice or never would fail it).
    assert!(
        restored["load"]["post_data_early_items"].is_u64(),
        "{restored}"
    );

    assert_same_state(&before, &state(&target), "restored from the backup");
    assert_eq!(
        state(&source),
        before,
        "taking the backup changed the source database"
    );
    // Triggers came after the data: the audit log was not written a second time.
    assert_eq!(count(&target, "SELECT count(*) FROM audit_log"), 7);
    // A restored sequence goes on where the source's was.
    assert_eq!(
        target.query_one_string("SELECT nextval('invoice_numbers')"),
        source.query_one_string("SELECT nextval('invoice_numbers')")
    );
}

#[test]
fn a_sql_format_backup_restores_with_zstd_and_psql_alone() {
    let source = cluster().create_database();
    load_rich_fixture(&source);
    let before = state(&source);
    let root = temp_dir("backup_sql_");

    let result = backup_ok(&source, path_str(root.path()), &["--backup-format", "sql"]);
    let id = id_of(&result);
    assert_eq!(result["format"], "sql", "{result}");
    let folder = root.path().join(&id);
    assert_eq!(
        entries(&folder),
        vec!["backup.sql.zst", "manifest.json", "migrations.json"],
        "a sql backup is one .sql.zst beside the manifest and the migrations"
    );
    verify(None, path_str(root.path()), &id, &[]).assert_code(0);

    // As docs/contract.md §3 promises: `zstd -dc FILE | psql`, without pgward.
    let target = cluster().create_database();
    target.load_zstd_sql(&folder.join("backup.sql.zst"));
    assert_same_state(
        &before,
        &state(&target),
        "zstd -dc | psql of the sql backup",
    );

    // pgward-restore reads the same file.
    let other = cluster().vacant_database();
    restore_into_new(
        &source,
        &format!("{}/{id}", path_str(root.path())),
        &other,
        &[],
    );
    assert_same_state(&before, &state(&other), "pgward-restore of the sql backup");
}

// ---------------------------------------------------------------------------------------
// Consistency
// ---------------------------------------------------------------------------------------

/// Accounts in the consistency test, and the balance each starts with.
const ACCOUNTS: i64 = 200_000;
const START_BALANCE: i64 = 1000;

#[test]
fn a_backup_sees_one_consistent_state_while_money_moves() {
    let db = cluster().create_database();
    db.psql(&format!(
        "CREATE TABLE accounts (id integer PRIMARY KEY, balance bigint NOT NULL, owner text NOT NULL); \
         INSERT INTO accounts SELECT g, {START_BALANCE}, md5(g::text) || md5((-g)::text) || md5((g * 7)::text) \
           FROM generate_series(1, {ACCOUNTS}) AS g; \
         CREATE TABLE transfers (id bigserial PRIMARY KEY, from_id integer NOT NULL, to_id integer NOT NULL, amount bigint NOT NULL); \
         VACUUM ANALYZE accounts;"
    ));
    let total = ACCOUNTS * START_BALANCE;

    // One writer moving money in many short transactions, each logging its transfer.
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, committed) = (stop.clone(), committed.clone());
        let mut client = db.client();
        std::thread::spawn(move || {
            let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
            let mut next = move |n: i64| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                1 + (seed % n as u64) as i64
            };
            while !stop.load(Ordering::Relaxed) {
                let (from, to, amount) = (next(ACCOUNTS), next(ACCOUNTS), next(500));
                client
                    .batch_execute(&format!(
                        "BEGIN; \
                         UPDATE accounts SET balance = balance - {amount} WHERE id = {from}; \
                         UPDATE accounts SET balance = balance + {amount} WHERE id = {to}; \
                         INSERT INTO transfers (from_id, to_id, amount) VALUES ({from}, {to}, {amount}); \
                         COMMIT"
                    ))
                    .expect("a transfer commits");
                committed.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    wait_until(Duration::from_secs(30), "the writer moved money", || {
        committed.load(Ordering::Relaxed) >= 50
    });

    let root = temp_dir("backup_consistency_");
    let before = count(&db, "SELECT count(*) FROM transfers");
    let started = Instant::now();
    let result = backup_ok(
        &db,
        path_str(root.path()),
        &["--jobs", "2", "--chunk-mib", "1"],
    );
    let took = started.elapsed();
    let after = count(&db, "SELECT count(*) FROM transfers");
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("the writer thread does not panic");
    assert!(
        after > before,
        "the writer kept committing while the backup ran ({before} transfers before, {after} \
         after, backup took {took:?})"
    );
    let chunks = result["tables"]
        .as_array()
        .expect("result.tables")
        .iter()
        .find(|t| t["table"] == "public.accounts")
        .expect("accounts was backed up")["chunks"]
        .as_u64()
        .expect("chunks");
    assert!(
        chunks >= 4,
        "accounts is read in several chunks by two workers: {result}"
    );

    let target = cluster().vacant_database();
    restore_into_new(
        &db,
        &format!("{}/{}", path_str(root.path()), id_of(&result)),
        &target,
        &[],
    );
    assert_eq!(
        count(&target, "SELECT count(*) FROM accounts"),
        ACCOUNTS,
        "every account was restored"
    );
    assert_eq!(
        count(&target, "SELECT sum(balance) FROM accounts"),
        total,
        "money was created or destroyed: the restored accounts mix several moments"
    );
    let transfers = count(&target, "SELECT count(*) FROM transfers");
    assert!(
        (before..=after).contains(&transfers),
        "the restored transfer log ({transfers}) is from a moment during the backup \
         ({before}..={after})"
    );
    // Every balance is exactly the start plus the restored transfers: accounts and
    // transfers come from one snapshot.
    let inconsistent = count(
        &target,
        &format!(
            "WITH moved AS ( \
                 SELECT id, sum(delta) AS delta FROM ( \
                     SELECT from_id AS id, -amount AS delta FROM transfers \
                     UNION ALL SELECT to_id, amount FROM transfers) m GROUP BY id) \
             SELECT count(*) FROM accounts a LEFT JOIN moved USING (id) \
             WHERE a.balance <> {START_BALANCE} + coalesce(moved.delta, 0)"
        ),
    );
    assert_eq!(
        inconsistent, 0,
        "restored balances disagree with the restored transfer log"
    );
}

// ---------------------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------------------

/// How a file of a copy of a good backup is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    /// One bit of the byte in the middle flipped.
    FlipBit,
    /// Cut to half its size.
    Truncate,
    /// Deleted.
    Remove,
    /// Replaced by the start of a JSON document.
    Garbage,
    /// A zstd skippable frame appended: it still decompresses to the very same rows, but
    /// its bytes are not the ones the manifest recorded.
    SkippableFrame,
}

impl Damage {
    /// Does this damage to the file at `path`.
    fn apply(self, path: &Path) {
        match self {
            Damage::FlipBit => {
                let mut bytes = std::fs::read(path).expect("the file is readable");
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x01;
                std::fs::write(path, bytes).expect("the file is writable");
            }
            Damage::Truncate => {
                let len = std::fs::metadata(path).expect("the file exists").len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(len / 2))
                    .expect("the file can be truncated");
            }
            Damage::Remove => std::fs::remove_file(path).expect("the file can be removed"),
            Damage::Garbage => {
                std::fs::write(path, b"{\"format_version\": 1, ").expect("the file is writable")
            }
            Damage::SkippableFrame => {
                // Magic 0x184D2A50 and a 4-byte length, both little-endian, then the bytes.
                let mut bytes = std::fs::read(path).expect("the file is readable");
                bytes.extend_from_slice(&[0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0]);
                bytes.extend_from_slice(b"pgwd");
                std::fs::write(path, bytes).expect("the file is writable");
            }
        }
    }
}

#[test]
fn a_damaged_or_incomplete_backup_fails_verify_and_restore_and_leaves_the_target_alone() {
    let source = cluster().create_database();
    let migrations = Migrations::new(&[(
        "20240101000000_init",
        "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, body text);",
    )]);
    source.deploy(migrations.path());
    source.psql(
        "INSERT INTO items SELECT g, 'item ' || g, md5(g::text) || md5((g + 1)::text) \
         FROM generate_series(1, 30000) AS g;",
    );
    let pristine = temp_dir("backup_corrupt_");
    let result = backup_ok(&source, path_str(pristine.path()), &["--chunk-mib", "1"]);
    let id = id_of(&result);
    let files: Vec<String> = manifest(pristine.path(), &id)["files"]
        .as_array()
        .expect("manifest.files")
        .iter()
        .map(|f| f["path"].as_str().expect("a path").to_string())
        .collect();
    let chunks: Vec<&String> = files.iter().filter(|f| f.starts_with("data/")).collect();
    assert!(chunks.len() >= 2, "items is cut into chunks: {files:?}");
    let first_chunk = chunks[0].to_string();
    let last_chunk = chunks[chunks.len() - 1].to_string();

    // The target holds something else; a restore that did not verify first would replace
    // it (--clean).
    let target = cluster().create_database();
    target.psql(
        "CREATE TABLE precious (id integer PRIMARY KEY); INSERT INTO precious VALUES (1), (2);",
    );
    let target_before = state(&target);

    let cases = [
        (Damage::FlipBit, first_chunk.clone()),
        (Damage::FlipBit, "schema.dump".to_string()),
        (Damage::FlipBit, "migrations.json".to_string()),
        (Damage::Truncate, last_chunk),
        (Damage::SkippableFrame, first_chunk.clone()),
        (Damage::Remove, first_chunk),
        (Damage::Remove, "manifest.json".to_string()),
        (Damage::Garbage, "manifest.json".to_string()),
    ];
    // Each damage twice: to a backup never verified, and to one a verify had passed
    // (restore then reads only the checksums, which must be enough).
    let cases = cases.iter().flat_map(|(damage, file)| {
        [
            (*damage, file.clone(), false),
            (*damage, file.clone(), true),
        ]
    });
    for (damage, bad_file, verified_first) in cases {
        let bad_file = bad_file.as_str();
        let root = temp_dir("backup_damaged_");
        copy_dir(&pristine.path().join(&id), &root.path().join(&id));
        let path = root.path().join(&id).join(bad_file);
        let record = root.path().join(&id).join("verified.json");
        if verified_first {
            verify(None, path_str(root.path()), &id, &[]).assert_code(0);
            assert!(record.exists(), "a passing verify records itself");
        }
        damage.apply(&path);
        let what = format!("{damage:?} {bad_file} (verified first: {verified_first})");

        let out = restore(
            &target,
            &format!("{}/{id}", path_str(root.path())),
            &["--clean", "--jobs", "2"],
        );
        let json = out.assert_error(5, "BACKUP_CORRUPT");
        assert!(
            error_message(&json).contains(bad_file),
            "{what}: restore names {bad_file}\n{out}"
        );
        assert_same_state(
            &target_before,
            &state(&target),
            &format!("{what}: the target after the refused restore"),
        );
        assert_eq!(
            entries(root.path()),
            vec![id.clone()],
            "{what}: no safety backup or anything else was written"
        );

        let out = verify(None, path_str(root.path()), &id, &[]);
        let json = out.assert_error(5, "BACKUP_CORRUPT");
        let named: Vec<String> = json_ids(&json["error"]["details"]["files"]);
        assert_eq!(
            named,
            vec![bad_file.to_string()],
            "{what}: verify names the file\n{out}"
        );
        assert!(
            error_message(&json).contains(bad_file),
            "{what}: the message names {bad_file}\n{out}"
        );
        // (Without manifest.json the folder is a leftover, not a backup: prune removes it
        // whole, record and all.)
        let leftover = damage == Damage::Remove && bad_file == "manifest.json";
        assert!(
            leftover || !record.exists(),
            "{what}: a failed verify leaves no record of verification, not even an earlier one"
        );

        let listed = list(path_str(root.path()));
        if bad_file == "manifest.json" {
            assert_eq!(
                listed["backups"],
                serde_json::json!([]),
                "{what}: list never shows it as a backup\n{listed}"
            );
            // `latest` never picks a folder without a manifest, nor one whose manifest is
            // unreadable while a readable one exists; with none readable it says which is
            // corrupt.
            // (`latest` of the backed-up database: the URL names it.)
            let out = restore_as(
                &source.url(),
                &format!("{}/latest", path_str(root.path())),
                &["--target-db", &target.name, "--clean"],
            );
            if damage == Damage::Remove {
                out.assert_error(2, "BACKUP_NOT_FOUND");
            } else {
                out.assert_error(5, "BACKUP_CORRUPT");
            }
            assert_same_state(
                &target_before,
                &state(&target),
                &format!("{what}: the target after restoring latest"),
            );
        }
        if damage == Damage::Remove && bad_file == "manifest.json" {
            assert_eq!(
                json_ids(&listed["incomplete"]),
                vec![id.clone()],
                "{what}: list shows the folder as incomplete\n{listed}"
            );
        }
        if damage != Damage::Remove && bad_file == "manifest.json" {
            assert_eq!(
                listed["damaged"][0]["id"],
                id.as_str(),
                "{what}: list names the backup whose manifest it cannot read\n{listed}"
            );
            assert!(
                listed["damaged"][0]["problem"]
                    .as_str()
                    .is_some_and(|p| p.contains("manifest.json")),
                "{what}: and says what is wrong\n{listed}"
            );
        } else {
            assert_eq!(listed["damaged"], serde_json::json!([]), "{what}\n{listed}");
        }
    }
}

#[test]
fn a_bad_data_file_found_while_a_new_target_loads_fails_before_the_target_exists() {
    let source = cluster().create_database();
    source.psql(
        "CREATE TABLE items (id integer PRIMARY KEY, body text NOT NULL); \
         INSERT INTO items SELECT g, md5(g::text) || md5((g + 1)::text) \
         FROM generate_series(1, 30000) AS g; \
         CREATE TABLE tiny (id integer PRIMARY KEY); INSERT INTO tiny VALUES (1);",
    );
    let pristine = temp_dir("restore_streamed_");
    let id = id_of(&backup_ok(
        &source,
        path_str(pristine.path()),
        &["--chunk-mib", "1"],
    ));
    let chunks: Vec<String> = manifest(pristine.path(), &id)["tables"]
        .as_array()
        .expect("manifest.tables")
        .iter()
        .filter(|t| t["name"] == "items")
        .flat_map(|t| t["chunks"].as_array().expect("chunks").clone())
        .map(|c| c["file"].as_str().expect("a file").to_string())
        .collect();
    assert!(chunks.len() >= 3, "items is cut into chunks: {chunks:?}");

    // A good backup into a new database: its data files are checked as they load.
    let good = cluster().vacant_database();
    let from = format!("{}/{id}", path_str(pristine.path()));
    let result = restore_into_new(&source, &from, &good, &["--jobs", "2"]);
    assert_eq!(result["verify_depth"], "while_loading", "{result}");
    assert_eq!(
        result["verified_files"],
        manifest(pristine.path(), &id)["files"]
            .as_array()
            .map(Vec::len)
            .expect("manifest.files"),
        "{result}"
    );
    assert_same_state(&state(&source), &state(&good), "the restored database");

    let cases = [
        (Damage::FlipBit, chunks[0].clone()),
        (Damage::Truncate, chunks[chunks.len() - 1].clone()),
        (Damage::Remove, chunks[1].clone()),
        (Damage::SkippableFrame, chunks[chunks.len() - 1].clone()),
        // Not a data file: checked before anything is created.
        (Damage::FlipBit, "schema.dump".to_string()),
    ];
    for (damage, bad_file) in cases {
        let what = format!("{damage:?} {bad_file}");
        let root = temp_dir("restore_streamed_damaged_");
        copy_dir(&pristine.path().join(&id), &root.path().join(&id));
        damage.apply(&root.path().join(&id).join(&bad_file));
        let target = cluster().vacant_database();
        let out = restore(
            &source,
            &format!("{}/{id}", path_str(root.path())),
            &["--target-db", &target.name, "--create", "--jobs", "2"],
        );
        let json = out.assert_error(5, "BACKUP_CORRUPT");
        assert_eq!(
            json_ids(&json["error"]["details"]["files"]),
            vec![bad_file.clone()],
            "{what}: the error names the file\n{out}"
        );
        assert!(
            error_message(&json).contains(&bad_file),
            "{what}: the message names it\n{out}"
        );
        if bad_file.starts_with("data/") {
            assert_eq!(
                json["result"]["verify_depth"], "while_loading",
                "{what}\n{out}"
            );
            assert_eq!(json["result"]["created"], false, "{what}\n{out}");
        }
        assert!(
            !cluster().database_exists(&target.name),
            "{what}: the target never appears\n{out}"
        );
        assert!(
            !cluster().database_exists(&partial_of(&target.name)),
            "{what}: nor what it was loading into\n{out}"
        );
        assert_eq!(
            entries(root.path()),
            vec![id.clone()],
            "{what}: nothing else was written"
        );
    }
}

/// The part of the schema restored while the largest table already loads fails (another
/// table's owner no longer exists): the restore exits with pg_restore's own message, and
/// neither the target nor what it was loading into is left behind.
#[test]
fn a_schema_failing_while_the_largest_table_loads_leaves_no_target() {
    let source = cluster().create_database();
    let role = format!("gone_{}", source.name);
    source.psql(&format!(
        "CREATE ROLE \"{role}\"; \
         CREATE TABLE big (id integer PRIMARY KEY, body text NOT NULL); \
         INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 50000) AS g; \
         CREATE TABLE owned (id integer PRIMARY KEY); INSERT INTO owned VALUES (1); \
         ALTER TABLE owned OWNER TO \"{role}\";"
    ));
    let root = temp_dir("restore_rest_fails_");
    let id = id_of(&backup_ok(&source, path_str(root.path()), &[]));
    source.psql(&format!("DROP TABLE owned; DROP ROLE \"{role}\";"));

    let target = cluster().vacant_database();
    let out = restore(
        &source,
        &format!("{}/{id}", path_str(root.path())),
        &["--target-db", &target.name, "--create", "--jobs", "2"],
    );
    let json = out.assert_error(1, "PG_RESTORE_FAILED");
    assert!(
        error_message(&json).contains(&format!("role \"{role}\" does not exist")),
        "pg_restore's own words\n{out}"
    );
    assert!(
        out.stderr
            .contains("restoring the rest of the schema while the largest table loads"),
        "it failed in the part restored while big loaded\n{out}"
    );
    assert!(!cluster().database_exists(&target.name), "no target\n{out}");
    assert!(
        !cluster().database_exists(&partial_of(&target.name)),
        "nor what it was loading into\n{out}"
    );
}

// ---------------------------------------------------------------------------------------
// kill -9
// ---------------------------------------------------------------------------------------

/// The pgward-backup sessions on `db` running a query like `pattern` (and, when `waiting`,
/// waiting for a lock).
fn backup_sessions(db: &TestDb, pattern: &str, waiting: bool) -> i64 {
    count(
        db,
        &format!(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = '{BACKUP_APP}' \
               AND state = 'active' AND query LIKE '{pattern}' {}",
            if waiting {
                "AND wait_event_type = 'Lock'"
            } else {
                ""
            }
        ),
    )
}

/// Whether `root` holds a `.partial-` folder with a file whose path inside it `matches`.
/// Folders may vanish while it looks (a backup replaces a leftover of its own id).
fn partial_has(root: &Path, matches: impl Fn(&str) -> bool) -> bool {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let Ok(read) = std::fs::read_dir(root) else {
        return false;
    };
    read.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".partial-"))
        .any(|e| {
            let mut found = Vec::new();
            files(&e.path(), &mut found);
            found
                .iter()
                .filter_map(|p| p.strip_prefix(e.path()).ok())
                .any(|p| matches(&p.to_string_lossy()))
        })
}

/// Kills `child` with SIGKILL and reaps it.
fn kill9(child: Child) -> Output {
    // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let out = wait_child(child);
    assert_eq!(out.code, 128 + 9, "the run died of SIGKILL\n{out}");
    out
}

/// Asserts `root` holds no backup: `list` shows none, every folder is a `.partial-`
/// leftover, and nothing resolves as `latest`.
fn assert_no_backup(root: &Path, db: &TestDb, when: &str) {
    let listed = list(path_str(root));
    assert_eq!(
        listed["backups"],
        serde_json::json!([]),
        "{when}: list shows no backup\n{listed}"
    );
    if root.exists() {
        for name in entries(root) {
            assert!(
                name.starts_with(".partial-"),
                "{when}: only .partial- leftovers remain, found {name}"
            );
        }
    }
    let out = verify(None, path_str(root), "latest", &[]);
    out.assert_error(2, "BACKUP_NOT_FOUND");
    let target = cluster().vacant_database();
    let out = restore(
        db,
        &format!("{}/latest", path_str(root)),
        &["--target-db", &target.name, "--create"],
    );
    out.assert_error(2, "BACKUP_NOT_FOUND");
    assert!(
        !cluster().database_exists(&target.name),
        "{when}: nothing was restored"
    );
}

/// Table `big` of `rows` rows of about 110 bytes.
fn create_big_table(db: &TestDb, rows: u64) {
    db.psql(&format!(
        "CREATE TABLE big (id integer PRIMARY KEY, a text, b text); \
         INSERT INTO big SELECT g, md5(g::text) || md5((g * 3)::text), md5((g * 5)::text) || g \
           FROM generate_series(1, {rows}) AS g;"
    ));
}

#[test]
fn ctrl_c_mid_data_cancels_the_workers_reads_exits_130_and_leaves_no_backup() {
    let db = cluster().create_database();
    create_big_table(&db, 1_000_000);
    let home = temp_dir("backup_sigint_");
    let root = home.path().join("backups");
    let url = db.url();
    let child = spawn(
        "backup",
        &[
            "backup",
            "--to",
            path_str(&root),
            "--database-url",
            &url,
            "--jobs",
            "2",
            "--chunk-mib",
            "16",
        ],
        &cluster().pg_tools_env(),
    );
    wait_until(
        Duration::from_secs(60),
        "both workers copy a chunk of the big table",
        || backup_sessions(&db, "COPY%big%", false) == 2,
    );
    // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let signalled = Instant::now();
    let out = wait_child(child);
    out.assert_error(130, "INTERRUPTED");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "the workers' reads end when cancelled, not when the table is read\n{out}"
    );
    assert_eq!(
        backup_sessions(&db, "COPY%", false),
        0,
        "the server stopped copying\n{out}"
    );
    assert_no_backup(&root, &db, "interrupted mid-data");
    assert_eq!(
        entries(&root),
        Vec::<String>::new(),
        "an interrupted run removes what it wrote"
    );
}

#[test]
fn a_killed_backup_leaves_only_a_leftover_that_prune_removes() {
    let db = cluster().create_database();
    create_big_table(&db, 250_000);
    db.psql(
        "CREATE TABLE small (id integer PRIMARY KEY); INSERT INTO small VALUES (1), (2); \
         CREATE SEQUENCE gate;",
    );
    let home = temp_dir("backup_kill_");
    // The folder is made by the first backup.
    let root = home.path().join("backups");
    let url = db.url();
    let start = |extra: &[&str]| {
        let mut args = vec!["backup", "--to", path_str(&root), "--database-url", &url];
        args.extend_from_slice(extra);
        spawn("backup", &args, &cluster().pg_tools_env())
    };
    let mut leftovers = Vec::new();
    let mut note_leftovers = |when: &str| {
        for name in entries(&root) {
            let id = name
                .strip_prefix(".partial-")
                .unwrap_or_else(|| panic!("{when}: unexpected {name} in the backup folder"))
                .to_string();
            if !leftovers.contains(&id) {
                leftovers.push(id);
            }
        }
    };

    // 1. Right after it started writing.
    let child = start(&[]);
    wait_until(
        Duration::from_secs(30),
        "the backup folder is begun",
        || root.exists() && entries(&root).iter().any(|n| n.starts_with(".partial-")),
    );
    kill9(child);
    assert_no_backup(&root, &db, "killed right after start");
    note_leftovers("killed right after start");

    // 2. In the middle of the data: the big table is being copied. (In a new second: a
    // run never deletes a `.partial-` folder of its own id, which may be another run's.)
    next_second();
    let child = start(&["--jobs", "1"]);
    wait_until(
        Duration::from_secs(60),
        "the big table is being copied",
        || {
            partial_has(&root, |p| p.starts_with("data/"))
                && backup_sessions(&db, "COPY%big%", false) > 0
        },
    );
    kill9(child);
    assert_no_backup(&root, &db, "killed mid-data");
    note_leftovers("killed mid-data");

    // 3. Near the end: every file is written and the backup reads the sequences last,
    // which a session holding an exclusive lock on one of them holds up (a rename: the
    // backup reads each sequence as pg_dump does, which ALTER SEQUENCE RESTART no longer
    // blocks). (In a new second, so that its leftover has a name of its own.)
    next_second();
    let earlier = entries(&root);
    let mut gate = db.client();
    gate.batch_execute("BEGIN; ALTER SEQUENCE gate RENAME TO gate_held")
        .expect("the sequence can be altered");
    let child = start(&["--jobs", "2"]);
    wait_until(
        Duration::from_secs(60),
        "the backup waits to read the sequences",
        || backup_sessions(&db, "%last_value, is_called FROM%", true) > 0,
    );
    let partial: Vec<String> = entries(&root)
        .into_iter()
        .filter(|n| !earlier.contains(n))
        .collect();
    assert_eq!(partial.len(), 1, "one new leftover: {partial:?}");
    let written: Vec<String> = walk(&root.join(&partial[0]))
        .iter()
        .filter(|p| p.is_file())
        .map(|p| {
            p.strip_prefix(root.join(&partial[0]))
                .expect("inside the leftover")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        written,
        vec![
            "data/t00000.00000.copy.zst",
            "data/t00001.00000.copy.zst",
            "migrations.json",
            "schema.dump"
        ],
        "near the end, every file but the manifest is written"
    );
    kill9(child);
    gate.batch_execute("ROLLBACK")
        .expect("the sequence lock is released");
    assert_no_backup(&root, &db, "killed near the end");
    note_leftovers("killed near the end");
    assert!(!leftovers.is_empty(), "the killed runs left leftovers");

    // The next backup succeeds beside the leftovers.
    next_second();
    let good = id_of(&backup_ok(&db, path_str(&root), &["--jobs", "2"]));
    let listed = list(path_str(&root));
    assert_eq!(json_ids(&listed["backups"]), vec![good.clone()], "{listed}");
    let mut incomplete = json_ids(&listed["incomplete"]);
    incomplete.sort();
    leftovers.sort();
    assert_eq!(incomplete, leftovers, "list names the leftovers\n{listed}");

    let out = run(
        "backup",
        &[
            "prune",
            "--from",
            path_str(&root),
            "--keep-last",
            "1",
            "--leftover-age",
            "0s",
        ],
        &cluster().pg_tools_env(),
    );
    out.assert_code(0);
    let json = out.json();
    let mut removed = json_ids(&json["result"]["leftovers_deleted"]);
    removed.sort();
    assert_eq!(removed, leftovers, "prune removes every leftover\n{out}");
    assert_eq!(
        json_ids(&json["result"]["deleted"]),
        Vec::<String>::new(),
        "{out}"
    );
    assert_eq!(
        json_ids(&json["result"]["kept"]),
        vec![good.clone()],
        "{out}"
    );
    assert_eq!(
        entries(&root),
        vec![good.clone()],
        "only the good backup is left"
    );
    verify(None, path_str(&root), &good, &[]).assert_code(0);
}

// ---------------------------------------------------------------------------------------
// Guards
// ---------------------------------------------------------------------------------------

/// A database with a little of everything restores care about, and a backup of it.
fn small_source(root: &Path) -> (TestDb<'static>, String) {
    let db = cluster().create_database();
    db.psql(
        "CREATE TABLE alpha (id serial PRIMARY KEY, v text); \
         INSERT INTO alpha (v) SELECT 'a' || g FROM generate_series(1, 100) AS g; \
         CREATE TABLE beta (id integer PRIMARY KEY, alpha_id integer REFERENCES alpha (id)); \
         INSERT INTO beta SELECT g, g FROM generate_series(1, 50) AS g;",
    );
    let id = id_of(&backup_ok(&db, path_str(root), &[]));
    (db, id)
}

#[test]
fn restore_refuses_a_non_empty_target_without_clean() {
    let root = temp_dir("backup_guard_");
    let (source, id) = small_source(root.path());
    let target = cluster().create_database();
    target.psql("CREATE TABLE mine (id integer); INSERT INTO mine VALUES (42);");
    let before = state(&target);

    let out = restore(&target, &format!("{}/{id}", path_str(root.path())), &[]);
    let json = out.assert_error(6, "TARGET_NOT_EMPTY");
    assert!(
        error_message(&json).contains(&target.name),
        "the message names the target\n{out}"
    );
    assert!(
        json["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("--clean"),
        "the hint names --clean\n{out}"
    );
    assert_same_state(&before, &state(&target), "the refused target");
    assert_eq!(
        listed_ids(path_str(root.path())),
        vec![id.clone()],
        "no safety backup was taken"
    );

    // --target-db of another, existing non-empty database: refused the same way.
    let out = restore(
        &source,
        &format!("{}/{id}", path_str(root.path())),
        &["--target-db", &target.name, "--create"],
    );
    out.assert_error(6, "TARGET_NOT_EMPTY");
    assert_same_state(&before, &state(&target), "the refused target (--target-db)");

    // A dry run says what it would do and does nothing.
    let out = restore(
        &target,
        &format!("{}/{id}", path_str(root.path())),
        &["--clean", "--dry-run"],
    );
    out.assert_code(0);
    assert_eq!(out.json()["result"]["replaced"], true, "{out}");
    assert_same_state(&before, &state(&target), "the target after --dry-run");
    assert_eq!(
        listed_ids(path_str(root.path())),
        vec![id],
        "a dry run takes no safety backup"
    );
}

#[test]
fn restore_clean_in_a_protected_environment_needs_force() {
    let project = temp_dir("backup_protected_");
    let backups = project.path().join("backups");
    std::fs::write(
        project.path().join("pgward.toml"),
        format!(
            "[env.prod]\ndatabase_url_env = \"PROD_URL\"\nprotected = true\nbackups = \"{}\"\n",
            path_str(&backups)
        ),
    )
    .expect("pgward.toml is writable");
    let (_source, id) = small_source(&backups);
    let prod = cluster().create_database();
    prod.psql("CREATE TABLE orders (id integer PRIMARY KEY); INSERT INTO orders VALUES (7);");
    let before = state(&prod);
    let prod_url = prod.url();
    let [bindir] = cluster().pg_tools_env();
    let envs = [("PROD_URL", prod_url.as_str()), bindir];
    let from = format!("{}/{id}", path_str(&backups));

    let out = run_in(
        project.path(),
        "restore",
        &["restore", "--env", "prod", "--from", &from, "--clean"],
        &envs,
    );
    let json = out.assert_error(6, "PROTECTED_NEEDS_FORCE");
    assert!(
        json["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("--force"),
        "the hint names --force\n{out}"
    );
    assert_same_state(
        &before,
        &state(&prod),
        "the protected target after the refusal",
    );
    assert_eq!(
        listed_ids(path_str(&backups)),
        vec![id.clone()],
        "a refused restore takes no safety backup"
    );

    // prune is destructive too.
    let out = run_in(
        project.path(),
        "backup",
        &["prune", "--env", "prod", "--keep-last", "1"],
        &envs,
    );
    out.assert_error(6, "PROTECTED_NEEDS_FORCE");

    next_second();
    let out = run_in(
        project.path(),
        "restore",
        &[
            "restore", "--env", "prod", "--from", &from, "--clean", "--force",
        ],
        &envs,
    );
    out.assert_code(0);
    let json = out.json();
    assert_eq!(json["result"]["replaced"], true, "{out}");
    let safety = json["result"]["safety_backup"]
        .as_str()
        .unwrap_or_else(|| panic!("--clean took a safety backup\n{out}"))
        .to_string();
    assert!(
        safety.contains("-prod-"),
        "the safety backup's id names the environment: {safety}"
    );
    assert_eq!(count(&prod, "SELECT count(*) FROM alpha"), 100);
    assert!(listed_ids(path_str(&backups)).contains(&safety));
}

#[test]
fn restore_clean_takes_a_safety_backup_before_dropping_anything() {
    let root = temp_dir("backup_safety_");
    let (db, id) = small_source(root.path());
    let original = state(&db);
    // Later changes the restore is about to throw away.
    db.psql(
        "INSERT INTO alpha (v) VALUES ('late'); DELETE FROM beta WHERE id <= 10; \
         CREATE TABLE added_later (id integer PRIMARY KEY, note text); \
         INSERT INTO added_later VALUES (1, 'keep me');",
    );
    let changed = state(&db);
    next_second();

    let out = restore(
        &db,
        &format!("{}/{id}", path_str(root.path())),
        &["--clean"],
    );
    out.assert_code(0);
    let json = out.json();
    assert_eq!(json["result"]["replaced"], true, "{out}");
    assert_eq!(json["result"]["created"], false, "{out}");
    let safety = json["result"]["safety_backup"]
        .as_str()
        .unwrap_or_else(|| panic!("--clean took a safety backup\n{out}"))
        .to_string();
    assert_same_state(&original, &state(&db), "the database after restore --clean");

    let listed = list(path_str(root.path()));
    let entry = listed["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .find(|b| b["id"] == safety.as_str())
        .unwrap_or_else(|| panic!("the safety backup {safety} is listed\n{listed}"));
    assert!(
        entry["label"].as_str().unwrap_or_default().contains(&id),
        "the safety backup's label names what was restored: {entry}"
    );

    // It holds exactly what was there before the restore.
    let back = cluster().vacant_database();
    restore_into_new(
        &db,
        &format!("{}/{safety}", path_str(root.path())),
        &back,
        &[],
    );
    assert_same_state(&changed, &state(&back), "the safety backup restored");
}

/// A copy of backup `id` (from `root`) in a folder of its own whose manifest records one
/// row more for `alpha` than its data holds: its files pass every check, and its load
/// fails (`ROW_COUNT_MISMATCH`) after the target has been changed.
fn backup_that_fails_to_load(root: &Path, id: &str) -> tempfile::TempDir {
    let bad = temp_dir("backup_fails_to_load_");
    copy_dir(&root.join(id), &bad.path().join(id));
    let mut m = manifest(bad.path(), id);
    let alpha = m["tables"]
        .as_array_mut()
        .expect("manifest.tables")
        .iter_mut()
        .find(|t| t["name"] == "alpha")
        .expect("alpha is in the manifest");
    alpha["rows"] = serde_json::json!(101);
    std::fs::write(
        bad.path().join(id).join("manifest.json"),
        serde_json::to_vec_pretty(&m).expect("JSON"),
    )
    .expect("manifest.json is writable");
    bad
}

/// The message of the envelope's `RESTORE_INCOMPLETE` warning.
fn restore_incomplete(out: &Output) -> String {
    let json = out.json();
    json["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["code"] == "RESTORE_INCOMPLETE")
        .and_then(|w| w["message"].as_str())
        .unwrap_or_else(|| panic!("a RESTORE_INCOMPLETE warning\n{out}"))
        .to_string()
}

/// The database a restore into `target` loads under until it is complete.
fn partial_of(target: &str) -> String {
    format!("pgward_restoring_{target}")
}

#[test]
fn a_restore_that_fails_mid_load_leaves_no_half_restored_database_and_names_the_way_back() {
    let root = temp_dir("backup_fails_");
    let (db, id) = small_source(root.path());
    let bad = backup_that_fails_to_load(root.path(), &id);
    let from = format!("{}/{id}", path_str(bad.path()));

    // A new database: loaded under another name, which is dropped; the target never
    // appears.
    let target = cluster().vacant_database();
    let out = restore(&db, &from, &["--target-db", &target.name, "--create"]);
    let json = out.assert_error(5, "ROW_COUNT_MISMATCH");
    assert!(error_message(&json).contains("alpha"), "{out}");
    assert_eq!(json["result"]["created"], false, "{out}");
    assert!(
        restore_incomplete(&out).contains("was not created"),
        "{out}"
    );
    assert!(!cluster().database_exists(&target.name), "{out}");
    assert!(
        !cluster().database_exists(&partial_of(&target.name)),
        "{out}"
    );

    // An empty database that existed: loaded in place, left in place, never dropped.
    let empty = cluster().create_database();
    let out = restore(&db, &from, &["--target-db", &empty.name]);
    out.assert_error(5, "ROW_COUNT_MISMATCH");
    assert!(
        restore_incomplete(&out).contains("--clean --no-safety-backup"),
        "{out}"
    );
    assert!(cluster().database_exists(&empty.name));

    // Over a database with data (--clean): it is gone rather than half-restored, the
    // warning names the safety backup, and that brings the previous contents back.
    db.psql("CREATE TABLE added_later (id integer); INSERT INTO added_later VALUES (7);");
    let before = state(&db);
    next_second();
    let out = restore(&db, &from, &["--clean"]);
    out.assert_error(5, "ROW_COUNT_MISMATCH");
    let safety = out.json()["result"]["safety_backup"]
        .as_str()
        .unwrap_or_else(|| panic!("--clean took a safety backup\n{out}"))
        .to_string();
    let warning = restore_incomplete(&out);
    assert!(
        warning.contains("does not exist now")
            && warning.contains(&format!(
                "--from {}/{safety} --create",
                path_str(bad.path())
            )),
        "the warning says how to put the previous contents back: {out}"
    );
    assert!(!cluster().database_exists(&db.name), "{out}");
    assert!(!cluster().database_exists(&partial_of(&db.name)), "{out}");
    let out = restore(
        &db,
        &format!("{}/{safety}", path_str(bad.path())),
        &["--create"],
    );
    out.assert_code(0);
    assert_same_state(
        &before,
        &state(&db),
        "the database restored from its safety backup",
    );
}

#[test]
fn a_killed_restore_leaves_no_half_restored_target_and_the_next_one_clears_its_leftover() {
    let root = temp_dir("restore_killed_");
    let db = cluster().create_database();
    db.psql(
        "CREATE TABLE big (id integer PRIMARY KEY, v text); \
         INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 300000) AS g;",
    );
    let id = id_of(&backup_ok(&db, path_str(root.path()), &[]));
    let from = format!("{}/{id}", path_str(root.path()));
    let target = cluster().vacant_database();
    let partial = partial_of(&target.name);
    let url = db.url();
    let args = restore_args(&url, &from, &["--target-db", &target.name, "--create"]);

    let child = spawn("restore", &args, &cluster().pg_tools_env());
    wait_until(
        Duration::from_secs(60),
        "the restore begins loading",
        || cluster().sessions_on(&partial) > 0,
    );
    kill9(child);
    assert!(
        !cluster().database_exists(&target.name),
        "the target never appears half-restored"
    );
    assert!(
        cluster().database_exists(&partial),
        "the leftover says what it is"
    );
    let mark = cluster()
        .client("postgres")
        .query_one(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&partial],
        )
        .expect("the leftover's comment")
        .get::<_, String>(0);
    assert!(mark.contains(&target.name) && mark.contains(&id), "{mark}");

    // Once the killed run's sessions are gone, the next restore drops the leftover.
    restore_after_a_killed_run(&partial, &args);
    assert_eq!(count(&target, "SELECT count(*) FROM big"), 300_000);
    assert_eq!(
        count(
            &target,
            "SELECT count(*) FROM pg_database WHERE datname = current_database() \
             AND shobj_description(oid, 'pg_database') IS NOT NULL"
        ),
        0,
        "the restored database carries no mark"
    );

    // A database of that name that pgward did not make is refused, never dropped.
    let other = cluster().vacant_database();
    let theirs = partial_of(&other.name);
    cluster()
        .client("postgres")
        .batch_execute(&format!("CREATE DATABASE \"{theirs}\""))
        .expect("create a database of the partial name");
    let out = restore(&db, &from, &["--target-db", &other.name, "--create"]);
    let json = out.assert_error(2, "USAGE");
    assert!(error_message(&json).contains(&theirs), "{out}");
    assert!(cluster().database_exists(&theirs));
    assert!(!cluster().database_exists(&other.name));
    // With --clean, that is found before the target is touched.
    let mine = partial_of(&db.name);
    let mut admin = cluster().client("postgres");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{mine}\""))
        .expect("create a database of the partial name");
    let before = state(&db);
    let out = restore(&db, &from, &["--clean"]);
    out.assert_error(2, "USAGE");
    assert_same_state(&before, &state(&db), "the target of a refused --clean");
    assert!(
        !out.stderr.contains("safety backup"),
        "no safety backup was taken: {out}"
    );
    for name in [theirs, mine] {
        admin
            .batch_execute(&format!("DROP DATABASE \"{name}\""))
            .expect("drop it again");
    }
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

#[test]
fn bad_locations_and_ids_fail_with_clear_messages_and_codes() {
    let root = temp_dir("backup_bad_");
    let (db, id) = small_source(root.path());
    let before = state(&db);
    let unknown = "nosuch-default-20200101T000000Z";

    let out = verify(None, path_str(root.path()), unknown, &[]);
    let json = out.assert_error(2, "BACKUP_NOT_FOUND");
    assert!(
        error_message(&json).contains(unknown)
            && error_message(&json).contains(path_str(root.path())),
        "the message names the id and the location\n{out}"
    );
    let out = restore(
        &db,
        &format!("{}/{unknown}", path_str(root.path())),
        &["--clean"],
    );
    let json = out.assert_error(2, "BACKUP_NOT_FOUND");
    assert!(error_message(&json).contains(unknown), "{out}");
    let empty = temp_dir("backup_bad_empty_");
    let out = verify(None, path_str(empty.path()), "latest", &[]);
    out.assert_error(2, "BACKUP_NOT_FOUND");

    // A path that is a file, and a folder that does not exist.
    let file = root.path().join("not-a-folder");
    std::fs::write(&file, "x").expect("the file is writable");
    let missing = root.path().join("missing");
    for location in [&file, &missing] {
        let out = run(
            "backup",
            &["list", "--from", path_str(location)],
            &cluster().pg_tools_env(),
        );
        let json = out.json();
        assert_eq!(out.code, 7, "list --from {}\n{out}", location.display());
        assert_eq!(json["error"]["code"], "IO_ERROR", "{out}");
        assert!(
            error_message(&json).contains(path_str(location)),
            "the message names the folder\n{out}"
        );
        let out = verify(None, path_str(location), "latest", &[]);
        assert_eq!(out.code, 7, "verify --from {}\n{out}", location.display());
        let out = restore(&db, &format!("{}/latest", path_str(location)), &["--clean"]);
        assert_eq!(out.code, 7, "restore --from {}\n{out}", location.display());
    }
    let out = backup(&db, path_str(&file), &[]);
    let json = out.json();
    assert_eq!(out.code, 7, "backup --to a file\n{out}");
    assert!(error_message(&json).contains(path_str(&file)), "{out}");

    assert_same_state(&before, &state(&db), "the database after the failed runs");
    assert_eq!(listed_ids(path_str(root.path())), vec![id]);
}

// ---------------------------------------------------------------------------------------
// verify --deep, prune, --before-migration, --tables, permissions
// ---------------------------------------------------------------------------------------

/// How many scratch databases of `verify --deep` exist.
fn scratch_databases() -> i64 {
    cluster()
        .client("postgres")
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgward\\_verify\\_%'",
            &[],
        )
        .expect("pg_database can be read")
        .get(0)
}

#[test]
fn verify_deep_restores_into_a_scratch_database_and_drops_it() {
    let root = temp_dir("backup_deep_");
    let (db, id) = small_source(root.path());
    assert_eq!(scratch_databases(), 0);

    let out = verify(Some(&db), path_str(root.path()), &id, &["--deep"]);
    out.assert_code(0);
    let json = out.json();
    assert_eq!(json["result"]["deep"], true, "{out}");
    let tables = json["result"]["restore"]["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("the scratch restore is reported\n{out}"));
    let rows: BTreeMap<String, u64> = tables
        .iter()
        .map(|t| {
            (
                t["table"].as_str().expect("a table").to_string(),
                t["rows"].as_u64().expect("rows"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        BTreeMap::from([
            ("public.alpha".to_string(), 100),
            ("public.beta".to_string(), 50)
        ]),
        "{out}"
    );
    assert_eq!(scratch_databases(), 0, "the scratch database was dropped");
    let listed = list(path_str(root.path()));
    assert_eq!(listed["backups"][0]["verified"], true, "{listed}");

    // A manifest whose row count no longer matches the data: the scratch restore finds
    // it, and the scratch database is dropped all the same.
    // (The copy's record names the manifest before the change, so it is refused as
    // altered until the record goes; then a plain verify passes, its files being intact,
    // and records the altered manifest.)
    let bad = backup_that_fails_to_load(root.path(), &id);
    verify(None, path_str(bad.path()), &id, &[]).assert_error(5, "BACKUP_CORRUPT");
    std::fs::remove_file(bad.path().join(&id).join("verified.json")).expect("remove the record");
    verify(None, path_str(bad.path()), &id, &[]).assert_code(0);
    assert!(
        bad.path().join(&id).join("verified.json").exists(),
        "the copy carries a record of verification"
    );
    let out = verify(Some(&db), path_str(bad.path()), &id, &["--deep"]);
    let json = out.assert_error(5, "ROW_COUNT_MISMATCH");
    assert!(
        error_message(&json).contains("alpha"),
        "the message names the table\n{out}"
    );
    assert_eq!(
        scratch_databases(),
        0,
        "the scratch database was dropped after the failure"
    );
    assert!(
        !bad.path().join(&id).join("verified.json").exists(),
        "a failed deep verify removes the earlier record of verification"
    );

    // Killed midway, a deep verify leaves its scratch database, marked as pgward's. The
    // next deep verify drops it, and leaves alone a database of a like name that pgward
    // did not make.
    let big = cluster().create_database();
    big.psql(
        "CREATE TABLE big (id integer PRIMARY KEY, v text); \
         INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 300000) AS g;",
    );
    let big_root = temp_dir("backup_deep_killed_");
    let big_id = id_of(&backup_ok(&big, path_str(big_root.path()), &[]));
    let theirs = format!("pgward_verify_{}", big.name);
    let mut admin = cluster().client("postgres");
    admin
        .batch_execute(&format!("CREATE DATABASE {theirs}"))
        .expect("a database named like a scratch one");
    let url = big.url();
    let child = spawn(
        "backup",
        &[
            "verify",
            &big_id,
            "--from",
            path_str(big_root.path()),
            "--database-url",
            &url,
            "--deep",
        ],
        &cluster().pg_tools_env(),
    );
    wait_until(
        Duration::from_secs(60),
        "the deep verify creates its scratch database and marks it",
        || {
            scratch_databases() == 2
                && count(
                    &big,
                    "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgward\\_verify\\_%' \
                     AND starts_with(shobj_description(oid, 'pg_database'), 'pgward work in progress:')",
                ) == 1
        },
    );
    kill9(child);
    // Its sessions end: the loaders' on the scratch database, and the one that created it
    // (on the source database), whose end is what marks the scratch database as left.
    wait_until(
        Duration::from_secs(60),
        "the killed run's sessions end",
        || {
            count(
                &big,
                "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'pgward\\_verify\\_%' \
                 OR (datname = current_database() AND application_name = 'pgward-backup')",
            ) == 0
        },
    );
    assert_eq!(
        scratch_databases(),
        2,
        "the killed run's scratch database is left"
    );
    let out = verify(Some(&big), path_str(big_root.path()), &big_id, &["--deep"]);
    out.assert_code(0);
    assert!(out.stderr.contains("an interrupted run left"), "{out}");
    assert_eq!(scratch_databases(), 1, "only theirs is left\n{out}");
    assert!(cluster().database_exists(&theirs));
    admin
        .batch_execute(&format!("DROP DATABASE {theirs}"))
        .expect("drop it");
}

#[test]
fn restore_reads_only_checksums_of_the_very_manifest_a_verify_passed() {
    let root = temp_dir("backup_depth_");
    let (source, id) = small_source(root.path());
    let from = format!("{}/{id}", path_str(root.path()));

    // Into an existing empty database (loaded in place, so checked whole first), never
    // verified: restore decompresses everything first.
    let restore_into_empty = |into: &TestDb| -> Value {
        let out = restore(&source, &from, &["--target-db", &into.name]);
        out.assert_code(0);
        out.json()["result"].clone()
    };
    let first = cluster().create_database();
    let result = restore_into_empty(&first);
    assert_eq!(result["verify_depth"], "decode", "{result}");

    // Verified: the record names the manifest, and restore reads only the checksums.
    verify(None, path_str(root.path()), &id, &[]).assert_code(0);
    let manifest_path = root.path().join(&id).join("manifest.json");
    let record: Value = serde_json::from_slice(
        &std::fs::read(root.path().join(&id).join("verified.json")).expect("verified.json"),
    )
    .expect("verified.json is JSON");
    let manifest_bytes = std::fs::read(&manifest_path).expect("manifest.json");
    assert_eq!(
        record["manifest_sha256"],
        pgward_shared::migrations::checksum(&manifest_bytes).as_str(),
        "{record}"
    );
    let second = cluster().create_database();
    let result = restore_into_empty(&second);
    assert_eq!(result["verify_depth"], "checksums", "{result}");
    assert_same_state(
        &state(&first),
        &state(&second),
        "the checksums-only restore",
    );

    // The same manifest in other bytes is not the manifest verify read: refused, since
    // verified.json says the manifest changed after verification (issue 15). Once someone
    // has looked and removed the record, it is decoded again.
    let compact = serde_json::to_vec(&manifest(root.path(), &id)).expect("JSON");
    assert_ne!(compact, manifest_bytes, "the rewrite changes the bytes");
    std::fs::write(&manifest_path, compact).expect("manifest.json is writable");
    let third = cluster().create_database();
    let out = restore(&third, &from, &[]);
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert!(
        error_message(&json).contains("altered after verification"),
        "{out}"
    );
    std::fs::remove_file(root.path().join(&id).join("verified.json")).expect("remove the record");
    let result = restore_into_empty(&third);
    assert_eq!(result["verify_depth"], "decode", "{result}");

    // A new target is checked as it loads, verified or not.
    let fourth = cluster().vacant_database();
    let result = restore_into_new(&source, &from, &fourth, &[]);
    assert_eq!(result["verify_depth"], "while_loading", "{result}");
    assert_same_state(
        &state(&first),
        &state(&fourth),
        "the restore checked as it loaded",
    );
}

#[test]
fn prune_never_removes_the_newest_verified_backup() {
    let root = temp_dir("backup_prune_");
    let (db, first) = small_source(root.path());
    next_second();
    let second = id_of(&backup_ok(&db, path_str(root.path()), &[]));
    next_second();
    let third = id_of(&backup_ok(&db, path_str(root.path()), &[]));
    for id in [&first, &second] {
        verify(None, path_str(root.path()), id, &[]).assert_code(0);
    }
    let all = vec![third.clone(), second.clone(), first.clone()];
    assert_eq!(listed_ids(path_str(root.path())), all);
    let prune = |extra: &[&str]| {
        let mut args = vec![
            "prune",
            "--from",
            path_str(root.path()),
            "--keep-last",
            "0",
            "--keep-days",
            "0",
        ];
        args.extend_from_slice(extra);
        let out = run("backup", &args, &cluster().pg_tools_env());
        out.assert_code(0);
        out.json()["result"].clone()
    };

    let dry = prune(&["--dry-run"]);
    assert_eq!(
        json_ids(&dry["deleted"]),
        vec![third.clone(), first.clone()],
        "{dry}"
    );
    assert_eq!(
        listed_ids(path_str(root.path())),
        all,
        "a dry run deletes nothing"
    );

    let result = prune(&[]);
    assert_eq!(json_ids(&result["kept"]), vec![second.clone()], "{result}");
    assert_eq!(result["kept"][0]["reason"], "newest-verified", "{result}");
    assert_eq!(json_ids(&result["deleted"]), vec![third, first], "{result}");
    assert_eq!(entries(root.path()), vec![second.clone()]);

    let again = prune(&[]);
    assert_eq!(json_ids(&again["kept"]), vec![second.clone()], "{again}");
    assert_eq!(entries(root.path()), vec![second]);

    // Both rules are needed for nothing.
    let out = run(
        "backup",
        &["prune", "--from", path_str(root.path())],
        &cluster().pg_tools_env(),
    );
    out.assert_error(2, "USAGE");
}

#[test]
fn restore_before_migration_picks_the_newest_backup_taken_before_it() {
    let db = cluster().create_database();
    let migrations = Migrations::new(&[]);
    let root = temp_dir("backup_before_");
    let steps = [
        ("20240101000000_first", "first_table"),
        ("20240201000000_second", "second_table"),
        ("20240301000000_third", "third_table"),
    ];
    let mut backups = Vec::new();
    for (i, (name, table)) in steps.iter().enumerate() {
        migrations.add(
            name,
            &format!(
                "CREATE TABLE {table} (id integer PRIMARY KEY); INSERT INTO {table} VALUES ({i});"
            ),
        );
        db.deploy(migrations.path());
        if i > 0 {
            next_second();
        }
        let result = backup_ok(&db, path_str(root.path()), &[]);
        assert_eq!(result["migration_head"], *name, "{result}");
        backups.push(id_of(&result));
    }

    for (migration, expected, present, absent) in [
        (steps[1].0, &backups[0], "first_table", "second_table"),
        (steps[2].0, &backups[1], "second_table", "third_table"),
    ] {
        // Into the database itself: a backup `--before-migration` picks goes into another
        // database only named by its id.
        let out = restore(
            &db,
            path_str(root.path()),
            &[
                "--before-migration",
                migration,
                "--clean",
                "--no-safety-backup",
            ],
        );
        out.assert_code(0);
        let result = out.json()["result"].clone();
        let target = &db;
        assert_eq!(
            result["backup"],
            expected.as_str(),
            "--before-migration {migration} restores the newest backup without it: {result}"
        );
        assert_eq!(
            target.query_one_string(&format!(
                "SELECT to_regclass('{present}') IS NOT NULL AND to_regclass('{absent}') IS NULL"
            )),
            "t",
            "after --before-migration {migration}, {present} exists and {absent} does not"
        );
        assert_eq!(
            count(
                target,
                &format!(
                    "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '{migration}'"
                )
            ),
            0,
            "the restored history does not have {migration}"
        );
    }

    let target = cluster().vacant_database();
    let out = restore(
        &db,
        path_str(root.path()),
        &[
            "--before-migration",
            steps[0].0,
            "--target-db",
            &target.name,
            "--create",
        ],
    );
    let json = out.assert_error(2, "BACKUP_NOT_FOUND");
    assert!(error_message(&json).contains(steps[0].0), "{out}");
    assert!(
        !cluster().database_exists(&target.name),
        "nothing was restored"
    );
}

#[test]
fn restore_tables_loads_only_the_named_tables_data() {
    let root = temp_dir("backup_tables_");
    let (db, id) = small_source(root.path());
    db.psql("CREATE TABLE gamma (id integer); INSERT INTO gamma VALUES (1);");
    next_second();
    let id2 = id_of(&backup_ok(&db, path_str(root.path()), &[]));
    let from = format!("{}/{id2}", path_str(root.path()));

    let target = cluster().vacant_database();
    let result = restore_into_new(&db, &from, &target, &["--tables", "public.alpha", "gam*"]);
    let loaded: Vec<&str> = result["load"]["tables"]
        .as_array()
        .expect("result.load.tables")
        .iter()
        .map(|t| t["table"].as_str().expect("a table"))
        .collect();
    assert_eq!(loaded, vec!["public.alpha", "public.gamma"], "{result}");
    assert_eq!(count(&target, "SELECT count(*) FROM alpha"), 100);
    assert_eq!(count(&target, "SELECT count(*) FROM gamma"), 1);
    assert_eq!(
        count(&target, "SELECT count(*) FROM beta"),
        0,
        "beta's schema is restored, not its data"
    );

    // A pattern that matches nothing is a usage error before anything is touched.
    let target = cluster().vacant_database();
    let out = restore(
        &db,
        &format!("{}/{id}", path_str(root.path())),
        &[
            "--target-db",
            &target.name,
            "--create",
            "--tables",
            "nosuch",
        ],
    );
    let json = out.assert_error(2, "USAGE");
    assert!(error_message(&json).contains("nosuch"), "{out}");
    assert!(
        !cluster().database_exists(&target.name),
        "a --tables typo creates no database"
    );
    let before = state(&db);
    let out = restore(&db, &from, &["--clean", "--tables", "nosuch"]);
    out.assert_error(2, "USAGE");
    assert_same_state(
        &before,
        &state(&db),
        "the target after a --tables typo with --clean",
    );
}

#[test]
fn local_backup_files_are_private() {
    let home = temp_dir("backup_modes_");
    let root = home.path().join("backups");
    let (db, id) = small_source(&root);
    verify(None, path_str(&root), &id, &[]).assert_code(0);
    next_second();
    backup_ok(&db, path_str(&root), &["--backup-format", "sql"]);

    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700, "the backup folder pgward created");
    let all = walk(&root);
    assert!(
        all.iter().any(|p| p.ends_with("verified.json"))
            && all.iter().any(|p| p.ends_with("backup.sql.zst"))
            && all.iter().any(|p| p.ends_with("data")),
        "{all:?}"
    );
    for path in all {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode(&path),
            expected,
            "{} has mode {:o}",
            path.display(),
            mode(&path)
        );
    }
}

#[test]
fn a_table_its_owner_may_not_truncate_restores_without_freeze_as_that_owner() {
    // Some teams revoke TRUNCATE from a table's own owner, a guard against wiping it by
    // accident. Restoring as that owner (no superuser), pgward cannot start the table's
    // load with TRUNCATE, so it loads with plain COPY and says so.
    let root = temp_dir("backup_no_truncate_");
    let db = cluster().create_database();
    let role = format!("{}_owner", db.name);
    db.psql(&format!(
        "CREATE ROLE {role} LOGIN CREATEDB PASSWORD 'owner-pw-1234'; \
         CREATE TABLE guarded (id integer PRIMARY KEY, note text); \
         INSERT INTO guarded SELECT g, 'row ' || g FROM generate_series(1, 500) AS g; \
         CREATE TABLE plain (id integer PRIMARY KEY); \
         INSERT INTO plain SELECT generate_series(1, 20); \
         ALTER TABLE guarded OWNER TO {role}; ALTER TABLE plain OWNER TO {role}; \
         REVOKE TRUNCATE ON guarded FROM {role};"
    ));
    let id = id_of(&backup_ok(&db, path_str(root.path()), &[]));
    let from = format!("{}/{id}", path_str(root.path()));

    let url = db.url().replacen(
        "pgward:pgward-test-secret-pw",
        &format!("{role}:owner-pw-1234"),
        1,
    );
    let target = cluster().vacant_database();
    let out = restore_as(&url, &from, &["--target-db", &target.name, "--create"]);
    out.assert_code(0);
    let tables = out.json()["result"]["load"]["tables"].clone();
    let frozen = |name: &str| {
        tables
            .as_array()
            .expect("result.load.tables")
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("{name} was loaded\n{out}"))["frozen"]
            .clone()
    };
    assert_eq!(frozen("public.guarded"), false, "{out}");
    assert_eq!(frozen("public.plain"), true, "{out}");
    assert_eq!(
        target
            .query_one_string("SELECT count(*) || ' ' || sum(id) || ' ' || max(note) FROM guarded"),
        "500 125250 row 99"
    );
    assert_eq!(count(&target, "SELECT count(*) FROM plain"), 20);
    // The guard itself came back: the owner still may not truncate.
    assert_eq!(
        target.query_one_string(&format!(
            "SELECT has_table_privilege('{role}', 'guarded', 'TRUNCATE')::text"
        )),
        "false"
    );
    // Only the rows of a table loaded with FREEZE are stored frozen.
    let frozen_rows = |table: &str| {
        count(
            &target,
            &format!(
                "SELECT count(*) FROM heap_page_items(get_raw_page('{table}', 0)) \
                 WHERE t_infomask & 768 = 768"
            ),
        )
    };
    target.psql("CREATE EXTENSION IF NOT EXISTS pageinspect");
    assert!(frozen_rows("plain") > 0, "plain's rows are frozen");
    assert_eq!(frozen_rows("guarded"), 0, "guarded's rows are not");
    drop(target);
    db.psql(&format!("DROP OWNED BY {role}"));
    cluster()
        .client("postgres")
        .batch_execute(&format!("DROP ROLE {role}"))
        .expect("drop the test role");
}

/// The early post-data pass: while one session still loads the largest table, the first
/// session left without work builds the indexes of the tables loaded so far, in batches of
/// about an eighth of their rows. Here the largest table loads slowly on purpose (its
/// column's domain check sleeps on every row, except in the session that fills the
/// source), so the pass runs all its batches, one per mid-sized table, before that load
/// ends. Each batch writes its own pg_restore list: they once shared one name, and the
/// second batch failed with "File exists".
#[test]
fn the_early_post_data_pass_builds_every_batch_while_the_largest_table_loads() {
    let source = cluster().create_database();
    source.psql(
        "CREATE DOMAIN slow_int AS int CHECK (CASE WHEN current_setting('pgward.fill', true) = 'on' \
             THEN true ELSE pg_sleep(0.002)::text = '' END);
         CREATE TABLE big (id int, v slow_int, pad text);
         CREATE TABLE mid1 (id int, x int);
         CREATE TABLE mid2 (id int, x int);
         CREATE TABLE mid3 (id int, x int);
         CREATE INDEX mid1_x ON mid1 (x);
         CREATE INDEX mid2_x ON mid2 (x);
         CREATE INDEX mid3_x ON mid3 (x);
         SET pgward.fill = on;
         INSERT INTO big SELECT i, i, (SELECT string_agg(md5(random()::text || i || j), '') \
             FROM generate_series(1, 16) j) FROM generate_series(1, 3000) i;
         INSERT INTO mid1 SELECT i, i FROM generate_series(1, 20000) i;
         INSERT INTO mid2 SELECT i, i FROM generate_series(1, 20000) i;
         INSERT INTO mid3 SELECT i, i FROM generate_series(1, 20000) i;",
    );
    let root = temp_dir("pgward-early-pass-");
    let id = id_of(&backup_ok(&source, path_str(root.path()), &[]));
    let target = cluster().vacant_database();
    let from = format!("{}/{id}", path_str(root.path()));
    let restored = restore_into_new(&source, &from, &target, &["--jobs", "2"]);
    let load = &restored["load"];
    assert_eq!(
        load["post_data_early_items"], 3,
        "the three indexes, one batch each, were built while big loaded: {restored}"
    );
    for (table, rows) in [
        ("big", 3000),
        ("mid1", 20000),
        ("mid2", 20000),
        ("mid3", 20000),
    ] {
        let loaded = load["tables"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["table"] == format!("public.{table}")))
            .unwrap_or_else(|| panic!("{table} was loaded: {restored}"));
        assert_eq!(loaded["rows"], rows, "{restored}");
    }
    assert_eq!(
        count(
            &target,
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname IN ('mid1_x', 'mid2_x', 'mid3_x') AND i.indisvalid"
        ),
        3
    );
}
