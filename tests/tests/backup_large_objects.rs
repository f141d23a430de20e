//! End-to-end tests of large objects (`lo_create`, `lo_from_bytea`: `pg_largeobject` and
//! `pg_largeobject_metadata`) through pgward-backup and pgward-restore: round trips in the
//! directory format (local folder and S3) and the sql format, with an empty one, one of
//! several MiB, one owned by another role with SELECT granted to a third, and one with a
//! comment; `--no-large-objects` on either side; `--tables`; `restore --clean` and its
//! safety backup; a target holding nothing but large objects; a role that may not read
//! them; a damaged large-objects file.
//!
//! "Equal" means every large object's oid, owner, ACL, comment, size and MD5 of its
//! contents, and the tables' rows and schema ([`state`]). Crafted manifests are in
//! `adversarial/large_objects.rs`.

use std::path::Path;

use std::time::Duration;

use pgward_tests::{
    assert_same_state, cluster, env_refs, error_message, json_ids, path_str,
    restore_into_new_database_with, run, s3, spawn, state, temp_dir, wait_child, wait_until,
    warning_codes, Output, TestDb,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Roles made for one test, dropped when it ends (declared before the databases, so
/// dropped after them: a role owning a large object in a live database cannot go).
struct Roles(Vec<String>);

impl Roles {
    /// `n` roles named after `db`, `<db>_lo_<i>`.
    fn new(db: &TestDb, n: usize) -> Roles {
        let names: Vec<String> = (0..n).map(|i| format!("{}_lo_{i}", db.name)).collect();
        let mut admin = cluster().client("postgres");
        for name in &names {
            admin
                .batch_execute(&format!(
                    "CREATE ROLE {name} LOGIN PASSWORD '{}'",
                    Roles::password(name)
                ))
                .expect("the test role can be created");
        }
        Roles(names)
    }

    fn name(&self, i: usize) -> &str {
        &self.0[i]
    }

    /// `db`'s URL logging in as `role` (one of these) instead of the superuser.
    fn url(role: &str, db: &TestDb) -> String {
        db.url().replacen(
            &format!(
                "{}:{}",
                pgward_tests::SUPERUSER,
                pgward_tests::SUPERUSER_PASSWORD
            ),
            &format!("{role}:{}", Roles::password(role)),
            1,
        )
    }

    fn password(role: &str) -> String {
        format!("lo-role-pw-{}", role.len())
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        // After a failure the roles stay: the cluster is thrown away with the process.
        if std::thread::panicking() {
            return;
        }
        let mut admin = cluster().client("postgres");
        for name in &self.0 {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {name}"));
        }
    }
}

/// Five large objects and a table that points at them: 4001 empty, 4002 of about 6 MiB,
/// 4003 owned by `owner` with SELECT granted to `reader`, 4004 with a comment, and one
/// whose oid the server picked.
fn large_object_fixture(db: &TestDb, owner: &str, reader: &str) {
    db.psql(&format!(
        "CREATE TABLE docs (id integer PRIMARY KEY, title text NOT NULL, body oid); \
         SELECT lo_create(4001); \
         SELECT lo_from_bytea(4002, convert_to(string_agg(md5(g::text), '' ORDER BY g), 'UTF8')) \
           FROM generate_series(1, 200000) AS g; \
         SELECT lo_from_bytea(4003, '\\x00ff00ff01'::bytea); \
         ALTER LARGE OBJECT 4003 OWNER TO {owner}; \
         GRANT SELECT ON LARGE OBJECT 4003 TO {reader}; \
         SELECT lo_from_bytea(4004, convert_to('the signed contract', 'UTF8')); \
         COMMENT ON LARGE OBJECT 4004 IS 'contract, signed'; \
         INSERT INTO docs SELECT 5, 'picked', lo_from_bytea(0, 'server-picked oid'); \
         INSERT INTO docs VALUES (1, 'empty', 4001), (2, 'big', 4002), (3, 'owned', 4003), \
                                 (4, 'commented', 4004);"
    ));
    assert_eq!(
        db.query_one_string("SELECT length(lo_get(4002))"),
        "6400000",
        "the big one is several MiB"
    );
}

/// Every large object of `db`, one line each: oid, owner, ACL, comment, size, MD5.
fn large_objects(db: &TestDb) -> Vec<String> {
    let text = db.query_one_string(
        "SELECT coalesce(string_agg(format('%s owner=%s acl=%s comment=%s size=%s md5=%s', \
                    m.oid, m.lomowner::regrole, coalesce(m.lomacl::text, '-'), \
                    coalesce(obj_description(m.oid, 'pg_largeobject'), '-'), \
                    length(lo_get(m.oid)), md5(lo_get(m.oid))), E'\\n' ORDER BY m.oid), '') \
         FROM pg_largeobject_metadata m",
    );
    text.lines().map(str::to_string).collect()
}

/// Runs `pgward-<tool> ARGS` with the cluster's client tools and `extra_env`.
fn run_tool(tool: &str, args: &[&str], extra_env: &[(&'static str, String)]) -> Output {
    let mut env: Vec<(&'static str, &str)> = cluster().pg_tools_env().to_vec();
    env.extend(env_refs(extra_env));
    run(tool, args, &env)
}

/// `pgward-backup backup --to TO --database-url URL EXTRA...`
fn backup(url: &str, to: &str, extra: &[&str], env: &[(&'static str, String)]) -> Output {
    let mut args = vec!["backup", "--to", to, "--database-url", url];
    args.extend_from_slice(extra);
    run_tool("backup", &args, env)
}

/// A backup of `db` that must succeed: its JSON envelope.
fn backup_ok(db: &TestDb, to: &str, extra: &[&str], env: &[(&'static str, String)]) -> Value {
    let out = backup(&db.url(), to, extra, env);
    out.assert_code(0);
    out.json()
}

/// The arguments of `pgward-restore restore --from FROM --database-url URL EXTRA...`.
fn restore_args<'a>(url: &'a str, from: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["restore", "--from", from, "--database-url", url];
    args.extend_from_slice(extra);
    args
}

/// `pgward-restore restore --from FROM --database-url URL(via) EXTRA...`
fn restore(via: &TestDb, from: &str, extra: &[&str], env: &[(&'static str, String)]) -> Output {
    let url = via.url();
    run_tool("restore", &restore_args(&url, from, extra), env)
}

/// Restores `from` into the new database `into` (`--target-db --create`): the envelope.
fn restore_new(
    via: &TestDb,
    from: &str,
    into: &TestDb,
    extra: &[&str],
    env: &[(&'static str, String)],
) -> Value {
    let out = restore_into_new_database_with(via, from, into, extra, &env_refs(env));
    out.assert_code(0);
    let json = out.json();
    assert_eq!(json["result"]["created"], true, "{out}");
    json
}

/// The id in a backup envelope.
fn id_of(envelope: &Value) -> String {
    envelope["result"]["id"]
        .as_str()
        .expect("a backup id")
        .to_string()
}

/// A local backup's manifest.json.
fn manifest(root: &Path, id: &str) -> Value {
    serde_json::from_slice(
        &std::fs::read(root.join(id).join("manifest.json")).expect("manifest.json is readable"),
    )
    .expect("manifest.json is JSON")
}

/// The message of the envelope's warning `code`.
fn warning(envelope: &Value, code: &str) -> String {
    envelope["warnings"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["code"] == code))
        .and_then(|w| w["message"].as_str())
        .unwrap_or_else(|| panic!("a {code} warning in {envelope}"))
        .to_string()
}

/// A source database with [`large_object_fixture`], its roles, and a folder for backups.
/// Fields drop in order: the database before the roles that own its large objects.
struct Source {
    db: TestDb<'static>,
    roles: Roles,
    root: tempfile::TempDir,
}

impl Source {
    fn new(prefix: &str) -> Source {
        let db = cluster().create_database();
        let roles = Roles::new(&db, 2);
        large_object_fixture(&db, roles.name(0), roles.name(1));
        Source {
            db,
            roles,
            root: temp_dir(prefix),
        }
    }

    /// The backup folder, as `--to`/`--from` take it.
    fn to(&self) -> &str {
        path_str(self.root.path())
    }
}

const NO_ENV: &[(&str, String)] = &[];

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

#[test]
fn large_objects_round_trip_with_owners_acls_comments_and_contents_through_a_local_folder() {
    let src = Source::new("lo_local_");
    let (source, to, root) = (&src.db, src.to(), src.root.path());
    let before = large_objects(source);
    assert_eq!(before.len(), 5, "{before:?}");
    let tables = state(source);

    let backed_up = backup_ok(source, to, &[], NO_ENV);
    let id = id_of(&backed_up);
    assert_eq!(
        backed_up["result"]["large_objects"],
        serde_json::json!({ "count": 5, "excluded": false }),
        "{backed_up}"
    );
    let m = manifest(root, &id);
    assert_eq!(
        m["large_objects"],
        serde_json::json!({ "count": 5, "excluded": false })
    );
    assert_eq!(
        m["format_version"], 2,
        "a manifest an older pgward would misread says so"
    );
    let file = m["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == "large_objects.dump.zst")
        .unwrap_or_else(|| panic!("the manifest lists the large objects' file: {m}"));
    assert_eq!(file["sha256"].as_str().map(str::len), Some(64), "{file}");
    let on_disk = std::fs::metadata(root.join(&id).join("large_objects.dump.zst"))
        .expect("the file is there")
        .len();
    assert_eq!(file["size"], on_disk);
    assert!(
        on_disk < 6_400_000,
        "stored compressed ({on_disk} bytes for 6.4 MB of contents)"
    );

    // verify --deep restores them into its scratch database and counts them.
    let out = run_tool(
        "backup",
        &[
            "verify",
            &id,
            "--from",
            to,
            "--deep",
            "--database-url",
            &source.url(),
        ],
        NO_ENV,
    );
    out.assert_code(0);
    assert_eq!(out.json()["result"]["restore"]["large_objects"], 5, "{out}");

    let from = format!("{to}/{id}");
    let target = cluster().vacant_database();
    let restored = restore_new(source, &from, &target, &[], NO_ENV);
    assert_eq!(restored["result"]["load"]["large_objects"], 5, "{restored}");
    assert_eq!(
        restored["result"]["verify_depth"], "while_loading",
        "{restored}"
    );
    assert!(
        !warning_codes(&restored).contains(&"LARGE_OBJECTS_NOT_RESTORED".to_string()),
        "{restored}"
    );
    assert_eq!(large_objects(&target), before, "the restored large objects");
    assert_same_state(&tables, &state(&target), "the restored database");

    // An existing empty database is loaded in place, its large objects too.
    let empty = cluster().create_database();
    let out = restore(source, &from, &["--target-db", &empty.name], NO_ENV);
    out.assert_code(0);
    assert_eq!(out.json()["result"]["load"]["large_objects"], 5, "{out}");
    assert_eq!(large_objects(&empty), before, "loaded in place");

    // A partial restore (--tables) restores the large objects whole: they belong to no
    // table, and the table that points at them would otherwise point at nothing.
    let partial = cluster().vacant_database();
    restore_new(source, &from, &partial, &["--tables", "docs"], NO_ENV);
    assert_eq!(large_objects(&partial), before, "after --tables docs");

    // --no-owner (another cluster's roles): the contents and comments come back, owned by
    // the restoring role, without ACLs.
    let unowned = cluster().vacant_database();
    restore_new(source, &from, &unowned, &["--no-owner"], NO_ENV);
    let expected: Vec<String> = before
        .iter()
        .map(|line| {
            let owner_end = line.find(" comment=").expect("a comment field");
            let oid = line.split(' ').next().expect("an oid");
            format!("{oid} owner=pgward acl=-{}", &line[owner_end..])
        })
        .collect();
    assert_eq!(large_objects(&unowned), expected, "after --no-owner");

    // A partial backup (--table) carries them all too: an oid column is only a number.
    let json = backup_ok(source, to, &["--table", "docs"], NO_ENV);
    assert_eq!(
        json["result"]["large_objects"]["count"], 5,
        "a partial backup\n{json}"
    );

    // --no-large-objects leaves them out, and says so.
    let without = cluster().vacant_database();
    let json = restore_new(source, &from, &without, &["--no-large-objects"], NO_ENV);
    assert!(
        warning(&json, "LARGE_OBJECTS_NOT_RESTORED").contains("5 large object(s)"),
        "{json}"
    );
    assert_eq!(json["result"]["load"]["large_objects"], 0, "{json}");
    assert_eq!(large_objects(&without), Vec::<String>::new());
    assert_eq!(without.query_one_string("SELECT count(*) FROM docs"), "5");
}

#[test]
fn large_objects_round_trip_through_s3() {
    let server = s3();
    let env = {
        let mut env = server.env();
        env.push((
            "PGWARD_PG_BINDIR",
            cluster().pg_tools_env()[0].1.to_string(),
        ));
        env
    };
    let bucket = server.new_bucket();
    let location = format!("s3://{bucket}/lo");
    let src = Source::new("lo_s3_");
    let source = &src.db;
    let before = large_objects(source);

    let id = id_of(&backup_ok(source, &location, &[], &env));
    let keys = server.keys(&bucket, "");
    assert!(
        keys.contains(&format!("lo/{id}/large_objects.dump.zst")),
        "{keys:?}"
    );
    let target = cluster().vacant_database();
    let restored = restore_new(source, &format!("{location}/{id}"), &target, &[], &env);
    assert_eq!(restored["result"]["load"]["large_objects"], 5, "{restored}");
    assert_eq!(large_objects(&target), before, "restored from S3");
    assert_same_state(&state(source), &state(&target), "restored from S3");
}

#[test]
fn a_sql_format_backup_carries_and_counts_its_large_objects() {
    let src = Source::new("lo_sql_");
    let (source, to, root) = (&src.db, src.to(), src.root.path());
    let before = large_objects(source);

    let id = id_of(&backup_ok(source, to, &["--backup-format", "sql"], NO_ENV));
    assert_eq!(
        manifest(root, &id)["large_objects"],
        serde_json::json!({ "count": 5, "excluded": false })
    );
    let from = format!("{to}/{id}");
    let target = cluster().vacant_database();
    let restored = restore_new(source, &from, &target, &[], NO_ENV);
    assert_eq!(restored["result"]["load"]["large_objects"], 5, "{restored}");
    assert_eq!(
        large_objects(&target),
        before,
        "restored from backup.sql.zst"
    );

    // A plain dump restores whole: leaving its large objects out is refused up front.
    let refused = cluster().vacant_database();
    let out = restore(
        source,
        &from,
        &[
            "--target-db",
            &refused.name,
            "--create",
            "--no-large-objects",
        ],
        NO_ENV,
    );
    let json = out.assert_error(2, "USAGE");
    assert!(error_message(&json).contains("--no-large-objects"), "{out}");
    assert!(
        !cluster().database_exists(&refused.name),
        "nothing was created"
    );
}

/// Runs `pgward-<tool> ARGS` to its end: its output, and the largest resident set (KiB)
/// of it and the programs it waited for (pg_dump, pg_restore), as `wait4` reports it.
// wait4 reaps the child itself, for its resource usage, which Child::wait does not give.
#[allow(clippy::zombie_processes)]
fn run_measured(tool: &str, args: &[&str]) -> (Output, i64) {
    let mut child = spawn(tool, args, &cluster().pg_tools_env());
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).expect("stdout");
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).expect("stderr");
        text
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: the pid is our unreaped child; status and usage are valid for writes.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 reaps the child");
    let output = Output {
        code: libc::WEXITSTATUS(status),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    };
    (output, usage.ru_maxrss)
}

#[test]
fn a_large_object_bigger_than_pgwards_memory_streams_through_backup_and_restore() {
    // 64 MiB of incompressible bytes in one large object: backup and restore stay far
    // below that (pgward, pg_dump and pg_restore read and write it in pieces).
    const BIG: i64 = 64 << 20;
    let root = temp_dir("lo_stream_");
    let to = path_str(root.path());
    let source = cluster().create_database();
    source.psql(&format!(
        "SELECT lo_from_bytea(8001, decode(string_agg(md5(g::text), '' ORDER BY g), 'hex')) \
           FROM generate_series(1, {}) AS g",
        BIG / 16
    ));
    let md5 = "SELECT length(lo_get(8001)) || ' ' || md5(lo_get(8001))";
    let expected = source.query_one_string(md5);
    assert_eq!(expected.split(' ').next(), Some(BIG.to_string().as_str()));

    let url = source.url();
    let (out, backup_kib) = run_measured("backup", &["backup", "--to", to, "--database-url", &url]);
    out.assert_code(0);
    let id = out.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let target = cluster().vacant_database();
    let from = format!("{to}/{id}");
    let (out, restore_kib) = run_measured(
        "restore",
        &restore_args(&url, &from, &["--target-db", &target.name, "--create"]),
    );
    out.assert_code(0);
    assert_eq!(target.query_one_string(md5), expected, "the same contents");
    for (what, kib) in [("backup", backup_kib), ("restore", restore_kib)] {
        assert!(
            kib * 1024 < BIG / 2,
            "{what} peaked at {kib} KiB for a {BIG}-byte large object"
        );
    }
}

#[test]
fn large_objects_are_read_from_the_backups_snapshot() {
    // The backup's snapshot is taken first; the backup then waits for a table lock. A
    // large object changed and one created meanwhile must not be in it: the large objects
    // are as consistent with the tables as the rows are.
    let src = Source::new("lo_snapshot_");
    let (source, to, root) = (&src.db, src.to(), src.root.path());
    let before = large_objects(source);
    let mut holder = source.client();
    holder
        .batch_execute("BEGIN; LOCK TABLE docs IN ACCESS EXCLUSIVE MODE")
        .expect("the lock is taken");
    let url = source.url();
    let child = spawn(
        "backup",
        &[
            "backup",
            "--to",
            to,
            "--database-url",
            &url,
            "--lock-timeout",
            "60s",
        ],
        &cluster().pg_tools_env(),
    );
    wait_until(
        Duration::from_secs(30),
        "the backup waits for the lock",
        || {
            source.query_one_string(
                "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'pgward-backup' AND wait_event_type = 'Lock'",
            ) == "1"
        },
    );
    source.psql(
        "SELECT lo_put(4004, 0, convert_to('THE', 'UTF8')); \
         SELECT lo_from_bytea(4010, 'created after the snapshot');",
    );
    holder
        .batch_execute("ROLLBACK")
        .expect("the lock is released");
    let out = wait_child(child);
    out.assert_code(0);
    let id = out.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    assert_eq!(manifest(root, &id)["large_objects"]["count"], 5, "{out}");
    let target = cluster().vacant_database();
    restore_new(source, &format!("{to}/{id}"), &target, &[], NO_ENV);
    assert_eq!(large_objects(&target), before, "as of the snapshot");
}

// ---------------------------------------------------------------------------------------
// Leaving them out, on purpose only
// ---------------------------------------------------------------------------------------

#[test]
fn a_backup_without_large_objects_says_so_and_so_does_its_restore() {
    let src = Source::new("lo_excluded_");
    let (source, to, root) = (&src.db, src.to(), src.root.path());

    for format in ["directory", "sql"] {
        let json = backup_ok(
            source,
            to,
            &["--no-large-objects", "--backup-format", format],
            NO_ENV,
        );
        let id = id_of(&json);
        assert_eq!(
            json["result"]["large_objects"],
            serde_json::json!({ "count": 5, "excluded": true }),
            "{json}"
        );
        assert!(
            warning(&json, "LARGE_OBJECTS_EXCLUDED").contains("5 large object(s)"),
            "{json}"
        );
        assert_eq!(
            manifest(root, &id)["large_objects"],
            serde_json::json!({ "count": 5, "excluded": true })
        );
        assert!(
            !root.join(&id).join("large_objects.dump.zst").exists(),
            "no large objects' file"
        );
        let target = cluster().vacant_database();
        let restored = restore_new(source, &format!("{to}/{id}"), &target, &[], NO_ENV);
        let message = warning(&restored, "LARGE_OBJECTS_NOT_RESTORED");
        assert!(
            message.contains("--no-large-objects") && message.contains("5 large object(s)"),
            "{restored}"
        );
        assert_eq!(large_objects(&target), Vec::<String>::new(), "{format}");
        assert_eq!(target.query_one_string("SELECT count(*) FROM docs"), "5");
    }
}

#[test]
fn a_role_that_may_not_read_every_large_object_gets_no_backup_unless_it_leaves_them_out() {
    let src = Source::new("lo_unreadable_");
    let (source, to) = (&src.db, src.to());
    // The table's owner owns large object 4003, and may not read the superuser's.
    let role = src.roles.name(0);
    source.psql(&format!("ALTER TABLE docs OWNER TO {role}"));
    let url = Roles::url(role, source);
    let out = backup(&url, to, &[], NO_ENV);
    let json = out.assert_error(6, "LARGE_OBJECTS_UNREADABLE");
    assert!(
        error_message(&json).contains("permission denied for large object 400"),
        "{out}"
    );
    assert!(
        json["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("--no-large-objects"),
        "{out}"
    );
    let listed = run_tool("backup", &["list", "--from", to], NO_ENV);
    assert_eq!(
        json_ids(&listed.json()["result"]["backups"]),
        Vec::<String>::new(),
        "no backup was written\n{listed}"
    );

    let out = backup(&url, to, &["--no-large-objects"], NO_ENV);
    out.assert_code(0);
    assert_eq!(
        out.json()["result"]["large_objects"],
        serde_json::json!({ "count": 5, "excluded": true }),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------
// Existing targets
// ---------------------------------------------------------------------------------------

#[test]
fn restore_clean_replaces_the_targets_large_objects_and_its_safety_backup_keeps_them() {
    let src = Source::new("lo_clean_");
    let (source, to, root) = (&src.db, src.to(), src.root.path());
    let id = id_of(&backup_ok(source, to, &[], NO_ENV));
    let from = format!("{to}/{id}");

    // A target holding nothing but a large object is not empty.
    let target = cluster().create_database();
    target.psql(&format!(
        "SELECT lo_from_bytea(4002, 'the target''s own'); \
         ALTER LARGE OBJECT 4002 OWNER TO {};",
        src.roles.name(1)
    ));
    let target_before = large_objects(&target);
    let out = restore(&target, &from, &[], NO_ENV);
    out.assert_error(6, "TARGET_NOT_EMPTY");
    assert_eq!(large_objects(&target), target_before, "the refused target");

    let out = restore(&target, &from, &["--clean"], NO_ENV);
    out.assert_code(0);
    let json = out.json();
    assert_eq!(large_objects(&target), large_objects(source), "{out}");
    let safety = json["result"]["safety_backup"]
        .as_str()
        .unwrap_or_else(|| panic!("a safety backup\n{out}"))
        .to_string();
    assert_eq!(
        manifest(root, &safety)["large_objects"],
        serde_json::json!({ "count": 1, "excluded": false }),
        "the safety backup holds the target's large object"
    );
    let back = cluster().vacant_database();
    restore_new(source, &format!("{to}/{safety}"), &back, &[], NO_ENV);
    assert_eq!(
        large_objects(&back),
        target_before,
        "the safety backup gives the target's own back"
    );
}

#[test]
fn restore_clean_refuses_when_its_safety_backup_cannot_hold_the_targets_large_objects() {
    let src = Source::new("lo_safety_unreadable_");
    let (source, to) = (&src.db, src.to());
    let id = id_of(&backup_ok(source, to, &[], NO_ENV));
    // The restoring role owns the target database but may not read the large object
    // the superuser put there.
    let role = src.roles.name(0);
    cluster()
        .client("postgres")
        .batch_execute(&format!("ALTER ROLE {role} CREATEDB"))
        .expect("the role may create databases");
    let target = cluster().create_database();
    target.psql(&format!(
        "ALTER DATABASE {} OWNER TO {role}; SELECT lo_from_bytea(6001, 'the target''s own');",
        target.name
    ));
    let url = Roles::url(role, &target);
    let out = run_tool(
        "restore",
        &[
            "restore",
            "--from",
            &format!("{to}/{id}"),
            "--database-url",
            &url,
            "--clean",
        ],
        NO_ENV,
    );
    let json = out.assert_error(6, "LARGE_OBJECTS_UNREADABLE");
    assert!(
        json["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("--no-safety-backup"),
        "{out}"
    );
    assert_eq!(
        target.query_one_string("SELECT convert_from(lo_get(6001), 'UTF8')"),
        "the target's own",
        "nothing was changed"
    );
}

#[test]
fn an_interrupt_ends_a_large_objects_load_blocked_on_the_server() {
    // pg_restore's session is not one pgward can cancel: when it waits on the server (here
    // for a lock another session holds on a large object's oid) and pgward alone is sent
    // SIGINT, as a supervisor does, pgward must end it and exit 130, not wait for it.
    let src = Source::new("lo_interrupt_");
    let (source, to) = (&src.db, src.to());
    let id = id_of(&backup_ok(source, to, &[], NO_ENV));
    let target = cluster().create_database();
    let mut blocker = target.client();
    blocker
        .batch_execute("BEGIN; SELECT lo_create(4001)")
        .expect("an uncommitted large object");
    let url = source.url();
    let from = format!("{to}/{id}");
    let child = spawn(
        "restore",
        &restore_args(&url, &from, &["--target-db", &target.name]),
        &cluster().pg_tools_env(),
    );
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
         AND application_name = 'pg_restore' AND wait_event_type = 'Lock'",
        target.name
    );
    wait_until(
        Duration::from_secs(60),
        "pg_restore waits for the lock",
        || source.query_one_string(&waiting) == "1",
    );
    // SAFETY: the pid is our running child's.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let started = std::time::Instant::now();
    let exited = loop {
        // SAFETY: waitid with WNOWAIT only looks at our child; wait_child reaps it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let done = unsafe {
            libc::waitid(
                libc::P_PID,
                child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            ) == 0
                && info.si_pid() != 0
        };
        if done || started.elapsed() > Duration::from_secs(20) {
            break done;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Lets a restore that did not end go on, so that the test ends either way.
    blocker.batch_execute("ROLLBACK").expect("rolled back");
    let out = wait_child(child);
    assert!(
        exited,
        "pgward-restore did not end within 20 s of SIGINT\n{out}"
    );
    out.assert_code(130);
}

#[test]
fn a_damaged_large_objects_file_fails_verify_and_restore_and_no_target_appears() {
    let src = Source::new("lo_damaged_");
    let (source, to, root) = (&src.db, src.to(), src.root.path());
    let id = id_of(&backup_ok(source, to, &[], NO_ENV));
    let path = root.join(&id).join("large_objects.dump.zst");
    let mut bytes = std::fs::read(&path).expect("the file is readable");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, &bytes).expect("the file is writable");

    let out = run_tool("backup", &["verify", &id, "--from", to], NO_ENV);
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert!(
        error_message(&json).contains("large_objects.dump.zst"),
        "{out}"
    );

    // A new target checks the file as it streams into pg_restore; the database it was
    // loading into is dropped and the target never appears.
    let target = cluster().vacant_database();
    let out = restore(
        source,
        &format!("{to}/{id}"),
        &["--target-db", &target.name, "--create"],
        NO_ENV,
    );
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert_eq!(
        json["error"]["details"]["files"][0],
        "large_objects.dump.zst"
    );
    assert!(!cluster().database_exists(&target.name), "{out}");

    // A missing file is the backup's fault too, not the store's.
    std::fs::remove_file(&path).expect("the file is removed");
    let out = restore(
        source,
        &format!("{to}/{id}"),
        &["--target-db", &target.name, "--create"],
        NO_ENV,
    );
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert!(
        error_message(&json).contains("large_objects.dump.zst: missing"),
        "{out}"
    );
    assert!(!cluster().database_exists(&target.name), "{out}");
}
