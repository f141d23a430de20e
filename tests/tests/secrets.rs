//! Secrets stay secret: every binary and every script, run with a password in every form
//! pgward accepts (a Prisma URL, a percent-encoded one with blanks, quotes and URL
//! delimiters, `PGPASSWORD`, a `pgward.toml` environment's variable, `--database-url` on
//! the command line, a two-character password) and in the one it refuses (a libpq
//! key=value string), on success and on failure; the password must appear in none of
//! stdout, stderr, the audit log, the webhook notifications, nor in the command line of any
//! process a script starts (sampled from /proc while it runs). `report health` must not
//! show a password another session's query carries.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgward_tests::{
    cluster, run_in, write_migrations, Output, RunningScript, TestDb, SUPERUSER_PASSWORD,
};

/// A password that needs every kind of quoting: blanks, both quotes, a backslash and the
/// URL delimiters.
const ODD_PASSWORD: &str = "p w'\"q\\@/:%#?";
/// Two characters: too short to be replaced wherever it occurs, so only redaction by
/// position keeps it out.
const SHORT_PASSWORD: &str = "x1";

/// A script run: the script, its arguments, the variables that carry the URL and password,
/// and whether it must succeed.
type ScriptRun<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, bool);

/// Stands in a run's arguments for the id of the newest backup in the project.
const BACKUP_ID: &str = "{newest backup id}";

/// Roles with those passwords (superusers, so every command can run), made once per test
/// process.
fn roles() -> &'static (String, String) {
    static ROLES: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    ROLES.get_or_init(|| {
        let pid = std::process::id();
        let (odd, short) = (format!("sec_odd_{pid}"), format!("sec_short_{pid}"));
        let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
        cluster()
            .client("postgres")
            .batch_execute(&format!(
                "CREATE ROLE {odd} LOGIN SUPERUSER PASSWORD {}; CREATE ROLE {short} LOGIN SUPERUSER PASSWORD {};",
                literal(ODD_PASSWORD),
                literal(SHORT_PASSWORD)
            ))
            .expect("the test roles can be created");
        (odd, short)
    })
}

fn encoded(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn url(user: &str, password: &str, database: &str) -> String {
    format!(
        "postgresql://{user}:{}@127.0.0.1:{}/{database}",
        encoded(password),
        cluster().port
    )
}

/// How a run is given its database: environment variables and extra arguments.
struct Form {
    name: &'static str,
    password: &'static str,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

/// Every accepted form, for `db`.
fn accepted_forms(db: &TestDb) -> Vec<Form> {
    let (odd, short) = roles();
    let port = cluster().port.to_string();
    vec![
        Form {
            name: "Prisma URL in DATABASE_URL",
            password: SUPERUSER_PASSWORD,
            env: vec![("DATABASE_URL".into(), db.url())],
            args: vec![],
        },
        Form {
            name: "percent-encoded password with blanks, quotes and delimiters",
            password: ODD_PASSWORD,
            env: vec![("DATABASE_URL".into(), url(odd, ODD_PASSWORD, &db.name))],
            args: vec![],
        },
        Form {
            name: "PGPASSWORD and the PG* variables",
            password: ODD_PASSWORD,
            env: vec![
                ("PGHOST".into(), "127.0.0.1".into()),
                ("PGPORT".into(), port),
                ("PGUSER".into(), odd.clone()),
                ("PGPASSWORD".into(), ODD_PASSWORD.into()),
                ("PGDATABASE".into(), db.name.clone()),
            ],
            args: vec![],
        },
        Form {
            name: "pgward.toml environment's variable, two-character password",
            password: SHORT_PASSWORD,
            env: vec![(
                "APP_DATABASE_URL".into(),
                url(short, SHORT_PASSWORD, &db.name),
            )],
            args: vec!["--env".into(), "app".into()],
        },
        Form {
            name: "--database-url on the command line, two-character password",
            password: SHORT_PASSWORD,
            env: vec![],
            args: vec![
                "--database-url".into(),
                url(short, SHORT_PASSWORD, &db.name),
            ],
        },
    ]
}

/// Where `password` occurs in `text`. A short one counts only as a whole token (not inside
/// a longer word or number), since two characters occur by chance in any text.
fn leaks(text: &str, password: &str) -> bool {
    let forms = [password.to_string(), encoded(password)];
    forms.iter().any(|p| {
        if password.chars().count() >= 4 {
            return text.contains(p.as_str());
        }
        text.match_indices(p.as_str()).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + p.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    })
}

/// The harness's webhook, every request kept (first line and raw body: JSON escaping would
/// hide a password with quotes or backslashes from the search).
fn webhook() -> (String, Arc<Mutex<Vec<String>>>) {
    let (url, raw) = pgward_tests::webhook("/hook");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for (request, body) in raw {
            kept.lock()
                .expect("bodies")
                .push(format!("{request}{body}"));
        }
    });
    (url, bodies)
}

/// A project folder: pgward.toml with the `app` environment, a migration with its
/// down.sql, a failing migration folder, a user check that finds a row.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path();
    std::fs::write(
        p.join("pgward.toml"),
        "[env.app]\ndatabase_url_env = \"APP_DATABASE_URL\"\nbackups = \"backups\"\n",
    )
    .expect("pgward.toml");
    for (folder, sql, down) in [
        ("good/20260101000000_users", "CREATE TABLE users (id int PRIMARY KEY, email text);\nINSERT INTO users VALUES (1, NULL);\n", Some("DROP TABLE users;\n")),
        ("bad/20260101000000_broken", "CREATE TABLE a (id int);\nSELECT 1/0;\n", None),
    ] {
        let d = p.join(folder);
        std::fs::create_dir_all(&d).expect("migration folder");
        std::fs::write(d.join("migration.sql"), sql).expect("migration.sql");
        if let Some(down) = down {
            std::fs::write(d.join("down.sql"), down).expect("down.sql");
        }
    }
    std::fs::create_dir_all(p.join("checks")).expect("checks");
    std::fs::write(
        p.join("checks/no_email.sql"),
        "SELECT id FROM users WHERE email IS NULL",
    )
    .expect("check");
    dir
}

/// The JSON and log files below `dir`.
fn text_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "json" || e == "jsonl" || e == "log")
            {
                found.push(path);
            }
        }
    }
    found
}

/// Everything one run left where a person or a file could see it.
fn seen(out: &Output, audit: &Path, hook: &Mutex<Vec<String>>) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}\n--- audit ---\n{}\n--- notifications ---\n{}",
        out.stdout,
        out.stderr,
        std::fs::read_to_string(audit).unwrap_or_default(),
        hook.lock().expect("bodies").join("\n")
    )
}

/// Runs every binary's commands with `form`, on success and on failure, and checks that
/// the password appears nowhere.
fn every_binary_keeps(form_index: usize) {
    let db = cluster().create_database();
    let form = accepted_forms(&db).remove(form_index);
    let target = cluster().vacant_database();
    let project = project();
    let p = project.path();
    let path = |rel: &str| p.join(rel).to_string_lossy().into_owned();
    let (hook, bodies) = webhook();
    let audit = p.join("audit.jsonl");
    let audit_s = audit.to_string_lossy().into_owned();
    let backups = path("backups");
    // Restore names the backup by its id (a backup goes into another database only when
    // named): the id is known once the backup above has run, so it is filled in then.
    let by_id = format!("{backups}/{BACKUP_ID}");
    // (tool, arguments, the exit codes it may end with: it must really run, since a leak
    // test of runs that all failed at the door would prove little).
    let ok: &[i32] = &[0, 3];
    let runs: Vec<(&str, Vec<String>, &[i32])> = vec![
        (
            "migrate",
            vec!["deploy".into(), "--dir".into(), path("good")],
            ok,
        ),
        (
            "migrate",
            vec!["status".into(), "--dir".into(), path("good")],
            ok,
        ),
        (
            "migrate",
            vec!["rollback".into(), "--dir".into(), path("good")],
            ok,
        ),
        (
            "migrate",
            vec!["deploy".into(), "--dir".into(), path("good")],
            ok,
        ),
        (
            "validate",
            vec!["schema".into(), "--dir".into(), path("good")],
            ok,
        ),
        (
            "validate",
            vec!["data".into(), "--checks".into(), path("checks")],
            &[1],
        ),
        (
            "validate",
            vec!["lint".into(), "--dir".into(), path("good")],
            ok,
        ),
        (
            "validate",
            vec!["drift".into(), "--dir".into(), path("good")],
            ok,
        ),
        (
            "validate",
            vec!["preflight".into(), "--dir".into(), path("good")],
            &[0, 1, 3],
        ),
        (
            "backup",
            vec!["backup".into(), "--to".into(), backups.clone()],
            ok,
        ),
        (
            "backup",
            vec!["list".into(), "--from".into(), backups.clone()],
            ok,
        ),
        // Not --deep: deep verifies of the tests running beside this one would drop each
        // other's scratch database (backup's leftover check races with its creation);
        // restore below runs the same loader with the same credentials.
        (
            "backup",
            vec![
                "verify".into(),
                "latest".into(),
                "--from".into(),
                backups.clone(),
            ],
            ok,
        ),
        (
            "restore",
            vec![
                "restore".into(),
                "--from".into(),
                by_id,
                "--target-db".into(),
                target.name.clone(),
                "--create".into(),
            ],
            ok,
        ),
        ("report", vec!["health".into()], ok),
        (
            "report",
            vec!["migrations".into(), "--dir".into(), path("good")],
            ok,
        ),
        (
            "report",
            vec!["backups".into(), "--from".into(), backups],
            ok,
        ),
        (
            "migrate",
            vec!["deploy".into(), "--dir".into(), path("bad")],
            &[1],
        ),
        // Reads the audit log every run above wrote (--audit-log is added to every run).
        ("report", vec!["audit".into()], ok),
    ];
    let mut problems = Vec::new();
    let bindir = cluster().bin_dir.to_string_lossy().into_owned();
    let sampler = ArgvSampler::start(Watch::Grandchildren);
    for (tool, args, expected) in &runs {
        let newest_backup = || {
            let mut ids: Vec<String> = std::fs::read_dir(p.join("backups"))
                .map(|d| {
                    d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .filter(|n| !n.starts_with('.'))
                        .collect()
                })
                .unwrap_or_default();
            ids.sort();
            ids.pop().unwrap_or_default()
        };
        let mut all: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(BACKUP_ID) {
                    a.replace(BACKUP_ID, &newest_backup())
                } else {
                    a.clone()
                }
            })
            .collect();
        all.extend(form.args.iter().cloned());
        all.extend([
            "--audit-log".to_string(),
            audit_s.clone(),
            "--notify".into(),
            hook.clone(),
            "--notify-on".into(),
            "success".into(),
        ]);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut env: Vec<(&str, &str)> = form
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.push(("PGWARD_PG_BINDIR", &bindir));
        let out = run_in(p, tool, &all, &env);
        // Notifications are posted before the binary exits; give the listener a moment.
        std::thread::sleep(Duration::from_millis(50));
        let text = seen(&out, &audit, &bodies);
        if leaks(&text, form.password) {
            problems.push(format!(
                "pgward-{tool} {args:?} leaked the password:\n{text}"
            ));
        }
        if !expected.contains(&out.code) {
            problems.push(format!(
                "pgward-{tool} {args:?} exited {}, expected one of {expected:?}:\n{out}",
                out.code
            ));
        }
    }
    let (_, argv) = sampler.finish();
    // Every file the runs left in the project: the audit log, the backups' manifests,
    // migrations.json, verified.json.
    let files = text_files(p);
    if !files.iter().any(|f| f.ends_with("manifest.json")) {
        problems.push(format!("no backup manifest among {files:?}"));
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if leaks(&text, form.password) {
            problems.push(format!("{} holds the password", file.display()));
        }
    }
    for line in argv.iter().filter(|l| leaks(l, form.password)) {
        problems.push(format!(
            "a process a binary started had the password on its command line: {line}"
        ));
    }
    // pg_dump (backup), pg_restore (restore) ran as children and were seen.
    for tool in ["pg_dump", "pg_restore"] {
        if !argv.iter().any(|l| l.contains(tool)) {
            problems.push(format!("{tool} was never seen running: {argv:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}:\n{}",
        form.name,
        problems.join("\n\n")
    );
    assert!(
        !bodies.lock().expect("bodies").is_empty(),
        "notifications were sent"
    );
    assert!(
        std::fs::read_to_string(&audit).is_ok_and(|a| a.lines().count() >= 3),
        "the audit log was written"
    );
}

#[test]
fn every_binary_keeps_a_prisma_url_password() {
    every_binary_keeps(0);
}

#[test]
fn every_binary_keeps_a_percent_encoded_password_with_quotes_and_blanks() {
    every_binary_keeps(1);
}

#[test]
fn every_binary_keeps_pgpassword() {
    every_binary_keeps(2);
}

#[test]
fn every_binary_keeps_a_short_password_from_a_pgward_toml_environment() {
    every_binary_keeps(3);
}

#[test]
fn every_binary_keeps_a_short_password_given_with_database_url() {
    every_binary_keeps(4);
}

/// Values that are refused or cannot connect: the error says what is wrong without the
/// password.
#[test]
fn refused_and_failing_connection_strings_are_never_echoed() {
    let db = cluster().create_database();
    let port = cluster().port;
    let (odd, short) = roles();
    let quoted_odd = format!(
        "'{}'",
        ODD_PASSWORD.replace('\\', "\\\\").replace('\'', "\\'")
    );
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "key=value conninfo, short password",
            format!(
                "host=127.0.0.1 port={port} user={short} password={SHORT_PASSWORD} dbname={}",
                db.name
            ),
            SHORT_PASSWORD,
            "INVALID_DATABASE_URL",
        ),
        (
            "key=value conninfo, quoted odd password",
            format!(
                "host=127.0.0.1 port={port} user={odd} password={quoted_odd} dbname={}",
                db.name
            ),
            ODD_PASSWORD,
            "INVALID_DATABASE_URL",
        ),
        (
            "key=value conninfo, password first",
            "password=hunter2secret host=db".to_string(),
            "hunter2secret",
            "INVALID_DATABASE_URL",
        ),
        (
            "a bare password pasted into DATABASE_URL",
            "s3cr3t-pasted".to_string(),
            "s3cr3t-pasted",
            "INVALID_DATABASE_URL",
        ),
        (
            "wrong scheme",
            format!("mysql://{short}:{SHORT_PASSWORD}@127.0.0.1/db"),
            SHORT_PASSWORD,
            "INVALID_DATABASE_URL",
        ),
        (
            "wrong short password",
            url(short, "z9", &db.name),
            "z9",
            "AUTHENTICATION_FAILED",
        ),
        (
            "nothing listens there",
            format!(
                "postgresql://{short}:{SHORT_PASSWORD}@127.0.0.1:1/{}",
                db.name
            ),
            SHORT_PASSWORD,
            "CONNECTION_FAILED",
        ),
        (
            "bad port, odd password",
            format!(
                "postgresql://{odd}:{}@127.0.0.1:notaport/db",
                encoded(ODD_PASSWORD)
            ),
            ODD_PASSWORD,
            "INVALID_DATABASE_URL",
        ),
    ];
    let (hook, bodies) = webhook();
    let dir = tempfile::tempdir().expect("temp dir");
    let audit = dir.path().join("audit.jsonl");
    let mut problems = Vec::new();
    for (what, value, password, code) in &cases {
        for (tool, args) in [
            ("migrate", vec!["deploy", "--dir", "/nonexistent"]),
            ("validate", vec!["schema", "--dir", "/nonexistent"]),
            ("backup", vec!["backup", "--to", "/nonexistent/backups"]),
            (
                "restore",
                vec!["restore", "--from", "/nonexistent/b/latest", "--clean"],
            ),
            ("report", vec!["health"]),
        ] {
            let mut all = args.clone();
            let audit_s = audit.to_string_lossy().into_owned();
            all.extend(["--audit-log", &audit_s, "--notify", &hook]);
            let out = run_in(dir.path(), tool, &all, &[("DATABASE_URL", value.as_str())]);
            std::thread::sleep(Duration::from_millis(50));
            let text = seen(&out, &audit, &bodies);
            if leaks(&text, password) {
                problems.push(format!(
                    "{what}: pgward-{tool} leaked the password:\n{text}"
                ));
            }
            let json = out.json();
            // Only this run is sure to read the URL first (the others may stop at their
            // own arguments before connecting).
            if tool == "validate" && json["error"]["code"] != *code {
                problems.push(format!(
                    "{what}: pgward-{tool} said {} not {code}:\n{out}",
                    json["error"]["code"]
                ));
            }
            if json["error"]["hint"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
            {
                problems.push(format!("{what}: pgward-{tool} gave no hint:\n{out}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    let conninfo = run_in(
        dir.path(),
        "validate",
        &["schema", "--dir", "/nonexistent"],
        &[("DATABASE_URL", cases[0].1.as_str())],
    );
    assert!(
        conninfo.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("key=value"),
        "the refusal names the form it refuses: {conninfo}"
    );
}

/// `report health` lists other sessions' queries: passwords in them (dblink, CREATE ROLE,
/// a foreign server's options, a URL) are masked, however short.
#[test]
fn report_health_masks_passwords_in_other_sessions_queries() {
    let db = cluster().create_database();
    let texts = [
        ("dblink", "host=db password=tiny1 dbname=x", "tiny1"),
        ("short conninfo", "host=db password=q8 dbname=x", "q8"),
        (
            "quoted conninfo",
            "host=db password='a b c' dbname=x",
            "a b c",
        ),
        ("url", "postgresql://app:u7@db/app", "u7"),
    ];
    let mut sessions = Vec::new();
    for (i, (_, text, _)) in texts.iter().enumerate() {
        let mut client = db.client();
        let literal = text.replace('\'', "''");
        let sql = format!("SET application_name = 'secrets-{i}'; SELECT pg_sleep(20), '{literal}'");
        sessions.push(std::thread::spawn(move || {
            let _ = client.batch_execute(&sql);
        }));
    }
    let mut role = db.client();
    let role_sql = "SET application_name = 'secrets-role'; BEGIN; CREATE ROLE secrets_role_tmp PASSWORD 'r2d2x'; SELECT pg_sleep(20); COMMIT";
    let role_thread = std::thread::spawn(move || {
        let _ = role.batch_execute(role_sql);
    });
    let started = Instant::now();
    while db.query_one_string(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'secrets-%' AND wait_event = 'PgSleep'",
    ) != (texts.len() + 1).to_string()
    {
        assert!(started.elapsed() < Duration::from_secs(15), "the sessions never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = pgward_tests::run(
        "report",
        &[
            "health",
            "--long-running",
            "0s",
            "--database-url",
            &db.url(),
        ],
        &[],
    );
    cluster()
        .client("postgres")
        .batch_execute(&format!(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND application_name LIKE 'secrets-%'",
            db.name
        ))
        .expect("cancel the sleepers");
    for s in sessions {
        let _ = s.join();
    }
    let _ = role_thread.join();
    assert!(out.code == 0 || out.code == 3, "{out}");
    let shown = out.json()["result"]["long_running"].to_string();
    assert!(shown.contains("pg_sleep"), "the queries are listed: {out}");
    for (what, _, password) in texts {
        assert!(
            !leaks(&out.stdout, password),
            "{what}: {password} shown:\n{out}"
        );
    }
    assert!(
        !out.stdout.contains("r2d2x"),
        "the role's password is shown:\n{out}"
    );
}

// ---------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------

/// Which processes an [`ArgvSampler`] reads.
#[derive(Clone, Copy)]
enum Watch {
    /// Every process of this process group (a script and all it starts).
    Group(u32),
    /// Every process this test process started through another one: the children of the
    /// binaries the test runs (psql, pg_dump, pg_restore), not the binaries themselves,
    /// whose command line the test wrote.
    Grandchildren,
}

/// `(ppid, pgrp)` of a process, from /proc/PID/stat (`pid (comm) state ppid pgrp ...`; comm
/// may hold blanks, so the fields are counted after the last `)`).
fn parent_and_group(pid: u32) -> Option<(u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(1);
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

/// Whether `pid` descends from this test process through at least one other process.
fn is_grandchild(pid: u32) -> bool {
    let me = std::process::id();
    let mut current = pid;
    for depth in 0..64 {
        let Some((ppid, _)) = parent_and_group(current) else {
            return false;
        };
        if ppid == me {
            return depth >= 1;
        }
        if ppid <= 1 {
            return false;
        }
        current = ppid;
    }
    false
}

/// Samples the command lines of the processes `watch` names until stopped.
struct ArgvSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(usize, BTreeSet<String>)>,
}

impl ArgvSampler {
    fn start(watch: Watch) -> ArgvSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            let mut samples = 0;
            while !flag.load(Ordering::Relaxed) {
                samples += 1;
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                        continue;
                    };
                    let watched = match watch {
                        Watch::Group(pgid) => {
                            parent_and_group(pid).is_some_and(|(_, pgrp)| pgrp == pgid)
                        }
                        Watch::Grandchildren => is_grandchild(pid),
                    };
                    if !watched {
                        continue;
                    }
                    let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                        continue;
                    };
                    // Between fork and exec a child still shows its parent's command line:
                    // a binary's own, which the test wrote, not one the binary made.
                    let parent = parent_and_group(pid)
                        .and_then(|(ppid, _)| std::fs::read(format!("/proc/{ppid}/cmdline")).ok());
                    if matches!(watch, Watch::Grandchildren) && parent.as_ref() == Some(&cmdline) {
                        continue;
                    }
                    let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                    if !line.trim().is_empty() {
                        seen.insert(line);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (samples, seen)
        });
        ArgvSampler { stop, thread }
    }

    fn finish(self) -> (usize, BTreeSet<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the sampler ends")
    }
}

/// Runs `scripts/SCRIPT` in `dir` (its own process group) while sampling its processes'
/// command lines; returns its output and every command line seen.
fn run_script_sampled(
    dir: &Path,
    script: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Output, BTreeSet<String>) {
    let running = RunningScript::start(dir, script, args, envs);
    let sampler = ArgvSampler::start(Watch::Group(running.pid()));
    let out = running.wait();
    let (samples, seen) = sampler.finish();
    assert!(samples > 10, "the sampler ran while {script} did");
    (out, seen)
}

/// Every script, with the URL in its variable: the password appears in no output and in
/// no command line of the processes it starts (binaries, psql, pg_dump).
#[test]
fn scripts_keep_passwords_out_of_output_and_child_command_lines() {
    let (odd, short) = roles();
    let mut problems = Vec::new();
    for (user, password) in [
        (odd.as_str(), ODD_PASSWORD),
        (short.as_str(), SHORT_PASSWORD),
    ] {
        let db = cluster().create_database();
        let project = project();
        let p = project.path();
        // The scripts read prisma/migrations and the environment `app`; every binary
        // they run writes the audit log.
        std::fs::write(
            p.join("pgward.toml"),
            "audit_log = \"audit.jsonl\"\n[env.app]\ndatabase_url_env = \"APP_DATABASE_URL\"\nbackups = \"backups\"\n",
        )
        .expect("pgward.toml");
        std::fs::create_dir_all(p.join("prisma")).expect("prisma");
        std::fs::rename(p.join("good"), p.join("prisma/migrations")).expect("move");
        write_migrations(&p.join("prisma/migrations"), &[]);
        let (hook, bodies) = webhook();
        let audit = p.join("audit.jsonl");
        let server_url = url(user, password, "postgres");
        let app_url = url(user, password, &db.name);
        let no_password = format!(
            "postgresql://{user}@127.0.0.1:{}/{}",
            cluster().port,
            db.name
        );
        let missing_db = url(user, password, "no_such_database");
        let kv = "host=127.0.0.1 password=kv-secret-9 dbname=postgres";
        // (script, arguments, the variables that carry the URL and password, whether it
        // must succeed)
        let runs: Vec<ScriptRun> = vec![
            (
                "test-migration.sh",
                vec![],
                vec![("DATABASE_URL", &server_url)],
                true,
            ),
            (
                "test-migration.sh",
                vec!["--database-url", &server_url],
                vec![],
                true,
            ),
            (
                "migrate.sh",
                vec!["deploy", "app"],
                vec![("APP_DATABASE_URL", &app_url)],
                true,
            ),
            (
                "migrate.sh",
                vec!["status", "app"],
                vec![("APP_DATABASE_URL", &app_url)],
                true,
            ),
            (
                "migrate.sh",
                vec!["status", "app"],
                vec![("APP_DATABASE_URL", &no_password), ("PGPASSWORD", password)],
                true,
            ),
            (
                "backup-cron.sh",
                vec!["app"],
                vec![("APP_DATABASE_URL", &app_url)],
                true,
            ),
            (
                "maintenance.sh",
                vec!["app", "--dry-run"],
                vec![("APP_DATABASE_URL", &app_url)],
                true,
            ),
            (
                "maintenance.sh",
                vec!["app", "--dry-run", "--database-url", &app_url],
                vec![("APP_DATABASE_URL", &no_password)],
                true,
            ),
            // Fails inside pgward-backup, which posts its failure to the webhook.
            (
                "backup-cron.sh",
                vec!["app"],
                vec![("APP_DATABASE_URL", &missing_db)],
                false,
            ),
            (
                "test-migration.sh",
                vec![],
                vec![("DATABASE_URL", kv)],
                false,
            ),
        ];
        for (script, args, mut env, must_succeed) in runs {
            env.push(("PGWARD_NOTIFY_URL", &hook));
            let (out, argv) = run_script_sampled(p, script, &args, &env);
            // Notifications are posted before the binaries exit; give the listener a moment.
            std::thread::sleep(Duration::from_millis(50));
            let checked = if env.iter().any(|(_, v)| v.contains("kv-secret-9")) {
                "kv-secret-9"
            } else {
                password
            };
            let text = seen(&out, &audit, &bodies);
            if leaks(&text, checked) {
                problems.push(format!(
                    "{script} {args:?} let the password into its output, the audit log or a notification:\n{text}"
                ));
            }
            // The script's own command line is the user's; what it starts must not carry it.
            let own = format!("scripts/{script}");
            for line in argv
                .iter()
                .filter(|l| leaks(l, checked) && !l.contains(&own))
            {
                problems.push(format!("{script} {args:?} started a process with the password on its command line: {line}"));
            }
            if must_succeed && out.code != 0 && out.code != 3 {
                problems.push(format!(
                    "{script} {args:?} failed, so it proved little:\n{out}"
                ));
            }
        }
        if bodies.lock().expect("bodies").is_empty() {
            problems.push("no notification was posted: the failing run proved nothing".into());
        }
        if std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .is_empty()
        {
            problems.push("the audit log is empty: the runs proved nothing about it".into());
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
