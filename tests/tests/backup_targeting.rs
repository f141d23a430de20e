//! pgward acts on the backup and the database you meant (issue 15, points 5, 12 and 14):
//! in a location holding backups of several databases, `latest`, `--before-migration`,
//! `prune --keep-last`, `report backups` and preflight only ever consider the database in
//! question; `prune` never removes a backup still being written, and a backup whose files
//! are deleted under it fails instead of publishing; two S3 backups of one second get two
//! ids; a table dropped as the backup starts and a huge `--keep-days` are clean errors, not
//! panics. Every case runs against a local folder and the S3 server where storage matters.
//!
//! Crafted manifests and SQL backups are in `adversarial/manifests.rs`.

use std::path::Path;
use std::time::Duration;

use pgward_shared::storage::{self, Location, S3Options};
use pgward_tests::{
    cluster, env_refs, error_message, json_ids, next_second, path_str, run, s3, spawn, temp_dir,
    wait_child, wait_until, warning_codes, Migrations, Output, TestDb,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A backup location and the environment a run needs to reach it.
struct Place {
    location: String,
    env: Vec<(&'static str, String)>,
    /// The S3 bucket, for S3 places.
    bucket: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Place {
    fn local() -> Place {
        let dir = temp_dir("pgward-targeting");
        Place {
            location: path_str(dir.path()).to_string(),
            env: base_env(),
            bucket: None,
            _dir: Some(dir),
        }
    }

    fn s3(prefix: &str) -> Place {
        let server = s3();
        let bucket = server.new_bucket();
        let mut env = base_env();
        env.extend(server.env());
        Place {
            location: format!("s3://{bucket}/{prefix}"),
            env,
            bucket: Some(bucket),
            _dir: None,
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        run(tool, args, &env_refs(&self.env))
    }

    fn spawn(&self, tool: &str, args: &[&str]) -> std::process::Child {
        spawn(tool, args, &env_refs(&self.env))
    }

    /// A backup of `db` that must succeed: its id.
    fn backup(&self, db: &TestDb, extra: &[&str]) -> String {
        let url = db.url();
        let mut args = vec!["backup", "--to", &self.location, "--database-url", &url];
        args.extend_from_slice(extra);
        let out = self.run("backup", &args);
        out.assert_code(0);
        out.json()["result"]["id"]
            .as_str()
            .expect("an id")
            .to_string()
    }

    fn from(&self, id: &str) -> String {
        format!("{}/{id}", self.location)
    }

    /// `pgward-restore restore FROM... --database-url URL --target-db NEW --create`: the
    /// backup `from` picks, restored into a new database beside the URL's.
    fn restore_new(&self, from: &[&str], url: &str) -> (Output, TestDb<'static>) {
        let into = cluster().vacant_database();
        let mut args = vec!["restore"];
        args.extend_from_slice(from);
        args.extend(["--database-url", url, "--target-db", &into.name, "--create"]);
        (self.run("restore", &args), into)
    }

    fn list(&self) -> Value {
        let out = self.run("backup", &["list", "--from", &self.location]);
        out.assert_code(0);
        out.json()["result"].clone()
    }
}

fn base_env() -> Vec<(&'static str, String)> {
    cluster()
        .pg_tools_env()
        .map(|(k, v)| (k, v.to_string()))
        .to_vec()
}

/// `pgward-backup` sessions of `db` waiting on a lock (optionally running a query like
/// `pattern`).
fn waiting_backup_sessions(db: &TestDb, pattern: &str) -> i64 {
    cluster()
        .client("postgres")
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND application_name = 'pgward-backup' AND wait_event_type = 'Lock' AND query LIKE $2",
            &[&db.name, &pattern],
        )
        .expect("pg_stat_activity")
        .get(0)
}

/// Starts a backup of `db` into `place` and returns once one of its sessions waits on a
/// lock while running a query like `pattern` (someone else holds that lock).
fn spawn_backup_until_it_waits(
    place: &Place,
    db: &TestDb,
    pattern: &str,
    what: &str,
) -> std::process::Child {
    let url = db.url();
    let child = place.spawn(
        "backup",
        &["backup", "--to", &place.location, "--database-url", &url],
    );
    wait_until(Duration::from_secs(60), what, || {
        waiting_backup_sessions(db, pattern) > 0
    });
    child
}

// ---------------------------------------------------------------------------------------
// Point 5: only the database in question's backups are candidates
// ---------------------------------------------------------------------------------------

/// Backups of two databases in one location, the other database's newest (as after a
/// restore --clean's safety backup of it): nothing that chooses picks the other's.
fn selection_is_by_source_database(place: &Place) {
    let app = cluster().create_database();
    app.psql("CREATE TABLE mine (id int); INSERT INTO mine VALUES (1);");
    let other = cluster().create_database();
    other.psql("CREATE TABLE theirs (id int); INSERT INTO theirs VALUES (2);");
    let older = place.backup(&app, &[]);
    next_second();
    let mine = place.backup(&app, &[]);
    next_second();
    let theirs = place.backup(&other, &[]);
    let url = app.url();

    // restore --from LOCATION/latest into app itself: app's newest, not the newer one of
    // the other database.
    let latest = place.from("latest");
    let out = place.run(
        "restore",
        &[
            "restore",
            "--from",
            &latest,
            "--database-url",
            &url,
            "--clean",
            "--no-safety-backup",
        ],
    );
    out.assert_code(0);
    let result = &out.json()["result"];
    assert_eq!(
        result["backup"],
        mine.as_str(),
        "latest is app's newest, not {theirs}: {out}"
    );
    assert_eq!(result["source"]["database"], app.name.as_str(), "{out}");
    assert_eq!(result["other_database"], false, "{out}");
    assert_eq!(app.query_one_string("SELECT count(*) FROM mine"), "1");

    // Into another database, what latest picks must be named: the refusal names it.
    let (out, into) = place.restore_new(&["--from", &latest], &url);
    let json = out.assert_error(2, "USAGE");
    assert!(
        error_message(&json).contains(&mine) && !error_message(&json).contains(&theirs),
        "{out}"
    );
    assert!(
        json["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains(&place.from(&mine)),
        "the hint gives the --from to use: {out}"
    );
    // Named, it goes in, and the output says whose backup it is.
    let out = place.run(
        "restore",
        &[
            "restore",
            "--from",
            &place.from(&mine),
            "--database-url",
            &url,
            "--target-db",
            &into.name,
            "--create",
        ],
    );
    out.assert_code(0);
    assert_eq!(out.json()["result"]["other_database"], true, "{out}");
    assert!(
        warning_codes(&out.json()).contains(&"OTHER_DATABASE_BACKUP".to_string()),
        "{out}"
    );
    assert_eq!(into.query_one_string("SELECT count(*) FROM mine"), "1");

    // verify latest, with the database named.
    let out = place.run(
        "backup",
        &[
            "verify",
            "latest",
            "--from",
            &place.location,
            "--database-url",
            &url,
        ],
    );
    out.assert_code(0);
    assert_eq!(out.json()["result"]["id"], mine.as_str(), "{out}");
    // Without a database, `latest` of a location holding two is refused, naming both.
    let out = place.run("backup", &["verify", "latest", "--from", &place.location]);
    let json = out.assert_error(2, "USAGE");
    assert!(
        error_message(&json).contains(&app.name) && error_message(&json).contains(&other.name),
        "{out}"
    );

    // --before-migration: a migration no backup has applied picks app's newest (named in
    // the refusal to put it into another database).
    let (out, _into) = place.restore_new(
        &[
            "--from",
            &place.location,
            "--before-migration",
            "29990101000000_future",
        ],
        &url,
    );
    let json = out.assert_error(2, "USAGE");
    assert!(
        error_message(&json).contains(&mine) && !error_message(&json).contains(&theirs),
        "{out}"
    );

    // report backups: the verdict and the listing are app's.
    let out = place.run(
        "report",
        &["backups", "--from", &place.location, "--database-url", &url],
    );
    out.assert_code(0);
    let report = &out.json()["result"];
    assert_eq!(report["newest"]["id"], mine.as_str(), "{out}");
    assert_eq!(
        json_ids(&report["backups"]),
        vec![mine.clone(), older.clone()],
        "{out}"
    );

    // A database with no backup of its own gets none of the others', with their names.
    let lonely = cluster().create_database();
    let (out, _into) = place.restore_new(&["--from", &latest], &lonely.url());
    let json = out.assert_error(2, "BACKUP_NOT_FOUND");
    assert!(
        error_message(&json).contains(&app.name),
        "it names what is there: {out}"
    );
    assert!(
        json["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("by its id"),
        "{out}"
    );

    // Named by its id, a backup of another database restores, and says so.
    let (out, _into) = place.restore_new(&["--from", &place.from(&theirs)], &lonely.url());
    out.assert_code(0);
    assert_eq!(out.json()["result"]["other_database"], true, "{out}");
    assert_eq!(
        out.json()["result"]["source"]["database"],
        other.name.as_str(),
        "{out}"
    );
    assert!(
        warning_codes(&out.json()).contains(&"OTHER_DATABASE_BACKUP".to_string()),
        "{out}"
    );

    // prune applies its rules to the database in use only: with none in use, a location
    // holding several databases' backups is refused, naming them, and nothing is deleted.
    let out = place.run(
        "backup",
        &["prune", "--from", &place.location, "--keep-last", "1"],
    );
    let json = out.assert_error(2, "USAGE");
    assert!(
        error_message(&json).contains(&app.name) && error_message(&json).contains(&other.name),
        "{out}"
    );
    assert_eq!(json_ids(&place.list()["backups"]).len(), 3, "{out}");
    // With the other database in use, app's backups are not its to prune.
    let other_url = other.url();
    let out = place.run(
        "backup",
        &[
            "prune",
            "--from",
            &place.location,
            "--keep-last",
            "1",
            "--database-url",
            &other_url,
        ],
    );
    out.assert_code(0);
    assert_eq!(
        json_ids(&out.json()["result"]["deleted"]),
        Vec::<String>::new(),
        "{out}"
    );
    // --all-databases: --keep-last 1 keeps the newest of each database, not the newest
    // overall.
    let out = place.run(
        "backup",
        &[
            "prune",
            "--from",
            &place.location,
            "--keep-last",
            "1",
            "--all-databases",
        ],
    );
    out.assert_code(0);
    assert_eq!(
        json_ids(&out.json()["result"]["deleted"]),
        vec![older.clone()],
        "{out}"
    );
    let mut left = json_ids(&place.list()["backups"]);
    left.sort();
    let mut expected = vec![mine, theirs];
    expected.sort();
    assert_eq!(left, expected);
}

#[test]
fn local_selection_never_picks_a_backup_of_another_database() {
    selection_is_by_source_database(&Place::local());
}

#[test]
fn s3_selection_never_picks_a_backup_of_another_database() {
    selection_is_by_source_database(&Place::s3("shared/prefix"));
}

/// restore --clean of one database puts its safety backup beside the backups it restored
/// from; the next `restore --from LOCATION/latest` of the first database still restores
/// the first database's backup.
#[test]
fn a_safety_backup_of_another_database_is_never_the_next_latest() {
    let place = Place::local();
    let app = cluster().create_database();
    app.psql("CREATE TABLE mine (id int); INSERT INTO mine VALUES (1);");
    let staging = cluster().create_database();
    staging.psql("CREATE TABLE staged (id int);");
    let backup = place.backup(&app, &[]);
    next_second();
    let out = place.run(
        "restore",
        &[
            "restore",
            "--from",
            &place.from(&backup),
            "--database-url",
            &app.url(),
            "--target-db",
            &staging.name,
            "--clean",
        ],
    );
    out.assert_code(0);
    let safety = out.json()["result"]["safety_backup"]
        .as_str()
        .expect("a safety backup")
        .to_string();
    assert!(json_ids(&place.list()["backups"]).contains(&safety));
    // app's data is replaced by something else, then restored from latest.
    app.psql("DROP TABLE mine; CREATE TABLE wrong (id int);");
    let out = place.run(
        "restore",
        &[
            "restore",
            "--from",
            &place.from("latest"),
            "--database-url",
            &app.url(),
            "--clean",
            "--no-safety-backup",
        ],
    );
    out.assert_code(0);
    assert_eq!(
        out.json()["result"]["backup"],
        backup.as_str(),
        "not {safety}: {out}"
    );
    assert_eq!(app.query_one_string("SELECT count(*) FROM mine"), "1");
}

/// preflight's "recent verified backup" is one of the database being migrated.
#[test]
fn preflight_does_not_count_another_databases_verified_backup() {
    let place = Place::local();
    let app = cluster().create_database();
    let other = cluster().create_database();
    let theirs = place.backup(&other, &[]);
    place
        .run("backup", &["verify", &theirs, "--from", &place.location])
        .assert_code(0);
    let dir = Migrations::new(&[(
        "20260101000000_init",
        "CREATE TABLE t (id bigint PRIMARY KEY);\n",
    )]);
    let check = |db: &TestDb| -> String {
        let out = place.run(
            "validate",
            &[
                "preflight",
                "--dir",
                path_str(dir.path()),
                "--database-url",
                &db.url(),
                "--backups",
                &place.location,
            ],
        );
        let json = out.json();
        json["result"]["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "recent-verified-backup"))
            .map(|c| format!("{} {}", c["status"], c["detail"]))
            .unwrap_or_else(|| format!("absent: {out}"))
    };
    let mine = check(&app);
    assert!(
        mine.starts_with("\"fail\""),
        "app has no verified backup of its own: {mine}"
    );
    assert!(mine.contains(&app.name), "{mine}");
    let theirs_check = check(&other);
    assert!(theirs_check.starts_with("\"pass\""), "{theirs_check}");
}

// ---------------------------------------------------------------------------------------
// Point 12: prune and a backup still being written
// ---------------------------------------------------------------------------------------

/// A backup held at its very end (a session holds a lock on a sequence it reads last), with
/// every file but the manifest written: `prune --leftover-age 0s` leaves it alone, and it
/// then completes.
fn prune_leaves_a_running_backup_alone(place: &Place) {
    let db = cluster().create_database();
    db.psql(
        "CREATE SEQUENCE gate; CREATE TABLE t AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 20000) g;",
    );
    let mut gate = db.client();
    // A rename holds the sequence against the backup's read of it (the backup reads each
    // sequence as pg_dump does, which ALTER SEQUENCE RESTART does not block).
    gate.batch_execute("BEGIN; ALTER SEQUENCE gate RENAME TO gate_held")
        .expect("hold the sequence");
    let child = spawn_backup_until_it_waits(
        place,
        &db,
        "%last_value, is_called FROM%",
        "the backup waits to read the sequences",
    );
    std::thread::sleep(Duration::from_millis(1500));
    let listed = place.list();
    let incomplete = json_ids(&listed["running"]);
    assert_eq!(
        incomplete.len(),
        1,
        "list shows the backup being written: {listed}"
    );
    assert_eq!(listed["incomplete"], serde_json::json!([]), "{listed}");
    let out = place.run(
        "backup",
        &[
            "prune",
            "--from",
            &place.location,
            "--keep-last",
            "1",
            "--leftover-age",
            "0s",
        ],
    );
    out.assert_code(0);
    let result = &out.json()["result"];
    assert_eq!(
        json_ids(&result["leftovers_deleted"]),
        Vec::<String>::new(),
        "{out}"
    );
    assert_eq!(json_ids(&result["leftovers_running"]), incomplete, "{out}");
    gate.batch_execute("ROLLBACK")
        .expect("release the sequence");
    let out = wait_child(child);
    out.assert_code(0);
    let id = out.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    assert_eq!(id, incomplete[0]);
    place
        .run("backup", &["verify", &id, "--from", &place.location])
        .assert_code(0);
}

#[test]
fn local_prune_leaves_a_running_backup_alone() {
    prune_leaves_a_running_backup_alone(&Place::local());
}

#[test]
fn s3_prune_leaves_a_running_backup_alone() {
    prune_leaves_a_running_backup_alone(&Place::s3("running"));
}

/// A table big enough for many small chunks read by one worker: time between files.
fn slow_source() -> TestDb<'static> {
    let db = cluster().create_database();
    db.psql(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('y', 200) AS pad FROM generate_series(1, 300000) g;",
    );
    db
}

/// Starts a backup of `db` into `place` with one worker and 1 MiB chunks: slow enough to
/// act on while it writes.
fn spawn_slow_backup(place: &Place, db: &TestDb) -> std::process::Child {
    let url = db.url();
    place.spawn(
        "backup",
        &[
            "backup",
            "--to",
            &place.location,
            "--database-url",
            &url,
            "--jobs",
            "1",
            "--chunk-mib",
            "1",
        ],
    )
}

/// Deleting a local backup's folder while it is written (after its first data file)
/// makes the backup fail with BACKUP_REMOVED_WHILE_WRITING; nothing is published.
#[test]
fn local_a_backup_whose_folder_is_deleted_fails() {
    let place = Place::local();
    let root = Path::new(&place.location).to_path_buf();
    let db = slow_source();
    let child = spawn_slow_backup(&place, &db);
    let partial = || -> Option<std::path::PathBuf> {
        std::fs::read_dir(&root)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("data").is_dir())
    };
    wait_until(
        Duration::from_secs(60),
        "the backup writes its data",
        || {
            partial().is_some_and(|p| {
                std::fs::read_dir(p.join("data"))
                    .map(|d| d.count())
                    .unwrap_or(0)
                    >= 2
            })
        },
    );
    let folder = partial().expect("the folder being written");
    std::fs::remove_dir_all(&folder).expect("delete the folder under the backup");
    let out = wait_child(child);
    let json = out.assert_error(5, "BACKUP_REMOVED_WHILE_WRITING");
    assert!(error_message(&json).contains("not published"), "{out}");
    assert_eq!(json_ids(&place.list()["backups"]), Vec::<String>::new());
}

/// The same on S3: the prefix's objects deleted while the backup runs.
#[test]
fn s3_a_backup_whose_prefix_is_deleted_fails() {
    let place = Place::s3("vanish");
    let server = s3();
    let bucket = place.bucket.clone().expect("a bucket");
    let db = slow_source();
    let child = spawn_slow_backup(&place, &db);
    wait_until(Duration::from_secs(60), "the backup uploads data", || {
        server
            .keys(&bucket, "")
            .iter()
            .filter(|k| k.contains("/data/"))
            .count()
            >= 2
    });
    for key in server.keys(&bucket, "") {
        server.delete(&bucket, &key);
    }
    let out = wait_child(child);
    out.assert_error(5, "BACKUP_REMOVED_WHILE_WRITING");
    assert!(
        server
            .keys(&bucket, "")
            .iter()
            .all(|k| !k.ends_with("/manifest.json")),
        "no manifest was published"
    );
}

// ---------------------------------------------------------------------------------------
// Point 14: smaller ones
// ---------------------------------------------------------------------------------------

/// Two S3 backups of one database started in the same second, before either has written
/// a file, get two ids (a local folder already did); so do two racing for one id.
#[test]
fn s3_backups_of_one_second_never_share_a_prefix() {
    let server = s3();
    let bucket = server.new_bucket();
    for (key, value) in server.env() {
        if key == "AWS_ENDPOINT_URL" {
            continue;
        }
        // Only the storage layer in this process reads these (see storage_s3.rs).
        std::env::set_var(key, value);
    }
    let open = || {
        storage::open(
            &Location::S3 {
                bucket: bucket.clone(),
                prefix: "same-second".into(),
            },
            &S3Options {
                endpoint: Some(server.endpoint()),
                ..S3Options::default()
            },
        )
        .expect("open the bucket")
    };
    let store = open();
    let id = "app-default-20260101T000000Z";
    let first = store.begin(id).expect("begin");
    let second = store.begin(id).expect("begin again");
    assert_ne!(first.id(), second.id(), "two writers, one prefix");
    first.abort();
    second.abort();

    // Racing: every writer that starts at once gets an id of its own.
    let id = "app-default-20260102T000000Z";
    let start = std::sync::Barrier::new(4);
    let chosen = std::sync::Barrier::new(4);
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = open();
                let (start, chosen) = (&start, &chosen);
                scope.spawn(move || {
                    start.wait();
                    let writer = store.begin(id).expect("begin");
                    let taken = writer.id().to_string();
                    // Keep it open until every writer has chosen (an id given back by
                    // an abort is free again, rightly).
                    chosen.wait();
                    writer.abort();
                    taken
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "one id each: {ids:?}");
}

/// A table dropped after the backup's snapshot was taken (the DROP committed while the
/// backup waited to size it) is a clean error naming it, not a panic.
#[test]
fn a_table_dropped_as_the_backup_starts_is_a_clean_error() {
    let place = Place::local();
    let db = cluster().create_database();
    db.psql("CREATE TABLE doomed (id int); CREATE TABLE kept (id int);");
    let mut dropper = db.client();
    dropper
        .batch_execute("BEGIN; DROP TABLE doomed")
        .expect("drop, uncommitted");
    let child = spawn_backup_until_it_waits(
        &place,
        &db,
        "%pg_relation_size%",
        "the backup waits on the dropped table",
    );
    dropper.batch_execute("COMMIT").expect("commit the drop");
    let out = wait_child(child);
    let json = out.assert_error(1, "QUERY_FAILED");
    assert!(
        error_message(&json).contains("doomed") && error_message(&json).contains("dropped"),
        "{out}"
    );
    assert!(!out.stderr.contains("panicked"), "{out}");
}

/// `prune --keep-days` beyond what a date can count keeps every backup; no panic.
#[test]
fn prune_with_a_huge_keep_days_keeps_everything() {
    let place = Place::local();
    let db = cluster().create_database();
    let id = place.backup(&db, &[]);
    for days in ["18446744073709551615", "106751991167300"] {
        let out = place.run(
            "backup",
            &["prune", "--from", &place.location, "--keep-days", days],
        );
        out.assert_code(0);
        assert_eq!(
            json_ids(&out.json()["result"]["kept"]),
            vec![id.clone()],
            "{out}"
        );
    }
}

/// verify writes verified.json through a temporary file: one planted in the backup as a
/// symlink to a file elsewhere is removed, never written through (the file is created
/// with O_EXCL).
#[test]
fn verify_never_writes_through_a_planted_temporary_file() {
    let place = Place::local();
    let db = cluster().create_database();
    let id = place.backup(&db, &[]);
    let outside = temp_dir("pgward-targeting-outside");
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "untouched").expect("write");
    let planted = Path::new(&place.location).join(&id).join("verified.tmp");
    std::os::unix::fs::symlink(&victim, &planted).expect("plant a symlink");
    place
        .run("backup", &["verify", &id, "--from", &place.location])
        .assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "untouched",
        "the file the symlink pointed to was not written"
    );
    assert!(Path::new(&place.location)
        .join(&id)
        .join("verified.json")
        .is_file());
}

// ---------------------------------------------------------------------------------------
// Work databases of concurrent runs
// ---------------------------------------------------------------------------------------

/// A run's scratch database has no session on it between its creation and its loader's
/// first connection. Another `verify --deep`'s cleanup took it for a killed run's leftover
/// then and dropped it under the run. A work database whose creating session is still
/// connected is never a leftover; once that session is gone, it is.
#[test]
fn a_work_database_whose_creator_is_still_connected_is_never_dropped_as_a_leftover() {
    let place = Place::local();
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let id = place.backup(&db, &[]);
    let url = db.url();

    let mut creator = cluster().client("postgres");
    let row = creator
        .query_one(
            "SELECT pg_backend_pid(), floor(extract(epoch FROM backend_start) * 1000000)::bigint \
             FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("this session's id");
    let (pid, start): (i32, i64) = (row.get(0), row.get(1));
    let name = format!("pgward_verify_{pid}_000000");
    creator
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .expect("created");
    creator
        .batch_execute(&format!(
            "COMMENT ON DATABASE \"{name}\" IS 'pgward work in progress: scratch database of a \
             run that is still going (started 2026-01-01T00:00:00Z; creating session {pid}:{start})'"
        ))
        .expect("marked");
    let exists = |name: &str| cluster().database_exists(name);
    let deep = || {
        place.run(
            "backup",
            &[
                "verify",
                &id,
                "--from",
                &place.location,
                "--deep",
                "--database-url",
                &url,
            ],
        )
    };
    let out = deep();
    out.assert_code(0);
    assert!(exists(&name), "the running run's database was kept: {out}");

    drop(creator);
    wait_until(
        Duration::from_secs(20),
        "the creating session is gone",
        || {
            cluster()
                .client("postgres")
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                    &[&pid],
                )
                .expect("pg_stat_activity")
                .get::<_, i64>(0)
                == 0
        },
    );
    let out = deep();
    out.assert_code(0);
    assert!(!exists(&name), "a killed run's leftover is dropped: {out}");
}

/// `pgward-restore --from LOCATION/ID ...` restores without the `restore` word, as
/// `pgward-restore restore --from ...` (kept for existing scripts) does.
#[test]
fn restore_works_without_repeating_its_name() {
    let place = Place::local();
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 7);");
    let id = place.backup(&db, &[]);
    let target = cluster().vacant_database();
    let url = db.url();
    let from = place.from(&id);
    let out = place.run(
        "restore",
        &[
            "--from",
            &from,
            "--database-url",
            &url,
            "--target-db",
            &target.name,
            "--create",
        ],
    );
    out.assert_code(0);
    assert_eq!(out.json()["command"], "restore", "{out}");
    assert_eq!(target.query_one_string("SELECT count(*) FROM t"), "7");
}

/// `pgward-backup --to LOCATION` backs up without the `backup` word (`pgward-backup backup
/// --to ...` still works); backup options beside another command are refused, not ignored.
#[test]
fn backup_works_without_repeating_its_name() {
    let place = Place::local();
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let url = db.url();
    let out = place.run("backup", &["--to", &place.location, "--database-url", &url]);
    out.assert_code(0);
    assert_eq!(out.json()["command"], "backup", "{out}");
    let id = out.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    assert_eq!(json_ids(&place.list()["backups"]), vec![id], "{out}");
    let out = place.run(
        "backup",
        &["--jobs", "3", "list", "--from", &place.location],
    );
    out.assert_error(2, "USAGE");
}
