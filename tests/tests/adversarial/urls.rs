//! Crafted database names and URLs: text that libpq would read as a connection string
//! (`dbname=x host=y`) wherever pgward hands a name to pg_dump, pg_restore or psql, and
//! URLs whose database part is such text. Crafted URLs carrying passwords in every
//! accepted form (and refused key=value strings) are in `tests/tests/secrets.rs`, which
//! also watches child processes' command lines.

use pgward_tests::{cluster, path_str, run};

/// A `--target-db` that libpq would parse as a connection string reaches pg_restore and
/// psql as a name: the database of that very name is restored, nothing else is reached.
#[test]
fn a_database_name_that_reads_as_a_connection_string_is_restored_as_a_name() {
    let source = cluster().create_database();
    source.psql(
        "CREATE TABLE t (id int PRIMARY KEY, note text);\n\
         INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g;",
    );
    let backups = tempfile::tempdir().expect("a temp dir for backups");
    let tools = cluster().pg_tools_env();
    let out = run(
        "backup",
        &[
            "backup",
            "--to",
            path_str(backups.path()),
            "--database-url",
            &source.url(),
        ],
        &tools,
    );
    out.assert_code(0);
    let id = out.json()["result"]["id"]
        .as_str()
        .expect("a backup id")
        .to_string();

    // libpq reads a dbname holding `=` as a connection string: this one would send
    // pg_restore (and the password) to another host.
    let target = format!("dbname=g{} host=/nonexistent", std::process::id());
    let out = run(
        "restore",
        &[
            "restore",
            "--from",
            &format!("{}/{id}", path_str(backups.path())),
            "--target-db",
            &target,
            "--create",
            "--database-url",
            &source.url(),
        ],
        &tools,
    );
    let restored = cluster().client("postgres").query_one(
        "SELECT count(*) FROM pg_database WHERE datname = $1",
        &[&target],
    );
    let exists: i64 = restored.expect("pg_database can be read").get(0);
    if exists == 1 {
        let mut admin = cluster().client("postgres");
        let count = cluster()
            .client(&target)
            .query_one("SELECT count(*) FROM t", &[])
            .map(|r| r.get::<_, i64>(0));
        admin
            .batch_execute(&format!(
                "DROP DATABASE \"{}\" WITH (FORCE)",
                target.replace('"', "\"\"")
            ))
            .expect("the restored database can be dropped");
        assert_eq!(count.ok(), Some(100), "{out}");
    }
    out.assert_code(0);
    assert_eq!(
        exists, 1,
        "the database of that very name was restored\n{out}"
    );
}

/// A URL whose database part, percent-decoded, reads as a connection string
/// (`dbname=postgres host=/nonexistent`) names a database, nothing more: the backup fails
/// because no database has that name, and the error says so, never a connection to the
/// host the text names.
#[test]
fn a_url_whose_database_reads_as_a_connection_string_names_only_a_database() {
    let backups = tempfile::tempdir().expect("a temp dir for backups");
    let tools = cluster().pg_tools_env();
    let url = cluster().url("dbname%3Dpostgres%20host%3D%2Fnonexistent");
    let out = run(
        "backup",
        &[
            "backup",
            "--to",
            path_str(backups.path()),
            "--database-url",
            &url,
        ],
        &tools,
    );
    assert_ne!(out.code, 0, "{out}");
    let message = out.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("dbname=postgres host=/nonexistent") && message.contains("does not exist"),
        "the error names the database that does not exist: {out}"
    );
    assert!(
        !message.contains("/nonexistent/.s.PGSQL"),
        "nothing tried the host the name spells: {out}"
    );
    assert_eq!(
        std::fs::read_dir(backups.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "nothing was written: {out}"
    );
}
