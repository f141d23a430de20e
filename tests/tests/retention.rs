//! Retention people ask for: grandfather-father-son rules (`--keep-daily`, `--keep-weekly`,
//! `--keep-monthly`) beside `--keep-last` and `--keep-days`, the newest verified backup
//! always kept, a dry run that deletes nothing, and the rules per environment in
//! pgward.toml (`[env.NAME.retention]`), which flags replace rather than mix with. The
//! calendar arithmetic over months and ISO weeks is shown in `shared/src/retention.rs`'s
//! unit tests; here the real binary prunes real backups.

use std::path::Path;

use pgward_tests::{
    cluster, error_message, json_ids, next_second, path_str, run_in, run_script, temp_dir, Output,
    TestDb,
};
use serde_json::Value;

/// A project folder with pgward.toml naming environment `dev` (its URL in `DEV_URL`, its
/// backups in `backups/`), `retention` the environment's retention table (TOML lines).
fn project(retention: &str) -> tempfile::TempDir {
    let dir = temp_dir("retention_");
    std::fs::write(
        dir.path().join("pgward.toml"),
        format!(
            "[env.dev]\ndatabase_url_env = \"DEV_URL\"\nbackups = \"{}\"\n{retention}",
            path_str(&dir.path().join("backups"))
        ),
    )
    .expect("pgward.toml is writable");
    dir
}

fn backup(dir: &Path, args: &[&str], db: &TestDb) -> Output {
    let url = db.url();
    let [bindir] = cluster().pg_tools_env();
    run_in(dir, "backup", args, &[("DEV_URL", url.as_str()), bindir])
}

/// Takes `n` backups of `db` in environment `dev`, each in its own second; their ids,
/// newest first.
fn take_backups(dir: &Path, db: &TestDb, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let out = backup(dir, &["backup", "--env", "dev"], db);
        out.assert_code(0);
        ids.insert(
            0,
            out.json()["result"]["id"]
                .as_str()
                .expect("an id")
                .to_string(),
        );
        next_second();
    }
    ids
}

/// `pgward-backup prune --env dev RULES...`, which must succeed: its output and document.
fn prune(dir: &Path, db: &TestDb, rules: &[&str]) -> (Output, Value) {
    let mut args = vec!["prune", "--env", "dev"];
    args.extend_from_slice(rules);
    let out = backup(dir, &args, db);
    out.assert_code(0);
    let json = out.json();
    (out, json)
}

fn listed(dir: &Path, db: &TestDb) -> Vec<String> {
    let out = backup(dir, &["list", "--env", "dev"], db);
    out.assert_code(0);
    json_ids(&out.json()["result"]["backups"])
}

/// `(id, reason)` of each kept backup.
fn kept(json: &Value) -> Vec<(String, String)> {
    json["result"]["kept"]
        .as_array()
        .expect("result.kept")
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap_or_default().to_string(),
                k["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn deleted(json: &Value) -> Vec<String> {
    json_ids(&json["result"]["deleted"])
}

fn source() -> TestDb<'static> {
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);");
    db
}

#[test]
fn keep_daily_keeps_the_newest_of_the_day_and_the_newest_verified_and_a_dry_run_deletes_nothing() {
    let dir = project("");
    let db = source();
    let ids = take_backups(dir.path(), &db, 3);
    // The oldest is the only verified one: it stays whatever the rules say.
    let location = path_str(&dir.path().join("backups")).to_string();
    backup(dir.path(), &["verify", &ids[2], "--from", &location], &db).assert_code(0);

    let (out, json) = prune(dir.path(), &db, &["--keep-daily", "1", "--dry-run"]);
    assert_eq!(
        kept(&json),
        vec![
            (ids[0].clone(), "keep-daily".to_string()),
            (ids[2].clone(), "newest-verified".to_string())
        ],
        "the newest of today by --keep-daily 1, the verified one besides\n{out}"
    );
    assert_eq!(deleted(&json), vec![ids[1].clone()], "{out}");
    assert_eq!(json["result"]["dry_run"], true, "{out}");
    assert_eq!(
        json["result"]["rules"],
        serde_json::json!({"keep_daily": 1}),
        "{out}"
    );
    assert_eq!(json["result"]["rules_from"], "flags", "{out}");
    assert_eq!(listed(dir.path(), &db), ids, "a dry run deletes nothing");

    let out = backup(
        dir.path(),
        &["prune", "--env", "dev", "--keep-daily", "1"],
        &db,
    );
    out.assert_code(0);
    assert_eq!(deleted(&out.json()), vec![ids[1].clone()], "{out}");
    assert_eq!(
        listed(dir.path(), &db),
        vec![ids[0].clone(), ids[2].clone()]
    );
}

#[test]
fn the_environments_retention_table_applies_and_flags_replace_it_rather_than_mix() {
    let dir = project("[env.dev.retention]\nkeep_last = 2\n");
    let db = source();
    let ids = take_backups(dir.path(), &db, 3);

    let (out, json) = prune(dir.path(), &db, &["--dry-run"]);
    assert_eq!(
        json["result"]["rules_from"], "pgward.toml [env.dev.retention]",
        "{out}"
    );
    assert_eq!(
        json["result"]["rules"],
        serde_json::json!({"keep_last": 2}),
        "{out}"
    );
    assert_eq!(deleted(&json), vec![ids[2].clone()], "{out}");

    // A flag replaces the table: --keep-daily 1 alone keeps one, not the table's two.
    let (out, json) = prune(dir.path(), &db, &["--keep-daily", "1", "--dry-run"]);
    assert_eq!(json["result"]["rules_from"], "flags", "{out}");
    assert_eq!(
        deleted(&json),
        vec![ids[1].clone(), ids[2].clone()],
        "{out}"
    );

    // The scripts read the table resolved.
    let url = db.url();
    let settings = run_in(
        dir.path(),
        "report",
        &["settings", "--env", "dev"],
        &[("DEV_URL", url.as_str())],
    );
    settings.assert_code(0);
    assert_eq!(
        settings.json()["result"]["retention"],
        serde_json::json!({"keep_last": 2}),
        "{settings}"
    );
    assert_eq!(listed(dir.path(), &db), ids, "dry runs deleted nothing");
}

#[test]
fn no_rules_and_a_misspelt_rule_are_refused_and_delete_nothing() {
    let db = source();
    let dir = project("");
    let ids = take_backups(dir.path(), &db, 1);
    let out = backup(dir.path(), &["prune", "--env", "dev"], &db);
    let json = out.assert_error(2, "USAGE");
    assert!(
        error_message(&json).contains("no rules")
            && json["error"]["hint"]
                .as_str()
                .unwrap_or_default()
                .contains("retention"),
        "{out}"
    );

    // A misspelt rule in the table is refused by name, before any backup is looked at.
    let config = dir.path().join("pgward.toml");
    let good = std::fs::read_to_string(&config).expect("pgward.toml is readable");
    std::fs::write(
        &config,
        format!("{good}[env.dev.retention]\nkeep_dayly = 7\n"),
    )
    .expect("pgward.toml is writable");
    let out = backup(dir.path(), &["prune", "--env", "dev"], &db);
    assert_eq!(
        out.code, 2,
        "a misspelt rule is a configuration error\n{out}"
    );
    assert!(
        out.stdout.contains("keep_dayly"),
        "the error names the key\n{out}"
    );
    std::fs::write(&config, good).expect("pgward.toml is writable");
    assert_eq!(listed(dir.path(), &db), ids, "nothing was deleted");
}

#[test]
fn backup_cron_prunes_by_the_environments_retention_table() {
    // keep_last = 1: the second nightly run removes the first backup, which the script's
    // own default rules (--keep-last 7 --keep-days 14) would keep.
    let dir = project("[env.dev.retention]\nkeep_last = 1\n");
    let db = source();
    let url = db.url();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let out = run_script(
            dir.path(),
            "backup-cron.sh",
            &["dev"],
            &[("DEV_URL", url.as_str())],
        );
        out.assert_code(0);
        ids.push(
            out.json()["result"]["backup"]["id"]
                .as_str()
                .expect("an id")
                .to_string(),
        );
        next_second();
    }
    assert_eq!(listed(dir.path(), &db), vec![ids[1].clone()]);
}
