//! Progress of long work on stderr (shared/src/progress.rs): without a terminal (cron, CI)
//! timestamped lines with what is done of what, rows, rate and ETA, during a backup, a
//! verify, a restore, `verify --deep` and drift's replay; on a terminal (a pty from
//! `script`) an indicatif bar instead of those lines (backup, restore, drift); nothing under `--quiet`; stdout
//! keeps its one JSON document either way.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use pgward_tests::{cluster, on_a_terminal_ok, path_str, run, run_in, temp_dir, Output, TestDb};
use serde_json::Value;

/// Rows of the big table: enough that a debug build's backup takes a few seconds.
const ROWS: u64 = 1_500_000;

/// Progress lines ten times a second (the shortest interval), so a verify of under a
/// second logs several too.
const FAST: (&str, &str) = ("PGWARD_PROGRESS_INTERVAL", "0.1");

/// One database big enough to take a few seconds, and a backup of it, shared by the
/// tests (made once).
struct Big {
    db: TestDb<'static>,
    /// The backup folder: Rust never drops statics, so [`remove_big_folder`] removes it
    /// when the test process exits (the cluster, with the database, is the harness's).
    folder: PathBuf,
    id: String,
    backup: Output,
}

static BIG: OnceLock<Big> = OnceLock::new();

extern "C" fn remove_big_folder() {
    if let Some(big) = BIG.get() {
        let _ = std::fs::remove_dir_all(&big.folder);
    }
}

fn big() -> &'static Big {
    BIG.get_or_init(|| {
        // SAFETY: remove_big_folder is an `extern "C" fn()` that never unwinds.
        let rc = unsafe { libc::atexit(remove_big_folder) };
        assert_eq!(rc, 0, "could not register the folder's removal with atexit");
        let db = cluster().create_database();
        db.psql(&format!(
            "CREATE TABLE events (id bigint PRIMARY KEY, payload text NOT NULL); \
             INSERT INTO events SELECT i, md5(i::text) || md5((i * 7)::text) \
             FROM generate_series(1, {ROWS}) i; \
             CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small VALUES (1);"
        ));
        let folder = temp_dir("progress_backups_");
        let started = Instant::now();
        // A panic before the end drops (removes) the folder; from then on, atexit does.
        let backup = backup_run(&db, path_str(folder.path()), &[FAST]);
        let took = started.elapsed();
        let json = backup.assert_code(0).json();
        let id = json["result"]["id"].as_str().expect("an id").to_string();
        eprintln!("the backup took {took:?}");
        Big {
            db,
            folder: folder.keep(),
            id,
            backup,
        }
    })
}

fn backup_run(db: &TestDb, to: &str, envs: &[(&str, &str)]) -> Output {
    let url = db.url();
    let mut all = cluster().pg_tools_env().to_vec();
    all.extend_from_slice(envs);
    run(
        "backup",
        &["backup", "--to", to, "--database-url", &url, "--jobs", "2"],
        &all,
    )
}

/// A progress line: `2026-11-22T03:13:00.123Z INFO  LABEL: ...`; returns what follows the
/// label.
fn progress_lines<'o>(stderr: &'o str, label: &str) -> Vec<&'o str> {
    let marker = format!(" INFO  {label}: ");
    stderr
        .lines()
        .filter_map(|line| {
            let at = line.find(&marker)?;
            let ts = &line[..at];
            // 2026-11-22T03:13:00.123Z
            let timestamped = ts.len() == 24
                && ts.as_bytes()[4] == b'-'
                && ts.as_bytes()[10] == b'T'
                && ts.ends_with('Z');
            assert!(
                timestamped,
                "a progress line starts with a timestamp: {line}"
            );
            Some(&line[at + marker.len()..])
        })
        .collect()
}

/// `120.00 MiB` -> bytes.
fn bytes(text: &str) -> f64 {
    let (number, unit) = text.trim().split_once(' ').expect("a number and a unit");
    let n: f64 = number.parse().expect("a number");
    n * match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unit {other}"),
    }
}

/// Checks the byte lines of `label` in `out`: at least two, each `X of ~Y, N rows, R/s`
/// (an ETA while below the total), bytes and rows never going back; returns the last
/// line's bytes and rows.
fn assert_byte_progress(out: &Output, label: &str, with_rows: bool) -> (f64, u64) {
    let lines = progress_lines(&out.stderr, label);
    assert!(
        lines.len() >= 2,
        "{label}: a progress line every 0.1 s of a run of a second or more: {lines:?}\n{out}"
    );
    let mut last = (0.0, 0);
    for line in &lines {
        let (done, rest) = line.split_once(" of ~").expect("X of ~Y");
        let (total, rest) = rest.split_once(", ").expect("a total");
        let (rows, rest) = rest.split_once(" rows, ").expect("rows");
        let rate = rest.split(", ETA ").next().expect("a rate");
        assert!(rate.ends_with("/s"), "a rate: {line}");
        let (done, total, rows) = (
            bytes(done),
            bytes(total),
            rows.parse::<u64>().expect("a row count"),
        );
        assert!(total > 1e6, "{label}: the expected size: {line}");
        if done < total && done > 0.0 {
            assert!(rest.contains(", ETA "), "{label}: time left: {line}");
        }
        assert!(
            done >= last.0 && rows >= last.1,
            "{label}: progress never goes back: {lines:?}"
        );
        last = (done, rows);
    }
    assert!(last.0 > 0.0, "{label}: work was counted: {lines:?}");
    if with_rows {
        assert!(last.1 > 0, "{label}: rows were counted: {lines:?}");
    }
    last
}

/// `pgward-backup verify ID --from FOLDER --database-url URL EXTRA...` of the big backup.
fn verify(extra: &[&str], envs: &[(&str, &str)]) -> Output {
    let big = big();
    let url = big.db.url();
    let mut args = vec![
        "verify",
        &big.id,
        "--from",
        path_str(&big.folder),
        "--database-url",
        &url,
    ];
    args.extend_from_slice(extra);
    let mut all = cluster().pg_tools_env().to_vec();
    all.extend_from_slice(envs);
    run("backup", &args, &all)
}

#[test]
fn a_backup_without_a_terminal_logs_timestamped_progress_lines() {
    let big = big();
    let out = &big.backup;
    let (_, rows) = assert_byte_progress(out, "backup", true);
    assert!(rows <= ROWS + 1, "{rows} rows at most");
    // stdout is still the one JSON document, and it counted every row.
    assert_eq!(out.json()["result"]["rows"], ROWS + 1, "{out}");
    assert!(!out.stdout.contains("rows, "), "progress stays off stdout");
}

/// `pgward-restore`'s arguments for restoring `backup` (LOCATION/ID) into the new
/// database `target` through `url`.
fn restore_args<'a>(backup: &'a str, url: &'a str, target: &'a str) -> [&'a str; 7] {
    [
        "--from",
        backup,
        "--database-url",
        url,
        "--target-db",
        target,
        "--create",
    ]
}

#[test]
fn verify_restore_and_verify_deep_log_progress_lines_too() {
    let big = big();
    let from = path_str(&big.folder);
    let url = big.db.url();
    let mut envs = cluster().pg_tools_env().to_vec();
    envs.push(FAST);

    let out = verify(&[], &[FAST]);
    out.assert_code(0);
    assert_byte_progress(&out, "verify", false);

    let target = cluster().vacant_database();
    let backup = format!("{from}/{}", big.id);
    let out = run("restore", &restore_args(&backup, &url, &target.name), &envs);
    out.assert_code(0);
    // The files' checksums first (a verify pass), then the load.
    assert!(!progress_lines(&out.stderr, "verify").is_empty(), "{out}");
    let (_, rows) = assert_byte_progress(&out, "restore", true);
    assert!(rows > 0 && rows <= ROWS + 1, "{rows}");
    assert_eq!(
        target.query_one_string("SELECT count(*) FROM events"),
        ROWS.to_string()
    );

    let out = verify(&["--deep"], &[FAST]);
    out.assert_code(0);
    assert_byte_progress(&out, "restore", true);
}

#[test]
fn quiet_runs_log_no_progress() {
    let out = verify(&["--quiet"], &[FAST]);
    out.assert_code(0);
    assert!(progress_lines(&out.stderr, "verify").is_empty(), "{out}");
}

#[test]
fn a_bad_interval_is_reported_and_the_default_kept() {
    // --deep: a checksum pass and a load, two progress displays, one complaint.
    let out = verify(&["--deep"], &[("PGWARD_PROGRESS_INTERVAL", "soon")]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("PGWARD_PROGRESS_INTERVAL=soon is not a number of seconds"),
        "{out}"
    );
    assert_eq!(
        out.stderr.matches("PGWARD_PROGRESS_INTERVAL=soon").count(),
        1,
        "said once: {out}"
    );
    // The default is 10 s: a verify of a few seconds logs no line.
    assert!(progress_lines(&out.stderr, "verify").is_empty(), "{out}");
    assert!(progress_lines(&out.stderr, "restore").is_empty(), "{out}");
}

#[test]
fn drift_logs_how_many_migrations_it_replayed() {
    let db = cluster().create_database();
    let project = temp_dir("progress_drift_");
    let migrations = project.path().join("prisma/migrations");
    // 30 migrations of 0.1 s each: a replay of about 3 s.
    for i in 0..30 {
        let folder = migrations.join(format!("2026010100{i:04}_step"));
        std::fs::create_dir_all(&folder).expect("a migration folder");
        std::fs::write(
            folder.join("migration.sql"),
            format!("CREATE TABLE t{i} (id int PRIMARY KEY); SELECT pg_sleep(0.1);\n"),
        )
        .expect("migration.sql");
    }
    // Both run in the project, whose migrations are in the default prisma/migrations.
    let url = ["--database-url".to_string(), db.url()];
    run_in(
        project.path(),
        "migrate",
        &["deploy", &url[0], &url[1]],
        &[],
    )
    .assert_code(0);
    let out = run_in(
        project.path(),
        "validate",
        &["drift", &url[0], &url[1]],
        &[FAST],
    );
    out.assert_code(0);
    let lines = progress_lines(&out.stderr, "replay");
    assert!(lines.len() >= 2, "{out}");
    let mut last = 0;
    for line in &lines {
        let (done, rest) = line.split_once(" of ").expect("N of M");
        let done: u64 = done.parse().expect("a count");
        assert!(rest.starts_with("30 migrations, "), "{line}");
        assert!(rest.contains("/s"), "a rate: {line}");
        if done > 0 && done < 30 {
            assert!(rest.contains(", ETA "), "time left: {line}");
        }
        assert!(done >= last, "{lines:?}");
        last = done;
    }
    assert!(last > 0, "{lines:?}");

    // On a terminal: a bar, `replay [=====>    ] 12/30 migrations 9.8/s ETA 2s`.
    let text = on_a_terminal_ok(
        "validate",
        &["drift", "--dir", path_str(&migrations), &url[0], &url[1]],
        &[("NO_COLOR", "1")],
    );
    let bar = text
        .split(['\r', '\n', '\x1b'])
        .find(|l| l.contains("replay [") && l.contains(" ETA ") && !l.contains("] 0/30"))
        .unwrap_or_else(|| panic!("no replay bar with work done on the terminal:\n{text}"));
    assert!(
        bar.contains("/30 migrations ") && bar.contains("/s"),
        "{bar}"
    );
    assert!(!text.contains(" INFO  replay: "), "{text}");
}

#[test]
fn on_a_terminal_backup_and_restore_show_a_bar_with_bytes_rows_rate_and_eta() {
    let big = big();
    let to = temp_dir("progress_tty_");
    let url = big.db.url();
    let mut envs = cluster().pg_tools_env().to_vec();
    envs.push(FAST);
    envs.push(("NO_COLOR", "1"));
    let text = on_a_terminal_ok(
        "backup",
        &[
            "backup",
            "--to",
            path_str(to.path()),
            "--database-url",
            &url,
            "--jobs",
            "2",
        ],
        &envs,
    );
    assert_bar(&text, "backup");
    // stdout on the terminal is the JSON document.
    let json_start = text
        .find("{\r\n")
        .unwrap_or_else(|| panic!("no JSON document:\n{text}"));
    let json: Value = serde_json::from_str(
        text[json_start..]
            .trim_end()
            .trim_end_matches(|c: char| c != '}'),
    )
    .unwrap_or_else(|e| panic!("the JSON document ({e}):\n{text}"));
    assert_eq!(json["ok"], true, "{text}");

    // A restore of it on a terminal: the checksum pass, then the load, each a bar.
    let id = json["result"]["id"].as_str().expect("an id");
    let target = cluster().vacant_database();
    let backup = format!("{}/{id}", path_str(to.path()));
    let args = restore_args(&backup, &url, &target.name);
    let text = on_a_terminal_ok("restore", &args, &envs);
    assert!(text.contains("verify ["), "{text}");
    assert_bar(&text, "restore");
}

/// `text`, what a terminal received, shows `label`'s bar with bytes, rows, a rate and an
/// ETA once work was done (`backup [=====>    ] 12.00 MiB/40.00 MiB 8.00 MiB/s ETA 3s
/// 123456 rows`), and no progress log lines.
fn assert_bar(text: &str, label: &str) {
    let bar = text
        .split(['\r', '\n', '\x1b'])
        .find(|l| {
            l.contains(&format!("{label} ["))
                && l.contains(" ETA ")
                && l.contains(" rows")
                && !l.contains("] 0 B/")
                && !l.contains(" 0 rows")
        })
        .unwrap_or_else(|| panic!("no {label} bar with work done on the terminal:\n{text}"));
    assert!(bar.contains("/s"), "a rate: {bar}");
    assert!(bar.contains("MiB") || bar.contains("KiB"), "bytes: {bar}");
    assert!(!text.contains(&format!(" INFO  {label}: ")), "{text}");
}
