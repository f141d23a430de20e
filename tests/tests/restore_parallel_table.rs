//! With four sessions or more (`--jobs 4`), a table that is most of a backup's data is
//! loaded by every restore session at once, one chunk per session and transaction (issue
//! 19: one session loading it left the others idle); with fewer it loads whole. These
//! tests take backups cut into 1 MiB chunks, so that such a table has many, and check
//! that the split load restores exactly what the source holds (row counts and checksums
//! checked, every table's rows compared), that a corrupt chunk in the middle of it fails
//! the restore with BACKUP_CORRUPT and leaves no target behind, and that a restore
//! killed while it loads leaves nothing the next run trusts.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use pgward_tests::{
    assert_same_state, cluster, error_message, json_ids, path_str, restore_after_a_killed_run, run,
    spawn, state, temp_dir, wait_child, wait_until, Output, TestDb,
};
use serde_json::Value;

/// A source whose table `big` (about 12 MB, one foreign key, two indexes) is nearly all
/// of its data, beside two small tables.
fn source() -> TestDb<'static> {
    let db = cluster().create_database();
    db.psql(
        "CREATE TABLE owners (id integer PRIMARY KEY, name text NOT NULL); \
         INSERT INTO owners SELECT g, 'owner ' || g FROM generate_series(1, 50) AS g; \
         CREATE TABLE big (id bigint PRIMARY KEY, owner integer NOT NULL REFERENCES owners, \
           body text NOT NULL, at timestamptz NOT NULL); \
         INSERT INTO big SELECT g, 1 + g % 50, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text), \
           timestamptz '2026-01-01' + g * interval '1 second' FROM generate_series(1, 80000) AS g; \
         CREATE INDEX big_owner ON big (owner); \
         CREATE INDEX big_at ON big (at); \
         CREATE TABLE tiny (id integer PRIMARY KEY); INSERT INTO tiny VALUES (1), (2), (3);",
    );
    db
}

/// Backs `db` up into `root` in 1 MiB chunks; the backup's id.
fn backup_in_small_chunks(db: &TestDb, root: &Path) -> String {
    let url = db.url();
    let out = run(
        "backup",
        &[
            "backup",
            "--to",
            path_str(root),
            "--database-url",
            &url,
            "--chunk-mib",
            "1",
        ],
        &cluster().pg_tools_env(),
    );
    out.assert_code(0);
    out.json()["result"]["id"]
        .as_str()
        .expect("the backup's id")
        .to_string()
}

/// The data files of table `name` in the manifest of backup `id` under `root`.
fn chunk_files(root: &Path, id: &str, name: &str) -> Vec<String> {
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(root.join(id).join("manifest.json")).expect("manifest.json is readable"),
    )
    .expect("manifest.json is JSON");
    manifest["tables"]
        .as_array()
        .expect("manifest.tables")
        .iter()
        .filter(|t| t["name"] == name)
        .flat_map(|t| t["chunks"].as_array().expect("chunks").clone())
        .map(|c| c["file"].as_str().expect("a file").to_string())
        .collect()
}

/// `pgward-restore restore --from FROM --database-url (via) EXTRA...`
fn restore_args<'a>(url: &'a str, from: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["restore", "--from", from, "--database-url", url];
    args.extend_from_slice(extra);
    args
}

fn restore(via: &TestDb, from: &str, extra: &[&str]) -> Output {
    let url = via.url();
    run(
        "restore",
        &restore_args(&url, from, extra),
        &cluster().pg_tools_env(),
    )
}

/// The database a restore into `target` loads under until it is complete.
fn partial_of(target: &str) -> String {
    format!("pgward_restoring_{target}")
}

/// The load report's entry for table `public.NAME`.
fn table_load<'v>(result: &'v Value, name: &str) -> &'v Value {
    result["load"]["tables"]
        .as_array()
        .expect("load.tables")
        .iter()
        .find(|t| t["table"] == format!("public.{name}"))
        .unwrap_or_else(|| panic!("{name} is in the load report: {result}"))
}

/// The number of transactions that wrote `big`'s rows in `db`.
fn writing_transactions(db: &TestDb) -> i64 {
    db.query_one_string("SELECT count(DISTINCT xmin::text) FROM big")
        .parse()
        .expect("a count")
}

#[test]
fn a_table_that_is_most_of_the_data_loads_chunk_by_chunk_on_every_session_and_restores_exactly() {
    let source = source();
    let root = temp_dir("restore_split_");
    let id = backup_in_small_chunks(&source, root.path());
    let chunks = chunk_files(root.path(), &id, "big");
    assert!(chunks.len() >= 6, "big is cut into many chunks: {chunks:?}");
    let from = format!("{}/{id}", path_str(root.path()));
    let expected = state(&source);

    // Into a new database (each file checked as it loads) and into an existing empty one
    // (every file checked first): both split big, and both end equal to the source.
    let new = cluster().vacant_database();
    let out = restore(
        &source,
        &from,
        &["--target-db", &new.name, "--create", "--jobs", "4"],
    );
    out.assert_code(0);
    let created = out.json()["result"].clone();
    let empty = cluster().create_database();
    let out = restore(&source, &from, &["--target-db", &empty.name, "--jobs", "4"]);
    out.assert_code(0);
    let in_place = out.json()["result"].clone();
    for (result, target) in [(&created, &new), (&in_place, &empty)] {
        let big = table_load(result, "big");
        assert_eq!(big["rows"], 80_000, "{result}");
        assert_eq!(big["expected_rows"], 80_000, "{result}");
        assert_eq!(
            big["frozen"], false,
            "big was split: plain COPY per chunk\n{result}"
        );
        assert_eq!(
            table_load(result, "tiny")["frozen"],
            true,
            "a small table still loads whole with COPY FREEZE\n{result}"
        );
        assert_eq!(
            writing_transactions(target),
            chunks.len() as i64,
            "one transaction per chunk of big"
        );
        assert_same_state(&expected, &state(target), "the restored database");
        // The foreign key and the indexes were built over the whole table.
        assert_eq!(
            target.query_one_string(
                "SELECT count(*) FROM pg_index WHERE indrelid = 'big'::regclass AND indisvalid"
            ),
            "3"
        );
    }
    assert_eq!(created["verify_depth"], "while_loading", "{created}");
    assert_ne!(
        in_place["verify_depth"], "while_loading",
        "checked first\n{in_place}"
    );

    // Two sessions (fewer than four): a split would cost more than it gains, so big
    // loads whole, frozen, in one transaction.
    let two = cluster().vacant_database();
    let out = restore(
        &source,
        &from,
        &["--target-db", &two.name, "--create", "--jobs", "2"],
    );
    out.assert_code(0);
    let result = out.json()["result"].clone();
    assert_eq!(table_load(&result, "big")["frozen"], true, "{result}");
    assert_eq!(writing_transactions(&two), 1);
    assert_same_state(
        &expected,
        &state(&two),
        "the database restored on two sessions",
    );
}

#[test]
fn a_corrupt_chunk_in_the_middle_of_a_split_table_fails_the_restore_and_leaves_no_target() {
    let source = source();
    let root = temp_dir("restore_split_corrupt_");
    let id = backup_in_small_chunks(&source, root.path());
    let chunks = chunk_files(root.path(), &id, "big");
    assert!(chunks.len() >= 6, "big is cut into many chunks: {chunks:?}");
    // A chunk in the middle: the sessions have committed chunks of big before it.
    let bad = chunks[chunks.len() / 2].clone();
    let path = root.path().join(&id).join(&bad);
    let mut bytes = std::fs::read(&path).expect("the chunk is readable");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).expect("the chunk is writable");
    let from = format!("{}/{id}", path_str(root.path()));

    // A new target: found while loading; what was loading is dropped, no target appears.
    let target = cluster().vacant_database();
    let out = restore(
        &source,
        &from,
        &["--target-db", &target.name, "--create", "--jobs", "4"],
    );
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert_eq!(
        json_ids(&json["error"]["details"]["files"]),
        vec![bad.clone()],
        "the error names the chunk\n{out}"
    );
    assert!(error_message(&json).contains(&bad), "{out}");
    assert_eq!(json["result"]["created"], false, "{out}");
    assert!(
        !cluster().database_exists(&target.name),
        "the target never appears\n{out}"
    );
    assert!(
        !cluster().database_exists(&partial_of(&target.name)),
        "nor what it was loading into\n{out}"
    );

    // An existing empty target: every checksum is read before it is touched.
    let empty = cluster().create_database();
    let out = restore(&source, &from, &["--target-db", &empty.name, "--jobs", "4"]);
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert_eq!(
        json_ids(&json["error"]["details"]["files"]),
        vec![bad.clone()],
        "{out}"
    );
    assert_eq!(
        empty.query_one_string(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        ),
        "0",
        "the existing target was left untouched\n{out}"
    );
}

/// Kills `child` with SIGKILL and reaps it.
fn kill9(child: Child) -> Output {
    // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let out = wait_child(child);
    assert_eq!(out.code, 128 + 9, "the run died of SIGKILL\n{out}");
    out
}

#[test]
fn a_restore_killed_while_a_split_table_loads_leaves_nothing_the_next_run_trusts() {
    let source = cluster().create_database();
    // About 60 MB in 1 MiB chunks: long enough to be killed with chunks committed and
    // more to come, on any machine.
    source.psql(
        "CREATE TABLE big (id bigint PRIMARY KEY, body text NOT NULL); \
         INSERT INTO big SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, 250000) AS g; \
         CREATE TABLE tiny (id integer PRIMARY KEY); INSERT INTO tiny VALUES (1);",
    );
    let root = temp_dir("restore_split_killed_");
    let id = backup_in_small_chunks(&source, root.path());
    let chunks = chunk_files(root.path(), &id, "big");
    assert!(
        chunks.len() >= 20,
        "big is cut into many chunks: {chunks:?}"
    );
    let from = format!("{}/{id}", path_str(root.path()));
    let target = cluster().vacant_database();
    let partial = partial_of(&target.name);
    let url = source.url();
    let args = restore_args(
        &url,
        &from,
        &["--target-db", &target.name, "--create", "--jobs", "4"],
    );

    let child = spawn("restore", &args, &cluster().pg_tools_env());
    // Killed once some of big's chunks are committed: half a table is in the database.
    let mut committed = 0i64;
    wait_until(
        Duration::from_secs(120),
        "the restore has committed some of big's chunks",
        || {
            committed = cluster()
                .try_psql(
                    &cluster().socket_conninfo(&partial),
                    "SELECT count(*) FROM big",
                )
                .ok()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            committed > 0
        },
    );
    kill9(child);
    assert!(
        committed < 250_000,
        "killed before big was whole ({committed} rows)"
    );
    assert!(
        !cluster().database_exists(&target.name),
        "the target never appears half-restored"
    );
    assert!(
        cluster().database_exists(&partial),
        "what it was loading into is left, marked"
    );

    // The next run drops that leftover once the killed run's sessions are gone, and
    // restores the table whole.
    let out = restore_after_a_killed_run(&partial, &args);
    let result = out.json()["result"].clone();
    assert_eq!(table_load(&result, "big")["frozen"], false, "{result}");
    assert_same_state(&state(&source), &state(&target), "the restored database");
}
