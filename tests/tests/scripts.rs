//! End-to-end tests of the shell scripts in `scripts/`: migrate.sh, backup-cron.sh,
//! test-migration.sh and maintenance.sh, run the way a user runs them (bash, from a
//! project folder holding pgward.toml and prisma/migrations, the binaries found through
//! PGWARD_BIN) against the harness's cluster and S3 server.
//!
//! Every script prints one JSON document on stdout when it ends (result.steps holds each
//! step's exit code) and exits with the first failing step's code; the tests check both,
//! and what the database really holds afterwards.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pgward_tests::{
    bin, cluster, env_refs, next_second, run_script, s3, workspace_root, write_migration,
    write_migrations, Output, RunningScript, TestDb, SUPERUSER_PASSWORD,
};
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A project folder: pgward.toml (`dev` and the protected `prod`, both reading their URL
/// from a variable and backing up to `backups` beside the file unless told otherwise)
/// and prisma/migrations.
struct Project {
    dir: TempDir,
}

impl Project {
    fn new() -> Project {
        Project::with_backups("backups")
    }

    /// A project whose environments back up to `backups` (a folder or s3:// location).
    fn with_backups(backups: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("scripts_project_")
            .tempdir()
            .expect("a temp project dir");
        std::fs::write(
            dir.path().join("pgward.toml"),
            format!(
                "migrations = \"prisma/migrations\"\n\
                 \n\
                 [env.dev]\n\
                 database_url_env = \"DEV_DATABASE_URL\"\n\
                 backups = \"{backups}\"\n\
                 \n\
                 [env.prod]\n\
                 database_url_env = \"PROD_DATABASE_URL\"   # the protected one\n\
                 backups = \"{backups}\"\n\
                 protected = true\n"
            ),
        )
        .expect("pgward.toml is writable");
        write_migrations(&dir.path().join("prisma/migrations"), &[]);
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets `auto_restore = true` for the environment `env` in pgward.toml.
    fn auto_restore(&self, env: &str) -> &Project {
        let file = self.path().join("pgward.toml");
        let text = std::fs::read_to_string(&file).expect("pgward.toml is readable");
        let section = format!("[env.{env}]\n");
        assert!(text.contains(&section), "no {section} in {text}");
        std::fs::write(
            &file,
            text.replace(&section, &format!("{section}auto_restore = true\n")),
        )
        .expect("pgward.toml is writable");
        self
    }

    /// Adds `prisma/migrations/NAME/migration.sql` (and `down.sql`).
    fn migration(&self, name: &str, sql: &str, down: Option<&str>) -> &Project {
        write_migration(&self.path().join("prisma/migrations"), name, sql, down);
        self
    }

    /// The backup ids in the local `backups` folder, sorted.
    fn local_backups(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.path().join("backups")) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .map(|e| {
                e.expect("a readable entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| !name.starts_with('.'))
            .collect();
        ids.sort();
        ids
    }

    /// Runs `scripts/SCRIPT ARGS` in this folder with `envs`, the binaries of this build
    /// (PGWARD_BIN) and the cluster's client tools (PGWARD_PG_BINDIR).
    fn script(&self, script: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
        run_script(self.path(), script, args, envs)
    }
}

/// The script's document, after checking the exit code, that stdout is one JSON
/// document with the envelope's fields, and that no password leaked.
fn document(out: &Output, code: i32) -> Value {
    out.assert_code(code);
    let json = out.json();
    assert_eq!(json["exit_code"], code, "{out}");
    assert_eq!(json["ok"], code == 0 || code == 3, "{out}");
    if code == 0 || code == 3 {
        assert!(json["error"].is_null(), "{out}");
    } else {
        for key in ["code", "message", "hint"] {
            assert!(
                !json["error"][key].as_str().unwrap_or_default().is_empty(),
                "the error has a {key}\n{out}"
            );
        }
    }
    assert!(
        !out.stdout.contains(SUPERUSER_PASSWORD) && !out.stderr.contains(SUPERUSER_PASSWORD),
        "the password leaked\n{out}"
    );
    json
}

/// `[step, exit code]` of every step the script ran, in order.
fn steps(json: &Value) -> Vec<(String, i64)> {
    json["result"]["steps"]
        .as_array()
        .expect("result.steps is a list")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().expect("a step name").to_string(),
                s["exit_code"].as_i64().expect("an exit code"),
            )
        })
        .collect()
}

/// The step names alone.
fn step_names(json: &Value) -> Vec<String> {
    steps(json).into_iter().map(|(name, _)| name).collect()
}

/// The step named `name`.
fn step<'j>(json: &'j Value, name: &str) -> &'j Value {
    json["result"]["steps"]
        .as_array()
        .expect("result.steps is a list")
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {json}"))
}

/// The strings of a JSON list.
fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// Whether every stderr line the script itself wrote for `[step]` starts with a UTC
/// timestamp with milliseconds (`2026-11-22T03:13:00.123Z migrate.sh ...`).
fn assert_logged_with_timestamp(out: &Output, prefix: &str, step: &str) {
    let needle = format!("{prefix}: [{step}]");
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.contains(&needle)).collect();
    assert!(!lines.is_empty(), "no log line for {needle}\n{out}");
    for line in lines {
        let (stamp, rest) = line.split_at(24.min(line.len()));
        let bytes = stamp.as_bytes();
        let shaped = stamp.len() == 24
            && bytes[4] == b'-'
            && bytes[10] == b'T'
            && bytes[19] == b'.'
            && bytes[23] == b'Z'
            && stamp
                .chars()
                .enumerate()
                .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 23) || c.is_ascii_digit());
        assert!(
            shaped && rest.starts_with(' '),
            "not a timestamped line: {line}"
        );
    }
}

/// The whole database, schema and data, as pg_dump prints it (without the `\restrict`
/// lines whose random key changes on every dump).
fn full_dump(db: &TestDb) -> String {
    db.pg_dump(&[])
}

/// The names of the migrations `db`'s history records as applied, in order.
fn applied(db: &TestDb) -> Vec<String> {
    let text = db.psql(
        "SELECT migration_name FROM _prisma_migrations \
         WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name",
    );
    text.lines().map(str::to_string).collect()
}

const INIT: &str = "20240101000000_init";
const ORDERS: &str = "20240102000000_orders";
const NOTES: &str = "20240103000000_notes";
const INDEX: &str = "20240104000000_index_notes";
const BAD: &str = "20240105000000_bad";

/// The two migrations most tests start from, both with down.sql.
fn two_migrations(project: &Project) {
    project
        .migration(
            INIT,
            "CREATE TABLE account (id bigserial PRIMARY KEY, name text NOT NULL);\n",
            Some("DROP TABLE account;\n"),
        )
        .migration(
            ORDERS,
            "CREATE TABLE orders (id bigserial PRIMARY KEY, \
             account_id bigint NOT NULL REFERENCES account(id), cents bigint NOT NULL);\n\
             CREATE INDEX orders_account_id_idx ON orders(account_id);\n",
            Some("DROP TABLE orders;\n"),
        );
}

/// A new database with [`two_migrations`] deployed by `migrate.sh deploy dev`, its
/// project, and its URL (for `DEV_DATABASE_URL`).
fn deployed_two_migrations() -> (TestDb<'static>, Project, String) {
    let db = cluster().create_database();
    let project = Project::new();
    two_migrations(&project);
    let url = db.url();
    document(
        &project.script(
            "migrate.sh",
            &["deploy", "dev", "-q"],
            &[("DEV_DATABASE_URL", url.as_str())],
        ),
        0,
    );
    (db, project, url)
}

// ---------------------------------------------------------------------------------------
// migrate.sh
// ---------------------------------------------------------------------------------------

#[test]
fn migrate_deploy_runs_preflight_backup_lint_deploy_and_validation() {
    let db = cluster().create_database();
    let project = Project::new();
    two_migrations(&project);
    let url = db.url();
    let envs = [("DEV_DATABASE_URL", url.as_str())];

    let out = project.script("migrate.sh", &["deploy", "dev"], &envs);
    let json = document(&out, 0);
    assert_eq!(json["tool"], "migrate.sh");
    assert_eq!(json["command"], "deploy");
    assert_eq!(
        step_names(&json),
        [
            "status",
            "preflight",
            "baseline-schema",
            "baseline-drift",
            "backup",
            "verify",
            "lint",
            "deploy",
            "schema",
            "drift",
            "status-after"
        ],
        "{out}"
    );
    // The first deploy has no verified backup yet: preflight says so (exit 1), and the
    // script goes on because its next steps take and verify one.
    assert_eq!(step(&json, "preflight")["exit_code"], 1, "{out}");
    for name in [
        "backup",
        "verify",
        "lint",
        "deploy",
        "schema",
        "drift",
        "status-after",
    ] {
        assert_eq!(step(&json, name)["exit_code"], 0, "{name}\n{out}");
    }
    assert_eq!(strings(&json["result"]["deployed"]), [INIT, ORDERS]);
    let backup = json["result"]["backup"]["id"]
        .as_str()
        .expect("a backup id");
    assert_eq!(project.local_backups(), [backup]);
    assert!(json["result"]["restored"].is_null(), "{out}");
    assert_eq!(applied(&db), [INIT, ORDERS]);
    assert!(db.relation_exists("public.orders"));
    for name in ["status", "backup", "deploy", "drift"] {
        assert_logged_with_timestamp(&out, "migrate.sh deploy dev", name);
    }

    // Nothing pending: the script says so after one status step.
    let out = project.script("migrate.sh", &["deploy", "dev"], &envs);
    let json = document(&out, 0);
    assert_eq!(steps(&json), [("status".to_string(), 0)]);
    assert!(out.stderr.contains("nothing to deploy"), "{out}");
}

/// A migration run statement by statement (its CREATE INDEX CONCURRENTLY cannot run in a
/// transaction) whose last statement fails: the first two are committed by then.
const BAD_PARTLY_COMMITTED: &str = "ALTER TABLE account ADD COLUMN nickname text;\n\
     CREATE INDEX CONCURRENTLY account_nickname_idx ON account(nickname);\n\
     INSERT INTO account (id, name) VALUES (1, 'one'), (1, 'duplicate');\n";

#[test]
fn a_deploy_whose_third_migration_fails_restores_the_backup_exactly() {
    let (db, project, url) = deployed_two_migrations();
    // The automatic restore is the environment's choice.
    project.auto_restore("dev");
    let envs = [("DEV_DATABASE_URL", url.as_str())];
    db.psql(
        "INSERT INTO account (name) SELECT 'account ' || g FROM generate_series(1, 500) g;\n\
         INSERT INTO orders (account_id, cents) SELECT 1 + g % 500, g FROM generate_series(1, 2000) g;\n\
         DELETE FROM orders WHERE id % 7 = 0;",
    );
    // Three pending migrations: two that work (one of them statement by statement) and a
    // third that fails halfway, after committing part of itself.
    project
        .migration(
            NOTES,
            "CREATE TABLE note (id bigserial PRIMARY KEY, account_id bigint NOT NULL, body text);\n\
             INSERT INTO note (account_id, body) SELECT id, name FROM account;\n",
            Some("DROP TABLE note;\n"),
        )
        .migration(
            INDEX,
            "CREATE INDEX CONCURRENTLY note_account_id_idx ON note(account_id);\n",
            Some("DROP INDEX note_account_id_idx;\n"),
        )
        .migration(BAD, BAD_PARTLY_COMMITTED, None);
    let before = full_dump(&db);
    next_second();

    let out = project.script("migrate.sh", &["deploy", "dev"], &envs);
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "MIGRATION_FAILED", "{out}");
    assert_eq!(json["error"]["details"]["step"], "deploy", "{out}");
    assert_eq!(json["error"]["details"]["migration"], BAD, "{out}");
    assert!(
        json["error"]["hint"]
            .as_str()
            .expect("a hint")
            .contains("restored from backup"),
        "{out}"
    );
    let names = step_names(&json);
    assert_eq!(
        names[names.len() - 3..],
        ["deploy", "restore", "status-after-restore"],
        "{out}"
    );
    assert_eq!(step(&json, "deploy")["exit_code"], 1);
    assert_eq!(step(&json, "restore")["exit_code"], 0);
    assert_eq!(
        strings(&json["result"]["deployed"]),
        [NOTES, INDEX],
        "{out}"
    );
    let backup = json["result"]["backup"]["id"]
        .as_str()
        .expect("a backup id");
    assert_eq!(json["result"]["restored"]["backup"], backup, "{out}");
    assert_eq!(json["result"]["restored"]["ok"], true, "{out}");
    assert_eq!(json["result"]["auto_restore"], true, "{out}");
    assert!(
        out.stderr
            .contains(&format!("the database was restored from backup {backup}")),
        "the log says so\n{out}"
    );
    // Never --force nor --no-safety-backup unasked: the state the restore replaced (with
    // whatever was written since the backup) is kept in a safety backup.
    let restore_args = step(&json, "restore");
    assert_eq!(restore_args["exit_code"], 0, "{out}");
    let safety = json["result"]["restored"]["safety_backup"]
        .as_str()
        .expect("the restore took a safety backup");
    assert!(
        project.local_backups().contains(&safety.to_string()),
        "{out}"
    );
    assert!(
        !out.stderr.contains("--force") && !out.stderr.contains("--no-safety-backup"),
        "{out}"
    );

    // Schema, data, sequences and the migration history: exactly as before the deploy.
    let after = full_dump(&db);
    assert!(
        before == after,
        "the database differs from before the deploy:\n{}",
        diff(&before, &after)
    );
    let status = step(&json, "status-after-restore");
    assert_eq!(status["exit_code"], 3, "{out}");
    assert_eq!(strings(&status["result"]["pending"]), [NOTES, INDEX, BAD]);
    assert_eq!(status["result"]["failed"].as_array().map(Vec::len), Some(0));
}

#[test]
fn when_the_restore_after_a_failed_deploy_fails_too_the_script_says_so_and_its_hint_recovers() {
    let (db, project, url) = deployed_two_migrations();
    project.auto_restore("dev");
    let envs = [("DEV_DATABASE_URL", url.as_str())];
    db.psql("INSERT INTO account (name) SELECT 'account ' || g FROM generate_series(1, 50) g;");
    project
        .migration(
            NOTES,
            "CREATE TABLE note (id bigserial PRIMARY KEY, body text);\n",
            Some("DROP TABLE note;\n"),
        )
        .migration(BAD, BAD_PARTLY_COMMITTED, None);
    // Someone made a database under the name a restore into this one loads under: the
    // restore refuses it, before it touches anything.
    let squatter = format!("pgward_restoring_{}", db.name);
    db.psql(&format!("CREATE DATABASE \"{squatter}\""));
    let before = full_dump(&db);
    next_second();

    let out = project.script("migrate.sh", &["deploy", "dev"], &envs);
    let json = document(&out, 2);
    assert_eq!(step(&json, "deploy")["exit_code"], 1, "{out}");
    assert_eq!(step(&json, "restore")["exit_code"], 2, "{out}");
    let backup = json["result"]["backup"]["id"]
        .as_str()
        .expect("a backup id");
    assert_eq!(json["result"]["restored"]["ok"], false, "{out}");
    assert!(out.stderr.contains("RESTORE FAILED"), "{out}");
    let message = json["error"]["message"].as_str().expect("a message");
    assert!(
        message.starts_with(&format!(
            "the deploy step failed and restoring backup {backup} failed too: "
        )) && message.contains(&squatter),
        "the message says both failed, and the restore's reason\n{out}"
    );
    // The restore refused before --clean dropped anything: the partial deploy is there.
    assert_eq!(applied(&db), [INIT, ORDERS, NOTES], "{out}");
    assert!(db.column_exists("account", "nickname"), "{out}");
    let hint = json["error"]["hint"].as_str().expect("a hint");
    assert!(
        hint.contains("rename or drop that database"),
        "the restore's own hint is kept\n{out}"
    );

    // Doing what the hint says brings the database back as it was before the deploy.
    db.psql(&format!("DROP DATABASE \"{squatter}\""));
    let command = hint
        .split("restore by hand: ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("the hint names a command\n{out}"));
    run_printed_restore(&project, command, &envs, &db, &before);
}

/// Runs the `pgward-restore ...` command a script printed for a person (never
/// with --force: that is the person's to add) and checks that it puts `db` back as it
/// was (`before`, a [`full_dump`]).
fn run_printed_restore(
    project: &Project,
    command: &str,
    envs: &[(&str, &str)],
    db: &TestDb,
    before: &str,
) {
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[0], "pgward-restore", "{command}");
    assert!(!words.contains(&"--force"), "{command}");
    let mut env = cluster().pg_tools_env().to_vec();
    env.extend(envs);
    pgward_tests::run_in(project.path(), "restore", &words[1..], &env).assert_code(0);
    let after = full_dump(db);
    assert!(
        before == after,
        "the database differs from before the deploy:\n{}",
        diff(before, &after)
    );
}

#[test]
fn a_deploy_that_times_out_on_a_lock_restores_nothing_and_keeps_the_applications_writes() {
    let (db, project, url) = deployed_two_migrations();
    // Even opted in: nothing of the migration was committed, so there is nothing to undo.
    project.auto_restore("dev");
    let envs = [("DEV_DATABASE_URL", url.as_str())];
    project.migration(
        NOTES,
        "ALTER TABLE account ADD COLUMN note text;\n",
        Some("ALTER TABLE account DROP COLUMN note;\n"),
    );
    next_second();
    // The application writes while the deploy runs: its open transaction holds the lock
    // the ALTER TABLE waits for until lock_timeout.
    let mut app = db.client();
    app.batch_execute("BEGIN; INSERT INTO account (name) VALUES ('written during the deploy')")
        .expect("the application writes");

    let out = project.script(
        "migrate.sh",
        &["deploy", "dev", "--lock-timeout", "1s"],
        &envs,
    );
    app.batch_execute("COMMIT")
        .expect("the application commits");
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "MIGRATION_FAILED", "{out}");
    assert_eq!(json["error"]["details"]["sqlstate"], "55P03", "{out}");
    assert_eq!(json["error"]["details"]["partly_committed"], false, "{out}");
    assert_eq!(json["error"]["details"]["restored"], false, "{out}");
    assert!(
        !step_names(&json).iter().any(|s| s.starts_with("restore")),
        "no restore after a deploy that committed nothing\n{out}"
    );
    assert!(json["result"]["restored"].is_null(), "{out}");
    let hint = json["error"]["hint"].as_str().expect("a hint");
    assert!(
        hint.contains(&format!(
            "pgward-migrate resolve --rolled-back {NOTES} --env dev"
        )) && hint.contains("pgward-restore --env dev --from "),
        "the hint says how to go on, and how to go back\n{out}"
    );
    assert!(
        out.stderr.contains("the database is not restored")
            && out
                .stderr
                .contains(&format!("{NOTES} is recorded as failed")),
        "the log says what state the database is in\n{out}"
    );
    assert_eq!(
        db.query_one_string(
            "SELECT count(*) FROM account WHERE name = 'written during the deploy'"
        ),
        "1",
        "the application's write is kept"
    );
    assert!(!db.column_exists("account", "note"));
}

#[test]
fn a_partly_committed_deploy_is_not_restored_unless_the_environment_opts_in() {
    let (db, project, url) = deployed_two_migrations();
    let envs = [("DEV_DATABASE_URL", url.as_str())];
    project.migration(BAD, BAD_PARTLY_COMMITTED, None);
    let before = full_dump(&db);
    next_second();

    let out = project.script("migrate.sh", &["deploy", "dev"], &envs);
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "MIGRATION_FAILED", "{out}");
    assert_eq!(json["error"]["details"]["partly_committed"], true, "{out}");
    assert_eq!(json["error"]["details"]["restored"], false, "{out}");
    assert_eq!(json["result"]["auto_restore"], false, "{out}");
    assert!(json["result"]["restored"].is_null(), "{out}");
    assert_eq!(
        step_names(&json).last().map(String::as_str),
        Some("deploy"),
        "{out}"
    );
    assert!(out.stderr.contains("NOT restored"), "{out}");
    // The database holds the committed part of BAD.
    assert!(db.column_exists("account", "nickname"));

    // The command the script prints puts it back as it was before the deploy.
    let command = json["error"]["details"]["restore_command"]
        .as_str()
        .expect("the restore command");
    assert!(
        json["error"]["hint"]
            .as_str()
            .expect("a hint")
            .contains(command),
        "{out}"
    );
    run_printed_restore(&project, command, &envs, &db, &before);
}

#[test]
fn a_deploy_that_cannot_say_what_it_committed_is_not_restored_on_a_guess() {
    let (db, project, url) = deployed_two_migrations();
    project.auto_restore("dev");
    let envs = [("DEV_DATABASE_URL", url.as_str())];
    // Recording the failure itself fails: the deploy ends with QUERY_FAILED, and its
    // error says nothing about what the migration committed.
    db.psql(
        "CREATE FUNCTION refuse_logs() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'no failure logs here'; END $$;\n\
         CREATE TRIGGER refuse_logs BEFORE INSERT ON _prisma_migrations \
         FOR EACH ROW WHEN (NEW.logs IS NOT NULL) EXECUTE FUNCTION refuse_logs();",
    );
    project.migration(BAD, BAD_PARTLY_COMMITTED, None);
    next_second();

    let out = project.script("migrate.sh", &["deploy", "dev"], &envs);
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "QUERY_FAILED", "{out}");
    assert_eq!(json["error"]["details"]["restored"], false, "{out}");
    assert!(
        !step_names(&json).iter().any(|s| s.starts_with("restore")),
        "{out}"
    );
    assert!(
        json["error"]["hint"]
            .as_str()
            .expect("a hint")
            .contains("did not say what it committed"),
        "{out}"
    );
}

#[test]
fn the_automatic_restore_of_a_protected_environment_needs_force_from_the_user() {
    let db = cluster().create_database();
    let project = Project::new();
    project.auto_restore("prod");
    two_migrations(&project);
    project.migration(BAD, BAD_PARTLY_COMMITTED, None);
    let url = db.url();
    let envs = [("PROD_DATABASE_URL", url.as_str())];

    // --yes approves the deploy, not replacing the database: the restore is refused.
    let out = project.script("migrate.sh", &["deploy", "prod", "--yes"], &envs);
    let json = document(&out, 6);
    assert_eq!(step(&json, "deploy")["exit_code"], 1, "{out}");
    assert_eq!(step(&json, "restore")["exit_code"], 6, "{out}");
    assert_eq!(
        step(&json, "restore")["error"]["code"],
        "PROTECTED_NEEDS_FORCE",
        "{out}"
    );
    assert!(out.stderr.contains("RESTORE FAILED"), "{out}");
    assert!(
        db.column_exists("account", "nickname"),
        "nothing was replaced"
    );
}

/// The lines of `a` and `b` that differ, for an assertion message.
fn diff(a: &str, b: &str) -> String {
    let (a, b): (Vec<_>, Vec<_>) = (a.lines().collect(), b.lines().collect());
    let mut out = String::new();
    for line in a.iter().filter(|l| !b.contains(l)).take(20) {
        out.push_str(&format!("- {line}\n"));
    }
    for line in b.iter().filter(|l| !a.contains(l)).take(20) {
        out.push_str(&format!("+ {line}\n"));
    }
    out
}

#[test]
fn migrate_rollback_runs_down_sql_after_a_backup() {
    let (db, project, url) = deployed_two_migrations();
    let envs = [("DEV_DATABASE_URL", url.as_str())];
    next_second();

    let out = project.script("migrate.sh", &["rollback", "dev"], &envs);
    let json = document(&out, 0);
    assert_eq!(
        steps(&json),
        [
            ("plan".to_string(), 0),
            ("backup".to_string(), 0),
            ("verify".to_string(), 0),
            ("rollback".to_string(), 0),
            ("schema".to_string(), 0),
            ("drift".to_string(), 0),
            ("status-after".to_string(), 3),
        ],
        "{out}"
    );
    assert_eq!(strings(&json["result"]["rolled_back"]), [ORDERS]);
    assert!(!db.relation_exists("public.orders"));
    assert!(db.relation_exists("public.account"));
    assert_eq!(applied(&db), [INIT]);
    assert_eq!(project.local_backups().len(), 2, "one backup per run");
}

#[test]
fn migrate_rollback_without_down_sql_restores_the_backup_taken_before_the_newest_migration() {
    let db = cluster().create_database();
    let project = Project::new();
    project.migration(
        INIT,
        "CREATE TABLE account (id bigserial PRIMARY KEY, name text NOT NULL);\n",
        Some("DROP TABLE account;\n"),
    );
    let url = db.url();
    let envs = [("DEV_DATABASE_URL", url.as_str())];
    document(
        &project.script("migrate.sh", &["deploy", "dev", "-q"], &envs),
        0,
    );
    db.psql("INSERT INTO account (name) VALUES ('kept'), ('also kept');");
    let before_orders_deploy = full_dump(&db);
    next_second();
    project.migration(
        ORDERS,
        "CREATE TABLE orders (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES account(id));\n",
        None,
    );
    let json = document(
        &project.script("migrate.sh", &["deploy", "dev", "-q"], &envs),
        0,
    );
    let before_orders = json["result"]["backup"]["id"]
        .as_str()
        .expect("the second deploy's backup")
        .to_string();
    db.psql(
        "INSERT INTO orders (account_id) VALUES (1); INSERT INTO account (name) VALUES ('lost');",
    );
    next_second();

    let out = project.script("migrate.sh", &["rollback", "dev"], &envs);
    let json = document(&out, 0);
    assert_eq!(
        steps(&json),
        [
            ("plan".to_string(), 1),
            ("restore".to_string(), 0),
            ("status-after".to_string(), 3),
        ],
        "{out}"
    );
    assert_eq!(step(&json, "plan")["error"]["code"], "NO_DOWN_SQL");
    assert_eq!(
        json["result"]["restored"]["backup"],
        before_orders.as_str(),
        "{out}"
    );
    let safety = json["result"]["restored"]["safety_backup"]
        .as_str()
        .expect("restore --clean took a safety backup of the state it replaced");
    assert!(project.local_backups().contains(&safety.to_string()));
    assert_eq!(strings(&json["result"]["rolled_back"]), [ORDERS]);
    // The backup taken by the deploy of ORDERS, just before it: ORDERS is not applied,
    // the rows written before that deploy are there, the later ones are not.
    assert!(!db.relation_exists("public.orders"));
    assert_eq!(applied(&db), [INIT]);
    assert_eq!(
        db.psql("SELECT name FROM account ORDER BY id"),
        "kept\nalso kept"
    );
    let after = full_dump(&db);
    assert!(
        before_orders_deploy == after,
        "the database is not as it was before ORDERS was deployed:\n{}",
        diff(&before_orders_deploy, &after)
    );
    assert_eq!(
        strings(&step(&json, "status-after")["result"]["pending"]),
        [ORDERS]
    );
}

#[test]
fn migrate_status_exits_3_with_pending_migrations_and_0_when_up_to_date() {
    let db = cluster().create_database();
    let project = Project::new();
    two_migrations(&project);
    let url = db.url();
    let envs = [("DEV_DATABASE_URL", url.as_str())];

    let out = project.script("migrate.sh", &["status", "dev"], &envs);
    let json = document(&out, 3);
    assert_eq!(steps(&json), [("status".to_string(), 3)]);
    assert_eq!(
        strings(&step(&json, "status")["result"]["pending"]),
        [INIT, ORDERS]
    );
    assert_eq!(json["warnings"][0]["code"], "PENDING_MIGRATIONS", "{out}");
    assert_eq!(json["warnings"][0]["step"], "status", "{out}");

    document(
        &project.script("migrate.sh", &["deploy", "dev", "-q", "--no-drift"], &envs),
        0,
    );
    let json = document(&project.script("migrate.sh", &["status", "dev"], &envs), 0);
    assert_eq!(steps(&json), [("status".to_string(), 0)]);
}

#[test]
fn a_protected_environment_without_yes_stops_with_6_and_with_yes_deploys() {
    let db = cluster().create_database();
    let project = Project::new();
    two_migrations(&project);
    let url = db.url();
    let envs = [("PROD_DATABASE_URL", url.as_str())];

    // No terminal, no --yes: pgward-migrate refuses, the script stops with its code and
    // restores nothing (nothing was changed).
    let out = project.script("migrate.sh", &["deploy", "prod"], &envs);
    let json = document(&out, 6);
    assert_eq!(json["error"]["code"], "PROTECTED_NEEDS_YES", "{out}");
    assert_eq!(json["error"]["details"]["step"], "deploy", "{out}");
    assert_eq!(
        step_names(&json).last().map(String::as_str),
        Some("deploy"),
        "{out}"
    );
    assert!(json["result"]["restored"].is_null(), "{out}");
    assert!(!db.relation_exists("public._prisma_migrations"));
    next_second();

    let out = project.script(
        "migrate.sh",
        &["deploy", "prod", "--yes", "--lock-timeout", "5s"],
        &envs,
    );
    document(&out, 0);
    assert_eq!(applied(&db), [INIT, ORDERS]);
    next_second();

    // rollback in a protected environment needs --force.
    let out = project.script("migrate.sh", &["rollback", "prod"], &envs);
    let json = document(&out, 6);
    assert_eq!(json["error"]["code"], "PROTECTED_NEEDS_FORCE", "{out}");
    assert_eq!(applied(&db), [INIT, ORDERS]);
}

#[test]
fn migrate_sh_usage_errors_help_and_missing_binaries() {
    let project = Project::new();
    let out = project.script("migrate.sh", &[], &[]);
    let json = document(&out, 2);
    assert_eq!(json["error"]["code"], "USAGE");
    assert!(out.stderr.contains("Usage:"), "{out}");

    let json = document(
        &project.script("migrate.sh", &["status", "dev", "--force"], &[]),
        2,
    );
    assert_eq!(json["error"]["code"], "USAGE");
    let json = document(&project.script("migrate.sh", &["launch", "dev"], &[]), 2);
    assert_eq!(json["error"]["code"], "USAGE");

    // The environment comes from pgward.toml: an unknown one is the binary's usage error.
    let json = document(&project.script("migrate.sh", &["status", "nosuch"], &[]), 2);
    assert_eq!(json["error"]["code"], "UNKNOWN_ENV");

    let out = project.script("migrate.sh", &["--help"], &[]);
    out.assert_code(0);
    assert!(out.stdout.starts_with("migrate.sh: "), "{out}");
    assert!(out.stdout.contains("Examples:"), "{out}");

    let out = project.script(
        "backup-cron.sh",
        &["dev"],
        &[("PGWARD_BIN", "/nonexistent")],
    );
    let json = document(&out, 2);
    assert_eq!(json["error"]["code"], "TOOL_MISSING", "{out}");
}

// ---------------------------------------------------------------------------------------
// backup-cron.sh
// ---------------------------------------------------------------------------------------

#[test]
fn backup_cron_backs_up_verifies_prunes_and_reports() {
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);");
    let project = Project::new();
    let url = db.url();
    let envs = [("DEV_DATABASE_URL", url.as_str())];

    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = project.script(
            "backup-cron.sh",
            &["dev", "--keep-last", "2", "--keep-days", "0"],
            &envs,
        );
        let json = document(&out, 0);
        assert_eq!(
            steps(&json),
            [
                ("backup".to_string(), 0),
                ("verify".to_string(), 0),
                ("prune".to_string(), 0),
                ("report".to_string(), 0),
            ],
            "{out}"
        );
        assert_eq!(json["result"]["backup"]["rows"], 100, "{out}");
        ids.push(
            json["result"]["backup"]["id"]
                .as_str()
                .expect("an id")
                .to_string(),
        );
        let report = step(&json, "report");
        assert_eq!(report["tool"], "report", "{out}");
        assert_eq!(report["result"]["too_old"], false, "{out}");
        assert_logged_with_timestamp(&out, "backup-cron.sh dev", "prune");
        next_second();
    }
    // Two kept: the oldest went in the third run's prune.
    assert_eq!(project.local_backups(), ids[1..]);

    // In a protected environment pruning needs --force; cron has no terminal to ask on.
    let out = project.script(
        "backup-cron.sh",
        &["prod"],
        &[("PROD_DATABASE_URL", url.as_str())],
    );
    let json = document(&out, 6);
    assert_eq!(json["error"]["code"], "PROTECTED_NEEDS_FORCE", "{out}");
    assert_eq!(step_names(&json).last().map(String::as_str), Some("prune"));
    next_second();
    let out = project.script(
        "backup-cron.sh",
        &["prod", "--force", "--keep-last", "1"],
        &[("PROD_DATABASE_URL", url.as_str())],
    );
    document(&out, 0);
}

#[test]
fn backup_cron_to_s3() {
    let server = s3();
    let bucket = server.new_bucket();
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10);");
    let project = Project::with_backups(&format!("s3://{bucket}/nightly"));
    let url = db.url();
    let s3_env = server.env();
    let mut envs = env_refs(&s3_env);
    envs.push(("DEV_DATABASE_URL", &url));

    let out = project.script("backup-cron.sh", &["dev", "--deep"], &envs);
    let json = document(&out, 0);
    assert_eq!(
        step_names(&json),
        ["backup", "verify", "prune", "report"],
        "{out}"
    );
    let id = json["result"]["backup"]["id"].as_str().expect("an id");
    assert_eq!(
        json["result"]["backup"]["location"],
        format!("s3://{bucket}/nightly")
    );
    assert!(
        server
            .keys(&bucket, "nightly/")
            .contains(&format!("nightly/{id}/manifest.json")),
        "{out}"
    );
    assert_eq!(step(&json, "verify")["result"]["deep"], true, "{out}");
    assert_eq!(step(&json, "report")["result"]["count"], 1, "{out}");
}

// ---------------------------------------------------------------------------------------
// test-migration.sh
// ---------------------------------------------------------------------------------------

/// A history of four migrations, three with down.sql.
fn history_with_down_sql(project: &Project) {
    two_migrations(project);
    project
        .migration(
            NOTES,
            "CREATE TYPE mood AS ENUM ('happy', 'sad');\n\
             CREATE TABLE note (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES account(id), \
             mood mood NOT NULL DEFAULT 'happy');\n",
            None,
        )
        .migration(
            INDEX,
            "CREATE INDEX CONCURRENTLY note_account_id_idx ON note(account_id);\n",
            Some("DROP INDEX CONCURRENTLY note_account_id_idx;\n"),
        );
}

#[test]
fn test_migration_deploys_rolls_back_and_redeploys_on_a_scratch_database() {
    let db = cluster().create_database();
    let project = Project::new();
    history_with_down_sql(&project);
    let url = db.url();

    let out = project.script("test-migration.sh", &["--database-url", &url], &[]);
    let json = document(&out, 0);
    assert_eq!(
        strings(&json["result"]["migrations"]),
        [INIT, ORDERS, NOTES, INDEX]
    );
    assert_eq!(
        strings(&json["result"]["tested_down_sql"]),
        [INIT, ORDERS, INDEX]
    );
    let names = step_names(&json);
    for name in [
        "create",
        "plan",
        &format!("rollback-{INIT}"),
        &format!("redeploy-{ORDERS}"),
        &format!("deploy-to-{NOTES}"),
        &format!("rollback-{INDEX}"),
        "deploy",
        "schema",
        "drop",
    ] {
        assert!(names.iter().any(|n| n == name), "no step {name}: {names:?}");
    }
    assert_eq!(names.last().map(String::as_str), Some("drop"));
    assert!(
        json["warnings"].as_array().expect("a list").is_empty(),
        "{out}"
    );
    let scratch = json["result"]["scratch_database"].as_str().expect("a name");
    assert!(
        !cluster().database_exists(scratch),
        "the scratch database was dropped"
    );
    assert!(
        !db.relation_exists("public._prisma_migrations"),
        "the database of the URL is left alone"
    );

    // DATABASE_URL works as well as the flag.
    let json = document(
        &project.script(
            "test-migration.sh",
            &["-q"],
            &[("DATABASE_URL", url.as_str())],
        ),
        0,
    );
    assert!(
        !cluster().database_exists(json["result"]["scratch_database"].as_str().expect("a name"))
    );
}

#[test]
fn test_migration_with_a_broken_down_sql_fails_and_drops_the_scratch_database() {
    let db = cluster().create_database();
    let url = db.url();

    // A down.sql that does not undo its migration: deploying it again fails.
    let project = Project::new();
    history_with_down_sql(&project);
    std::fs::write(
        project
            .path()
            .join("prisma/migrations")
            .join(ORDERS)
            .join("down.sql"),
        "DROP INDEX orders_account_id_idx;\n",
    )
    .expect("down.sql is writable");
    let out = project.script("test-migration.sh", &["--database-url", &url], &[]);
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "MIGRATION_FAILED", "{out}");
    assert_eq!(
        json["error"]["details"]["step"],
        format!("redeploy-{ORDERS}")
    );
    assert!(json["error"]["hint"]
        .as_str()
        .expect("a hint")
        .contains("down.sql"));
    assert_eq!(json["warnings"][0]["code"], "DOWN_SQL_INCOMPLETE", "{out}");
    assert_eq!(step_names(&json).last().map(String::as_str), Some("drop"));
    let scratch = json["result"]["scratch_database"].as_str().expect("a name");
    assert!(
        !cluster().database_exists(scratch),
        "dropped on failure too"
    );

    // A down.sql that fails.
    let project = Project::new();
    history_with_down_sql(&project);
    std::fs::write(
        project
            .path()
            .join("prisma/migrations")
            .join(INDEX)
            .join("down.sql"),
        "DROP INDEX CONCURRENTLY no_such_index;\n",
    )
    .expect("down.sql is writable");
    let out = project.script("test-migration.sh", &["--database-url", &url], &[]);
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "ROLLBACK_FAILED", "{out}");
    assert_eq!(
        json["error"]["details"]["step"],
        format!("rollback-{INDEX}")
    );
    let scratch = json["result"]["scratch_database"].as_str().expect("a name");
    assert!(
        !cluster().database_exists(scratch),
        "dropped on failure too"
    );

    // A down.sql that leaves a difference behind but lets the migration deploy again:
    // the schemas before the rollback and after the redeploy differ.
    let project = Project::new();
    project
        .migration(
            INIT,
            "CREATE TABLE account (id bigserial PRIMARY KEY, name text NOT NULL);\n",
            Some("DROP TABLE account;\n"),
        )
        .migration(
            ORDERS,
            "ALTER TABLE account ADD COLUMN email text;\n\
             ALTER TABLE account ADD COLUMN IF NOT EXISTS nickname text;\n",
            Some("ALTER TABLE account DROP COLUMN email;\n"),
        );
    let out = project.script("test-migration.sh", &["--database-url", &url], &[]);
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "SCHEMA_CHANGED", "{out}");
    assert_eq!(json["error"]["details"]["migration"], ORDERS);
    assert!(
        out.stderr.contains("+    email text"),
        "the diff is logged: email comes after nickname now\n{out}"
    );
    assert!(
        !cluster().database_exists(json["result"]["scratch_database"].as_str().expect("a name"))
    );
}

// ---------------------------------------------------------------------------------------
// maintenance.sh
// ---------------------------------------------------------------------------------------

#[test]
fn maintenance_vacuums_the_tables_health_says_are_due() {
    let db = cluster().create_database();
    // Autovacuum off for the table, so the test and the server's own autovacuum do not race.
    db.psql(
        "CREATE TABLE busy (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);\n\
         INSERT INTO busy SELECT g, 'x' FROM generate_series(1, 5000) g;\n\
         DELETE FROM busy WHERE id <= 4000;\n\
         CREATE TABLE quiet (id int PRIMARY KEY) WITH (autovacuum_enabled = false);",
    );
    let last_vacuum = || {
        db.query_one_string("SELECT coalesce(last_vacuum::text, '') FROM pg_stat_user_tables WHERE relname = 'busy'")
    };
    let wait_for = |what: &str, mut done: Box<dyn FnMut() -> bool + '_>| {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The statistics of the psql session that deleted reach the server when it ends.
    wait_for(
        "the dead rows to show",
        Box::new(|| {
            db.query_one_string("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'busy'")
                != "0"
        }),
    );
    let project = Project::new();
    let url = db.url();
    let envs = [("DEV_DATABASE_URL", url.as_str())];

    let out = project.script("maintenance.sh", &["dev", "--dry-run"], &envs);
    let json = document(&out, 0);
    assert_eq!(steps(&json), [("health".to_string(), 0)]);
    let due = json["result"]["due"].as_array().expect("a list");
    assert_eq!(due.len(), 1, "{out}");
    assert_eq!(due[0]["table"], "busy");
    assert_eq!(due[0]["vacuum"], true);
    assert_eq!(last_vacuum(), "", "a dry run vacuums nothing");

    let out = project.script("maintenance.sh", &["dev"], &envs);
    let json = document(&out, 0);
    assert_eq!(
        steps(&json),
        [
            ("health".to_string(), 0),
            ("vacuum public.busy".to_string(), 0)
        ],
        "{out}"
    );
    assert_eq!(
        json["result"]["maintained"][0]["action"],
        "VACUUM (ANALYZE)"
    );
    assert_logged_with_timestamp(&out, "maintenance.sh dev", "vacuum public.busy");
    wait_for(
        "VACUUM to show in the statistics",
        Box::new(|| !last_vacuum().is_empty()),
    );
    assert_eq!(
        db.query_one_string("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'busy'"),
        "0"
    );

    // Nothing due any more.
    let json = document(&project.script("maintenance.sh", &["dev"], &envs), 0);
    assert_eq!(steps(&json), [("health".to_string(), 0)]);
    assert_eq!(json["result"]["maintained"], serde_json::json!([]));
}

// ---------------------------------------------------------------------------------------
// The scripts' shell
// ---------------------------------------------------------------------------------------

const SCRIPTS: &[&str] = &[
    "scripts/migrate.sh",
    "scripts/rehearse.sh",
    "scripts/backup-cron.sh",
    "scripts/test-migration.sh",
    "scripts/maintenance.sh",
    "scripts/lib/common.sh",
    "scripts/lib/cluster.sh",
    "scripts/demo.sh",
    "scripts/test.sh",
    "scripts/lib/install.sh",
    "bench/backup.sh",
    "bench/migrate.sh",
    "bench/validate.sh",
    "bench/trace.sh",
    ".ci/run",
];

#[test]
fn the_scripts_parse_and_are_shellcheck_clean() {
    let root = workspace_root();
    for script in SCRIPTS {
        let out = Command::new("bash")
            .arg("-n")
            .arg(root.join(script))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "bash -n {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shellcheck = Command::new("shellcheck").arg("--version").output();
    if shellcheck.is_err() {
        eprintln!("shellcheck is not installed (apt-get install shellcheck): skipped");
        return;
    }
    let out = Command::new("shellcheck")
        .arg("-x")
        .args(SCRIPTS)
        .current_dir(&root)
        .output()
        .expect("shellcheck runs");
    assert!(
        out.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn test_migration_drops_the_scratch_database_when_interrupted() {
    let db = cluster().create_database();
    let project = Project::new();
    project
        .migration(
            INIT,
            "CREATE TABLE account (id int PRIMARY KEY);\n",
            Some("DROP TABLE account;\n"),
        )
        .migration(ORDERS, "SELECT pg_sleep(120);\n", None);
    let url = db.url();
    let running = RunningScript::start(
        project.path(),
        "test-migration.sh",
        &["--database-url", &url],
        &[],
    );
    // The scratch database is pgward_test_<the script's pid>_<random>.
    let scratch = format!("pgward\\_test\\_{}\\_%", running.pid());
    let started = Instant::now();
    while db.query_one_string(&format!(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname LIKE '{scratch}' AND state = 'active' AND query LIKE '%pg_sleep%'"
    )) == "0"
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the slow migration never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Ctrl-C on a terminal signals the whole foreground process group.
    running.signal_group(libc::SIGINT);
    let out = running.wait();
    let json = document(&out, 130);
    assert_eq!(json["error"]["code"], "INTERRUPTED", "{out}");
    assert_eq!(
        step_names(&json).last().map(String::as_str),
        Some("drop"),
        "{out}"
    );
    let name = json["result"]["scratch_database"].as_str().expect("a name");
    assert!(
        !cluster().database_exists(name),
        "dropped after Ctrl-C too\n{out}"
    );
}

// ---------------------------------------------------------------------------------------
// examples/
// ---------------------------------------------------------------------------------------

/// Every `pgward-TOOL COMMAND --flag` and `SCRIPT.sh --flag` the examples run exists: the
/// binary has the command and the flag, the script is in scripts/ and its usage names
/// the flag.
#[test]
fn the_examples_use_only_existing_binaries_scripts_and_flags() {
    const TOOLS: &[&str] = &["migrate", "backup", "restore", "validate", "report"];
    let root = workspace_root();
    let mut checked = 0;
    for file in [
        "examples/github-actions.yml",
        "examples/gitlab-ci.yml",
        "examples/Makefile",
        "examples/crontab",
    ] {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{file} is readable: {e}"));
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let tokens: Vec<&str> = line
                .split(|c: char| c.is_whitespace() || "\"'();".contains(c))
                .filter(|t| !t.is_empty())
                .collect();
            for (i, token) in tokens.iter().enumerate() {
                let name = token.rsplit('/').next().unwrap_or(token);
                // The flags of this command: up to the first redirection or pipe.
                let rest = tokens[i + 1..].iter().take_while(|t| {
                    !(t.starts_with('>')
                        || t.starts_with('|')
                        || t.starts_with('&')
                        || t.starts_with("2>"))
                });
                let help = if let Some(tool) =
                    name.strip_prefix("pgward-").filter(|t| TOOLS.contains(t))
                {
                    let Some(command) = tokens
                        .get(i + 1)
                        .filter(|c| c.chars().all(|ch| ch.is_ascii_lowercase()))
                    else {
                        continue;
                    };
                    let out = Command::new(bin(tool))
                        .args([command, "--help"])
                        .output()
                        .expect("the binary runs");
                    assert!(
                        out.status.success(),
                        "{file}: `pgward-{tool} {command}` is no command: {line}"
                    );
                    String::from_utf8_lossy(&out.stdout).into_owned()
                } else if name.ends_with(".sh") && !name.contains('$') {
                    let path = root.join("scripts").join(name);
                    assert!(
                        path.is_file(),
                        "{file}: scripts/{name} does not exist: {line}"
                    );
                    let out = Command::new(&path)
                        .arg("--help")
                        .output()
                        .expect("the script runs");
                    assert!(out.status.success(), "{name} --help");
                    String::from_utf8_lossy(&out.stdout).into_owned()
                } else {
                    continue;
                };
                for flag in rest.filter(|t| t.starts_with("--")) {
                    let flag = flag.split('=').next().unwrap_or(flag);
                    assert!(
                        help.contains(flag),
                        "{file}: {name} has no flag {flag}: {line}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 15,
        "the examples run the binaries and scripts ({checked} checked)"
    );
}

/// The README's test command installs the SeaweedFS release the harness is pinned to: the
/// harness's `WEED_VERSION` is the one source, and `scripts/lib/install.sh` must say the
/// same, or a fresh machine would get a `weed` the harness rejects.
#[test]
fn the_installer_pins_the_harness_seaweedfs_version() {
    let installer = std::fs::read_to_string(workspace_root().join("scripts/lib/install.sh"))
        .expect("scripts/lib/install.sh is readable");
    let pinned: Vec<&str> = installer
        .lines()
        .filter_map(|l| l.strip_prefix("PGW_WEED_VERSION="))
        .collect();
    assert_eq!(
        pinned,
        [pgward_tests::WEED_VERSION],
        "scripts/lib/install.sh pins SeaweedFS {pinned:?}; the harness expects {}",
        pgward_tests::WEED_VERSION
    );
}

/// `.ci/run`, `scripts/test.sh` and `scripts/demo.sh` each take protoc off PATH in turn;
/// each pass must keep every other folder, the last one too. A filter that dropped PATH's
/// last folder on every pass left the demo, three passes deep in CI, without /usr/bin.
#[test]
fn taking_protoc_off_path_keeps_every_other_folder_however_often_it_runs() {
    let root = pgward_tests::temp_dir("protoc_path_");
    let with_protoc = root.path().join("with-protoc");
    std::fs::create_dir(&with_protoc).expect("a folder");
    let protoc = with_protoc.join("protoc");
    std::fs::write(&protoc, "#!/bin/sh\n").expect("a fake protoc");
    std::fs::set_permissions(&protoc, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = format!("/x/a:{}:/x/b:/x/last", with_protoc.display());
    let installer = workspace_root().join("scripts/lib/install.sh");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#". "$1"; PATH=$2; for _ in 1 2 3 4; do pgw_without_protoc; done; printf %s "$PATH""#)
        .args(["bash", pgward_tests::path_str(&installer), &path])
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/x/a:/x/b:/x/last");
}
