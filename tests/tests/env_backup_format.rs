//! The seeds' emergency path: an environment with `backup_format = "sql"` gets backups —
//! the one scripts/migrate.sh takes before a deploy included — that `zstd -dc | psql`
//! restores without pgward, and that pgward's own automatic restore still puts back.

use pgward_tests::{
    assert_same_state, cluster, path_str, run_in, run_script, state, temp_dir, write_migration,
};

const INIT: &str = "20240101000000_init";
/// Committed statement by statement (CONCURRENTLY), then fails: half of it is in.
const BAD: &str = "20240102000000_bad";

fn project() -> tempfile::TempDir {
    let dir = temp_dir("env_sql_");
    std::fs::write(
        dir.path().join("pgward.toml"),
        format!(
            "migrations = \"prisma/migrations\"\n\n[env.dev]\ndatabase_url_env = \"DEV_URL\"\n\
             backups = \"{}\"\nbackup_format = \"sql\"\nauto_restore = true\n",
            path_str(&dir.path().join("backups"))
        ),
    )
    .expect("pgward.toml is writable");
    write_migration(
        &dir.path().join("prisma/migrations"),
        INIT,
        "CREATE TABLE account (id bigserial PRIMARY KEY, name text NOT NULL);\n\
         INSERT INTO account (name) SELECT 'account ' || g FROM generate_series(1, 300) g;\n",
        None,
    );
    dir
}

#[test]
fn a_sql_environments_pre_deploy_backup_restores_with_psql_alone_and_by_auto_restore() {
    let dir = project();
    let db = cluster().create_database();
    let url = db.url();
    let envs = [("DEV_URL", url.as_str())];
    run_script(dir.path(), "migrate.sh", &["deploy", "dev", "-q"], &envs).assert_code(0);
    db.psql("UPDATE account SET name = name || ' (edited)' WHERE id % 3 = 0;");
    let before = state(&db);

    write_migration(
        &dir.path().join("prisma/migrations"),
        BAD,
        "ALTER TABLE account ADD COLUMN nickname text;\n\
         CREATE INDEX CONCURRENTLY account_nickname_idx ON account(nickname);\n\
         INSERT INTO account (id, name) VALUES (1, 'duplicate');\n",
        None,
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = run_script(dir.path(), "migrate.sh", &["deploy", "dev"], &envs);
    out.assert_code(1);
    let json = out.json();
    assert_eq!(
        json["result"]["restored"]["ok"], true,
        "auto_restore put it back\n{out}"
    );
    assert_same_state(
        &before,
        &state(&db),
        "the database after the automatic restore",
    );

    // The backup taken before the deploy is the environment's format: one .sql.zst.
    let id = json["result"]["backup"]["id"]
        .as_str()
        .expect("a backup id");
    let file = dir.path().join("backups").join(id).join("backup.sql.zst");
    assert!(
        file.is_file(),
        "{} is the pre-deploy backup\n{out}",
        file.display()
    );
    let elsewhere = cluster().create_database();
    elsewhere.load_zstd_sql(&file);
    assert_same_state(
        &before,
        &state(&elsewhere),
        "zstd -dc | psql of the pre-deploy backup",
    );

    // The flag still wins over the environment's format.
    let [bindir] = cluster().pg_tools_env();
    let out = run_in(
        dir.path(),
        "backup",
        &["--env", "dev", "--backup-format", "directory"],
        &[envs[0], bindir],
    );
    out.assert_code(0);
    assert_eq!(out.json()["result"]["format"], "directory", "{out}");
}
