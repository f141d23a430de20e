//! Crafted manifests about large objects: a count that does not match the file, a count
//! whose file the manifest does not list, and a manifest from before pgward backed large
//! objects up. None may end in a restore that reports success with large objects missing.

use std::path::Path;

use pgward_tests::{cluster, path_str, restore_into_new_database, run, temp_dir, Output, TestDb};
use serde_json::Value;

/// A database with two large objects and a table pointing at them, and a local backup of
/// it: the backup's id.
fn source_with_backup(root: &Path) -> (TestDb<'static>, String) {
    source_with_backup_in(root, "directory")
}

/// [`source_with_backup`] in `--backup-format FORMAT`.
fn source_with_backup_in(root: &Path, format: &str) -> (TestDb<'static>, String) {
    let db = cluster().create_database();
    db.psql(
        "CREATE TABLE docs (id integer PRIMARY KEY, body oid); \
         INSERT INTO docs VALUES (1, lo_from_bytea(7001, 'one')), (2, lo_from_bytea(7002, 'two'));",
    );
    let url = db.url();
    let out = run(
        "backup",
        &[
            "backup",
            "--to",
            path_str(root),
            "--database-url",
            &url,
            "--backup-format",
            format,
        ],
        &cluster().pg_tools_env(),
    );
    out.assert_code(0);
    let id = out.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    (db, id)
}

/// Rewrites the backup's manifest.json with `edit`.
fn edit_manifest(root: &Path, id: &str, edit: impl FnOnce(&mut Value)) {
    let path = root.join(id).join("manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("manifest.json")).expect("JSON");
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).expect("JSON")).expect("written");
}

/// `pgward-restore restore --from ROOT/ID --database-url URL(via) EXTRA...`
fn restore(via: &TestDb, root: &Path, id: &str, extra: &[&str]) -> Output {
    let url = via.url();
    let from = format!("{}/{id}", path_str(root));
    let mut args = vec!["restore", "--from", &from, "--database-url", &url];
    args.extend_from_slice(extra);
    run("restore", &args, &cluster().pg_tools_env())
}

/// Restores backup `id` of `root` into the new database `target` through `via`.
fn restore_new(via: &TestDb, root: &Path, id: &str, target: &TestDb) -> Output {
    restore_into_new_database(via, &format!("{}/{id}", path_str(root)), target, &[])
}

#[test]
fn a_manifest_counting_more_large_objects_than_its_file_holds_fails_the_restore() {
    let root = temp_dir("adv_lo_count_");
    let (db, id) = source_with_backup(root.path());
    edit_manifest(root.path(), &id, |m| m["large_objects"]["count"] = 3.into());
    let target = cluster().vacant_database();
    let out = restore_new(&db, root.path(), &id, &target);
    let json = out.assert_error(5, "ROW_COUNT_MISMATCH");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("large objects: 2 restored, 3 in the backup"),
        "{out}"
    );
    assert!(
        !cluster().database_exists(&target.name),
        "the target never appears\n{out}"
    );
}

#[test]
fn a_manifest_counting_large_objects_without_listing_their_file_is_corrupt_before_anything_is_touched(
) {
    let root = temp_dir("adv_lo_unlisted_");
    let (_source, id) = source_with_backup(root.path());
    edit_manifest(root.path(), &id, |m| {
        m["files"]
            .as_array_mut()
            .expect("files")
            .retain(|f| f["path"] != "large_objects.dump.zst");
    });
    // Into an existing target with --clean: refused before the target is dropped.
    let target = cluster().create_database();
    target.psql("CREATE TABLE mine (id integer); INSERT INTO mine VALUES (42);");
    let out = restore(
        &target,
        root.path(),
        &id,
        &["--clean", "--no-safety-backup"],
    );
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert_eq!(
        json["error"]["details"]["files"][0], "large_objects.dump.zst",
        "{out}"
    );
    assert_eq!(
        target.query_one_string("SELECT id FROM mine"),
        "42",
        "the target is untouched"
    );

    // Claiming they were left out on purpose, with their file still listed, is no way
    // around it either: the manifest contradicts itself.
    let (db2, id2) = source_with_backup(root.path());
    edit_manifest(root.path(), &id2, |m| {
        m["large_objects"]["excluded"] = true.into();
    });
    let target2 = cluster().vacant_database();
    let out = restore_new(&db2, root.path(), &id2, &target2);
    out.assert_error(5, "BACKUP_CORRUPT");
    assert!(!cluster().database_exists(&target2.name), "{out}");
}

#[test]
fn a_manifest_from_before_large_objects_were_backed_up_restores_with_a_warning() {
    let root = temp_dir("adv_lo_old_");
    let (db, id) = source_with_backup(root.path());
    edit_manifest(root.path(), &id, |m| {
        m.as_object_mut()
            .expect("an object")
            .remove("large_objects");
        m["files"]
            .as_array_mut()
            .expect("files")
            .retain(|f| f["path"] != "large_objects.dump.zst");
    });
    std::fs::remove_file(root.path().join(&id).join("large_objects.dump.zst")).expect("removed");
    let target = cluster().vacant_database();
    let out = restore_new(&db, root.path(), &id, &target);
    out.assert_code(0);
    let json = out.json();
    let warning = json["warnings"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["code"] == "LARGE_OBJECTS_NOT_RESTORED"))
        .unwrap_or_else(|| panic!("a LARGE_OBJECTS_NOT_RESTORED warning\n{out}"));
    assert!(
        warning["message"]
            .as_str()
            .unwrap_or_default()
            .contains("did not back up large objects"),
        "{out}"
    );
}

#[test]
fn a_manifest_listing_the_large_objects_file_but_counting_none_is_corrupt() {
    // Rewriting the count to 0 must not make a restore skip the file and pass.
    let root = temp_dir("adv_lo_zero_");
    let (db, id) = source_with_backup(root.path());
    edit_manifest(root.path(), &id, |m| m["large_objects"]["count"] = 0.into());
    let from = path_str(root.path());
    let out = run(
        "backup",
        &["verify", &id, "--from", from],
        &cluster().pg_tools_env(),
    );
    out.assert_error(5, "BACKUP_CORRUPT");
    let target = cluster().vacant_database();
    let out = restore_new(&db, root.path(), &id, &target);
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("counts none"),
        "{out}"
    );
    assert!(!cluster().database_exists(&target.name), "{out}");
}

#[test]
fn a_sql_format_manifest_from_before_large_objects_were_counted_restores_them_without_a_warning() {
    // Plain dumps of a whole database always carried the large objects: an older
    // manifest without the count must neither fail the restore nor claim they are missing.
    let root = temp_dir("adv_lo_old_sql_");
    let (db, id) = source_with_backup_in(root.path(), "sql");
    edit_manifest(root.path(), &id, |m| {
        m.as_object_mut()
            .expect("an object")
            .remove("large_objects");
    });
    let target = cluster().vacant_database();
    let out = restore_new(&db, root.path(), &id, &target);
    out.assert_code(0);
    assert!(
        !pgward_tests::warning_codes(&out.json()).contains(&"LARGE_OBJECTS_NOT_RESTORED".into()),
        "{out}"
    );
    assert_eq!(out.json()["result"]["load"]["large_objects"], 2, "{out}");
    assert_eq!(
        target.query_one_string("SELECT string_agg(convert_from(lo_get(oid), 'UTF8'), ',' ORDER BY oid) FROM pg_largeobject_metadata"),
        "one,two"
    );
}
