//! End-to-end tests of `pgward-migrate deploy` and its companions (status, resolve,
//! rollback, new, seed) against a real PostgreSQL server.
//!
//! The real-world corpus proves that whole Prisma histories land exactly as psql would
//! apply them, with Prisma's history rows and order; the small fixtures in
//! `tests/fixtures/migrate_deploy/` each pin one behaviour: line endings, transaction
//! boundaries, steps that cannot run in a transaction, failures and their recovery,
//! rollback, baselining, and the JSON users script against.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pgward_tests::{
    cluster, corpus_history, fixtures_dir, json_strings, path_str, redact_json, run, run_in,
    without_restrict_lines, Output, TestDb,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A fixture migrations folder of this file: `tests/fixtures/migrate_deploy/<name>`.
fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join("migrate_deploy").join(name)
}

/// `pgward-migrate <command> --dir <dir> <extra...> --database-url <db>`.
fn migrate(db: &TestDb, command: &str, dir: &Path, extra: &[&str]) -> Output {
    let url = db.url();
    let mut args = vec![command, "--dir", path_str(dir)];
    args.extend_from_slice(extra);
    args.extend(["--database-url", url.as_str()]);
    run("migrate", &args, &[])
}

/// Asserts exit code and `error.code`, returns the envelope.
fn expect_error(out: &Output, code: i32, error_code: &str) -> Value {
    let envelope = out.assert_envelope(code);
    assert_eq!(envelope["error"]["code"], error_code, "{out}");
    envelope
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn checksum_of(migration_dir: &Path) -> String {
    let file = migration_dir.join("migration.sql");
    sha256_hex(&std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
}

/// Whether `id` is a canonical, lowercase UUID version 4 (RFC 4122 variant).
fn is_uuid_v4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths_ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
    let hex_ok = groups.iter().all(|g| {
        g.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    lengths_ok
        && hex_ok
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

/// One row of `_prisma_migrations`.
#[derive(Debug, Clone)]
struct HistoryRow {
    id: String,
    checksum: String,
    migration_name: String,
    finished: bool,
    rolled_back: bool,
    logs: Option<String>,
    applied_steps_count: i32,
}

/// All of `_prisma_migrations`, in the order the migrations finished (failed attempts,
/// never finished, last).
fn history(db: &TestDb) -> Vec<HistoryRow> {
    db.client()
        .query(
            "SELECT id, checksum, migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL, \
                    logs, applied_steps_count \
             FROM public._prisma_migrations ORDER BY finished_at NULLS LAST, started_at",
            &[],
        )
        .expect("_prisma_migrations can be read")
        .iter()
        .map(|r| HistoryRow {
            id: r.get(0),
            checksum: r.get(1),
            migration_name: r.get(2),
            finished: r.get(3),
            rolled_back: r.get(4),
            logs: r.get(5),
            applied_steps_count: r.get(6),
        })
        .collect()
}

fn history_names(db: &TestDb) -> Vec<String> {
    history(db).into_iter().map(|r| r.migration_name).collect()
}

/// Asserts that every row is one finished, current, Prisma-shaped attempt of the
/// migration folder under `dir` it names, recorded with that file's checksum.
fn assert_history_matches_folder(db: &TestDb, dir: &Path) {
    for row in history(db) {
        assert!(row.finished, "{row:?} is finished");
        assert!(!row.rolled_back, "{row:?} is not rolled back");
        assert_eq!(row.applied_steps_count, 1, "{row:?}");
        assert!(is_uuid_v4(&row.id), "{row:?} has a UUIDv4 id");
        assert_eq!(
            row.checksum,
            checksum_of(&dir.join(&row.migration_name)),
            "{row:?} records the sha256 of its migration.sql"
        );
    }
}

fn table_exists(db: &TestDb, name: &str) -> bool {
    db.query_one_string(&format!("SELECT to_regclass('public.{name}') IS NOT NULL")) == "t"
}

/// The schema without the history table, as the corpus's `schema-after.sql` was dumped.
fn schema_without_history(db: &TestDb) -> String {
    db.pg_dump(&[
        "--no-owner",
        "--no-privileges",
        "-s",
        "-T",
        "_prisma_migrations",
    ])
}

/// Schema and data, `_prisma_migrations` included: "nothing changed" means this is equal.
fn full_dump(db: &TestDb) -> String {
    db.pg_dump(&["--no-owner", "--no-privileges"])
}

/// Like `assert_eq!` for long texts, but shows the first differing line instead of two
/// whole dumps.
fn assert_same_text(what: &str, expected: &str, actual: &str) {
    if expected == actual {
        return;
    }
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let at = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let context =
        |lines: &[&str]| lines[at.saturating_sub(3)..(at + 4).min(lines.len())].join("\n");
    panic!(
        "{what}: texts differ from line {} on ({} vs {} lines)\n--- expected ---\n{}\n--- actual ---\n{}",
        at + 1,
        e.len(),
        a.len(),
        context(&e),
        context(&a)
    );
}

/// A copy of a migrations folder in a temp dir, for tests that edit files.
struct TempFolder {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn temp_copy(source: &Path) -> TempFolder {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("migrations");
    copy_dir(source, &path);
    TempFolder { _dir: dir, path }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The folder names of a migrations dir, sorted by Node's `localeCompare` (what Prisma
/// sorts with); `None` when node is not installed.
fn node_locale_order(names: &[String]) -> Option<Vec<String>> {
    let node = ["/usr/bin/node", "node"]
        .into_iter()
        .find(|n| Command::new(n).arg("--version").output().is_ok())?;
    let mut child = Command::new(node)
        .args([
            "-e",
            "const n = JSON.parse(require('fs').readFileSync(0, 'utf8'));\
             n.sort((a, b) => a.localeCompare(b));\
             process.stdout.write(JSON.stringify(n));",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node starts");
    let input = serde_json::to_vec(names).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let output = child.wait_with_output().expect("node finishes");
    writer.join().unwrap().expect("node reads the names");
    assert!(output.status.success(), "node failed");
    Some(serde_json::from_slice(&output.stdout).expect("node prints JSON"))
}

// ---------------------------------------------------------------------------------------
// 1. The real-world corpus
// ---------------------------------------------------------------------------------------

/// Deploys the corpus history `project` and checks it against psql's schema; returns its
/// folder, or `None` (after the harness's "skipped" line) when the history is not present.
fn deploy_corpus(project: &str) -> Option<std::path::PathBuf> {
    let corpus = corpus_history(project)?;
    let dir = corpus.join("migrations");
    let mut folders: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    folders.sort();

    let db = cluster().create_database();
    let out = migrate(&db, "deploy", &dir, &[]);
    let envelope = out.assert_envelope(0);
    assert_eq!(envelope["error"], Value::Null, "{out}");
    assert_eq!(
        envelope["result"]["applied"].as_array().unwrap().len(),
        folders.len(),
        "every folder is applied"
    );
    assert_eq!(envelope["result"]["already_applied"], 0);
    assert_eq!(envelope["result"]["still_pending"], json!([]));

    // The schema is exactly what psql made of the same history.
    let expected = std::fs::read_to_string(corpus.join("schema-after.sql")).unwrap();
    assert_same_text(
        &format!("{project}: schema after deploy vs schema-after.sql"),
        &without_restrict_lines(&expected),
        &schema_without_history(&db),
    );

    // One finished Prisma-shaped row per folder, checksummed over the raw bytes.
    let rows = history(&db);
    assert_eq!(rows.len(), folders.len(), "one history row per migration");
    let mut recorded: Vec<String> = rows.iter().map(|r| r.migration_name.clone()).collect();
    recorded.sort();
    assert_eq!(recorded, folders, "the rows name exactly the folders");
    assert_history_matches_folder(&db, &dir);

    // Applied in JavaScript localeCompare order: by finish time, and each one started
    // only after the one before it had finished.
    let applied_order: Vec<String> = rows.iter().map(|r| r.migration_name.clone()).collect();
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        applied_order,
        "the JSON lists the migrations in the order they were applied"
    );
    assert_eq!(
        db.query_one_string(
            "SELECT count(*) FROM (SELECT started_at, lag(finished_at) OVER (ORDER BY finished_at) AS prev \
             FROM _prisma_migrations) s WHERE started_at < prev"
        ),
        "0",
        "no migration started before the previous one finished"
    );
    match node_locale_order(&folders) {
        Some(node_order) => assert_eq!(
            applied_order, node_order,
            "{project}: deploy order is node's localeCompare order"
        ),
        None => println!("note: node is not installed; the localeCompare order was not checked"),
    }

    let status = migrate(&db, "status", &dir, &[]).assert_envelope(0);
    assert_eq!(status["result"]["up_to_date"], true);
    assert_eq!(status["result"]["pending"], json!([]));
    assert_eq!(status["result"]["local_migrations"], folders.len());
    Some(corpus)
}

#[test]
fn corpus_rallly_deploys_like_psql_with_prisma_history() {
    deploy_corpus("lukevella__rallly");
}

#[test]
fn corpus_papermark_deploys_like_psql_with_prisma_history() {
    let Some(corpus) = deploy_corpus("mfts__papermark") else {
        return;
    };
    // The 12-digit name sorts by localeCompare, between its 14-digit neighbours.
    let dir = corpus.join("migrations");
    let db = cluster().create_database();
    let out = migrate(
        &db,
        "deploy",
        &dir,
        &["--to", "20231013165123_create_document_version"],
    );
    let envelope = out.assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        [
            "20230912150657_initialize",
            "202310122339_NewColumnInLinkTable",
            "20231013165123_create_document_version"
        ]
    );
    assert_eq!(
        history_names(&db),
        json_strings(&envelope["result"]["applied"], "name"),
        "applied and recorded in that order"
    );
}

#[test]
fn corpus_langfuse_deploys_like_psql_with_prisma_history() {
    deploy_corpus("langfuse__langfuse").expect("langfuse's history is in tests/fixtures/corpus");
}

/// The corpus histories happen to sort the same by bytes and by localeCompare; these
/// names do not (timestamp widths, case, `-` against `_`, accents), and each migration
/// logs itself, so the order is visible in the data, not only in the history.
#[test]
fn deploy_order_is_locale_compare_not_byte_order() {
    let dir = fixture("locale_order");
    let expected = [
        "202401010000_create_log",
        "20240101000000_a_lower",
        "20240101000000_A_upper",
        "20240102000000_underscore",
        "20240102000000-dash",
        "20240103000000_é_accent",
        "20240103000000_f_plain",
    ];
    let mut by_bytes = expected.map(String::from).to_vec();
    by_bytes.sort();
    assert_ne!(
        by_bytes, expected,
        "the fixture must tell the two orders apart"
    );
    match node_locale_order(&by_bytes) {
        Some(node_order) => assert_eq!(node_order, expected, "node agrees with the expected order"),
        None => println!("note: node is not installed; the expected order was not re-checked"),
    }

    let db = cluster().create_database();
    let envelope = migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        expected
    );
    assert_eq!(history_names(&db), expected);
    assert_eq!(
        db.query_one_string("SELECT string_agg(name, ',' ORDER BY seq) FROM apply_log"),
        expected.join(",")
    );
    assert_history_matches_folder(&db, &dir);
    let status = migrate(&db, "status", &dir, &[]).assert_envelope(0);
    assert_eq!(json_strings(&status["result"]["applied"], "name"), expected);
}

// ---------------------------------------------------------------------------------------
// 2. Encodings and transaction boundaries
// ---------------------------------------------------------------------------------------

const AUTHORS: &str = "20240101000000_authors";

#[test]
fn lf_crlf_and_bom_copies_apply_alike_and_record_raw_checksums() {
    let raw: Vec<Vec<u8>> = ["lf", "crlf", "bom"]
        .iter()
        .map(|v| {
            std::fs::read(
                fixture(&format!("encoding_{v}"))
                    .join(AUTHORS)
                    .join("migration.sql"),
            )
            .unwrap()
        })
        .collect();
    // The fixtures really are what their names say (no checkout converted them).
    assert!(!raw[0].contains(&b'\r') && !raw[0].starts_with(b"\xef\xbb\xbf"));
    assert!(raw[1].windows(2).any(|w| w == b"\r\n") && !raw[1].starts_with(b"\xef\xbb\xbf"));
    assert!(raw[2].starts_with(b"\xef\xbb\xbf") && !raw[2].contains(&b'\r'));
    assert_eq!(
        raw[1],
        String::from_utf8(raw[0].clone())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes()
    );
    assert_eq!(raw[2][3..], raw[0][..]);

    let mut schemas = Vec::new();
    let mut dbs = Vec::new();
    for (variant, bytes) in ["lf", "crlf", "bom"].iter().zip(&raw) {
        let dir = fixture(&format!("encoding_{variant}"));
        let db = cluster().create_database();
        let envelope = migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
        assert_eq!(envelope["result"]["applied"][0]["mode"], "transaction");
        let rows = history(&db);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].checksum,
            sha256_hex(bytes),
            "{variant}: checksum of the raw bytes"
        );
        assert_history_matches_folder(&db, &dir);
        assert_eq!(
            db.query_one_string(r#"SELECT string_agg(name, ',' ORDER BY id) FROM "Author""#),
            "Ada,Grace"
        );
        schemas.push(db.pg_dump_schema());
        dbs.push(db);
    }
    assert_same_text("LF vs CRLF schema", &schemas[0], &schemas[1]);
    assert_same_text("LF vs BOM schema", &schemas[0], &schemas[2]);

    // Version control may turn the applied LF file into CRLF: still the same migration.
    let lf_db = &dbs[0];
    let folder = temp_copy(&fixture("encoding_lf"));
    let file = folder.path.join(AUTHORS).join("migration.sql");
    std::fs::write(&file, &raw[1]).unwrap();
    let status = migrate(lf_db, "status", &folder.path, &[]).assert_envelope(0);
    assert_eq!(status["result"]["up_to_date"], true);
    assert_eq!(status["result"]["edited"], json!([]));
    let redeploy = migrate(lf_db, "deploy", &folder.path, &[]).assert_envelope(0);
    assert_eq!(redeploy["result"]["applied"], json!([]));
    assert_eq!(redeploy["result"]["already_applied"], 1);
    assert_eq!(
        redeploy["warnings"],
        json!([]),
        "no EDITED_MIGRATION warning"
    );

    // A real edit is reported.
    let edited = String::from_utf8(raw[0].clone())
        .unwrap()
        .replace("'Grace'", "'Linus'");
    std::fs::write(&file, &edited).unwrap();
    let out = migrate(lf_db, "status", &folder.path, &[]);
    let status = expect_error(&out, 5, "HISTORY_DIVERGED");
    assert_eq!(status["result"]["up_to_date"], false);
    assert_eq!(
        status["result"]["edited"],
        json!([{
            "name": AUTHORS,
            "recorded_checksum": sha256_hex(&raw[0]),
            "local_checksum": sha256_hex(edited.as_bytes()),
        }])
    );
}

#[test]
fn explicit_begin_commit_with_statements_around_the_block() {
    let dir = fixture("explicit_transaction");
    let db = cluster().create_database();
    let envelope = migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    let applied = &envelope["result"]["applied"][0];
    assert_eq!(applied["mode"], "transaction");
    assert_eq!(
        applied["statements"], 8,
        "BEGIN and COMMIT count as statements"
    );
    for (table, id) in [
        ("before_block", "1"),
        ("in_block", "2"),
        ("after_block", "3"),
    ] {
        assert_eq!(
            db.query_one_string(&format!("SELECT string_agg(id::text, ',') FROM {table}")),
            id
        );
    }
    assert_eq!(history(&db).len(), 1);
    assert_history_matches_folder(&db, &dir);
}

#[test]
fn do_block_with_semicolons_is_one_statement() {
    let dir = fixture("do_block");
    let db = cluster().create_database();
    let envelope = migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    assert_eq!(envelope["result"]["applied"][0]["mode"], "transaction");
    assert_eq!(envelope["result"]["applied"][0]["statements"], 3);
    assert_eq!(
        db.query_one_string(
            "SELECT string_agg(name || '=' || value, ',' ORDER BY name) FROM counters"
        ),
        "after=0,c1=10,c2=20,c3=30"
    );
    assert_history_matches_folder(&db, &dir);
}

#[test]
fn enum_add_value_alone_runs_in_a_transaction_and_used_later_runs_step_by_step() {
    let dir = fixture("enum_add_value");
    let db = cluster().create_database();
    let envelope = migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    let applied = envelope["result"]["applied"].as_array().unwrap();
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        [
            "20240101000000_mood",
            "20240102000000_add_value_alone",
            "20240103000000_add_value_and_use_it"
        ]
    );
    assert_eq!(applied[0]["mode"], "transaction");
    assert_eq!(
        applied[1]["mode"], "transaction",
        "an added value nobody uses needs no commit first"
    );
    assert_eq!(applied[2]["mode"], "statements");
    assert!(
        applied[2]["reason"].as_str().unwrap().contains("'ok'"),
        "the reason names the value: {}",
        applied[2]
    );
    assert_eq!(
        db.query_one_string(
            "SELECT string_agg(v::text, ',') FROM unnest(enum_range(NULL::mood)) v"
        ),
        "sad,happy,meh,ok"
    );
    assert_eq!(
        db.query_one_string(
            "SELECT string_agg(name || ':' || current_mood, ',' ORDER BY name) FROM person"
        ),
        "ann:meh,bob:ok"
    );
    assert_eq!(history(&db).len(), 3);
    assert_history_matches_folder(&db, &dir);
}

#[test]
fn create_index_concurrently_alone_and_mixed_both_build_valid_indexes() {
    let dir = fixture("concurrently");
    let db = cluster().create_database();
    let envelope = migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    let applied = envelope["result"]["applied"].as_array().unwrap();
    assert_eq!(applied[0]["mode"], "transaction");
    for step in &applied[1..] {
        assert_eq!(step["mode"], "statements", "{step}");
        assert!(
            step["reason"].as_str().unwrap().contains("CONCURRENTLY"),
            "{step}"
        );
    }
    assert_eq!(applied[2]["statements"], 4);
    for index in ["item_sku_idx", "tag_label_key"] {
        assert_eq!(
            db.query_one_string(&format!(
                "SELECT indisvalid AND indisready FROM pg_index WHERE indexrelid = 'public.{index}'::regclass"
            )),
            "t",
            "{index} is valid"
        );
    }
    assert_eq!(
        db.query_one_string("SELECT string_agg(label, ',' ORDER BY id) FROM tag"),
        "red,blue,green"
    );
    assert_eq!(history(&db).len(), 3);
    assert_history_matches_folder(&db, &dir);
}

// ---------------------------------------------------------------------------------------
// 3. A failing migration and the way back
// ---------------------------------------------------------------------------------------

const USERS: &str = "20240101000000_users";
const BREAKS: &str = "20240102000000_breaks";
const LATER: &str = "20240103000000_later";

#[test]
fn failed_migration_leaves_nothing_blocks_deploy_and_recovers_after_resolve() {
    let folder = temp_copy(&fixture("failing"));
    let dir = &folder.path;
    let db = cluster().create_database();

    let out = migrate(&db, "deploy", dir, &[]);
    let envelope = expect_error(&out, 1, "MIGRATION_FAILED");
    let error = &envelope["error"];
    assert!(
        error["message"].as_str().unwrap().contains("P3018"),
        "{out}"
    );
    assert_eq!(error["details"]["migration"], BREAKS, "{out}");
    assert_eq!(error["details"]["sqlstate"], "23505", "{out}");
    assert_eq!(
        error["details"]["line"], 5,
        "the third statement is on line 5: {out}"
    );
    assert!(
        error["details"]["statement"]
            .as_str()
            .unwrap()
            .contains("'a@example.com'"),
        "{out}"
    );
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        [USERS],
        "{out}"
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("nothing of the failing transaction was kept"),
        "{out}"
    );

    // Nothing of the failing file remains, and the migration after it never ran.
    assert!(
        !table_exists(&db, "audit"),
        "the first statement was rolled back"
    );
    assert_eq!(db.query_one_string("SELECT count(*) FROM users"), "0");
    assert!(
        !table_exists(&db, "later"),
        "the later migration was not applied"
    );

    // The attempt is recorded as failed, with the error.
    let rows = history(&db);
    assert_eq!(
        rows.iter()
            .map(|r| r.migration_name.as_str())
            .collect::<Vec<_>>(),
        [USERS, BREAKS],
        "no row for the later migration"
    );
    let failed = &rows[1];
    assert!(!failed.finished && !failed.rolled_back, "{failed:?}");
    assert!(is_uuid_v4(&failed.id));
    assert_eq!(failed.checksum, checksum_of(&dir.join(BREAKS)));
    let logs = failed.logs.as_deref().unwrap_or_default();
    assert!(
        logs.contains("23505") && logs.contains("users_email_key"),
        "{logs}"
    );

    // A failed migration blocks every further deploy.
    let out = migrate(&db, "deploy", dir, &[]);
    let envelope = expect_error(&out, 5, "FAILED_MIGRATIONS");
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap()
            .contains("P3009"),
        "{out}"
    );
    assert!(!table_exists(&db, "later"));

    let out = migrate(&db, "status", dir, &[]);
    let status = expect_error(&out, 5, "FAILED_MIGRATIONS");
    assert_eq!(json_strings(&status["result"]["failed"], "name"), [BREAKS]);
    assert!(status["result"]["failed"][0]["logs"]
        .as_str()
        .unwrap()
        .contains("23505"));
    assert_eq!(status["result"]["up_to_date"], false);

    let resolved = migrate(&db, "resolve", dir, &["--rolled-back", BREAKS]).assert_envelope(0);
    assert_eq!(resolved["result"]["rows_changed"], 1);
    let status = migrate(&db, "status", dir, &[]).assert_envelope(3);
    assert_eq!(status["result"]["pending"], json!([BREAKS, LATER]));
    assert_eq!(status["result"]["failed"], json!([]));

    // Fix the file and deploy again.
    let file = dir.join(BREAKS).join("migration.sql");
    let fixed = std::fs::read_to_string(&file)
        .unwrap()
        .replace("(2, 'a@example.com')", "(2, 'b@example.com')");
    std::fs::write(&file, fixed).unwrap();
    let envelope = migrate(&db, "deploy", dir, &[]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        [BREAKS, LATER]
    );
    assert_eq!(envelope["result"]["already_applied"], 1);
    assert_eq!(db.query_one_string("SELECT count(*) FROM users"), "2");
    assert_eq!(db.query_one_string("SELECT count(*) FROM audit"), "1");
    assert!(table_exists(&db, "later"));

    let rows = history(&db);
    let breaks: Vec<&HistoryRow> = rows.iter().filter(|r| r.migration_name == BREAKS).collect();
    assert_eq!(
        breaks.len(),
        2,
        "the rolled-back attempt stays in the history"
    );
    assert!(breaks.iter().any(|r| r.rolled_back && !r.finished));
    let applied = breaks.iter().find(|r| r.finished).unwrap();
    assert!(!applied.rolled_back);
    assert_eq!(
        applied.checksum,
        checksum_of(&dir.join(BREAKS)),
        "the fixed file's checksum"
    );
    migrate(&db, "status", dir, &[]).assert_envelope(0);
}

/// A migration that runs statement by statement cannot be undone as a whole: what ran
/// before the failing statement stays committed, and the error must say so instead of
/// advising a plain re-deploy.
#[test]
fn failure_partway_through_a_statement_mode_migration_says_what_was_committed() {
    let dir = fixture("failing_statements");
    let name = "20240102000000_unique_index";
    let db = cluster().create_database();

    let out = migrate(&db, "deploy", &dir, &[]);
    let envelope = expect_error(&out, 1, "MIGRATION_FAILED");
    let error = &envelope["error"];
    assert_eq!(error["details"]["migration"], name, "{out}");
    assert_eq!(error["details"]["sqlstate"], "23505", "{out}");
    assert_eq!(error["details"]["line"], 3, "{out}");
    let hint = error["hint"].as_str().unwrap();
    assert!(
        !hint.contains("nothing of the failing transaction was kept"),
        "the first statement was committed: {out}"
    );
    assert!(
        hint.contains("committed") && hint.contains("resolve --rolled-back"),
        "{out}"
    );

    assert!(
        table_exists(&db, "val_copy"),
        "the first step was committed"
    );
    assert!(
        !table_exists(&db, "never_created"),
        "nothing ran after the failure"
    );
    let rows = history(&db);
    let failed = rows.iter().find(|r| r.migration_name == name).unwrap();
    assert!(!failed.finished && !failed.rolled_back, "{failed:?}");
    assert_eq!(failed.applied_steps_count, 1, "one statement was applied");

    let status = expect_error(&migrate(&db, "status", &dir, &[]), 5, "FAILED_MIGRATIONS");
    assert_eq!(status["result"]["failed"][0]["name"], name);
    assert_eq!(status["result"]["failed"][0]["applied_steps_count"], 1);
}

// ---------------------------------------------------------------------------------------
// 4. --dry-run and --to
// ---------------------------------------------------------------------------------------

#[test]
fn dry_run_changes_nothing_and_to_stops_at_the_named_migration() {
    let dir = fixture("three_steps");
    let db = cluster().create_database();

    // Dry run on an empty database: not even the history table.
    let envelope = migrate(&db, "deploy", &dir, &["--dry-run"]).assert_envelope(0);
    assert_eq!(envelope["result"]["dry_run"], true);
    assert_eq!(envelope["result"]["applied"].as_array().unwrap().len(), 3);
    assert!(!table_exists(&db, "_prisma_migrations"));

    let envelope =
        migrate(&db, "deploy", &dir, &["--to", "20240101000000_first"]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        ["20240101000000_first"]
    );
    assert_eq!(
        envelope["result"]["still_pending"],
        json!(["20240102000000_second", "20240103000000_third"])
    );
    assert_eq!(history_names(&db), ["20240101000000_first"]);

    let before = full_dump(&db);
    let out = migrate(&db, "deploy", &dir, &["--dry-run"]);
    let envelope = out.assert_envelope(0);
    assert_eq!(envelope["result"]["dry_run"], true);
    assert_eq!(envelope["result"]["already_applied"], 1);
    let planned = envelope["result"]["applied"].as_array().unwrap();
    assert_eq!(planned.len(), 2, "{out}");
    assert_eq!(planned[0]["name"], "20240102000000_second");
    assert_eq!(planned[0]["mode"], "transaction");
    assert_eq!(planned[0]["statements"], 2);
    assert_eq!(planned[0]["duration_ms"], Value::Null);
    assert_eq!(planned[1]["name"], "20240103000000_third");
    assert_eq!(planned[1]["mode"], "statements");
    assert_eq!(planned[1]["statements"], 1);
    assert_same_text("dump before vs after --dry-run", &before, &full_dump(&db));

    let envelope =
        migrate(&db, "deploy", &dir, &["--to", "20240102000000_second"]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        ["20240102000000_second"]
    );
    assert_eq!(
        envelope["result"]["still_pending"],
        json!(["20240103000000_third"])
    );
    assert_eq!(
        db.query_one_string("SELECT count(*) FROM pg_indexes WHERE indexname = 'note_body_idx'"),
        "0",
        "the migration after --to did not run"
    );
    let status = migrate(&db, "status", &dir, &[]).assert_envelope(3);
    assert_eq!(status["result"]["pending"], json!(["20240103000000_third"]));

    let envelope = migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        ["20240103000000_third"]
    );
    assert_history_matches_folder(&db, &dir);
    assert_eq!(history(&db).len(), 3);
}

// ---------------------------------------------------------------------------------------
// 5. rollback
// ---------------------------------------------------------------------------------------

const ACCOUNTS: &str = "20240101000000_accounts";
const EMAIL: &str = "20240102000000_account_email";
const INVOICES: &str = "20240103000000_invoices";

#[test]
fn rollback_runs_down_sql_and_forgets_the_migration() {
    let dir = fixture("with_down");
    let db = cluster().create_database();
    migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    let schema_before = schema_without_history(&db);

    // One step: the newest migration.
    let envelope = migrate(&db, "rollback", &dir, &[]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["rolled_back"], "name"),
        [INVOICES]
    );
    assert_eq!(envelope["result"]["rolled_back"][0]["mode"], "transaction");
    assert!(!table_exists(&db, "invoice"));
    assert_eq!(
        history_names(&db),
        [ACCOUNTS, EMAIL],
        "its rows are deleted"
    );
    let status = migrate(&db, "status", &dir, &[]).assert_envelope(3);
    assert_eq!(status["result"]["pending"], json!([INVOICES]));

    let envelope = migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        [INVOICES]
    );
    assert_same_text(
        "schema after rollback + deploy",
        &schema_before,
        &schema_without_history(&db),
    );
    assert_history_matches_folder(&db, &dir);

    // Two steps, newest first.
    let envelope = migrate(&db, "rollback", &dir, &["--steps", "2"]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["rolled_back"], "name"),
        [INVOICES, EMAIL]
    );
    assert_eq!(history_names(&db), [ACCOUNTS]);
    let status = migrate(&db, "status", &dir, &[]).assert_envelope(3);
    assert_eq!(status["result"]["pending"], json!([EMAIL, INVOICES]));
    let schema_at_accounts = schema_without_history(&db);

    // The state equals a fresh database deployed up to the first migration.
    let fresh = cluster().create_database();
    migrate(&fresh, "deploy", &dir, &["--to", ACCOUNTS]).assert_envelope(0);
    assert_same_text(
        "rolled back vs fresh at ACCOUNTS",
        &schema_without_history(&fresh),
        &schema_at_accounts,
    );

    migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    assert_same_text(
        "schema after --steps 2 + deploy",
        &schema_before,
        &schema_without_history(&db),
    );

    // --to NAME: everything after NAME, NAME itself stays.
    let envelope = migrate(&db, "rollback", &dir, &["--to", ACCOUNTS]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["rolled_back"], "name"),
        [INVOICES, EMAIL]
    );
    assert_eq!(history_names(&db), [ACCOUNTS]);
    assert_same_text(
        "schema after rollback --to",
        &schema_at_accounts,
        &schema_without_history(&db),
    );
    assert_eq!(
        db.query_one_string("SELECT name FROM account"),
        "first",
        "data of kept migrations stays"
    );

    migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    assert_same_text(
        "schema after --to + deploy",
        &schema_before,
        &schema_without_history(&db),
    );
}

#[test]
fn rollback_without_down_sql_changes_nothing() {
    let dir = fixture("partial_down");
    let db = cluster().create_database();
    migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    let before = full_dump(&db);

    // The newest target has a down.sql, the older one not: nothing may run.
    for extent in [&["--steps", "2"][..], &["--to", "20240101000000_one"][..]] {
        let out = migrate(&db, "rollback", &dir, extent);
        let envelope = expect_error(&out, 1, "NO_DOWN_SQL");
        assert!(
            envelope["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("restore"),
            "{out}"
        );
        assert_eq!(
            envelope["error"]["details"]["migration"],
            "20240102000000_two_without_down"
        );
        assert_same_text("dump after refused rollback", &before, &full_dump(&db));
    }
    assert!(table_exists(&db, "three"));

    // One step reaches only the newest, which has a down.sql.
    let envelope = migrate(&db, "rollback", &dir, &[]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["rolled_back"], "name"),
        ["20240103000000_three"]
    );
    assert!(!table_exists(&db, "three"));

    let before = full_dump(&db);
    let out = migrate(&db, "rollback", &dir, &[]);
    expect_error(&out, 1, "NO_DOWN_SQL");
    assert_same_text("dump after refused rollback", &before, &full_dump(&db));
}

#[test]
fn failing_down_sql_is_rolled_back_and_the_migration_stays_applied() {
    let dir = fixture("bad_down");
    let db = cluster().create_database();
    migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    let before = full_dump(&db);

    let out = migrate(&db, "rollback", &dir, &[]);
    let envelope = expect_error(&out, 1, "ROLLBACK_FAILED");
    assert_eq!(envelope["error"]["details"]["sqlstate"], "42P01", "{out}");
    assert_eq!(envelope["error"]["details"]["line"], 2, "{out}");
    assert_eq!(envelope["result"]["rolled_back"], json!([]), "{out}");
    assert!(
        table_exists(&db, "widget"),
        "DROP TABLE widget was rolled back"
    );
    assert_same_text("dump after failed rollback", &before, &full_dump(&db));
    let status = migrate(&db, "status", &dir, &[]).assert_envelope(0);
    assert_eq!(
        json_strings(&status["result"]["applied"], "name"),
        ["20240101000000_widgets"]
    );
}

// ---------------------------------------------------------------------------------------
// 6. resolve
// ---------------------------------------------------------------------------------------

#[test]
fn baseline_with_resolve_applied_then_deploy_the_rest() {
    let dir = fixture("baseline");
    let (init, orders, later) = (
        "20240101000000_init",
        "20240102000000_orders",
        "20240103000000_later",
    );
    let db = cluster().create_database();
    // An existing database that already has the first migration's table.
    db.psql("CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL)");

    let out = migrate(&db, "deploy", &dir, &[]);
    let envelope = expect_error(&out, 6, "SCHEMA_NOT_EMPTY");
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap()
            .contains("P3005"),
        "{out}"
    );
    assert!(
        envelope["error"]["hint"]
            .as_str()
            .unwrap()
            .contains(&format!("resolve --applied {init}")),
        "{out}"
    );
    assert!(
        !table_exists(&db, "_prisma_migrations"),
        "a refused deploy creates nothing"
    );
    assert!(!table_exists(&db, "purchase"));

    let envelope = migrate(&db, "resolve", &dir, &["--applied", init]).assert_envelope(0);
    assert_eq!(envelope["result"]["resolution"], "applied");
    assert_eq!(envelope["result"]["rows_changed"], 1);
    let rows = history(&db);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].finished && !rows[0].rolled_back && is_uuid_v4(&rows[0].id));
    assert_eq!(rows[0].checksum, checksum_of(&dir.join(init)));

    // Each request that does not fit the history fails with Prisma's code, changing nothing.
    let before = full_dump(&db);
    for (args, code) in [
        (["--applied", init], "P3008"),
        (["--rolled-back", orders], "P3011"),
        (["--rolled-back", init], "P3012"),
        (["--applied", "20990101000000_nowhere"], "P3017"),
    ] {
        let out = migrate(&db, "resolve", &dir, &args);
        let envelope = expect_error(&out, 1, "INVALID_HISTORY_ACTION");
        assert!(
            envelope["error"]["message"]
                .as_str()
                .unwrap()
                .contains(code),
            "{code}: {out}"
        );
        assert_same_text(
            &format!("dump after refused resolve ({code})"),
            &before,
            &full_dump(&db),
        );
    }

    let envelope = migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    assert_eq!(
        json_strings(&envelope["result"]["applied"], "name"),
        [orders, later]
    );
    assert_eq!(envelope["result"]["already_applied"], 1);
    assert!(table_exists(&db, "purchase") && table_exists(&db, "refund"));
    assert_eq!(history_names(&db), [init, orders, later]);
    migrate(&db, "status", &dir, &[]).assert_envelope(0);
}

// ---------------------------------------------------------------------------------------
// 7. new and seed
// ---------------------------------------------------------------------------------------

/// The current UTC time as `YYYYMMDDHHMMSS`.
fn utc_timestamp_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[test]
fn new_creates_a_timestamped_folder_with_down_sql_and_lock_file() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("migrations");
    let before = utc_timestamp_now();
    let out = run(
        "migrate",
        &["new", "Add users table", "--dir", path_str(&dir)],
        &[],
    );
    let after = utc_timestamp_now();
    let envelope = out.assert_envelope(0);
    let name = envelope["result"]["name"].as_str().unwrap().to_string();
    let (stamp, suffix) = name.split_at(14);
    assert!(stamp.chars().all(|c| c.is_ascii_digit()), "{name}");
    assert!(
        before.as_str() <= stamp && stamp <= after.as_str(),
        "{before} <= {stamp} <= {after}"
    );
    assert_eq!(suffix, "_add_users_table");

    let folder = dir.join(&name);
    for file in ["migration.sql", "down.sql"] {
        assert!(folder.join(file).is_file(), "{file} exists");
    }
    let lock = std::fs::read_to_string(dir.join("migration_lock.toml")).unwrap();
    assert!(lock.contains("provider = \"postgresql\""), "{lock}");
    assert_eq!(
        envelope["result"]["files"],
        json!([
            path_str(&folder.join("migration.sql")),
            path_str(&folder.join("down.sql")),
            path_str(&dir.join("migration_lock.toml")),
        ])
    );

    // The lock file is written only when absent; an edited one is kept.
    std::fs::write(
        dir.join("migration_lock.toml"),
        "provider = \"postgresql\"\n# ours\n",
    )
    .unwrap();
    let out = run("migrate", &["new", "second", "--dir", path_str(&dir)], &[]);
    let envelope = out.assert_envelope(0);
    assert_eq!(envelope["result"]["files"].as_array().unwrap().len(), 2);
    assert!(std::fs::read_to_string(dir.join("migration_lock.toml"))
        .unwrap()
        .contains("# ours"));

    // What `new` writes deploys as it is.
    let db = cluster().create_database();
    let envelope = migrate(&db, "deploy", &dir, &[]).assert_envelope(0);
    assert_eq!(envelope["result"]["applied"].as_array().unwrap().len(), 2);
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn seed(db: &TestDb, dir: &Path) -> Output {
    let url = db.url();
    run(
        "migrate",
        &["seed", "--dir", path_str(dir), "--database-url", &url],
        &[],
    )
}

#[test]
fn seed_runs_sql_files_in_name_order() {
    let temp = tempfile::tempdir().unwrap();
    let seeds = temp.path().join("seeds");
    write_files(
        &seeds,
        &[
            ("10_last.sql", "INSERT INTO seed_log (file) VALUES ('10_last');\n"),
            ("02_second.sql", "INSERT INTO seed_log (file) VALUES ('02_second');\n"),
            (
                "01_first.sql",
                "CREATE TABLE seed_log (id serial PRIMARY KEY, file text NOT NULL);\nINSERT INTO seed_log (file) VALUES ('01_first');\n",
            ),
            ("notes.txt", "not SQL: ignored\n"),
        ],
    );
    let db = cluster().create_database();
    let envelope = seed(&db, &seeds).assert_envelope(0);
    let files: Vec<String> = envelope["result"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(files, ["01_first.sql", "02_second.sql", "10_last.sql"]);
    assert_eq!(
        db.query_one_string("SELECT string_agg(file, ',' ORDER BY id) FROM seed_log"),
        "01_first,02_second,10_last"
    );
}

#[test]
fn failing_seed_file_exits_1_and_keeps_only_earlier_files() {
    let temp = tempfile::tempdir().unwrap();
    let seeds = temp.path().join("seeds");
    write_files(
        &seeds,
        &[
            (
                "01_ok.sql",
                "CREATE TABLE s (id int);\nINSERT INTO s VALUES (1);\n",
            ),
            (
                "02_bad.sql",
                "INSERT INTO s VALUES (2);\nINSERT INTO no_such_table VALUES (1);\n",
            ),
            ("03_never.sql", "INSERT INTO s VALUES (3);\n"),
        ],
    );
    let db = cluster().create_database();
    let out = seed(&db, &seeds);
    let envelope = expect_error(&out, 1, "SEED_FAILED");
    assert_eq!(envelope["error"]["details"]["sqlstate"], "42P01", "{out}");
    assert_eq!(envelope["error"]["details"]["line"], 2, "{out}");
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap()
            .contains("02_bad.sql"),
        "{out}"
    );
    assert_eq!(
        envelope["result"]["files"].as_array().unwrap().len(),
        1,
        "{out}"
    );
    assert_eq!(
        db.query_one_string("SELECT string_agg(id::text, ',') FROM s"),
        "1",
        "02_bad.sql was rolled back and 03_never.sql did not run"
    );

    // A seed file that commits part of its work itself says so instead.
    write_files(
        &seeds,
        &[(
            "02_bad.sql",
            "INSERT INTO s VALUES (2);\nCOMMIT;\nINSERT INTO no_such_table VALUES (1);\n",
        )],
    );
    let db = cluster().create_database();
    let out = seed(&db, &seeds);
    let envelope = expect_error(&out, 1, "SEED_FAILED");
    let hint = envelope["error"]["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("committed part of its work"), "{out}");
    assert_eq!(
        db.query_one_string("SELECT string_agg(id::text, ',' ORDER BY id) FROM s"),
        "1,2"
    );
}

// ---------------------------------------------------------------------------------------
// 8. JSON snapshots
// ---------------------------------------------------------------------------------------

const SNAP_INIT: &str = "20240101000000_init";
const SNAP_LABEL: &str = "20240102000000_add_label";

/// Runs `pgward-migrate` in the fixtures folder with `--dir snapshot`, so paths in the
/// JSON are the same on every machine, and returns the redacted envelope.
fn snapshot_run(db: &TestDb, command: &str, extra: &[&str], code: i32) -> Value {
    let url = db.url();
    let mut args = vec![command, "--dir", "snapshot"];
    args.extend_from_slice(extra);
    args.extend(["--database-url", url.as_str()]);
    let out = run_in(&fixture(""), "migrate", &args, &[]);
    redact_json(&out.assert_envelope(code))
}

fn envelope(command: &str, exit_code: i32, result: Value, warnings: Value) -> Value {
    json!({
        "tool": "migrate",
        "command": command,
        "version": "[version]",
        "ok": exit_code == 0 || exit_code == 3,
        "exit_code": exit_code,
        "started_at": "[started_at]",
        "duration_ms": "[duration_ms]",
        "target": {
            "host": "127.0.0.1",
            "port": "[port]",
            "database": "[database]",
            "user": "pgward",
        },
        "result": result,
        "warnings": warnings,
        "error": null,
    })
}

const LABEL_REASON: &str = "CREATE INDEX CONCURRENTLY cannot run inside a transaction block";

#[test]
fn json_snapshots_of_status_deploy_rollback_resolve_and_new() {
    let db = cluster().create_database();

    assert_eq!(
        snapshot_run(&db, "status", &[], 3),
        envelope(
            "status",
            3,
            json!({
                "migrations_dir": "snapshot",
                "schema": "public",
                "history_table": false,
                "local_migrations": 2,
                "applied": [],
                "pending": [SNAP_INIT, SNAP_LABEL],
                "failed": [],
                "edited": [],
                "missing_locally": [],
                "up_to_date": false,
                "lock_holder": null,
            }),
            json!([{
                "code": "PENDING_MIGRATIONS",
                "message": format!("2 migration(s) pending: {SNAP_INIT}, {SNAP_LABEL}"),
            }]),
        )
    );

    assert_eq!(
        snapshot_run(&db, "deploy", &[], 0),
        envelope(
            "deploy",
            0,
            json!({
                "migrations_dir": "snapshot",
                "schema": "public",
                "dry_run": false,
                "applied": [
                    {"name": SNAP_INIT, "mode": "transaction", "statements": 1, "duration_ms": "[duration_ms]", "retries": 0},
                    {"name": SNAP_LABEL, "mode": "statements", "reason": LABEL_REASON, "statements": 2, "duration_ms": "[duration_ms]", "retries": 0},
                ],
                "already_applied": 0,
                "still_pending": [],
            }),
            json!([]),
        )
    );

    assert_eq!(
        snapshot_run(&db, "status", &[], 0),
        envelope(
            "status",
            0,
            json!({
                "migrations_dir": "snapshot",
                "schema": "public",
                "history_table": true,
                "local_migrations": 2,
                "applied": [
                    {"name": SNAP_INIT, "finished_at": "[finished_at]"},
                    {"name": SNAP_LABEL, "finished_at": "[finished_at]"},
                ],
                "pending": [],
                "failed": [],
                "edited": [],
                "missing_locally": [],
                "up_to_date": true,
                "lock_holder": null,
            }),
            json!([]),
        )
    );

    assert_eq!(
        snapshot_run(&db, "rollback", &[], 0),
        envelope(
            "rollback",
            0,
            json!({
                "dry_run": false,
                "rolled_back": [
                    {"name": SNAP_LABEL, "mode": "transaction", "statements": 2, "duration_ms": "[duration_ms]"},
                ],
            }),
            json!([]),
        )
    );

    assert_eq!(
        snapshot_run(&db, "resolve", &["--applied", SNAP_LABEL], 0),
        envelope(
            "resolve",
            0,
            json!({
                "migration": SNAP_LABEL,
                "resolution": "applied",
                "dry_run": false,
                "rows_changed": 1,
            }),
            json!([]),
        )
    );

    // `new` touches no database: no target. Its name carries the current second.
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("migrations");
    let out = run(
        "migrate",
        &["new", "Snapshot me", "--dir", path_str(&dir)],
        &[],
    );
    let mut new = redact_json(&out.assert_envelope(0));
    let name = new["result"]["name"].as_str().unwrap().to_string();
    let stamp = &name[..14];
    let normalised = serde_json::to_string(&new)
        .unwrap()
        .replace(stamp, "[TIMESTAMP]");
    new = serde_json::from_str(&normalised).unwrap();
    let mut expected = envelope(
        "new",
        0,
        json!({
            "name": "[TIMESTAMP]_snapshot_me",
            "files": [
                "[TEMP]/migrations/[TIMESTAMP]_snapshot_me/migration.sql",
                "[TEMP]/migrations/[TIMESTAMP]_snapshot_me/down.sql",
                "[TEMP]/migrations/migration_lock.toml",
            ],
            "dry_run": false,
        }),
        json!([]),
    );
    expected["target"] = Value::Null;
    assert_eq!(new, expected);
}
