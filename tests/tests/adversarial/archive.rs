//! What a backup reads from the catalog and the manifest, crafted: object names that are
//! SQL in disguise, and manifests of older versions or edited by hand.

use std::path::Path;

use pgward_tests::{cluster, path_str, restore_into_new_database, run, temp_dir, Output, TestDb};
use serde_json::Value;

fn backup(url: &str, to: &Path) -> Output {
    run(
        "backup",
        &["backup", "--to", path_str(to), "--database-url", url],
        &cluster().pg_tools_env(),
    )
}

fn backup_id(db: &TestDb, to: &Path) -> String {
    let out = backup(&db.url(), to);
    out.assert_code(0);
    out.json()["result"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an id\n{out}"))
        .to_string()
}

/// A table, a sequence, a view and a role whose names are SQL in disguise.
const HOSTILE: &str = "we\"ird'; DROP TABLE victim; --";

#[test]
fn object_names_that_are_sql_in_disguise_are_quoted_in_every_read_and_every_error() {
    let role = format!("t15adv_{}", std::process::id());
    cluster()
        .client("postgres")
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'adv-pw-4711'"
        ))
        .expect("create the role");
    let db = cluster().create_database();
    let q = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let (table, sequence, view) = (
        q(HOSTILE),
        q(&format!("{HOSTILE} seq")),
        q(&format!("{HOSTILE} view")),
    );
    db.psql(&format!(
        "CREATE TABLE victim (id int); INSERT INTO victim VALUES (1); \
         CREATE TABLE {table} (); INSERT INTO {table} SELECT FROM generate_series(1, 4); \
         CREATE SEQUENCE {sequence}; SELECT setval('{}', 42, false); \
         CREATE MATERIALIZED VIEW {view} AS SELECT 1 AS one WITH NO DATA; \
         ALTER TABLE {table} OWNER TO {role}; ALTER TABLE victim OWNER TO {role}; \
         ALTER TABLE {table} ENABLE ROW LEVEL SECURITY; ALTER TABLE {table} FORCE ROW LEVEL SECURITY;",
        sequence.replace('\'', "''")
    ));
    let root = temp_dir("adv_names_");

    // As the owner the policies apply to: refused, the name quoted, nothing run.
    let url = db.url().replacen(
        &format!(
            "{}:{}",
            pgward_tests::SUPERUSER,
            pgward_tests::SUPERUSER_PASSWORD
        ),
        &format!("{role}:adv-pw-4711"),
        1,
    );
    let out = backup(&url, root.path());
    let json = out.assert_error(6, "ROW_SECURITY_ACTIVE");
    assert_eq!(
        json["error"]["details"]["tables"],
        serde_json::json!([format!("\"public\".{table}")]),
        "{out}"
    );
    assert_eq!(db.query_one_string("SELECT count(*) FROM victim"), "1");

    // As the superuser: every object comes back, named as it was.
    let id = backup_id(&db, root.path());
    let target = cluster().vacant_database();
    restore_into_new_database(
        &db,
        &format!("{}/{id}", path_str(root.path())),
        &target,
        &[],
    )
    .assert_code(0);
    assert_eq!(
        target.query_one_string(&format!("SELECT count(*) FROM {table}")),
        "4"
    );
    assert_eq!(
        target.query_one_string(&format!(
            "SELECT nextval('{}')",
            sequence.replace('\'', "''")
        )),
        "42"
    );
    assert_eq!(
        target.query_one_string(&format!(
            "SELECT relispopulated::text FROM pg_class WHERE relname = '{}'",
            format!("{HOSTILE} view").replace('\'', "''")
        )),
        "false"
    );
    assert_eq!(target.query_one_string("SELECT count(*) FROM victim"), "1");
    drop(target);
    drop(db);
    let _ = cluster()
        .client("postgres")
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
}

/// Rewrites `manifest.json` of backup `id` under `root` with `edit`.
fn edit_manifest(root: &Path, id: &str, edit: impl FnOnce(&mut Value)) {
    let path = root.join(id).join("manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read the manifest"))
            .expect("the manifest is JSON");
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).expect("JSON"))
        .expect("write the manifest");
}

#[test]
fn manifests_of_older_versions_or_with_a_table_miscast_as_extension_data_restore_every_row() {
    let db = cluster().create_database();
    db.psql(
        "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 50); \
         CREATE MATERIALIZED VIEW total AS SELECT sum(id) AS s FROM items; \
         CREATE MATERIALIZED VIEW later AS SELECT id FROM items WITH NO DATA;",
    );
    let root = temp_dir("adv_manifest_");
    let id = backup_id(&db, root.path());
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(root.path().join(&id).join("manifest.json")).expect("read"),
    )
    .expect("JSON");
    assert_eq!(
        manifest["materialized_views"],
        serde_json::json!([
            {"schema": "public", "name": "later", "populated": false},
            {"schema": "public", "name": "total", "populated": true}
        ]),
        "the manifest records which views held rows"
    );

    // An older manifest (no view list) and a table listed as an extension's
    // configuration table: the rows are all loaded, once; every view is refreshed, as
    // older versions did.
    edit_manifest(root.path(), &id, |m| {
        m.as_object_mut()
            .expect("an object")
            .remove("materialized_views");
        m["extension_config_tables"] = serde_json::json!([{"schema": "public", "name": "items"}]);
    });
    let target = cluster().vacant_database();
    restore_into_new_database(
        &db,
        &format!("{}/{id}", path_str(root.path())),
        &target,
        &[],
    )
    .assert_code(0);
    assert_eq!(
        target.query_one_string("SELECT count(*) || ' ' || sum(id) FROM items"),
        "50 1275"
    );
    assert_eq!(target.query_one_string("SELECT s FROM total"), "1275");
    assert_eq!(
        target
            .query_one_string("SELECT relispopulated::text FROM pg_class WHERE relname = 'later'"),
        "true",
        "a manifest that does not say is restored as older versions restored it"
    );
}

#[test]
fn a_manifest_whose_database_privilege_is_sql_is_refused_as_damaged() {
    let db = cluster().create_database();
    db.psql("CREATE TABLE items (id int); INSERT INTO items VALUES (1);");
    let root = temp_dir("adv_grants_");
    let id = backup_id(&db, root.path());
    edit_manifest(root.path(), &id, |m| {
        m["database_properties"]["grants"] = serde_json::json!([
            {"privilege": "CONNECT ON DATABASE postgres TO PUBLIC; DROP TABLE items; --",
             "grantee": null, "grantable": false}
        ]);
    });
    let target = cluster().vacant_database();
    let out = restore_into_new_database(
        &db,
        &format!("{}/{id}", path_str(root.path())),
        &target,
        &[],
    );
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("is not a privilege on a database"),
        "{out}"
    );
    assert_eq!(db.query_one_string("SELECT count(*) FROM items"), "1");
    assert_eq!(
        cluster()
            .client("postgres")
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&target.name]
            )
            .expect("pg_database")
            .get::<_, i64>(0),
        0,
        "the target was never published"
    );
}
