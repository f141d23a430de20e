//! `scripts/rehearse.sh ENV`: the pending migrations on a restored copy of the newest
//! verified backup, on a rehearsal server, with `deploy --trace`; the verdict against a
//! lock budget; the scratch database dropped however the run ends, a killed run's left for
//! the next run to drop, a live run's never dropped by another; and `migrate.sh deploy
//! --rehearse`, which stops before touching the environment on the verdict.

use std::time::{Duration, Instant};

use pgward_tests::{
    cluster, run_in, run_script, webhook, write_migrations, Cluster, Output, RunningScript, TestDb,
    SUPERUSER_PASSWORD,
};
use serde_json::Value;
use tempfile::TempDir;

/// The budget the rewrite and the plain index build on 400,000 rows of 128-character notes
/// overrun many times over (each rewrites or hashes every row of a 70 MB table: 1.2-2 s
/// on a loaded 2-core machine, so a machine ten times faster still takes over 100 ms),
/// and the concurrent build (which blocks nothing) and the constant default (a catalog
/// change holding its lock 2-30 ms here, as in migrate_trace.rs's 100 ms budget) keep.
const BUDGET: &str = "100ms";

/// The history production has applied: the table and its rows.
const ORDERS: (&str, &str) = (
    "20231231000000_orders",
    "CREATE TABLE orders (id integer PRIMARY KEY, amount integer NOT NULL, note text);\n\
     INSERT INTO orders SELECT g, g % 1000, repeat(md5(g::text), 4) FROM generate_series(1, 400000) AS g;\n",
);

/// The pending migrations of the issue: (a) ALTER COLUMN TYPE, (b) CREATE INDEX, (c)
/// CREATE INDEX CONCURRENTLY, (d) ADD COLUMN with a constant default.
const PENDING: &[(&str, &str)] = &[
    (
        "20240101000000_widen_amount",
        "ALTER TABLE orders ALTER COLUMN amount TYPE bigint;\n",
    ),
    (
        "20240101000001_index_note",
        "CREATE INDEX orders_note_md5_idx ON orders (md5(note), amount);\n",
    ),
    (
        "20240101000002_index_amount",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_amount_idx ON orders (amount);\n",
    ),
    (
        "20240101000003_add_status",
        "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';\n",
    ),
];

/// The protected environment `prod` of a project: its database (the shared cluster) with
/// [`ORDERS`] applied, backed up and verified; pgward.toml names REHEARSAL_URL as its
/// rehearsal server's variable.
struct Production {
    db: TestDb<'static>,
    project: TempDir,
}

impl Production {
    fn new(extra_toml: &str) -> Production {
        let db = cluster().create_database();
        let project = tempfile::Builder::new()
            .prefix("rehearse_project_")
            .tempdir()
            .expect("a temp project dir");
        std::fs::write(
            project.path().join("pgward.toml"),
            format!(
                "migrations = \"prisma/migrations\"\n\
                 \n\
                 [env.prod]\n\
                 database_url_env = \"PROD_DATABASE_URL\"\n\
                 backups = \"backups\"\n\
                 protected = true\n\
                 rehearsal_url_env = \"REHEARSAL_URL\"\n\
                 {extra_toml}"
            ),
        )
        .expect("pgward.toml is writable");
        let production = Production { db, project };
        write_migrations(&production.migrations(), &[ORDERS]);
        production
            .binary("migrate", &["deploy", "--env", "prod", "--yes", "-q"])
            .assert_code(0);
        production.db.psql("ANALYZE orders");
        let backup = production.binary("backup", &["--env", "prod", "-q"]);
        backup.assert_code(0);
        let id = backup.json()["result"]["id"]
            .as_str()
            .expect("a backup id")
            .to_string();
        production
            .binary("backup", &["verify", &id, "--env", "prod", "-q"])
            .assert_code(0);
        production
    }

    fn migrations(&self) -> std::path::PathBuf {
        self.project.path().join("prisma/migrations")
    }

    fn url(&self) -> String {
        self.db.url()
    }

    fn binary(&self, tool: &str, args: &[&str]) -> Output {
        let url = self.url();
        run_in(
            self.project.path(),
            tool,
            args,
            &[
                ("PROD_DATABASE_URL", url.as_str()),
                (
                    "PGWARD_PG_BINDIR",
                    cluster().bin_dir.to_str().expect("a UTF-8 path"),
                ),
            ],
        )
    }

    fn envs<'a>(&'a self, url: &'a str, rehearsal: &'a str) -> [(&'a str, &'a str); 2] {
        [("PROD_DATABASE_URL", url), ("REHEARSAL_URL", rehearsal)]
    }

    /// `scripts/rehearse.sh prod ARGS` with the rehearsal server `rehearsal` (a URL).
    fn rehearse(&self, rehearsal: &str, args: &[&str]) -> Output {
        let url = self.url();
        let mut all = vec!["prod"];
        all.extend_from_slice(args);
        run_script(
            self.project.path(),
            "rehearse.sh",
            &all,
            &self.envs(&url, rehearsal),
        )
    }

    fn start_rehearsal(&self, rehearsal: &str, args: &[&str]) -> RunningScript {
        let url = self.url();
        let mut all = vec!["prod"];
        all.extend_from_slice(args);
        RunningScript::start(
            self.project.path(),
            "rehearse.sh",
            &all,
            &self.envs(&url, rehearsal),
        )
    }

    /// What production holds, to show the rehearsal never wrote it: its schema, history
    /// and rows.
    fn state(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.db.pg_dump_schema(),
            self.db.query_one_string(
                "SELECT string_agg(migration_name, ',' ORDER BY migration_name) FROM _prisma_migrations"
            ),
            self.db
                .query_one_string("SELECT count(*) || ':' || sum(amount) FROM orders")
        )
    }
}

/// The script's document, after checking its exit code and envelope, and that no password
/// leaked.
fn document(out: &Output, code: i32) -> Value {
    out.assert_code(code);
    let json = out.json();
    assert_eq!(json["tool"], "rehearse.sh", "{out}");
    assert_eq!(json["exit_code"], code, "{out}");
    assert!(
        !out.stdout.contains(SUPERUSER_PASSWORD) && !out.stderr.contains(SUPERUSER_PASSWORD),
        "the password leaked\n{out}"
    );
    json
}

fn step<'j>(json: &'j Value, name: &str) -> &'j Value {
    json["result"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {json}"))
}

fn step_names(json: &Value) -> Vec<String> {
    json["result"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].as_str().expect("a name").to_string())
        .collect()
}

/// The rehearsal databases on `server`, marked or not.
fn rehearsal_databases(server: &Cluster) -> Vec<String> {
    server
        .client("postgres")
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'pgward\\_rehearse\\_%' ORDER BY 1",
            &[],
        )
        .expect("pg_database can be read")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Waits until the rehearsal started as `running` has created and marked its scratch
/// database on `server` (named after the script's pid); returns its name.
fn marked_scratch(server: &Cluster, running: &RunningScript) -> String {
    let pattern = format!("pgward\\_rehearse\\_{}\\_%", running.pid());
    let started = Instant::now();
    loop {
        let found = server
            .client("postgres")
            .query(
                "SELECT datname::text FROM pg_database WHERE datname LIKE $1 \
                 AND starts_with(shobj_description(oid, 'pg_database'), 'pgward work in progress: scratch database of scripts/rehearse.sh')",
                &[&pattern],
            )
            .expect("pg_database can be read");
        if let Some(row) = found.first() {
            return row.get(0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the rehearsal never created its marked scratch database"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lock_on<'v>(statement: &'v Value, relation: &str) -> &'v Value {
    statement["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .find(|l| l["relation"] == relation)
        .unwrap_or_else(|| panic!("no lock on {relation} in {statement}"))
}

#[test]
fn a_rehearsal_on_another_server_measures_each_lock_and_exits_3_for_the_write_blocking_ones() {
    let production = Production::new("");
    write_migrations(&production.migrations(), PENDING);
    let before = production.state();
    let rehearsal_server = Cluster::start();
    let rehearsal_url = rehearsal_server.url("postgres");
    let markdown = production.project.path().join("verdict.md");
    let out = production.rehearse(
        &rehearsal_url,
        &[
            "--max-lock",
            BUDGET,
            "--markdown",
            markdown.to_str().expect("utf-8"),
        ],
    );
    let json = document(&out, 3);
    assert_eq!(
        step_names(&json),
        [
            "backups",
            "env-status",
            "leftovers",
            "create",
            "restore",
            "catch-up",
            "baseline-schema",
            "baseline-drift",
            "lint",
            "deploy",
            "schema",
            "drift",
            "drop"
        ],
        "{out}"
    );
    assert_eq!(
        json["result"]["rehearsal_server"]["same_as_env"], false,
        "{out}"
    );
    assert_eq!(
        json["result"]["deployed"],
        serde_json::json!(PENDING.iter().map(|(n, _)| *n).collect::<Vec<_>>())
    );

    // The trace of each statement on the copy: lock modes and rewrites.
    let applied = &step(&json, "deploy")["result"]["applied"];
    let statement = |m: usize| -> &Value { &applied[m]["trace"]["statements"][0] };
    let widen = statement(0);
    assert_eq!(
        lock_on(widen, "orders")["mode"],
        "ACCESS EXCLUSIVE",
        "{widen}"
    );
    assert!(
        widen["rewrites"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["relation"] == "orders")),
        "(a) rewrote orders: {widen}"
    );
    let index = statement(1);
    assert_eq!(lock_on(index, "orders")["mode"], "SHARE", "{index}");
    assert_eq!(lock_on(index, "orders")["blocks"], "writes", "{index}");
    assert_eq!(index["rewrites"], serde_json::json!([]), "{index}");
    let concurrent = statement(2);
    assert_eq!(concurrent["in_transaction"], false, "{concurrent}");
    assert_eq!(
        lock_on(concurrent, "orders")["mode"],
        "SHARE UPDATE EXCLUSIVE",
        "{concurrent}"
    );
    assert_eq!(lock_on(concurrent, "orders")["blocks"], "nothing");
    let add = statement(3);
    assert_eq!(lock_on(add, "orders")["mode"], "ACCESS EXCLUSIVE", "{add}");
    assert_eq!(
        add["rewrites"],
        serde_json::json!([]),
        "(d) rewrote nothing: {add}"
    );

    // The verdict: (a) and (b), each with file:line, statement, table, mode, time and the
    // lint rule that predicted it; (c) and (d) within the budget.
    let verdict = &json["result"]["verdict"];
    assert_eq!(verdict["max_lock"], BUDGET);
    let over = verdict["over_budget"].as_array().expect("over_budget");
    let mut found: Vec<(&str, &str, &str)> = over
        .iter()
        .map(|o| {
            (
                o["file"].as_str().expect("file"),
                o["mode"].as_str().expect("mode"),
                o["lint"][0]["rule"].as_str().unwrap_or("none"),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (
                "20240101000000_widen_amount/migration.sql",
                "ACCESS EXCLUSIVE",
                "alter-column-type"
            ),
            (
                "20240101000001_index_note/migration.sql",
                "SHARE",
                "create-index-not-concurrently"
            )
        ],
        "{out}"
    );
    for o in over {
        assert!(
            o["lint"][0]["fix"].as_str().is_some_and(|f| !f.is_empty()),
            "the safe rewrite is given: {o}"
        );
    }
    let lines: Vec<&str> = verdict["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l.as_str().expect("a line"))
        .collect();
    let widen_line = lines
        .iter()
        .find(|l| l.starts_with("20240101000000_widen_amount/migration.sql:1: ALTER TABLE orders ALTER COLUMN amount TYPE bigint holds ACCESS EXCLUSIVE on orders for "))
        .unwrap_or_else(|| panic!("the rewrite's line: {lines:?}"));
    assert!(
        widen_line.contains("(rewrite of ")
            && widen_line.ends_with("; blocks reads and writes; see lint alter-column-type"),
        "{widen_line}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "20240101000001_index_note/migration.sql:1: CREATE INDEX orders_note_md5_idx ON orders (md5(note), amoun … holds SHARE on orders for "
        ) && l.ends_with("; blocks writes; see lint create-index-not-concurrently")),
        "{lines:?}"
    );
    for line in &lines {
        assert!(
            out.stderr.contains(line),
            "each verdict line is on stderr: {line}\n{out}"
        );
    }
    let md = std::fs::read_to_string(&markdown).expect("the Markdown verdict is written");
    assert!(
        md.starts_with("### Rehearsal of prod on backup `")
            && md.contains(&format!("2 lock(s) over the {BUDGET} budget")),
        "{md}"
    );
    assert_eq!(
        md.lines().filter(|l| l.starts_with("- `2024")).count(),
        2,
        "one line per finding: {md}"
    );
    assert!(md.contains("- `alter-column-type`: "), "{md}");

    // Production untouched; the scratch database gone from the rehearsal server.
    assert_eq!(
        production.state(),
        before,
        "the source database is untouched"
    );
    assert_eq!(json["result"]["scratch_dropped"], true, "{out}");
    assert_eq!(rehearsal_databases(&rehearsal_server), Vec::<String>::new());
}

#[test]
fn a_rehearsal_on_the_environments_own_server_needs_yes() {
    let production = Production::new("");
    write_migrations(&production.migrations(), &[PENDING[3]]);
    let before = production.state();
    let same_server = cluster().url("postgres");
    let out = production.rehearse(&same_server, &["--max-lock", BUDGET]);
    let json = document(&out, 6);
    assert_eq!(
        json["error"]["code"], "REHEARSAL_ON_PRODUCTION_SERVER",
        "{out}"
    );
    assert!(
        json["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("--yes")),
        "{out}"
    );
    assert_eq!(
        step_names(&json),
        ["backups", "env-status"],
        "nothing created: {out}"
    );

    // --from names the backup; without it, the newest verified one is taken, and none
    // verified is a failure that says how to get one.
    let listed = production.binary("backup", &["list", "--env", "prod"]);
    let id = listed.json()["result"]["backups"][0]["id"]
        .as_str()
        .expect("the backup")
        .to_string();
    let verified = production
        .project
        .path()
        .join("backups")
        .join(&id)
        .join("verified.json");
    let record = std::fs::read(&verified).expect("the backup was verified");
    std::fs::remove_file(&verified).expect("verified.json can be removed");
    let out = production.rehearse(&same_server, &["--yes"]);
    let json = document(&out, 1);
    assert_eq!(json["error"]["code"], "NO_VERIFIED_BACKUP", "{out}");
    std::fs::write(&verified, record).expect("verified.json can be put back");

    let url = production.url();
    let unset = run_script(
        production.project.path(),
        "rehearse.sh",
        &["prod", "--yes"],
        &[("PROD_DATABASE_URL", url.as_str())],
    );
    let json = document(&unset, 2);
    assert_eq!(json["error"]["code"], "NO_REHEARSAL_URL", "{unset}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("REHEARSAL_URL")),
        "{unset}"
    );

    let from = format!("backups/{id}");
    let out = production.rehearse(
        &same_server,
        &["--max-lock", BUDGET, "--yes", "--from", &from],
    );
    let json = document(&out, 0);
    assert_eq!(json["result"]["backup"]["id"], id.as_str(), "{out}");
    assert!(
        !step_names(&json).contains(&"backups".to_string()),
        "--from lists no backups: {out}"
    );
    assert_eq!(json["result"]["rehearsal_server"]["same_as_env"], true);
    assert!(out.stderr.contains("approved by --yes"), "{out}");
    let scratch = json["result"]["scratch_database"].as_str().expect("a name");
    assert!(!cluster().database_exists(scratch), "{out}");
    assert_eq!(
        production.state(),
        before,
        "the source database is untouched"
    );
}

#[test]
fn a_killed_rehearsals_database_is_dropped_by_the_next_run_and_a_live_ones_never_is() {
    let production = Production::new("");
    write_migrations(&production.migrations(), &[PENDING[3]]);
    let server = cluster();
    let url = server.url("postgres");

    // kill -9 of the whole rehearsal (script, psql holder, binaries) once its scratch
    // database is there: no trap runs, the database stays behind.
    let killed = production.start_rehearsal(&url, &["--yes", "--max-lock", BUDGET]);
    let left = marked_scratch(server, &killed);
    killed.signal_group(libc::SIGKILL);
    assert_eq!(killed.wait().code, 128 + libc::SIGKILL);
    assert!(server.database_exists(&left), "kill -9 left {left} behind");
    // The server ends the killed sessions as it notices them.
    let started = Instant::now();
    while server.sessions_on(&left) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the killed rehearsal's sessions on {left} never ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The next rehearsal drops it before it creates its own database. That run's script
    // is then stopped (SIGSTOP, the script alone: the step it runs finishes) between two
    // steps, when no session is on its database: its holder session stays connected, so
    // a third run's cleanup must leave the database alone.
    let live = production.start_rehearsal(&url, &["--yes", "--max-lock", BUDGET]);
    let live_scratch = marked_scratch(server, &live);
    assert!(
        !server.database_exists(&left),
        "the next run dropped {left}"
    );
    // SAFETY: kill has no memory-safety preconditions; the pid is the script's own.
    unsafe { libc::kill(live.pid() as libc::pid_t, libc::SIGSTOP) };
    let started = Instant::now();
    while server.sessions_on(&live_scratch) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the stopped rehearsal's step never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = production.rehearse(&url, &["--yes", "--max-lock", BUDGET]);
    let json = document(&out, 0);
    assert!(
        !json["result"]["leftovers_dropped"]
            .as_array()
            .expect("leftovers_dropped")
            .iter()
            .any(|d| d == live_scratch.as_str()),
        "{out}"
    );
    assert!(
        server.database_exists(&live_scratch),
        "a live rehearsal's database survives another run's cleanup\n{out}"
    );
    let own = json["result"]["scratch_database"].as_str().expect("a name");
    assert!(!server.database_exists(own), "{out}");

    // SAFETY: as above.
    unsafe { libc::kill(live.pid() as libc::pid_t, libc::SIGCONT) };
    let out = live.wait();
    let json = document(&out, 0);
    assert_eq!(json["result"]["scratch_database"], live_scratch.as_str());
    assert!(!server.database_exists(&live_scratch), "{out}");
}

#[test]
fn an_interrupted_rehearsal_drops_its_scratch_database() {
    let production = Production::new("");
    write_migrations(
        &production.migrations(),
        &[("20240101000000_slow", "SELECT pg_sleep(120);\n")],
    );
    let server = cluster();
    let running = production.start_rehearsal(&server.url("postgres"), &["--yes"]);
    let scratch = marked_scratch(server, &running);
    let started = Instant::now();
    while server
        .client("postgres")
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep%'",
            &[&scratch],
        )
        .expect("pg_stat_activity can be read")
        .get::<_, i64>(0)
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the slow migration never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    running.signal_group(libc::SIGINT);
    let out = running.wait();
    let json = document(&out, 130);
    assert_eq!(json["error"]["code"], "INTERRUPTED", "{out}");
    assert_eq!(step_names(&json).last().map(String::as_str), Some("drop"));
    assert!(!server.database_exists(&scratch), "{out}");
}

#[test]
fn migrate_sh_stops_before_touching_production_on_the_verdict_unless_locks_are_accepted() {
    // `rehearse = true` in pgward.toml; the rehearsal server is production's own, which
    // migrate.sh's --yes approves. The run notifies a real webhook once.
    let (hook_url, hook) = webhook("/services/T0/B0/secret");
    let production = Production::new(&format!(
        "rehearse = true\nmax_lock = \"{BUDGET}\"\nnotify_url = \"{hook_url}\"\n"
    ));
    // The plain index build is reviewed (suppressed): preflight passes, and the verdict
    // line says no rule predicted it.
    write_migrations(
        &production.migrations(),
        &[
            (
                "20240101000001_index_note",
                "-- pgward-ignore create-index-not-concurrently\n\
                 CREATE INDEX orders_note_md5_idx ON orders (md5(note), amount);\n",
            ),
            PENDING[3],
        ],
    );
    let before = production.state();
    let url = production.url();
    let rehearsal = cluster().url("postgres");
    let envs = production.envs(&url, &rehearsal);
    let deploy = |args: &[&str]| {
        let mut all = vec!["deploy", "prod", "--yes", "-q"];
        all.extend_from_slice(args);
        run_script(production.project.path(), "migrate.sh", &all, &envs)
    };

    let out = deploy(&[]);
    out.assert_code(3);
    let json = out.json();
    let names: Vec<&str> = json["result"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["status", "preflight", "rehearse"], "{out}");
    let lines = json["result"]["rehearsal"]["over_budget"]
        .as_array()
        .expect("the verdict's lines");
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0]
            .as_str()
            .is_some_and(|l| l.starts_with(
                "20240101000001_index_note/migration.sql:2: CREATE INDEX orders_note_md5_idx"
            ) && l.ends_with("; blocks writes; no lint rule predicted it")),
        "{out}"
    );
    assert!(out.stderr.contains("stopped before touching prod"), "{out}");
    assert_eq!(production.state(), before, "nothing of production touched");
    // ONE notification for the run: migrate.sh's, none of the rehearsal it ran.
    let (_, body) = hook
        .recv_timeout(Duration::from_secs(30))
        .expect("the run notifies");
    assert!(
        body.contains("migrate.sh") && body.contains("needs attention"),
        "{body}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        hook.try_recv().is_err(),
        "the rehearsal run by migrate.sh sends no notification of its own"
    );

    let out = deploy(&["--accept-locks"]);
    out.assert_code(0);
    let json = out.json();
    assert!(
        json["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w["code"] == "LOCKS_ACCEPTED"),
        "{out}"
    );
    assert_eq!(json["result"]["rehearsal"]["accepted"], true, "{out}");
    assert_eq!(
        json["result"]["deployed"],
        serde_json::json!(["20240101000001_index_note", "20240101000003_add_status"]),
        "{out}"
    );
    assert!(production.db.column_exists("orders", "status"));
    let scratch = json["result"]["rehearsal"]["scratch_database"]
        .as_str()
        .expect("the rehearsal's scratch database");
    assert!(!cluster().database_exists(scratch), "{out}");

    // The newest verified backup is now the one migrate.sh took before that deploy: a
    // rehearsal of the next migration brings the copy up to production first, untraced,
    // and measures only what is pending on production.
    write_migrations(
        &production.migrations(),
        &[(
            "20240101000004_add_flag",
            "ALTER TABLE orders ADD COLUMN flag boolean;\n",
        )],
    );
    let out = production.rehearse(&rehearsal, &["--yes"]);
    let json = document(&out, 0);
    assert_eq!(
        json["result"]["caught_up"],
        serde_json::json!(["20240101000001_index_note", "20240101000003_add_status"]),
        "{out}"
    );
    assert_eq!(
        json["result"]["deployed"],
        serde_json::json!(["20240101000004_add_flag"]),
        "{out}"
    );
    assert_eq!(json["result"]["verdict"]["lines"], serde_json::json!([]));
}

#[test]
fn a_migration_that_fails_on_the_copy_stops_migrate_sh_before_production_is_touched() {
    let production = Production::new("");
    write_migrations(
        &production.migrations(),
        &[(
            "20240101000000_breaks",
            "ALTER TABLE orders ADD COLUMN ratio integer;\nUPDATE orders SET ratio = 1 / (amount - amount);\n",
        )],
    );
    let before = production.state();
    let url = production.url();
    let rehearsal = cluster().url("postgres");
    let out = run_script(
        production.project.path(),
        "migrate.sh",
        &["deploy", "prod", "--yes", "--rehearse", "-q"],
        &production.envs(&url, &rehearsal),
    );
    out.assert_code(1);
    let json = out.json();
    let steps = json["result"]["steps"].as_array().expect("steps");
    assert_eq!(steps.last().expect("a step")["step"], "rehearse", "{out}");
    assert_eq!(json["error"]["code"], "MIGRATION_FAILED", "{out}");
    assert!(
        json["error"]["hint"].as_str().is_some_and(
            |h| h.contains("restored copy of prod") && h.contains("prod was not touched")
        ),
        "{out}"
    );
    let scratch = steps.last().expect("a step")["result"]["scratch_database"]
        .as_str()
        .expect("the rehearsal's scratch database");
    assert!(
        !cluster().database_exists(scratch),
        "dropped after the failure: {out}"
    );
    assert_eq!(production.state(), before, "nothing of production touched");
}
