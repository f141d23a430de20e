//! Two copies of every backup: `backups = [folder, s3://...]` in pgward.toml (or `--to`
//! repeated). The backup is written to the first location and copied to the others, each
//! file checked on arrival, the manifest last; `list` and `restore` take the first
//! location holding a complete copy; `verify` and `report backups` show each copy;
//! `prune` applies to each. Against a real S3 server and real PostgreSQL, with the
//! copies broken on purpose: a bucket that is not there, a lost folder, a corrupted
//! source file, a corrupted or missing copy, a killed copy's leftover.

use std::path::Path;

use pgward_tests::{
    assert_same_state, cluster, env_refs, error_message, json_ids, load_rich_fixture, next_second,
    path_str, run, run_in, s3, state, temp_dir, warning_codes, Output, TestDb,
};

/// A project whose environment `dev` keeps its backups in `locations`, in that order.
fn project(locations: &[String]) -> tempfile::TempDir {
    let dir = temp_dir("copies_");
    let list = locations
        .iter()
        .map(|l| format!("\"{l}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        dir.path().join("pgward.toml"),
        format!("[env.dev]\ndatabase_url_env = \"DEV_URL\"\nbackups = [{list}]\n"),
    )
    .expect("pgward.toml is writable");
    dir
}

fn envs(db: &TestDb) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = cluster()
        .pg_tools_env()
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    env.extend(s3().env());
    env.push(("DEV_URL", db.url()));
    env
}

fn pgward(dir: &Path, tool: &str, args: &[&str], env: &[(&'static str, String)]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--env", "dev"]);
    run_in(dir, tool, &all, &env_refs(env))
}

fn id_of(out: &Output) -> String {
    out.json()["result"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a backup id\n{out}"))
        .to_string()
}

/// A new bucket, and a local folder: `(bucket, folder, its path, s3://bucket/app)`.
fn local_and_s3() -> (String, tempfile::TempDir, String, String) {
    let bucket = s3().new_bucket();
    let folder = temp_dir("copies_local_");
    let local = path_str(folder.path()).to_string();
    let remote = format!("s3://{bucket}/app");
    (bucket, folder, local, remote)
}

/// `pgward-backup --to L1 --to L2 ... --database-url URL`, asserting it exits 0; its id.
fn backup_to(locations: &[&str], url: &str, env: &[(&'static str, String)]) -> String {
    let mut args = Vec::new();
    for l in locations {
        args.extend(["--to", *l]);
    }
    args.extend(["--database-url", url]);
    let out = run("backup", &args, &env_refs(env));
    out.assert_code(0);
    id_of(&out)
}

fn copy_locations(listed: &serde_json::Value) -> Vec<String> {
    listed["copies"]
        .as_array()
        .unwrap_or_else(|| panic!("copies in {listed}"))
        .iter()
        .map(|c| c["location"].as_str().expect("a location").to_string())
        .collect()
}

#[test]
fn each_backup_has_a_checked_copy_in_s3_and_restores_from_it_when_the_folder_is_lost() {
    let server = s3();
    let (bucket, folder, local, remote) = local_and_s3();
    let dir = project(&[local.clone(), remote.clone()]);
    let source = cluster().create_database();
    load_rich_fixture(&source);
    let before = state(&source);
    let env = envs(&source);

    let out = pgward(dir.path(), "backup", &["--jobs", "2"], &env);
    out.assert_code(0);
    let json = out.json();
    let id = id_of(&out);
    assert_eq!(
        json["result"]["location"], local,
        "written to the first\n{out}"
    );
    let copies = json["result"]["copies"].as_array().expect("copies");
    assert_eq!(copies.len(), 2, "{out}");
    assert_eq!(copies[0]["location"], local);
    assert_eq!(copies[1]["location"], remote);
    assert!(copies.iter().all(|c| c["complete"] == true), "{out}");

    // The copy is the same backup: the same files, the manifest byte for byte.
    let manifest = std::fs::read(folder.path().join(&id).join("manifest.json"))
        .expect("the first copy's manifest");
    assert_eq!(
        server.get(&bucket, &format!("app/{id}/manifest.json")),
        manifest,
        "the copy's manifest is the first's, byte for byte"
    );
    let listed: serde_json::Value = serde_json::from_slice(&manifest).expect("JSON");
    for file in listed["files"].as_array().expect("files") {
        let path = file["path"].as_str().expect("a path");
        let local_bytes = std::fs::read(folder.path().join(&id).join(path)).expect("a file");
        assert_eq!(
            server.get(&bucket, &format!("app/{id}/{path}")),
            local_bytes,
            "{path} is copied as stored"
        );
    }

    // list: one backup, held in both locations, the first first.
    let out = pgward(dir.path(), "backup", &["list"], &env);
    out.assert_code(0);
    let json = out.json();
    assert_eq!(
        json_ids(&json["result"]["backups"]),
        vec![id.clone()],
        "{out}"
    );
    assert_eq!(
        copy_locations(&json["result"]["backups"][0]),
        vec![local.clone(), remote.clone()]
    );

    // verify checks each copy and records it in each.
    let out = pgward(dir.path(), "backup", &["verify", "latest"], &env);
    out.assert_code(0);
    let verified = &out.json()["result"]["copies"];
    assert_eq!(verified[0]["location"], local, "{out}");
    assert_eq!(verified[1]["location"], remote, "{out}");
    assert!(
        verified
            .as_array()
            .expect("copies")
            .iter()
            .all(|c| c["verified"] == true),
        "{out}"
    );
    assert!(folder.path().join(&id).join("verified.json").is_file());
    assert!(!server
        .get(&bucket, &format!("app/{id}/verified.json"))
        .is_empty());

    // report backups shows each copy, verified.
    let out = pgward(dir.path(), "report", &["backups"], &env);
    out.assert_code(0);
    let row = &out.json()["result"]["backups"][0];
    assert_eq!(row["copies"][0]["verified"], true, "{out}");
    assert_eq!(row["copies"][1]["location"], remote, "{out}");
    assert_eq!(row["copies"][1]["verified"], true, "{out}");

    // With both copies there, restore reads the first.
    let target = cluster().vacant_database();
    let out = pgward(
        dir.path(),
        "restore",
        &["--from", &id, "--target-db", &target.name, "--create"],
        &env,
    );
    out.assert_code(0);
    assert_eq!(out.json()["result"]["location"], local, "{out}");

    // The disk of the first location is lost: list and restore find the copy in S3.
    // The whole folder is gone, not just the backup in it.
    std::fs::remove_dir_all(folder.path()).expect("the folder is removable");
    let out = pgward(dir.path(), "backup", &["list"], &env);
    out.assert_code(0);
    assert_eq!(
        copy_locations(&out.json()["result"]["backups"][0]),
        vec![remote.clone()],
        "{out}"
    );
    let restored = cluster().vacant_database();
    let out = pgward(
        dir.path(),
        "restore",
        &["--from", &id, "--target-db", &restored.name, "--create"],
        &env,
    );
    out.assert_code(0);
    assert_eq!(
        out.json()["result"]["location"],
        remote,
        "read from S3\n{out}"
    );
    assert_same_state(&before, &state(&restored), "the restore of the S3 copy");

    // verify now says which copy is missing, and how to make it again.
    let out = pgward(dir.path(), "backup", &["verify", &id], &env);
    let json = out.assert_error(5, "BACKUP_COPY_MISSING");
    assert_eq!(json["result"]["copies"][0]["verified"], false, "{out}");
    assert_eq!(json["result"]["copies"][1]["verified"], true, "{out}");
    assert!(
        json["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!(
                "pgward-backup copy {id} --from {remote} --to {local}"
            )),
        "{out}"
    );
    // ... which `copy` does: the folder holds the backup again, and both copies verify.
    let out = pgward(
        dir.path(),
        "backup",
        &["copy", &id, "--from", &remote, "--to", &local],
        &env,
    );
    out.assert_code(0);
    assert_eq!(out.json()["result"]["copies"][0]["complete"], true, "{out}");
    pgward(dir.path(), "backup", &["verify", &id], &env).assert_code(0);
}

#[test]
fn a_copy_that_cannot_be_made_fails_loudly_and_leaves_the_first_complete() {
    let server = s3();
    let folder = temp_dir("copies_local_");
    let local = path_str(folder.path()).to_string();
    // A bucket nobody created yet: the S3 location cannot even be opened.
    let bucket = format!("later-{}", std::process::id());
    let remote = format!("s3://{bucket}/app");
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000);");
    let env = envs(&db);
    let url = db.url();
    let out = run(
        "backup",
        &["--to", &local, "--to", &remote, "--database-url", &url],
        &env_refs(&env),
    );
    let json = out.assert_error(7, "BACKUP_COPY_FAILED");
    let id = json["result"]["id"]
        .as_str()
        .expect("the id of the backup made")
        .to_string();
    assert_eq!(json["result"]["copies"][0]["complete"], true, "{out}");
    assert_eq!(json["result"]["copies"][1]["complete"], false, "{out}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("is complete in {local}")),
        "{out}"
    );
    let hint = json["error"]["hint"].as_str().unwrap_or_default();
    assert!(
        hint.contains(&format!(
            "pgward-backup copy {id} --from {local} --to {remote}"
        )),
        "{out}"
    );

    // The first copy is whole: it verifies on its own.
    run(
        "backup",
        &["verify", &id, "--from", &local, "--database-url", &url],
        &env_refs(&env),
    )
    .assert_code(0);
    // Listing both locations goes on without the missing one, and says so.
    let out = run(
        "backup",
        &["list", "--from", &local, "--from", &remote],
        &env_refs(&env),
    );
    out.assert_code(0);
    assert!(
        warning_codes(&out.json()).contains(&"BACKUP_COPY_UNAVAILABLE".to_string()),
        "{out}"
    );
    assert_eq!(json_ids(&out.json()["result"]["backups"]), vec![id.clone()]);

    // Monitoring notices: report backups needs attention while a location is missing.
    let report = |expected: i32| {
        let out = run(
            "report",
            &[
                "backups",
                "--from",
                &local,
                "--from",
                &remote,
                "--database-url",
                &url,
            ],
            &env_refs(&env),
        );
        out.assert_code(expected);
        out
    };
    let out = report(3);
    let json = out.json();
    assert!(
        warning_codes(&json).contains(&"BACKUP_COPY_BEHIND".to_string()),
        "{out}"
    );
    assert_eq!(json["result"]["locations"][1]["readable"], false, "{out}");

    // Once the bucket exists, the hint's command makes the copy.
    server.create_bucket(&bucket);
    let out = run(
        "backup",
        &["copy", &id, "--from", &local, "--to", &remote],
        &env_refs(&env),
    );
    out.assert_code(0);
    let out = run(
        "backup",
        &[
            "verify",
            &id,
            "--from",
            &local,
            "--from",
            &remote,
            "--database-url",
            &url,
        ],
        &env_refs(&env),
    );
    out.assert_code(0);
    // A second copy of the same backup changes nothing there.
    let out = run(
        "backup",
        &["copy", &id, "--from", &local, "--to", &remote],
        &env_refs(&env),
    );
    out.assert_code(0);
    assert_eq!(out.json()["result"]["copies"][0]["seconds"], 0.0, "{out}");
    let out = report(0);
    assert_eq!(out.json()["result"]["locations"][1]["count"], 1, "{out}");
    // A newer backup whose copy was not made: the S3 location is behind.
    next_second();
    let newer = backup_to(&[&local], &url, &env);
    let out = report(3);
    let json = out.json();
    assert_eq!(json["result"]["newest"]["id"], newer.as_str(), "{out}");
    assert_eq!(
        json["result"]["locations"][1]["newest"]["id"],
        id.as_str(),
        "{out}"
    );
    assert!(
        warning_codes(&json).contains(&"BACKUP_COPY_BEHIND".to_string()),
        "{out}"
    );
}

#[test]
fn a_source_file_that_does_not_match_its_manifest_is_never_copied() {
    let server = s3();
    let (bucket, folder, local, remote) = local_and_s3();
    let db = five_thousand_rows();
    let env = envs(&db);
    let url = db.url();
    let id = backup_to(&[&local], &url, &env);
    // One byte of a data file flipped on the first location's disk.
    flip_a_data_byte(&folder.path().join(&id));

    let out = run(
        "backup",
        &["copy", &id, "--from", &local, "--to", &remote],
        &env_refs(&env),
    );
    out.assert_error(5, "BACKUP_CORRUPT");
    // Nothing of it was published there, and nothing is left over.
    assert!(
        server.keys(&bucket, &format!("app/{id}/")).is_empty(),
        "{:?}",
        server.keys(&bucket, "app/")
    );
    let out = run("backup", &["list", "--from", &remote], &env_refs(&env));
    out.assert_code(0);
    let json = out.json();
    assert!(
        json["result"]["backups"]
            .as_array()
            .expect("backups")
            .is_empty(),
        "{out}"
    );
    assert!(
        json["result"]["incomplete"]
            .as_array()
            .expect("incomplete")
            .is_empty(),
        "{out}"
    );
}

#[test]
fn verify_checks_each_copy_and_a_corrupted_copy_fails_it() {
    let server = s3();
    let (bucket, folder, local, remote) = local_and_s3();
    let db = five_thousand_rows();
    let env = envs(&db);
    let url = db.url();
    let both = ["--from", local.as_str(), "--from", remote.as_str()];
    let id = backup_to(&[&local, &remote], &url, &env);
    // The S3 copy of one data file is overwritten with other bytes of the same size.
    let key = server
        .keys(&bucket, &format!("app/{id}/data/"))
        .into_iter()
        .next()
        .expect("a data object");
    let mut bytes = server.get(&bucket, &key);
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    server.put(&bucket, &key, bytes);

    let mut args = vec!["verify", id.as_str(), "--database-url", url.as_str()];
    args.extend(both);
    let out = run("backup", &args, &env_refs(&env));
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    let copies = &json["result"]["copies"];
    assert_eq!(copies[0]["location"], local, "{out}");
    assert_eq!(copies[0]["verified"], true, "{out}");
    assert_eq!(copies[1]["location"], remote, "{out}");
    assert_eq!(copies[1]["verified"], false, "{out}");
    assert!(folder.path().join(&id).join("verified.json").is_file());
    // The way out is the good copy, not an older backup.
    let details = &json["error"]["details"];
    assert_eq!(details["location"], remote, "{out}");
    assert_eq!(details["verified_in"], local, "{out}");
    let hint = json["error"]["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("--replace-damaged"), "{out}");

    // list says which copy is verified; restore still reads the good first copy.
    let mut args = vec!["list"];
    args.extend(both);
    let out = run("backup", &args, &env_refs(&env));
    out.assert_code(0);
    let listed = &out.json()["result"]["backups"][0]["copies"];
    assert_eq!(listed[0]["verified"], true, "{out}");
    assert_eq!(listed[1]["verified"], false, "{out}");

    // copy leaves a copy with the same manifest alone; --replace-damaged checks it and
    // replaces it from the good one, and verify then passes for both.
    let copy = |extra: &[&str]| {
        let mut args = vec!["copy", id.as_str(), "--from", &local, "--to", &remote];
        args.extend_from_slice(extra);
        run("backup", &args, &env_refs(&env))
    };
    let out = copy(&[]);
    out.assert_code(0);
    assert!(
        out.json()["result"]["copies"][0]["replaced_damaged"].is_null(),
        "{out}"
    );
    let out = copy(&["--replace-damaged"]);
    out.assert_code(0);
    let replaced = out.json()["result"]["copies"][0]["replaced_damaged"].to_string();
    assert!(replaced.contains("data/"), "names the damaged file: {out}");
    let mut args = vec!["verify", id.as_str(), "--database-url", url.as_str()];
    args.extend(both);
    run("backup", &args, &env_refs(&env)).assert_code(0);
    let out = copy(&["--replace-damaged"]);
    out.assert_code(0);
    assert!(
        out.json()["result"]["copies"][0]["replaced_damaged"].is_null(),
        "a good copy stays: {out}"
    );

    // Both copies damaged: the one at the destination is never deleted for another bad one.
    let mut bytes = server.get(&bucket, &key);
    bytes[0] ^= 0xff;
    server.put(&bucket, &key, bytes.clone());
    flip_a_data_byte(&folder.path().join(&id));
    let out = copy(&["--replace-damaged"]);
    let json = out.assert_error(5, "BACKUP_CORRUPT");
    assert!(
        error_message(&json).contains("nothing was deleted"),
        "{out}"
    );
    assert_eq!(
        server.get(&bucket, &key),
        bytes,
        "the destination's copy is as it was"
    );
    assert!(!server
        .keys(&bucket, &format!("app/{id}/manifest.json"))
        .is_empty());
}

#[test]
fn prune_applies_to_each_location_by_its_own_backups_and_removes_a_killed_copy_there_alone() {
    let first = temp_dir("copies_a_");
    let second = temp_dir("copies_b_");
    let a = path_str(first.path()).to_string();
    let b = path_str(second.path()).to_string();
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);");
    let env = envs(&db);
    let url = db.url();
    // Two backups copied to both; then the copies stopped (two backups in the first only),
    // and a fifth's copy to the second was killed half-way: a leftover there.
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(backup_to(&[&a, &b], &url, &env));
    }
    for _ in 0..3 {
        ids.push(backup_to(&[&a], &url, &env));
    }
    let killed = ids[4].clone();
    let partial = second.path().join(format!(".partial-{killed}"));
    std::fs::create_dir_all(partial.join("data")).expect("a leftover");
    std::fs::write(partial.join("data/half.copy.zst"), b"half").expect("a leftover file");

    let prune = |dry_run: bool| {
        let mut args = vec![
            "prune",
            "--from",
            &a,
            "--from",
            &b,
            "--keep-last",
            "2",
            "--leftover-age",
            "0s",
            "--database-url",
            &url,
        ];
        if dry_run {
            args.push("--dry-run");
        }
        run("backup", &args, &env_refs(&env))
    };
    let folders = || {
        [first.path(), second.path()].map(|root| {
            let mut held: Vec<String> = std::fs::read_dir(root)
                .expect("a folder")
                .map(|e| {
                    e.expect("an entry")
                        .file_name()
                        .to_string_lossy()
                        .to_string()
                })
                .collect();
            held.sort();
            held
        })
    };
    let before = folders();
    let out = prune(true);
    out.assert_code(0);
    assert_eq!(folders(), before, "a dry run deletes nothing\n{out}");
    let out = prune(false);
    out.assert_code(0);
    let json = out.json();
    let locations = &json["result"]["locations"];
    assert_eq!(locations[0]["location"], a.as_str(), "{out}");
    assert_eq!(locations[1]["location"], b.as_str(), "{out}");
    assert_eq!(
        locations[1]["result"]["leftovers_deleted"],
        serde_json::json!([killed]),
        "{out}"
    );
    // Each location keeps its own two newest: the second still holds the two copies it
    // has, though the first holds newer backups; the killed copy's complete original in
    // the first is kept.
    let mut first_expected = vec![ids[3].clone(), ids[4].clone()];
    first_expected.sort();
    let mut second_expected = vec![ids[0].clone(), ids[1].clone()];
    second_expected.sort();
    assert_eq!(folders(), [first_expected, second_expected], "{out}");
    run(
        "backup",
        &["verify", &killed, "--from", &a, "--database-url", &url],
        &env_refs(&env),
    )
    .assert_code(0);
}

#[test]
fn locations_are_named_once_and_an_empty_list_is_refused() {
    let folder = temp_dir("copies_local_");
    let local = path_str(folder.path()).to_string();
    let out = run("backup", &["list", "--from", &local, "--from", &local], &[]);
    out.assert_error(2, "USAGE");
    let dir = project(&[]);
    let out = run_in(dir.path(), "backup", &["list", "--env", "dev"], &[]);
    let json = out.assert_error(2, "CONFIG_INVALID");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("empty list"),
        "{out}"
    );
}

/// Flips one byte in the middle of a data file of the backup folder `backup`.
fn flip_a_data_byte(backup: &Path) {
    let data = walk(backup)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/data/"))
        .expect("a data file");
    let mut bytes = std::fs::read(&data).expect("readable");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&data, bytes).expect("writable");
}

/// A database with one table of 5,000 rows.
fn five_thousand_rows() -> TestDb<'static> {
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;");
    db
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).expect("a folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// `--format text` of backup, list, verify and copy with two locations, as insta
/// snapshots (temp paths and times filtered), and of a backup whose copy failed.
#[test]
fn the_text_views_show_each_copy() {
    use pgward_tests::{text_view, TEXT_FILTERS};
    let first = temp_dir("copies_a_");
    let second = temp_dir("copies_b_");
    let third = temp_dir("copies_c_");
    let a = path_str(first.path()).to_string();
    let b = path_str(second.path()).to_string();
    let c = path_str(third.path()).to_string();
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);");
    let url = db.url();
    let env = envs(&db);
    let text = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--format", "text", "--database-url", &url]);
        run("backup", &all, &env_refs(&env))
    };
    let snapshot = |name: &str, out: &Output, code: i32| {
        out.assert_code(code);
        insta::with_settings!({filters => TEXT_FILTERS.to_vec()}, {
            insta::assert_snapshot!(name, text_view(out));
        });
    };
    let out = text(&["--to", &a, "--to", &b]);
    snapshot("copies_backup", &out, 0);
    let id = std::fs::read_dir(first.path())
        .expect("a folder")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .to_string()
        })
        .find(|n| !n.starts_with('.'))
        .expect("the backup");
    snapshot(
        "copies_list",
        &text(&["list", "--from", &a, "--from", &b]),
        0,
    );
    snapshot(
        "copies_verify",
        &text(&["verify", &id, "--from", &a, "--from", &b]),
        0,
    );
    snapshot(
        "copies_copy",
        &text(&["copy", &id, "--from", &a, "--to", &b, "--to", &c]),
        0,
    );
    // A location that cannot hold a folder: the copy fails, the first stays complete.
    let out = text(&["--to", &a, "--to", "/dev/null/pgward"]);
    snapshot("copies_backup_copy_failed", &out, 7);
    // The report then shows the second location behind (exit 3).
    let out = run(
        "report",
        &[
            "backups",
            "--from",
            &a,
            "--from",
            &b,
            "--format",
            "text",
            "--database-url",
            &url,
        ],
        &env_refs(&env),
    );
    snapshot("copies_report_behind", &out, 3);
}

/// Two `copy` runs of one backup to one S3 location at once: one makes the copy, the
/// other finds it made or finds the id taken and stops (exit 7) without a second copy or
/// a leftover; the copy verifies.
#[test]
fn two_copies_of_one_backup_at_once_leave_one_complete_copy() {
    use pgward_tests::{spawn, wait_child};
    let (_bucket, _folder, local, remote) = local_and_s3();
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY, v bytea); INSERT INTO t SELECT g, sha512(int8send(g)) FROM generate_series(1, 100000) g;");
    let env = envs(&db);
    let url = db.url();
    let id = backup_to(&[&local], &url, &env);
    let args = [
        "copy",
        id.as_str(),
        "--from",
        local.as_str(),
        "--to",
        remote.as_str(),
    ];
    let racers: Vec<_> = (0..2)
        .map(|_| spawn("backup", &args, &env_refs(&env)))
        .collect();
    let outs: Vec<Output> = racers.into_iter().map(wait_child).collect();
    for out in &outs {
        assert!(out.code == 0 || out.code == 7, "{out}");
        if out.code == 7 {
            out.assert_error(7, "BACKUP_COPY_FAILED");
        }
    }
    assert!(
        outs.iter().any(|o| o.code == 0),
        "one of them copied it\n{}\n{}",
        outs[0],
        outs[1]
    );
    let out = run("backup", &["list", "--from", &remote], &env_refs(&env));
    out.assert_code(0);
    let json = out.json();
    assert_eq!(
        json_ids(&json["result"]["backups"]),
        vec![id.clone()],
        "{out}"
    );
    assert!(
        json["result"]["incomplete"]
            .as_array()
            .expect("incomplete")
            .is_empty(),
        "{out}"
    );
    assert!(
        json["result"]["running"]
            .as_array()
            .expect("running")
            .is_empty(),
        "{out}"
    );
    run(
        "backup",
        &["verify", &id, "--from", &remote, "--database-url", &url],
        &env_refs(&env),
    )
    .assert_code(0);
}

/// backup-cron.sh and migrate.sh on an environment with two locations: each backup is
/// copied, each copy verified, each location pruned; a failed deploy's automatic restore
/// names the backup by id, whichever location holds it.
#[test]
fn the_scripts_keep_two_copies() {
    use pgward_tests::{next_second, run_script, write_migration};
    let server = s3();
    let bucket = server.new_bucket();
    let folder = temp_dir("copies_local_");
    let local = path_str(folder.path()).to_string();
    let remote = format!("s3://{bucket}/nightly");
    let dir = temp_dir("copies_scripts_");
    std::fs::write(
        dir.path().join("pgward.toml"),
        format!(
            "migrations = \"migrations\"\n[env.dev]\ndatabase_url_env = \"DEV_URL\"\nbackups = [\"{local}\", \"{remote}\"]\nauto_restore = true\n"
        ),
    )
    .expect("pgward.toml is writable");
    write_migration(
        &dir.path().join("migrations"),
        "20240101000000_init",
        "CREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t SELECT generate_series(1, 100);\n",
        None,
    );
    let db = cluster().create_database();
    let env = envs(&db);
    run_script(
        dir.path(),
        "migrate.sh",
        &["deploy", "dev"],
        &env_refs(&env),
    )
    .assert_code(0);
    next_second();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let out = run_script(
            dir.path(),
            "backup-cron.sh",
            &["dev", "--keep-last", "1"],
            &env_refs(&env),
        );
        out.assert_code(0);
        let json = out.json();
        assert_eq!(
            json["result"]["backup"]["copies"],
            serde_json::json!([local, remote]),
            "{out}"
        );
        let verify = json["result"]["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["step"] == "verify")
            .expect("a verify step")
            .clone();
        assert_eq!(verify["exit_code"], 0, "{out}");
        ids.push(
            json["result"]["backup"]["id"]
                .as_str()
                .expect("an id")
                .to_string(),
        );
        next_second();
    }
    // Each location keeps the newest only.
    let out = pgward(dir.path(), "backup", &["list"], &env);
    out.assert_code(0);
    let json = out.json();
    assert_eq!(
        json_ids(&json["result"]["backups"]),
        vec![ids[1].clone()],
        "{out}"
    );
    assert_eq!(
        copy_locations(&json["result"]["backups"][0]),
        vec![local.clone(), remote.clone()],
        "{out}"
    );
    assert!(json["result"]["backups"][0]["copies"]
        .as_array()
        .expect("copies")
        .iter()
        .all(|c| c["verified"] == true));
    assert!(server
        .keys(&bucket, &format!("nightly/{}/", ids[0]))
        .is_empty());

    // A deploy that commits part of a migration is undone from the backup it took,
    // named by id (`--from ID`: the environment's locations).
    write_migration(
        &dir.path().join("migrations"),
        "20240102000000_bad",
        "ALTER TABLE t ADD COLUMN note text;\n\
         CREATE INDEX CONCURRENTLY t_note_idx ON t(note);\n\
         INSERT INTO t (id) VALUES (1);\n",
        None,
    );
    let before = state(&db);
    let out = run_script(
        dir.path(),
        "migrate.sh",
        &["deploy", "dev"],
        &env_refs(&env),
    );
    out.assert_code(1);
    let json = out.json();
    assert_eq!(json["result"]["restored"]["ok"], true, "{out}");
    assert_eq!(
        json["result"]["backup"]["copies"],
        serde_json::json!([local, remote]),
        "{out}"
    );
    assert_same_state(
        &before,
        &state(&db),
        "the database after the automatic restore",
    );
    // The safety backup the restore took of what it replaced is in both locations too.
    let safety = json["result"]["restored"]["safety_backup"]
        .as_str()
        .unwrap_or_else(|| panic!("a safety backup\n{out}"));
    assert!(
        folder.path().join(safety).join("manifest.json").is_file(),
        "{out}"
    );
    assert!(
        !server
            .get(&bucket, &format!("nightly/{safety}/manifest.json"))
            .is_empty(),
        "{out}"
    );
}

/// backup-cron.sh while the S3 location is unreachable: every run still verifies the
/// backup in the folder and prunes the folder (a long outage does not fill the disk), and
/// ends with the copy's failure (exit 7) so that cron and the alert notice.
#[test]
fn backup_cron_during_an_s3_outage_keeps_the_folder_verified_and_pruned_and_fails_loudly() {
    use pgward_tests::run_script;
    let folder = temp_dir("copies_local_");
    let local = path_str(folder.path()).to_string();
    let remote = format!("s3://not-there-{}/app", std::process::id());
    let dir = project(&[local.clone(), remote]);
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);");
    let env = envs(&db);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let out = run_script(
            dir.path(),
            "backup-cron.sh",
            &["dev", "--keep-last", "1"],
            &env_refs(&env),
        );
        let json = out.assert_error(7, "BACKUP_COPY_FAILED");
        let steps: Vec<(String, i64)> = json["result"]["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                (
                    s["step"].as_str().expect("a name").to_string(),
                    s["exit_code"].as_i64().expect("a code"),
                )
            })
            .collect();
        assert_eq!(steps[0], ("backup".to_string(), 7), "{out}");
        assert_eq!(steps[1], ("verify".to_string(), 0), "{out}");
        assert_eq!(steps[2].0, "prune", "{out}");
        ids.push(
            json["result"]["backup"]["id"]
                .as_str()
                .expect("an id")
                .to_string(),
        );
        next_second();
    }
    let held: Vec<String> = std::fs::read_dir(folder.path())
        .expect("a folder")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    assert_eq!(
        held,
        vec![ids[1].clone()],
        "the folder was pruned to the newest"
    );
}

/// A restore whose first copy is damaged reads the next location's, and says so: into an
/// existing empty database, found before the target is touched; into a new one, found as
/// the data files load, which drops what was loaded (nobody's data) and loads the next
/// copy. With every copy damaged a new target is never created.
#[test]
fn a_restore_reads_the_next_copy_when_the_first_is_damaged() {
    let (_bucket, folder, local, remote) = local_and_s3();
    let dir = project(&[local.clone(), remote.clone()]);
    let source = cluster().create_database();
    load_rich_fixture(&source);
    let before = state(&source);
    let env = envs(&source);
    let id = id_of(&pgward(dir.path(), "backup", &[], &env));
    flip_a_data_byte(&folder.path().join(&id));
    let empty = cluster().create_database();
    let new = cluster().vacant_database();
    for (target, create) in [(&empty, false), (&new, true)] {
        let mut args = vec!["--from", &id, "--target-db", &target.name];
        args.extend(create.then_some("--create"));
        let out = pgward(dir.path(), "restore", &args, &env);
        out.assert_code(0);
        let json = out.json();
        assert_eq!(json["result"]["location"], remote.as_str(), "{out}");
        let depth = if create { "while_loading" } else { "decode" };
        assert_eq!(json["result"]["verify_depth"], depth, "{out}");
        let warning = json["warnings"]
            .as_array()
            .and_then(|w| w.iter().find(|w| w["code"] == "BACKUP_COPY_UNAVAILABLE"))
            .map(|w| w["message"].to_string())
            .unwrap_or_default();
        assert!(
            warning.contains(&local) && warning.contains("damaged"),
            "{out}"
        );
        assert_same_state(&before, &state(target), "the restore of the S3 copy");
    }
    let partial = format!("pgward_restoring_{}", new.name);
    assert!(!cluster().database_exists(&partial));

    // Every copy damaged: nothing is created.
    let first = temp_dir("copies_a_");
    let second = temp_dir("copies_b_");
    let dir = project(&[
        path_str(first.path()).to_string(),
        path_str(second.path()).to_string(),
    ]);
    let id = id_of(&pgward(dir.path(), "backup", &[], &env));
    flip_a_data_byte(&first.path().join(&id));
    flip_a_data_byte(&second.path().join(&id));
    let target = cluster().vacant_database();
    let out = pgward(
        dir.path(),
        "restore",
        &["--from", &id, "--target-db", &target.name, "--create"],
        &env,
    );
    out.assert_error(5, "BACKUP_CORRUPT");
    assert!(!cluster().database_exists(&target.name), "{out}");
    let partial = format!("pgward_restoring_{}", target.name);
    assert!(!cluster().database_exists(&partial), "{out}");
}

/// `copy` to a location that holds another backup under the same id (a manifest that
/// differs) fails instead of counting it as the copy, and leaves it as it is.
#[test]
fn copy_never_takes_another_backup_under_the_same_id_for_the_copy() {
    let first = temp_dir("copies_a_");
    let second = temp_dir("copies_b_");
    let a = path_str(first.path()).to_string();
    let b = path_str(second.path()).to_string();
    let db = five_thousand_rows();
    let env = envs(&db);
    let url = db.url();
    let id = backup_to(&[&a, &b], &url, &env);
    let there = second.path().join(&id).join("manifest.json");
    let mut other = std::fs::read(&there).expect("the copy's manifest");
    other.extend_from_slice(b"\n");
    std::fs::write(&there, &other).expect("writable");
    let out = run(
        "backup",
        &["copy", &id, "--from", &a, "--to", &b],
        &env_refs(&env),
    );
    let json = out.assert_error(7, "BACKUP_COPY_FAILED");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("another backup"),
        "{out}"
    );
    assert_eq!(json["result"]["copies"][0]["complete"], false, "{out}");
    assert_eq!(std::fs::read(&there).expect("still there"), other);
}
