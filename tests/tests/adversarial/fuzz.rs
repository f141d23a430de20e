//! Fuzz-style property runs: random bytes and structured-random strings fed to every parser
//! pgward points at input it does not control (the manifest reader, the `pgward.toml`
//! reader, the database URL parser, the secret scrubber, the SQL statement parser of the
//! migration engine, backup locations). None may panic; where the input has a known shape,
//! the output is checked too (a password is never left in scrubbed text).
//!
//! These are proptest runs with a fixed budget and a fixed seed (ChaCha, deterministic), so
//! every CI run tries the same inputs in a few seconds; a failure prints the smallest input
//! that still fails, which then becomes a regression case below. They call the public
//! entry points the binaries call (`read_manifest`, `Settings::resolve`,
//! `ConnectionSettings::from_url`, `redact::scrub`, `sql::parse_statements`), so they test
//! what runs, with whatever validation those entry points grow.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgward_shared::archive::inventory::{list, read_manifest};
use pgward_shared::archive::manifest::MANIFEST_FILE;
use pgward_shared::config::{GlobalArgs, Settings};
use pgward_shared::connect::dburl::ConnectionSettings;
use pgward_shared::redact;
use pgward_shared::storage::{self, Location, S3Options};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

/// Runs `check` on `cases` values of `strategy` from a fixed seed; panics with the smallest
/// failing input (a panic inside `check` counts as a failure).
fn no_panic<S: Strategy>(what: &str, cases: u32, strategy: S, check: impl Fn(S::Value))
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    if let Err(e) = runner.run(&strategy, |value| {
        check(value);
        Ok(())
    }) {
        panic!("{what}: {e}");
    }
}

/// Pieces that matter to the parsers, glued at random: quotes, escapes, separators,
/// multi-byte characters, NUL.
fn fragments(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(pieces).prop_map(str::to_string),
            1 => any::<String>(),
        ],
        0..max,
    )
    .prop_map(|parts| parts.concat())
}

/// Random text: arbitrary Unicode, or random bytes read lossily.
fn random_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

const URL_PIECES: &[&str] = &[
    "postgresql://",
    "postgres://",
    "mysql://",
    "://",
    "u",
    ":",
    "@",
    "/",
    "?",
    "&",
    "=",
    "#",
    "%",
    "%40",
    "%2F",
    "%zz",
    "%C3",
    "[",
    "]",
    "::1",
    "localhost",
    "5432",
    "99999",
    "db",
    "schema=",
    "host=",
    "/tmp/sock",
    "password=",
    "sslmode=",
    "verify-full",
    "port=",
    "connect_timeout=",
    "18446744073709551616",
    " ",
    "'",
    "\\",
    "é",
    "\u{0}",
    "user=",
    "dbname=",
];

#[test]
fn database_urls_never_panic() {
    no_panic(
        "ConnectionSettings::from_url",
        3000,
        prop_oneof![random_text(), fragments(URL_PIECES, 16)],
        |raw| {
            if let Ok(s) = ConnectionSettings::from_url(&raw) {
                let _ = (s.redacted_url(), s.display_target(), format!("{s:?}"));
            }
        },
    );
    no_panic(
        "ConnectionSettings::from_pg_env",
        1000,
        prop::collection::vec(prop_oneof![random_text(), fragments(URL_PIECES, 6)], 8),
        |values| {
            let names = [
                "PGHOST",
                "PGPORT",
                "PGUSER",
                "PGPASSWORD",
                "PGDATABASE",
                "PGSSLMODE",
                "PGCONNECT_TIMEOUT",
                "PGSSLROOTCERT",
            ];
            let _ = ConnectionSettings::from_pg_env(|k| {
                names
                    .iter()
                    .position(|n| *n == k)
                    .map(|i| values[i].clone())
            });
        },
    );
}

/// A password for the scrubber: anything without a blank, `@` or `/` (in a URL a password
/// has those percent-encoded) and not starting with a quote.
fn password() -> impl Strategy<Value = String> {
    "[^\\s@/'\"\\\\#?]{1,12}"
}

#[test]
fn scrub_never_panics_and_leaves_no_password_in_a_url_or_conninfo() {
    const PIECES: &[&str] = &[
        "password",
        "PASSWORD",
        "PGPASSWORD",
        "=",
        " = ",
        ":",
        "'",
        "''",
        "\"",
        "\\",
        " ",
        "postgresql://u:",
        "@h/d",
        "://",
        "@",
        "OPTIONS (password ",
        ")",
        "é",
        "\n",
    ];
    no_panic(
        "redact::scrub",
        3000,
        prop_oneof![random_text(), fragments(PIECES, 16)],
        |text| {
            let _ = redact::scrub(&text);
            let _ = redact::redact_url(&text);
        },
    );
    no_panic(
        "redact::scrub of passwords in place",
        2000,
        (password(), "[a-z ]{0,10}"),
        |(pw, around)| {
            // (text, what must not be left in it): the password where it stood.
            let forms = [
                (
                    format!("{around} postgresql://app:{pw}@db:5432/app?schema=x {around}"),
                    format!("app:{pw}@"),
                ),
                (
                    format!("{around}host=db password={pw} dbname=app{around}"),
                    format!("password={pw}"),
                ),
                (
                    format!("{around}host=db password='{pw} x' dbname=app"),
                    format!("{pw} x"),
                ),
                (
                    format!("SELECT dblink_connect('host=db password={pw}') {around}"),
                    format!("password={pw}"),
                ),
                (
                    format!("ALTER ROLE app PASSWORD '{pw}'{around}"),
                    format!("'{pw}'"),
                ),
                (format!("PGPASSWORD={pw} psql"), format!("={pw}")),
            ];
            for (text, leak) in forms {
                let scrubbed = redact::scrub(&text);
                // The mask itself does not count (a password may be `*`).
                let unmasked = scrubbed.replace("***", "\u{1}");
                assert!(
                    scrubbed.contains("***") && !unmasked.contains(&leak),
                    "{text:?} scrubbed to {scrubbed:?}"
                );
            }
        },
    );
}

#[test]
fn sql_statements_never_panic() {
    const PIECES: &[&str] = &[
        "SELECT 1",
        ";",
        "'",
        "''",
        "\"",
        "$$",
        "$a$",
        "$",
        "--",
        "/*",
        "*/",
        "\n",
        "(",
        ")",
        "E'\\''",
        "\\",
        "CREATE INDEX CONCURRENTLY i ON t (a)",
        "BEGIN",
        "COMMIT",
        "ALTER TYPE e ADD VALUE 'x'",
        "DO $$ BEGIN END $$",
        "VACUUM",
        "é",
        "😀",
        "\u{0}",
        "COPY t FROM STDIN",
        "\\.",
        "CREATE TABLE t (a int)",
        "ALTER ROLE r SET work_mem = '1MB'",
        "DO $$ BEGIN EXECUTE format('ALTER SYSTEM SET %I = 1', 'x'); END $$",
        "EXECUTE 'DROP ROLE ' || quote_ident(r)",
        "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
    ];
    no_panic(
        "sql::parse_statements",
        2000,
        (
            prop_oneof![random_text(), fragments(PIECES, 24)],
            any::<usize>(),
        ),
        |(text, offset)| {
            if let Ok(statements) = pgward_shared::sql::parse_statements(&text) {
                for s in &statements {
                    let _ = pgward_shared::sql::transaction_control(&s.node);
                    let _ = pgward_shared::sql::non_transactional_reason(&s.node);
                    let _ = pgward_shared::sql::enum_value_added(&s.node);
                    // drift's check for server-wide statements, which also parses the
                    // bodies of DO blocks and the SQL in their string constants.
                    let _ = pgward_shared::sql::cluster_wide(&s.node);
                    let _ = pgward_shared::sql::position_of(&text, s.offset);
                }
            }
            let _ = pgward_shared::sql::string_literals(&text);
            let _ = pgward_shared::sql::position_of(&text, offset % (text.len() + 2));
            let _ = pgward_shared::sql::byte_offset_of_char(&text, offset % (text.len() + 2));
        },
    );
}

/// A manifest the reader accepts; the structured runs put random values into it.
fn manifest_template(id: &str) -> Value {
    json!({
        "format_version": 1,
        "id": id,
        "format": "directory",
        "tool_version": "0.1.0",
        "database": "app",
        "env": null,
        "label": null,
        "server_version": "17.0",
        "pg_dump_version": "pg_dump (PostgreSQL) 17.0",
        "encoding": "UTF8",
        "lc_collate": "C",
        "lc_ctype": "C",
        "snapshot_time": "2026-01-01T00:00:00Z",
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z",
        "zstd_level": 3,
        "migration_head": null,
        "files": [
            {"path": "schema.dump", "size": 10, "sha256": "00"},
            {"path": "migrations.json", "size": 2, "sha256": "00"},
            {"path": "data/public.users.0000.copy.zst", "size": 5, "sha256": "00"}
        ],
        "tables": [{
            "schema": "public", "name": "users", "columns": ["\"id\""], "copy_format": "text",
            "rows": 1,
            "chunks": [{"file": "data/public.users.0000.copy.zst", "rows": 1, "first_page": 0, "end_page": null}]
        }, {
            "schema": "public", "name": "orders", "columns": ["\"id\""], "copy_format": "binary",
            "rows": 1, "chunks": []
        }],
        "sequences": [{"schema": "public", "name": "users_id_seq", "last_value": 1, "is_called": true}]
    })
}

const BACKUP_ID: &str = "app-default-20260101T000000Z";

/// Writes `bytes` as the manifest of [`BACKUP_ID`] under `root` and reads it back the way
/// list, verify, restore and prune do; whether the reader accepted it.
fn read_back(root: &Path, bytes: &[u8]) -> bool {
    let folder = root.join(BACKUP_ID);
    std::fs::create_dir_all(&folder).expect("backup folder");
    std::fs::write(folder.join(MANIFEST_FILE), bytes).expect("write manifest.json");
    let storage = storage::open(&Location::Local(root.to_path_buf()), &S3Options::default())
        .expect("a local location opens");
    if let Ok(m) = read_manifest(storage.as_ref(), BACKUP_ID) {
        let _ = m.size_bytes();
        for t in &m.tables {
            let _ = t.qualified();
            let _ = t.copy_format.copy_options(&["FREEZE"]);
        }
        let _ = pgward_shared::archive::manifest::time_of_id(&m.id);
        // The inventory `list`, `report backups` and `latest` build from it.
        let _ = list(storage.as_ref());
        return true;
    }
    false
}

#[test]
fn manifests_never_panic_the_reader() {
    let root = tempfile::tempdir().expect("temp dir");
    // The template itself is a manifest: the structured runs below reach past the JSON
    // syntax into whatever checks the reader makes.
    let storage = storage::open(
        &Location::Local(root.path().to_path_buf()),
        &S3Options::default(),
    )
    .expect("opens");
    let folder = root.path().join(BACKUP_ID);
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(
        folder.join(MANIFEST_FILE),
        manifest_template(BACKUP_ID).to_string(),
    )
    .expect("write");
    read_manifest(storage.as_ref(), BACKUP_ID).expect("the template is a valid manifest");

    no_panic(
        "read_manifest of random bytes",
        600,
        prop::collection::vec(any::<u8>(), 0..400),
        |bytes| {
            read_back(root.path(), &bytes);
        },
    );
    const PIECES: &[&str] = &[
        "..",
        "/",
        "../x",
        "/abs/path",
        "\\",
        "\u{0}",
        "é",
        "data/",
        "x.copy.zst",
        "\"",
        "'",
        "%2e%2e",
        " ",
        "-",
        "20260101T000000Z",
        "\n",
    ];
    // Each field: mostly its valid value, else something hostile, so that many manifests
    // get past JSON and serde into whatever the reader checks after.
    let field = |valid: Value| {
        prop_oneof![
            3 => Just(valid),
            1 => prop_oneof![random_text(), fragments(PIECES, 8)].prop_map(Value::from),
        ]
    };
    let number = |valid: u64| {
        prop_oneof![
            3 => Just(json!(valid)),
            1 => any::<u64>().prop_map(Value::from),
            1 => prop_oneof![
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| json!(f)),
                Just(json!("1")),
                Just(Value::Null),
            ],
        ]
    };
    let accepted = AtomicUsize::new(0);
    let cases = 1000;
    no_panic(
        "read_manifest of hostile fields",
        cases,
        (
            (
                field(json!(BACKUP_ID)),
                field(json!("schema.dump")),
                field(json!("data/public.users.0000.copy.zst")),
                field(json!("public")),
                field(json!("2026-01-01T00:00:00Z")),
            ),
            (number(10), number(2), number(1), number(1), number(0)),
        ),
        |((id, file, chunk, schema, time), (size, size2, rows, rows2, page))| {
            let mut m = manifest_template(BACKUP_ID);
            m["id"] = id;
            m["files"][0]["path"] = file;
            m["files"][0]["size"] = size;
            m["files"][1]["size"] = size2;
            m["tables"][0]["chunks"][0]["file"] = chunk;
            m["tables"][0]["chunks"][0]["first_page"] = page;
            m["tables"][0]["rows"] = rows;
            m["tables"][1]["rows"] = rows2;
            m["tables"][0]["schema"] = schema;
            m["snapshot_time"] = time;
            if read_back(root.path(), m.to_string().as_bytes()) {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        },
    );
    let accepted = accepted.into_inner();
    assert!(
        accepted as u32 >= cases / 20,
        "only {accepted} of {cases} structured manifests were accepted: the run no longer \
         reaches past parsing (has the manifest format changed? update manifest_template)"
    );
}

/// A manifest whose file sizes and row counts add up past u64 (found by the run above):
/// reading and listing it must not overflow.
#[test]
fn a_manifest_with_huge_file_sizes_is_read_without_overflow() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut m = manifest_template(BACKUP_ID);
    m["files"][0]["size"] = json!(u64::MAX);
    m["files"][1]["size"] = json!(2);
    m["tables"][0]["rows"] = json!(u64::MAX);
    assert!(read_back(root.path(), m.to_string().as_bytes()));
}

#[test]
fn pgward_toml_never_panics_the_reader() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pgward.toml");
    let resolve = |text: &str, env_name: Option<String>, url: Option<String>| {
        std::fs::write(&path, text).expect("write pgward.toml");
        let args = GlobalArgs {
            config: Some(path.clone()),
            env_name,
            ..Default::default()
        };
        let env = |k: &str| match k {
            "DATABASE_URL" | "APP_URL" => url.clone(),
            _ => None,
        };
        let Ok(settings) = Settings::resolve(args, &env) else {
            return false;
        };
        let _ = settings.database();
        let _ = settings.migrations_dir(None);
        let _ = settings.audit_log();
        let _ = settings.protected();
        if let Ok(locations) = storage::resolve_locations(&[], &settings) {
            for location in locations {
                let _ = Location::parse_with_id(&location);
            }
        }
        true
    };
    no_panic(
        "pgward.toml of random text",
        600,
        (random_text(), prop::option::of(random_text())),
        |(text, env)| {
            resolve(&text, env, None);
        },
    );
    const PIECES: &[&str] = &[
        "..",
        "/",
        "s3://",
        "s3:///",
        "s3://b/../x",
        "://",
        "\\\\",
        "\\\"",
        "é",
        " ",
        "$(",
        "`",
        ";",
        "latest",
        "app-default-20260101T000000Z",
        "-9",
        "\\u0000",
    ];
    let value = || fragments(PIECES, 6);
    let accepted = AtomicUsize::new(0);
    let cases = 1000;
    no_panic(
        "pgward.toml of hostile values",
        cases,
        (
            value(),
            // Mostly a valid variable name: pgward.toml refuses a `database_url_env` that
            // is not one (a shell would expand it), and one refused name refuses the file.
            prop_oneof![3 => "[A-Z_][A-Z0-9_]{0,12}", 1 => value()],
            value(),
            value(),
            any::<bool>(),
            prop_oneof![random_text(), fragments(URL_PIECES, 12)],
        ),
        |(name, var, backups, migrations, protected, url)| {
            // TOML basic strings: the values are put in as written, escapes and all, so
            // some files are invalid TOML and some carry odd strings.
            let text = format!(
                "migrations = \"{migrations}\"\naudit_log = \"{migrations}/audit\"\n\
                 [env.\"{name}\"]\ndatabase_url_env = \"{var}\"\nbackups = \"{backups}\"\n\
                 protected = {protected}\n[env.app]\ndatabase_url_env = \"APP_URL\"\n\
                 backups = \"{backups}\"\n"
            );
            let named = resolve(&text, Some(name), Some(url.clone()));
            let app = resolve(&text, Some("app".into()), Some(url));
            if named || app {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        },
    );
    let accepted = accepted.into_inner();
    assert!(
        accepted as u32 >= cases / 20,
        "only {accepted} of {cases} structured pgward.toml files were read: the run no \
         longer reaches the values' use"
    );
}

#[test]
fn backup_locations_never_panic() {
    const PIECES: &[&str] = &[
        "s3://",
        "/",
        "latest",
        "app-default-20260101T000000Z",
        "-2",
        "-10",
        "..",
        "é",
        "://",
        "20261301T250000Z",
    ];
    no_panic(
        "Location::parse_with_id",
        2000,
        prop_oneof![random_text(), fragments(PIECES, 8)],
        |text| {
            if let Ok((location, _)) = Location::parse_with_id(&text) {
                let _ = location.to_string();
            }
        },
    );
}

/// `pgward-report backups` totals the sizes of every backup: two crafted manifests of
/// u64::MAX bytes each must not overflow (a panic, exit 101, in a debug build).
#[test]
fn report_backups_totals_huge_crafted_sizes_without_overflow() {
    let root = tempfile::tempdir().expect("temp dir");
    for id in [BACKUP_ID, "app-default-20260101T000001Z"] {
        let mut m = manifest_template(id);
        m["files"][0]["size"] = json!(u64::MAX);
        let folder = root.path().join(id);
        std::fs::create_dir_all(&folder).expect("backup folder");
        std::fs::write(folder.join(MANIFEST_FILE), m.to_string()).expect("write manifest.json");
    }
    let out = pgward_tests::run(
        "report",
        &["backups", "--from", pgward_tests::path_str(root.path())],
        &[],
    );
    assert_ne!(out.code, 101, "pgward-report panicked:\n{out}");
    assert_eq!(
        out.json()["result"]["total_bytes"],
        json!(u64::MAX),
        "the total saturates\n{out}"
    );
}
