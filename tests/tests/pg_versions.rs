//! Every PostgreSQL major pgward supports, 14 to 18 (docs/compatibility.md).
//!
//! Two kinds of test live here:
//! - `this_major_*` run on the major the harness runs (`PGWARD_TEST_PG`, else the
//!   machine's 15): `scripts/test.sh` runs them, with the other tests of the per-major
//!   subset, once for each of 14, 16, 17 and 18 after the full suite on 15.
//! - `upgrade_*`, `client_tools_*` and `restore_*` start clusters of named majors
//!   themselves (`Cluster::start_major`), whatever `PGWARD_TEST_PG` says: a backup taken on
//!   one major restored into a newer one, a restore into an older one refused, and the
//!   choice of pg_dump for a server. They need the majors `pgw_install test` puts under
//!   `target/pg`, and fail (never skip) without them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pgward_tests::{
    cluster, corpus_history, load_rich_fixture, path_str, restore_into_new_database, run, temp_dir,
    workspace_root, Cluster, Output, TestDb, TEST_PG_ENV,
};
use serde_json::{json, Value};

/// The corpus history that is part of the repository (tests/fixtures/corpus).
const CORPUS: &str = "langfuse__langfuse";

/// Where `pgw_install_pg` puts the 18 client programs (PostgreSQL's own build, with TLS).
fn client_18_bin() -> PathBuf {
    workspace_root().join("target/pg/client/bin")
}

fn backup_to(db: &TestDb, to: &Path, envs: &[(&str, &str)]) -> Output {
    run(
        "backup",
        &["backup", "--to", path_str(to), "--database-url", &db.url()],
        envs,
    )
}

fn backup_ok(db: &TestDb, to: &Path) -> (String, Value) {
    backed_up(&backup_to(db, to, &db.cluster().pg_tools_env()), to)
}

/// The id and manifest of the backup `out` (a successful backup run) wrote under `to`.
fn backed_up(out: &Output, to: &Path) -> (String, Value) {
    let envelope = out.assert_envelope(0);
    assert_eq!(envelope["ok"], true, "{out}");
    let id = envelope["result"]["id"]
        .as_str()
        .expect("the backup has an id")
        .to_string();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(to.join(&id).join("manifest.json")).expect("manifest.json is readable"),
    )
    .expect("manifest.json is JSON");
    (id, manifest)
}

/// `pgward-restore restore --from ROOT/ID` through `via` into the new database `into`
/// (`--create`), with `envs` (a PATH, a PGWARD_PG_BINDIR) instead of the cluster's tools.
fn restore_with(
    via: &TestDb,
    root: &Path,
    id: &str,
    into: &TestDb,
    envs: &[(&str, &str)],
) -> Output {
    run(
        "restore",
        &[
            "restore",
            "--from",
            &format!("{}/{id}", path_str(root)),
            "--database-url",
            &via.url(),
            "--target-db",
            &into.name,
            "--create",
        ],
        envs,
    )
}

/// The major of `version` (`18.4`, `pg_dump (PostgreSQL) 18.6`, `15.18 (Debian ...)`).
fn major_of(version: &str) -> u32 {
    version
        .split_whitespace()
        .find_map(|w| {
            let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or_else(|| panic!("no version number in {version:?}"))
}

fn server_major(db: &TestDb) -> u32 {
    let num: u32 = db
        .query_one_string("SELECT current_setting('server_version_num')")
        .parse()
        .expect("server_version_num is a number");
    num / 10_000
}

// ---------------------------------------------------------------------------------------
// On the major the harness runs
// ---------------------------------------------------------------------------------------

#[test]
fn this_major_is_the_one_pgward_test_pg_names() {
    let db = cluster().create_database();
    assert_eq!(server_major(&db), cluster().major, "the cluster's major");
    match std::env::var(TEST_PG_ENV) {
        Ok(value) if !value.trim().is_empty() => assert_eq!(
            cluster().major.to_string(),
            value.trim(),
            "{TEST_PG_ENV} names the major of every cluster the harness starts"
        ),
        _ => println!(
            "{TEST_PG_ENV} is unset: the machine's PostgreSQL {}",
            cluster().major
        ),
    }
    // What the binaries see: the same major, and a pg_dump at least as new.
    let root = temp_dir("pgver_this_");
    let out = backup_to(&db, root.path(), &[]);
    let envelope = out.assert_envelope(0);
    let id = envelope["result"]["id"].as_str().expect("an id");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(root.path().join(id).join("manifest.json")).expect("a manifest"),
    )
    .expect("JSON");
    assert_eq!(
        major_of(manifest["server_version"].as_str().expect("server_version")),
        cluster().major,
        "{manifest}"
    );
    assert!(
        major_of(
            manifest["pg_dump_version"]
                .as_str()
                .expect("pg_dump_version")
        ) >= cluster().major,
        "the binaries found a pg_dump at least as new as the server: {manifest}"
    );
}

#[test]
#[should_panic(expected = "PostgreSQL 13 is wanted")]
fn a_major_that_is_not_installed_fails_the_test_loudly() {
    Cluster::start_major(13);
}

/// Applies every migration of `dir` with psql, in name order, as Prisma's history is
/// applied (its `migration.sql` files hold plain SQL).
fn apply_with_psql(db: &TestDb, dir: &Path) {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the migrations folder is readable")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    assert!(folders.len() > 100, "the corpus is a long history");
    for folder in folders {
        let sql = std::fs::read_to_string(folder.join("migration.sql"))
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
        db.psql(&sql);
    }
}

#[test]
fn this_major_deploys_the_corpus_as_psql_does_and_status_and_drift_agree() {
    let corpus = corpus_history(CORPUS).expect("the langfuse history is in the repository");
    let dir = corpus.join("migrations");
    let ours = cluster().create_database();
    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--database-url",
            &ours.url(),
        ],
        &[],
    );
    assert_eq!(out.assert_envelope(0)["ok"], true, "{out}");
    let theirs = cluster().create_database();
    apply_with_psql(&theirs, &dir);
    let schema = |db: &TestDb| {
        db.pg_dump(&[
            "-s",
            "--no-owner",
            "--no-privileges",
            "-T",
            "_prisma_migrations",
        ])
    };
    let (expected, actual) = (schema(&theirs), schema(&ours));
    if expected != actual {
        panic!(
            "PostgreSQL {}: the schema deploy made differs from psql's:\n{}",
            cluster().major,
            pgward_tests::diff_lines(&expected, &actual).join("\n")
        );
    }

    let status = run(
        "migrate",
        &[
            "status",
            "--dir",
            path_str(&dir),
            "--database-url",
            &ours.url(),
        ],
        &[],
    );
    let status = status.assert_envelope(0);
    assert_eq!(status["result"]["up_to_date"], true, "{status}");
    assert_eq!(status["result"]["pending"], json!([]), "{status}");

    let drift = |db: &TestDb| {
        run(
            "validate",
            &[
                "drift",
                "--dir",
                path_str(&dir),
                "--database-url",
                &db.url(),
            ],
            &[],
        )
    };
    let clean = drift(&ours);
    let clean_envelope = clean.assert_envelope(0);
    assert_eq!(
        clean_envelope["result"]["differences"],
        json!([]),
        "{clean}"
    );

    ours.psql(
        "ALTER TABLE users ADD COLUMN pgward_drift text; \
         ALTER TABLE users ALTER COLUMN name SET DEFAULT 'drifted'",
    );
    let drifted = drift(&ours);
    let envelope = drifted.assert_envelope(3);
    let mut differences: Vec<(String, String)> = envelope["result"]["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("differences: {drifted}"))
        .iter()
        .map(|d| {
            (
                d["object"].as_str().unwrap_or_default().to_string(),
                d["change"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    differences.sort();
    assert_eq!(
        differences,
        [
            ("public.users.name".to_string(), "changed".to_string()),
            (
                "public.users.pgward_drift".to_string(),
                "extra_in_database".to_string()
            ),
        ],
        "{drifted}"
    );
}

#[test]
fn this_major_report_health_reads_its_catalogs() {
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g; ANALYZE t");
    let out = run("report", &["health", "--database-url", &db.url()], &[]);
    let envelope = out.assert_envelope(0);
    assert_eq!(
        envelope["ok"],
        true,
        "PostgreSQL {}: {out}",
        cluster().major
    );
    assert_eq!(envelope["result"]["totals"]["tables"], 1, "{out}");
}

// ---------------------------------------------------------------------------------------
// Upgrades: a backup of major N restored into a newer major
// ---------------------------------------------------------------------------------------

/// What a database holds, comparable across majors: every table's and materialized
/// view's rows (count and a hash of them in order), every sequence's value, and every
/// large object (owner-independent: its oid and an md5 of its bytes).
#[derive(Debug, PartialEq, Eq)]
struct Contents {
    tables: BTreeMap<String, String>,
    sequences: BTreeMap<String, String>,
    large_objects: Vec<(u32, String)>,
}

fn contents(db: &TestDb) -> Contents {
    let state = pgward_tests::state(db);
    let large_objects = db
        .client()
        .query(
            "SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid",
            &[],
        )
        .expect("the large objects can be read")
        .iter()
        .map(|r| (r.get::<_, u32>(0), r.get::<_, String>(1)))
        .collect();
    Contents {
        tables: state.tables,
        sequences: state.sequences,
        large_objects,
    }
}

/// The schema's objects, comparable across majors: every object of the database's own
/// (what pg_depend and pg_identify_object name), every column with its type, nullability
/// and default, every constraint and index (and the extensions by name: their own objects
/// are the new major's release of them). Not pg_dump's text: each major prints a view's
/// query its own way (16 and later leave out the table before a column that needs none),
/// and 18 keeps NOT NULL as constraints of their own (`contype 'n'`; the columns' lines
/// say it for every major).
fn structure(db: &TestDb) -> Vec<String> {
    let sql = "\
        SELECT 'object ' || i.type || ' ' || i.identity \
        FROM pg_class c, pg_identify_object('pg_class'::regclass, c.oid, 0) i \
        WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) \
          AND c.relnamespace::regnamespace::text NOT LIKE 'pg\\_%' \
        UNION ALL \
        SELECT format('column %s.%s %s %s default %s', a.attrelid::regclass, a.attname, \
                      format_type(a.atttypid, a.atttypmod), \
                      CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END, \
                      coalesce(pg_get_expr(d.adbin, d.adrelid), '-')) \
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
        WHERE a.attnum > 0 AND NOT a.attisdropped \
          AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) \
          AND c.relnamespace::regnamespace::text NOT LIKE 'pg\\_%' \
        UNION ALL \
        SELECT format('constraint %s on %s: %s', conname, conrelid::regclass, pg_get_constraintdef(oid)) \
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype <> 'n' \
        UNION ALL \
        SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index \
        WHERE indrelid::regclass::text NOT LIKE 'pg\\_%' \
          AND (SELECT relnamespace FROM pg_class WHERE oid = indrelid) = 'public'::regnamespace \
        UNION ALL \
        SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p \
        WHERE pronamespace = 'public'::regnamespace AND NOT EXISTS (SELECT 1 FROM pg_depend d \
          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') \
        UNION ALL \
        SELECT format('type %s %s', oid::regtype, typtype) FROM pg_type \
        WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd', 'c') \
        UNION ALL \
        SELECT format('trigger %s on %s', tgname, tgrelid::regclass) FROM pg_trigger WHERE NOT tgisinternal \
        UNION ALL \
        SELECT 'extension ' || extname FROM pg_extension \
        ORDER BY 1";
    db.client()
        .query(sql, &[])
        .expect("the catalogs can be read")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The rich fixture, with large objects and a sequence that has moved on.
fn load_upgrade_source(db: &TestDb) {
    load_rich_fixture(db);
    db.psql(
        "SELECT lo_from_bytea(0, convert_to(repeat('large object ' || g, 500), 'UTF8')) \
         FROM generate_series(1, 5) g; \
         SELECT lo_from_bytea(0, decode(repeat('00ff10', 100000), 'hex')); \
         CREATE SEQUENCE upgrade_counter START 1000 INCREMENT 7; \
         SELECT nextval('upgrade_counter') FROM generate_series(1, 13);",
    );
}

/// Backs up the rich fixture on `from`, restores it into a new database on `into`, and
/// asserts the data is identical (rows, sequences, large objects) and the schema too.
fn upgrade(from: u32, into: u32) {
    let old = Cluster::start_major(from);
    let new = Cluster::start_major(into);
    let source = old.create_database();
    assert_eq!(server_major(&source), from);
    load_upgrade_source(&source);
    let before = contents(&source);
    assert_eq!(before.large_objects.len(), 6, "{before:?}");
    let root = temp_dir("pgver_upgrade_");
    let (id, manifest) = backup_ok(&source, root.path());
    assert_eq!(
        major_of(manifest["server_version"].as_str().expect("server_version")),
        from,
        "the manifest records the source's server version: {manifest}"
    );
    assert!(
        major_of(
            manifest["pg_dump_version"]
                .as_str()
                .expect("pg_dump_version")
        ) >= from,
        "the manifest records the pg_dump used: {manifest}"
    );

    let via = new.create_database();
    let target = new.vacant_database();
    let from_arg = format!("{}/{id}", path_str(root.path()));
    let out = restore_into_new_database(&via, &from_arg, &target, &["--jobs", "2"]);
    let envelope = out.assert_envelope(0);
    assert_eq!(envelope["ok"], true, "{out}");
    assert_eq!(server_major(&target), into);
    let after = contents(&target);
    assert_eq!(
        before, after,
        "PostgreSQL {from} -> {into}: rows, sequences and large objects are identical"
    );
    let (old_schema, new_schema) = (structure(&source), structure(&target));
    assert!(old_schema.len() > 50, "{old_schema:?}");
    if old_schema != new_schema {
        panic!(
            "PostgreSQL {from} -> {into}: the schemas differ:\n{}",
            pgward_tests::diff_lines(&old_schema.join("\n"), &new_schema.join("\n")).join("\n")
        );
    }
    // The sequences go on where the source's did.
    assert_eq!(
        target.query_one_string("SELECT nextval('upgrade_counter')"),
        source.query_one_string("SELECT nextval('upgrade_counter')")
    );
}

#[test]
fn upgrade_14_to_18_by_backup_and_restore_keeps_every_row() {
    upgrade(14, 18);
}

#[test]
fn upgrade_15_to_17_by_backup_and_restore_keeps_every_row() {
    upgrade(15, 17);
}

#[test]
fn restore_into_an_older_major_is_refused_with_the_reason() {
    let newer = Cluster::start_major(17);
    let older = Cluster::start_major(16);
    let source = newer.create_database();
    source.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    let root = temp_dir("pgver_downgrade_");
    let (id, _) = backup_ok(&source, root.path());
    let via = older.create_database();
    let target = older.vacant_database();
    let from_arg = format!("{}/{id}", path_str(root.path()));
    let out = restore_into_new_database(&via, &from_arg, &target, &[]);
    let envelope = out.assert_error(6, "TARGET_SERVER_OLDER");
    let message = envelope["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("PostgreSQL 17") && message.contains("PostgreSQL 16"),
        "{out}"
    );
    assert!(
        envelope["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("PostgreSQL 17 or newer")),
        "{out}"
    );
    assert_eq!(
        envelope["error"]["details"],
        json!({"backup": id, "backup_major": 17, "pg_dump_major": null, "target_major": 16}),
        "{out}"
    );
    assert!(
        !older.database_exists(&target.name),
        "nothing was created on the older server"
    );
}

// ---------------------------------------------------------------------------------------
// Which pg_dump, pg_restore, psql
// ---------------------------------------------------------------------------------------

/// PATH made of `dirs` and the folders of the tools every test needs (sh, env, zstd).
fn path_of(dirs: &[&Path]) -> String {
    let mut all: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    all.extend([PathBuf::from("/usr/bin"), PathBuf::from("/bin")]);
    std::env::join_paths(all)
        .expect("the folders join")
        .into_string()
        .expect("UTF-8")
}

/// Client programs of PostgreSQL 15 (the machine's) in a folder of their own, so a PATH
/// can hold them without the newer ones.
fn system_15_bin() -> PathBuf {
    let fifteen = Cluster::start_major(15);
    fifteen.bin_dir.clone()
}

/// Asserts `out` is backup's PG_DUMP_FAILED refusal, its message holding each of `says`
/// and its hint `fix`.
fn assert_pg_dump_refused(out: &Output, says: &[&str], fix: &str) {
    let envelope = out.assert_error(1, "PG_DUMP_FAILED");
    let message = envelope["error"]["message"].as_str().expect("a message");
    for part in says {
        assert!(message.contains(part), "the message says {part:?}: {out}");
    }
    let hint = envelope["error"]["hint"].as_str().expect("a hint");
    assert!(hint.contains(fix), "the hint says {fix:?}: {out}");
}

#[test]
fn client_tools_older_than_the_server_are_refused_with_the_fix() {
    let eighteen = Cluster::start_major(18);
    let db = eighteen.create_database();
    let old_bin = system_15_bin();
    let root = temp_dir("pgver_tools_");
    // Set explicitly: refused, naming the setting.
    let out = backup_to(
        &db,
        root.path(),
        &[("PGWARD_PG_BINDIR", path_str(&old_bin))],
    );
    assert_pg_dump_refused(
        &out,
        &["older than the server (PostgreSQL 18)", "PGWARD_PG_BINDIR"],
        "PostgreSQL 18 or newer",
    );
    // Found: only a 15 on PATH and in the usual folders (this machine's /usr/lib/postgresql
    // holds 15 alone), so no pg_dump fits; refused before anything is written.
    let path = path_of(&[&old_bin]);
    let out = backup_to(&db, root.path(), &[("PATH", &path)]);
    // The error names what it found.
    assert_pg_dump_refused(
        &out,
        &[
            "no pg_dump of PostgreSQL 18 or newer is installed",
            "pg_dump (PostgreSQL) 15",
        ],
        "postgresql-client-18",
    );
    assert_eq!(
        std::fs::read_dir(root.path()).expect("the folder").count(),
        0,
        "nothing was written"
    );
}

#[test]
fn restore_of_a_backup_by_pg_dump_18_into_a_server_before_17_is_refused_with_the_reason() {
    let fourteen = Cluster::start_major(14);
    let source = fourteen.create_database();
    source.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    let root = temp_dir("pgver_timeout_");
    // pg_dump 18 can dump a 14 server, but what it writes sets transaction_timeout.
    let client_18 = client_18_bin();
    let out = backup_to(
        &source,
        root.path(),
        &[("PGWARD_PG_BINDIR", path_str(&client_18))],
    );
    let id = out.assert_envelope(0)["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let via = fourteen.create_database();
    let target = fourteen.vacant_database();
    let out = restore_with(
        &via,
        root.path(),
        &id,
        &target,
        &[("PGWARD_PG_BINDIR", path_str(&client_18))],
    );
    let envelope = out.assert_error(6, "TARGET_SERVER_OLDER");
    let message = envelope["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains("pg_dump 18") && message.contains("transaction_timeout"),
        "{out}"
    );
    assert_eq!(
        envelope["error"]["details"],
        json!({"backup": id, "backup_major": 17, "pg_dump_major": 18, "target_major": 14}),
        "{out}"
    );
    assert!(
        !fourteen.database_exists(&target.name),
        "nothing was created"
    );
}

/// Backs up a new database of `cluster` and restores it into another, both runs with
/// `path` as PATH (no PGWARD_PG_BINDIR): the backup's pg_dump must be of `expected_dump`,
/// and the restore (its pg_restore found the same way) must bring the rows back.
fn round_trip_with_path(cluster: &Cluster, path: &str, expected_dump: u32) {
    let db = cluster.create_database();
    db.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)");
    let root = temp_dir("pgver_pick_");
    let (id, manifest) = backed_up(&backup_to(&db, root.path(), &[("PATH", path)]), root.path());
    let server = major_of(manifest["server_version"].as_str().expect("server_version"));
    assert_eq!(server, cluster.major, "{manifest}");
    assert_eq!(
        major_of(
            manifest["pg_dump_version"]
                .as_str()
                .expect("pg_dump_version")
        ),
        expected_dump,
        "PostgreSQL {server}, PATH {path}: {manifest}"
    );
    let via = cluster.create_database();
    let target = cluster.vacant_database();
    let out = restore_with(&via, root.path(), &id, &target, &[("PATH", path)]);
    assert_eq!(out.assert_envelope(0)["ok"], true, "{out}");
    assert_eq!(target.query_one_string("SELECT count(*) FROM t"), "2");
}

#[test]
fn client_tools_the_closest_fitting_major_is_picked_for_the_server() {
    let old_bin = system_15_bin();
    // 18 first on PATH, 15 after it: a 14 server gets 15's pg_dump, whose backup restores
    // into 14 again (18's would not: see the test above), with 15's pg_restore.
    let path = path_of(&[&client_18_bin(), &old_bin]);
    round_trip_with_path(&Cluster::start_major(14), &path, 15);
    // 15 first on PATH, 18 after it: an 18 server gets 18's.
    let path = path_of(&[&old_bin, &client_18_bin()]);
    round_trip_with_path(&Cluster::start_major(18), &path, 18);
}

// ---------------------------------------------------------------------------------------
// The installs
// ---------------------------------------------------------------------------------------

#[test]
fn installing_the_majors_again_downloads_nothing() {
    // scripts/test.sh installed them before the tests ran; a second run finds every pinned
    // version in place (each download says `== installing ...` first).
    let out = std::process::Command::new("bash")
        .args(["-c", ". scripts/lib/install.sh && pgw_install_pg"])
        .current_dir(workspace_root())
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pgw_install_pg failed: {stderr}");
    assert!(
        !stderr.contains("== installing"),
        "a second run downloaded something: {stderr}"
    );
    for major in [14, 16, 17, 18] {
        let version = std::fs::read_to_string(
            workspace_root().join(format!("target/pg/{major}/.pgward-version")),
        )
        .expect("each major records its pinned version");
        assert!(
            version.starts_with(&format!("{major}.")),
            "{major}: {version}"
        );
    }
}
