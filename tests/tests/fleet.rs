//! End-to-end tests of fleets (docs/fleet.md): one command over many databases or tenant
//! schemas, `--parallel` at a time, canary first, stop rules, shards, Ctrl-C, and the one
//! JSON document that reports every target, against a real PostgreSQL server.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pgward_tests::{
    bin, cluster, fixtures_dir, path_str, run, run_in, run_script, spawn, temp_dir, wait_child,
    wait_until, write_migrations, Output, TestDb, SUPERUSER_PASSWORD,
};
use serde_json::Value;

/// The first migrations of langfuse's real history (the corpus): enough to be a real
/// deploy on every target, few enough for 40 targets on a loaded 2-core machine.
const CORPUS_MIGRATIONS: usize = 12;

/// langfuse's first migration; its second creates the table `traces`.
const FIRST: &str = "20230518191501_init";

/// A migrations folder with the first [`CORPUS_MIGRATIONS`] of the corpus.
fn corpus_prefix(root: &Path) -> PathBuf {
    let source = fixtures_dir().join("corpus/langfuse__langfuse/migrations");
    let dir = root.join("migrations");
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    std::fs::copy(
        source.join("migration_lock.toml"),
        dir.join("migration_lock.toml"),
    )
    .expect("the corpus has its lock file");
    let mut names: Vec<String> = std::fs::read_dir(&source)
        .expect("the corpus is readable")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names.iter().take(CORPUS_MIGRATIONS) {
        std::fs::create_dir_all(dir.join(name)).expect("temp dir is writable");
        std::fs::copy(
            source.join(name).join("migration.sql"),
            dir.join(name).join("migration.sql"),
        )
        .expect("each corpus migration has its migration.sql");
    }
    dir
}

/// A targets file of `urls`, with a comment and a blank line as users write them.
fn targets_file(root: &Path, name: &str, urls: &[String]) -> PathBuf {
    let path = root.join(name);
    let mut text = String::from("# the tenants' databases\n\n");
    for url in urls {
        text.push_str(url);
        text.push('\n');
    }
    std::fs::write(&path, text).expect("temp dir is writable");
    path
}

/// Finished rows of the history table in `schema` of `db` (none when it has none).
fn history_rows(db: &TestDb, schema: &str) -> Option<Vec<String>> {
    let table = format!("\"{schema}\"._prisma_migrations");
    let exists = db.query_one_string(&format!("SELECT to_regclass('{table}') IS NOT NULL"));
    if exists != "t" {
        return None;
    }
    let names = db.query_one_string(&format!(
        "SELECT coalesce(string_agg(migration_name, ',' ORDER BY migration_name), '') FROM {table} \
         WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
    ));
    Some(
        names
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn expected_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn targets(doc: &Value) -> &Vec<Value> {
    doc["result"]["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("result.targets is a list: {doc}"))
}

/// The indices of the targets whose outcome is `outcome`.
fn with_outcome(doc: &Value, outcome: &str) -> Vec<u64> {
    targets(doc)
        .iter()
        .filter(|t| t["outcome"] == outcome)
        .map(|t| t["index"].as_u64().expect("index"))
        .collect()
}

fn no_password(out: &Output) {
    assert!(
        !out.stdout.contains(SUPERUSER_PASSWORD) && !out.stderr.contains(SUPERUSER_PASSWORD),
        "a password of the targets file leaked\n{out}"
    );
}

#[test]
fn forty_databases_deploy_in_parallel_then_status_from_stdin_and_three_shards_cover_them_once() {
    let work = temp_dir("fleet-forty");
    let dir = corpus_prefix(work.path());
    let dbs: Vec<TestDb> = (0..40).map(|_| cluster().create_database()).collect();
    let urls: Vec<String> = dbs.iter().map(TestDb::url).collect();
    let file = targets_file(work.path(), "targets.txt", &urls);

    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--targets",
            path_str(&file),
            "--parallel",
            "4",
        ],
        &[],
    );
    let doc = out.assert_envelope(0);
    no_password(&out);
    assert_eq!(doc["result"]["summary"]["total"], 40, "{out}");
    assert_eq!(doc["result"]["summary"]["ok"], 40, "{out}");
    assert_eq!(doc["result"]["fleet"]["parallel"], 4);
    assert_eq!(doc["target"], Value::Null, "a fleet has no one target");
    let expected = expected_names(&dir);
    for (i, (db, entry)) in dbs.iter().zip(targets(&doc)).enumerate() {
        assert_eq!(entry["index"], i + 1);
        assert_eq!(entry["outcome"], "ok", "{entry}");
        assert_eq!(entry["exit_code"], 0);
        assert!(entry["duration_ms"].as_u64().is_some(), "{entry}");
        assert_eq!(entry["target"], db.url().replace(SUPERUSER_PASSWORD, "***"));
        // The command's own result for the target, as deploy prints it alone.
        assert_eq!(
            entry["result"]["applied"].as_array().map(Vec::len),
            Some(CORPUS_MIGRATIONS),
            "{entry}"
        );
        assert_eq!(
            history_rows(db, "public"),
            Some(expected.clone()),
            "{}",
            db.name
        );
    }
    let slowest = doc["result"]["summary"]["slowest"]
        .as_array()
        .expect("slowest");
    assert!(!slowest.is_empty() && slowest.len() <= 5, "{doc}");

    // `psql -Atc ... | pgward-migrate status --targets -`: the targets on stdin.
    let mut child = Command::new(bin("migrate"))
        .args(["status", "--dir", path_str(&dir), "--targets", "-"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgward-migrate starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(urls.join("\n").as_bytes())
        .expect("the targets are written");
    let out = wait_child(child);
    let doc = out.assert_envelope(0);
    no_password(&out);
    assert_eq!(doc["result"]["fleet"]["source"], "stdin");
    assert_eq!(with_outcome(&doc, "ok").len(), 40, "{out}");

    // Three shards, as three CI jobs run them: every target once.
    let mut seen = Vec::new();
    for shard in 1..=3 {
        let shard_arg = format!("{shard}/3");
        let out = run(
            "migrate",
            &[
                "status",
                "--dir",
                path_str(&dir),
                "--targets",
                path_str(&file),
                "--shard",
                &shard_arg,
            ],
            &[],
        );
        let doc = out.assert_envelope(0);
        assert_eq!(doc["result"]["fleet"]["listed"], 40);
        assert_eq!(doc["result"]["fleet"]["shard"], shard_arg);
        for entry in targets(&doc) {
            let index = entry["index"].as_u64().expect("index");
            assert_eq!(
                (index - 1) % 3,
                shard - 1,
                "shard {shard_arg} runs every third target"
            );
            seen.push(index);
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        (1..=40).collect::<Vec<u64>>(),
        "the shards' union is the list, no target twice"
    );
}

#[test]
fn forty_tenant_schemas_of_one_database_by_schemas_like_and_by_schema_lines() {
    let work = temp_dir("fleet-tenants");
    let dir = corpus_prefix(work.path());
    let db = cluster().create_database();
    let schemas: Vec<String> = (1..=40).map(|i| format!("tenant_{i:02}")).collect();
    let ddl: String = schemas
        .iter()
        .map(|s| format!("CREATE SCHEMA {s};"))
        .collect();
    db.psql(&format!("{ddl} CREATE SCHEMA other;"));
    std::fs::write(
        work.path().join("pgward.toml"),
        "[fleets.tenants]\nschemas_like = 'tenant\\_%'\ndatabase_url_env = 'TENANTS_DATABASE_URL'\nparallel = 4\n",
    )
    .expect("temp dir is writable");

    // Tenant schemas of one database share its migration lock (Prisma's, per database):
    // their deploys take turns, so each may wait longer than the default 10 s.
    let url = db.url();
    let out = run_in(
        work.path(),
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--fleet",
            "tenants",
            "--lock-wait",
            "10min",
        ],
        &[("TENANTS_DATABASE_URL", url.as_str())],
    );
    let doc = out.assert_envelope(0);
    no_password(&out);
    assert_eq!(doc["result"]["fleet"]["source"], "fleet tenants");
    assert_eq!(doc["result"]["summary"]["ok"], 40, "{out}");
    let expected = expected_names(&dir);
    for (schema, entry) in schemas.iter().zip(targets(&doc)) {
        assert!(
            entry["target"]
                .as_str()
                .unwrap_or_default()
                .ends_with(&format!("?schema={schema}")),
            "{entry}"
        );
        assert_eq!(
            history_rows(&db, schema),
            Some(expected.clone()),
            "{schema}"
        );
    }
    assert_eq!(
        history_rows(&db, "other"),
        None,
        "a schema not LIKE the pattern is no target"
    );
    assert_eq!(history_rows(&db, "public"), None);

    // The same tenants as `?schema=` lines of a targets file.
    let lines: Vec<String> = schemas
        .iter()
        .map(|s| format!("{url}?schema={s}"))
        .collect();
    let file = targets_file(work.path(), "tenants.txt", &lines);
    let out = run(
        "migrate",
        &[
            "status",
            "--dir",
            path_str(&dir),
            "--targets",
            path_str(&file),
        ],
        &[],
    );
    let doc = out.assert_envelope(0);
    no_password(&out);
    assert_eq!(with_outcome(&doc, "ok").len(), 40, "{out}");
}

#[test]
fn canary_then_stop_after_the_first_failure_leaves_the_rest_untouched() {
    let work = temp_dir("fleet-stop");
    let dir = corpus_prefix(work.path());
    let dbs: Vec<TestDb> = (0..10).map(|_| cluster().create_database()).collect();
    // Target 7 has the table the corpus's second migration creates.
    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--to",
            FIRST,
            "--database-url",
            &dbs[6].url(),
        ],
        &[],
    );
    out.assert_envelope(0);
    dbs[6].psql("CREATE TABLE traces (id text)");
    let file = targets_file(
        work.path(),
        "t.txt",
        &dbs.iter().map(TestDb::url).collect::<Vec<_>>(),
    );

    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--targets",
            path_str(&file),
            "--canary",
            "3",
            "--stop-after-failures",
            "1",
            "--parallel",
            "1",
        ],
        &[],
    );
    let doc = out.assert_error(1, "MIGRATION_FAILED");
    no_password(&out);
    assert_eq!(with_outcome(&doc, "ok"), vec![1, 2, 3, 4, 5, 6], "{out}");
    assert_eq!(with_outcome(&doc, "failed"), vec![7], "{out}");
    assert_eq!(with_outcome(&doc, "not_started"), vec![8, 9, 10], "{out}");
    let entries = targets(&doc);
    assert!(entries[..3].iter().all(|t| t["canary"] == true));
    assert_eq!(
        entries[6]["error"]["code"], "MIGRATION_FAILED",
        "its own error"
    );
    assert_eq!(entries[7]["exit_code"], Value::Null);
    let summary = &doc["result"]["summary"];
    assert_eq!(
        (
            summary["ok"].as_u64(),
            summary["failed"].as_u64(),
            summary["not_started"].as_u64()
        ),
        (Some(6), Some(1), Some(3))
    );
    assert!(
        summary["stopped"]
            .as_str()
            .unwrap_or_default()
            .contains("--stop-after-failures 1"),
        "{summary}"
    );
    let message = doc["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("1 of 10")
            && message.contains("3 not started")
            && message.contains("#7 postgresql://pgward:***@"),
        "{message}"
    );
    for db in &dbs[7..] {
        assert_eq!(
            history_rows(db, "public"),
            None,
            "{} was not started and is untouched",
            db.name
        );
        assert_eq!(
            db.query_one_string("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
            "0"
        );
    }

    // A failing canary stops the fleet before the targets after it.
    dbs[1].psql("DROP TABLE _prisma_migrations; CREATE TABLE canary_blocker (id int)");
    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--targets",
            path_str(&file),
            "--canary",
            "3",
            "--stop-after-failures",
            "never",
            "--parallel",
            "1",
        ],
        &[],
    );
    // Target 2 now has a table and no history: refused (P3005), exit 6.
    let doc = out.assert_error(6, "SCHEMA_NOT_EMPTY");
    assert_eq!(with_outcome(&doc, "ok"), vec![1], "{out}");
    assert_eq!(with_outcome(&doc, "failed"), vec![2], "{out}");
    assert_eq!(
        with_outcome(&doc, "not_started"),
        (3..=10).collect::<Vec<u64>>(),
        "{out}"
    );
    assert!(
        doc["result"]["summary"]["stopped"]
            .as_str()
            .unwrap_or_default()
            .contains("canary target #2"),
        "{out}"
    );
    assert_eq!(history_rows(&dbs[7], "public"), None);
}

#[test]
fn an_unreachable_target_does_not_hold_up_the_rest_and_exits_4_unless_worse_failed() {
    let work = temp_dir("fleet-unreachable");
    let dir = corpus_prefix(work.path());
    let dbs: Vec<TestDb> = (0..3).map(|_| cluster().create_database()).collect();
    // A server that accepts and never answers, and a port nobody listens on.
    let silent = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let silent_url = format!(
        "postgresql://pgward:{SUPERUSER_PASSWORD}@127.0.0.1:{}/silent",
        silent.local_addr().expect("addr").port()
    );
    let closed = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let closed_url = format!(
        "postgresql://pgward:{SUPERUSER_PASSWORD}@127.0.0.1:{}/closed",
        closed.local_addr().expect("addr").port()
    );
    drop(closed);
    let urls = vec![
        silent_url,
        dbs[0].url(),
        closed_url,
        dbs[1].url(),
        dbs[2].url(),
    ];
    let file = targets_file(work.path(), "t.txt", &urls);

    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--targets",
            path_str(&file),
            "--parallel",
            "2",
            "--connect-timeout",
            "2s",
            "--stop-after-failures",
            "never",
        ],
        &[],
    );
    let doc = out.assert_error(4, "CONNECTION_FAILED");
    no_password(&out);
    assert_eq!(with_outcome(&doc, "unreachable"), vec![1, 3], "{out}");
    assert_eq!(with_outcome(&doc, "ok"), vec![2, 4, 5], "{out}");
    for db in &dbs {
        assert_eq!(
            history_rows(db, "public").map(|r| r.len()),
            Some(CORPUS_MIGRATIONS)
        );
    }
    drop(silent);

    // A failed migration is worse than a connection failure: exit 1.
    let broken = cluster().create_database();
    run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--to",
            FIRST,
            "--database-url",
            &broken.url(),
        ],
        &[],
    )
    .assert_envelope(0);
    broken.psql("CREATE TABLE traces (id text)");
    let mut urls = urls.clone();
    urls.push(broken.url());
    let out = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--targets",
            path_str(&targets_file(work.path(), "t2.txt", &urls)),
            "--connect-timeout",
            "1s",
            "--stop-after-failures",
            "never",
        ],
        &[],
    );
    let doc = out.assert_error(1, "MIGRATION_FAILED");
    assert_eq!(with_outcome(&doc, "unreachable"), vec![1, 3], "{out}");
    assert_eq!(with_outcome(&doc, "failed"), vec![6], "{out}");
}

#[test]
fn ctrl_c_mid_fleet_stops_starting_targets_and_reports_every_one() {
    let work = temp_dir("fleet-interrupt");
    let dir = work.path().join("migrations");
    write_migrations(
        &dir,
        &[
            ("20240101000000_start", "CREATE TABLE started (id int);"),
            ("20240101000001_slow", "SELECT pg_sleep(60);"),
        ],
    );
    let dbs: Vec<TestDb> = (0..6).map(|_| cluster().create_database()).collect();
    let file = targets_file(
        work.path(),
        "t.txt",
        &dbs.iter().map(TestDb::url).collect::<Vec<_>>(),
    );
    let child = spawn(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--targets",
            path_str(&file),
            "--parallel",
            "2",
            "--stop-after-failures",
            "never",
        ],
        // Progress lines every 0.2 s (stderr is no terminal here).
        &[("PGWARD_PROGRESS_INTERVAL", "0.2")],
    );
    let pid = child.id();
    wait_until(
        Duration::from_secs(120),
        "the first two targets are in their slow migration",
        || {
            dbs[..2].iter().all(|db| {
            db.query_one_string("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%SELECT pg_sleep(60)%' AND datname = current_database()") == "1"
        })
        },
    );
    // Both slow runs hold for 60 s: a second lets several progress lines (every 0.2 s)
    // reach stderr before the interrupt, however soon the targets got there.
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: kill(2) on the child this test started and has not reaped.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    let out = wait_child(child);
    let doc = out.assert_error(130, "INTERRUPTED");
    no_password(&out);
    assert_eq!(targets(&doc).len(), 6, "every target is reported\n{out}");
    // Progress on stderr: done of total, and what is running.
    assert!(
        out.stderr.contains("migrate deploy: 0 of 6 targets")
            && out.stderr.contains("0 failed, 2 running"),
        "progress lines\n{out}"
    );
    assert_eq!(with_outcome(&doc, "interrupted"), vec![1, 2], "{out}");
    assert_eq!(with_outcome(&doc, "not_started"), vec![3, 4, 5, 6], "{out}");
    for entry in &targets(&doc)[..2] {
        assert_eq!(entry["exit_code"], 130, "{entry}");
        assert_eq!(entry["error"]["code"], "INTERRUPTED", "{entry}");
    }
    for db in &dbs[2..] {
        assert_eq!(
            history_rows(db, "public"),
            None,
            "{} was never started",
            db.name
        );
    }
    for db in &dbs[..2] {
        let names = history_rows(db, "public").expect("the interrupted deploy had begun");
        assert_eq!(
            names,
            vec!["20240101000000_start".to_string()],
            "the cancelled migration is not recorded applied"
        );
    }
}

#[test]
fn fleet_usage_errors_name_the_fix_and_never_echo_a_password() {
    let work = temp_dir("fleet-usage");
    let out = run("migrate", &["status", "--parallel", "2"], &[]);
    out.assert_error(2, "USAGE");
    let bad = work.path().join("bad.txt");
    std::fs::write(
        &bad,
        format!("postgresql://u:{SUPERUSER_PASSWORD}@h/db\nhost=h password={SUPERUSER_PASSWORD}\n"),
    )
    .expect("write");
    let out = run("migrate", &["status", "--targets", path_str(&bad)], &[]);
    let doc = out.assert_error(2, "USAGE");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("line 2"),
        "{out}"
    );
    no_password(&out);
    let out = run(
        "migrate",
        &[
            "status",
            "--targets",
            path_str(&work.path().join("missing.txt")),
        ],
        &[],
    );
    out.assert_error(2, "USAGE");
    let out = run(
        "migrate",
        &[
            "deploy",
            "--targets",
            path_str(&bad),
            "--database-url",
            "postgresql://u@h/db",
        ],
        &[],
    );
    out.assert_error(2, "USAGE");
    let out = run(
        "migrate",
        &["deploy", "--shard", "4/3", "--targets", path_str(&bad)],
        &[],
    );
    out.assert_error(2, "USAGE");

    std::fs::write(
        work.path().join("pgward.toml"),
        "[fleets.a]\nurls = ['postgresql://u@h/a']\nurls_env = 'X'\n",
    )
    .expect("write");
    let out = run_in(work.path(), "migrate", &["status", "--fleet", "a"], &[]);
    out.assert_error(2, "CONFIG_INVALID");
    std::fs::write(
        work.path().join("pgward.toml"),
        "[fleets.a]\nurls = ['postgresql://u@h/a']\n",
    )
    .expect("write");
    let out = run_in(work.path(), "migrate", &["status", "--fleet", "b"], &[]);
    let doc = out.assert_error(2, "USAGE");
    assert!(
        doc["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("a"),
        "{out}"
    );
}

#[test]
fn every_format_shows_the_fleet_per_target_and_masks_passwords() {
    let work = temp_dir("fleet-formats");
    let dir = corpus_prefix(work.path());
    let pending = cluster().create_database();
    let current = cluster().create_database();
    run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--database-url",
            &current.url(),
        ],
        &[],
    )
    .assert_envelope(0);
    let closed = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let closed_url = format!(
        "postgresql://pgward:{SUPERUSER_PASSWORD}@127.0.0.1:{}/gone",
        closed.local_addr().expect("addr").port()
    );
    drop(closed);
    let file = targets_file(
        work.path(),
        "t.txt",
        &[pending.url(), closed_url, current.url()],
    );
    let status = |format: &str| {
        let out = run(
            "migrate",
            &[
                "status",
                "--dir",
                path_str(&dir),
                "--targets",
                path_str(&file),
                "--format",
                format,
            ],
            &[],
        );
        no_password(&out);
        out
    };
    let out = status("json");
    let doc = out.assert_error(4, "CONNECTION_FAILED");
    assert_eq!(with_outcome(&doc, "attention"), vec![1], "{out}");
    assert_eq!(with_outcome(&doc, "unreachable"), vec![2], "{out}");
    assert_eq!(with_outcome(&doc, "ok"), vec![3], "{out}");
    let saved = work.path().join("fleet.json");
    std::fs::write(&saved, &out.stdout).expect("write");

    let text = status("text");
    assert_eq!(text.code, 4, "{text}");
    insta::with_settings!({filters => pgward_tests::TEXT_FILTERS.to_vec()}, {
        insta::assert_snapshot!("fleet_status_text", pgward_tests::text_view(&text));
    });
    assert!(
        text.stdout
            .starts_with("pgward-migrate status over 3 target(s)"),
        "{text}"
    );
    assert!(
        text.stdout
            .contains("1 ok, 1 need attention, 1 unreachable"),
        "{text}"
    );
    let lines: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(lines.len(), 3, "one line per target\n{text}");
    assert!(
        lines[0].contains("#2") && lines[0].contains("unreachable"),
        "problems first\n{text}"
    );
    let rendered = run(
        "report",
        &["render", path_str(&saved), "--format", "text"],
        &[],
    );
    assert!(
        rendered.stdout.contains("#2  unreachable  exit 4")
            && rendered.stdout.contains("error[CONNECTION_FAILED]"),
        "the saved document renders as the fleet view too\n{rendered}"
    );

    let md = run(
        "report",
        &["render", path_str(&saved), "--format", "markdown"],
        &[],
    );
    assert!(md.stdout.contains("### Per target"), "{md}");
    assert_eq!(
        md.stdout
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains("postgresql://"))
            .count(),
        3,
        "{md}"
    );
    assert!(!md.stdout.contains(SUPERUSER_PASSWORD));

    let html = run(
        "report",
        &["render", path_str(&saved), "--format", "html"],
        &[],
    );
    for id in ["chart-fleet-status", "chart-fleet-durations"] {
        assert!(
            html.stdout.contains(&format!("id=\"{id}\"")),
            "{id}\n{html}"
        );
    }
    let grid = html
        .stdout
        .split("id=\"chart-fleet-status\"")
        .nth(1)
        .and_then(|s| s.split("</figure>").next())
        .unwrap_or_default();
    assert_eq!(
        grid.matches("<rect class=\"mark\"").count(),
        3,
        "one square per target"
    );
    assert!(
        grid.contains("#2 postgresql://pgward:***@127.0.0.1:")
            && grid.contains("unreachable (exit 4)"),
        "{grid}"
    );
    assert!(!html.stdout.contains(SUPERUSER_PASSWORD));

    let prom = status("prometheus");
    let series = |name: &str| -> Vec<&str> {
        prom.stdout
            .lines()
            .filter(|l| l.starts_with(name))
            .collect()
    };
    let exit_codes = series("pgward_fleet_target_exit_code{");
    assert_eq!(exit_codes.len(), 3, "{prom}");
    let pending_target = pending.url().replace(SUPERUSER_PASSWORD, "***");
    assert!(
        exit_codes.contains(&format!("pgward_fleet_target_exit_code{{tool=\"migrate\",command=\"status\",target=\"{pending_target}\"}} 3").as_str()),
        "{prom}"
    );
    assert!(
        series("pgward_fleet_targets{")
            .iter()
            .any(|l| l.contains("outcome=\"unreachable\"") && l.ends_with(" 1")),
        "{prom}"
    );
    assert_eq!(
        series("pgward_fleet_target_duration_seconds{").len(),
        3,
        "{prom}"
    );
}

/// A project folder for the scripts: pgward.toml with the fleet environment `tenants`
/// (`fleet = "tenants"`, backups in `backups/`), its targets file, and migrations.
fn fleet_project(urls: &[String], auto_restore: bool) -> tempfile::TempDir {
    fleet_project_with(urls, auto_restore, "\"backups\"")
}

/// [`fleet_project`] with `backups = BACKUPS` (a TOML value: one location or a list).
fn fleet_project_with(urls: &[String], auto_restore: bool, backups: &str) -> tempfile::TempDir {
    let dir = temp_dir("fleet-scripts");
    targets_file(dir.path(), "tenants.txt", urls);
    std::fs::write(
        dir.path().join("pgward.toml"),
        format!(
            "migrations = \"prisma/migrations\"\n\n[fleets.tenants]\ntargets_file = \"tenants.txt\"\n\n\
             [env.tenants]\nfleet = \"tenants\"\nbackups = {backups}\nauto_restore = {auto_restore}\n"
        ),
    )
    .expect("temp dir is writable");
    dir
}

#[test]
fn backup_cron_over_a_fleet_backs_up_verifies_and_prunes_each_target_in_its_own_prefix() {
    let dbs: Vec<TestDb> = (0..3).map(|_| cluster().create_database()).collect();
    for (i, db) in dbs.iter().enumerate() {
        db.psql(&format!(
            "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, {})",
            10 * (i + 1)
        ));
    }
    let project = fleet_project(&dbs.iter().map(TestDb::url).collect::<Vec<_>>(), false);
    let tools = cluster().pg_tools_env();
    let out = run_script(
        project.path(),
        "backup-cron.sh",
        &["tenants", "--keep-last", "1"],
        &tools,
    );
    out.assert_code(0);
    no_password(&out);
    let doc = out.json();
    let steps: Vec<&str> = doc["result"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(steps, ["backup", "verify", "prune"], "{out}");
    let backups = doc["result"]["backup"]
        .as_array()
        .expect("one backup per target");
    assert_eq!(backups.len(), 3, "{out}");
    for (db, backup) in dbs.iter().zip(backups) {
        let prefix = project.path().join("backups").join(format!(
            "127.0.0.1_{}_{}",
            db.url()
                .rsplit(':')
                .next()
                .and_then(|p| p.split('/').next())
                .unwrap_or_default(),
            db.name
        ));
        let id = backup["id"].as_str().expect("an id");
        assert!(
            prefix.join(id).join("manifest.json").is_file(),
            "{} holds {id}\n{out}",
            prefix.display()
        );
    }
    let verify = &doc["result"]["steps"][1]["result"]["summary"];
    assert_eq!(verify["ok"], 3, "{doc}");
}

/// A fleet environment with two backup locations: each target's backup is in its own
/// prefix of both, and verify checks both copies.
#[test]
fn backup_cron_over_a_fleet_keeps_each_targets_backup_in_every_location() {
    let dbs: Vec<TestDb> = (0..2).map(|_| cluster().create_database()).collect();
    for db in &dbs {
        db.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10)");
    }
    let urls: Vec<String> = dbs.iter().map(TestDb::url).collect();
    let project = fleet_project_with(&urls, false, "[\"backups\", \"copies\"]");
    let out = run_script(
        project.path(),
        "backup-cron.sh",
        &["tenants", "--keep-last", "1"],
        &cluster().pg_tools_env(),
    );
    out.assert_code(0);
    let doc = out.json();
    let verify = &doc["result"]["steps"][1]["result"];
    assert_eq!(verify["summary"]["ok"], 2, "{out}");
    for (target, backup) in doc["result"]["backup"]
        .as_array()
        .expect("one backup per target")
        .iter()
        .enumerate()
    {
        let id = backup["id"].as_str().expect("an id");
        let copies = &verify["targets"][target]["result"]["copies"];
        assert_eq!(copies.as_array().map(Vec::len), Some(2), "{out}");
        for (copy, root) in ["backups", "copies"].iter().enumerate() {
            let location = copies[copy]["location"].as_str().expect("a location");
            // Relative to pgward.toml's folder, where the script runs.
            assert!(location.starts_with(&format!("{root}/")), "{out}");
            assert_eq!(copies[copy]["verified"], true, "{out}");
            assert!(
                project
                    .path()
                    .join(location)
                    .join(id)
                    .join("manifest.json")
                    .is_file(),
                "{location} holds {id}\n{out}"
            );
        }
    }
}

#[test]
fn migrate_sh_deploy_over_a_fleet_restores_only_the_target_that_committed_half_a_migration() {
    let dbs: Vec<TestDb> = (0..3).map(|_| cluster().create_database()).collect();
    let project = fleet_project(&dbs.iter().map(TestDb::url).collect::<Vec<_>>(), true);
    let migrations = project.path().join("prisma/migrations");
    write_migrations(
        &migrations,
        &[(
            "20240101000000_accounts",
            "CREATE TABLE account (id int PRIMARY KEY, name text);",
        )],
    );
    let tools = cluster().pg_tools_env();
    run_script(project.path(), "migrate.sh", &["deploy", "tenants"], &tools).assert_code(0);
    // Target 2 already holds the row the next migration inserts last: that statement fails
    // after the first two were committed (CONCURRENTLY runs statement by statement).
    dbs[1].psql("INSERT INTO account VALUES (1, 'kept')");
    write_migrations(
        &migrations,
        &[(
            "20240102000000_nickname",
            "ALTER TABLE account ADD COLUMN nickname text;\n\
             CREATE INDEX CONCURRENTLY account_nickname_idx ON account(nickname);\n\
             INSERT INTO account (id, name) VALUES (1, 'one');\n",
        )],
    );
    let out = run_script(project.path(), "migrate.sh", &["deploy", "tenants"], &tools);
    out.assert_code(1);
    no_password(&out);
    let doc = out.json();
    assert_eq!(doc["error"]["code"], "MIGRATION_FAILED", "{out}");
    let restored = doc["result"]["restored"].as_array().expect("restored");
    assert_eq!(restored.len(), 1, "{out}");
    assert_eq!(restored[0]["index"], 2);
    assert_eq!(restored[0]["restored"], true, "{out}");
    // Target 2 is as it was before the run: no column, its row, no failed history row.
    assert!(
        !dbs[1].column_exists("account", "nickname"),
        "target 2 was restored"
    );
    assert_eq!(
        dbs[1].query_one_string("SELECT name FROM account WHERE id = 1"),
        "kept"
    );
    assert_eq!(history_rows(&dbs[1], "public").map(|r| r.len()), Some(1));
    // Targets 1 and 3 keep the deploy: the restore touched no other target.
    for db in [&dbs[0], &dbs[2]] {
        assert!(db.column_exists("account", "nickname"), "{}", db.name);
        assert_eq!(
            history_rows(db, "public").map(|r| r.len()),
            Some(2),
            "{}",
            db.name
        );
    }
}

/// The processes whose command line mentions `needle` (the runs of one fleet).
fn processes_mentioning(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(needle))
        .count()
}

#[test]
fn a_second_ctrl_c_ends_the_fleet_and_its_runs_at_once() {
    let work = temp_dir("fleet-twice");
    let dir = work.path().join("migrations");
    write_migrations(&dir, &[("20240101000000_slow", "SELECT pg_sleep(60);")]);
    let dbs: Vec<TestDb> = (0..3).map(|_| cluster().create_database()).collect();
    let file = targets_file(
        work.path(),
        "t.txt",
        &dbs.iter().map(TestDb::url).collect::<Vec<_>>(),
    );
    let child = spawn(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--targets",
            path_str(&file),
            "--parallel",
            "3",
            "--stop-after-failures",
            "never",
        ],
        &[],
    );
    let pid = child.id();
    let needle = path_str(&dir).to_string();
    wait_until(
        Duration::from_secs(120),
        "the three runs have started",
        || processes_mentioning(&needle) >= 4,
    );
    for _ in 0..2 {
        // SAFETY: kill(2) on the child this test started and has not reaped.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = wait_child(child);
    assert_eq!(out.code, 130, "{out}");
    // The runs got the second signal too: none is left deploying behind the fleet's back.
    wait_until(
        Duration::from_secs(30),
        "no run of the fleet is left",
        || processes_mentioning(&needle) == 0,
    );
}

#[test]
fn named_fleets_from_a_list_a_variable_and_a_file_and_only_some_targets() {
    let work = temp_dir("fleet-config");
    let dir = work.path().join("migrations");
    write_migrations(
        &dir,
        &[("20240101000000_one", "CREATE TABLE one (id int);")],
    );
    let dbs: Vec<TestDb> = (0..3).map(|_| cluster().create_database()).collect();
    let urls: Vec<String> = dbs.iter().map(TestDb::url).collect();
    targets_file(work.path(), "listed.txt", &urls);
    std::fs::write(
        work.path().join("pgward.toml"),
        format!(
            "[fleets.listed]\nurls = [{}]\n\n[fleets.from_env]\nurls_env = \"FLEET_URLS\"\nstop_after_failures = 0\n\n\
             [fleets.from_file]\ntargets_file = \"listed.txt\"\nparallel = 2\n",
            urls.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ")
        ),
    )
    .expect("write");
    let joined = urls.join("\n");
    let envs = [("FLEET_URLS", joined.as_str())];
    for fleet in ["listed", "from_env", "from_file"] {
        let out = run_in(
            work.path(),
            "migrate",
            &["status", "--dir", path_str(&dir), "--fleet", fleet],
            &envs,
        );
        let doc = out.assert_envelope(3);
        no_password(&out);
        assert_eq!(doc["result"]["fleet"]["source"], format!("fleet {fleet}"));
        assert_eq!(
            with_outcome(&doc, "attention"),
            vec![1, 2, 3],
            "{fleet}: pending everywhere\n{out}"
        );
    }
    let out = run_in(
        work.path(),
        "migrate",
        &["status", "--dir", path_str(&dir), "--fleet", "from_file"],
        &[],
    );
    assert_eq!(
        out.json()["result"]["fleet"]["parallel"],
        2,
        "the fleet's default"
    );
    let out = run_in(
        work.path(),
        "migrate",
        &["status", "--dir", path_str(&dir), "--fleet", "from_env"],
        &[],
    );
    out.assert_error(2, "USAGE");

    // --only: these places of the list, nothing else touched.
    let out = run_in(
        work.path(),
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--fleet",
            "listed",
            "--only",
            "1,3",
        ],
        &[],
    );
    let doc = out.assert_envelope(0);
    assert_eq!(
        targets(&doc)
            .iter()
            .map(|t| t["index"].as_u64().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert!(history_rows(&dbs[0], "public").is_some() && history_rows(&dbs[2], "public").is_some());
    assert_eq!(
        history_rows(&dbs[1], "public"),
        None,
        "target 2 was not in --only"
    );
    let out = run_in(
        work.path(),
        "migrate",
        &["status", "--fleet", "listed", "--only", "4"],
        &[],
    );
    out.assert_error(2, "USAGE");

    // An environment naming a fleet that does not exist.
    std::fs::write(
        work.path().join("pgward.toml"),
        "[env.bad]\nfleet = \"nowhere\"\n",
    )
    .expect("write");
    let out = run_in(work.path(), "migrate", &["status", "--env", "bad"], &[]);
    out.assert_error(2, "CONFIG_INVALID");
}

#[test]
fn every_single_database_command_the_issue_lists_runs_over_a_fleet() {
    let work = temp_dir("fleet-commands");
    let dir = work.path().join("migrations");
    write_migrations(
        &dir,
        &[(
            "20240101000000_one",
            "CREATE TABLE one (id int PRIMARY KEY);",
        )],
    );
    let dbs: Vec<TestDb> = (0..2).map(|_| cluster().create_database()).collect();
    let file = targets_file(
        work.path(),
        "t.txt",
        &dbs.iter().map(TestDb::url).collect::<Vec<_>>(),
    );
    let f = path_str(&file);
    let d = path_str(&dir);
    run("migrate", &["deploy", "--dir", d, "--targets", f], &[]).assert_envelope(0);
    let no_backups = work.path().join("none");
    let commands: [(&str, &[&str]); 6] = [
        ("validate", &["schema", "--dir", d]),
        ("validate", &["drift", "--dir", d]),
        (
            "validate",
            &["preflight", "--dir", d, "--backups", path_str(&no_backups)],
        ),
        ("report", &["migrations", "--dir", d]),
        ("report", &["health"]),
        ("migrate", &["rollback", "--dir", d, "--dry-run"]),
    ];
    for (tool, args) in commands {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--targets", f]);
        let out = run(tool, &all, &[]);
        no_password(&out);
        let doc = out.json();
        assert_eq!(
            doc["result"]["summary"]["total"], 2,
            "{tool} {args:?}\n{out}"
        );
        assert_eq!(doc["exit_code"], out.code, "{tool} {args:?}\n{out}");
        assert_eq!(doc["command"], args[0]);
        for entry in targets(&doc) {
            assert!(
                entry["exit_code"].is_i64(),
                "{tool} {args:?} ran on every target\n{out}"
            );
            assert!(
                !entry["result"].is_null() || !entry["error"].is_null(),
                "{tool} {args:?}: each target's own result or error\n{out}"
            );
            assert_ne!(entry["outcome"], "not_started", "{tool} {args:?}\n{out}");
        }
    }
}
