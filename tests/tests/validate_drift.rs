//! End-to-end tests of `pgward-validate drift` against a real PostgreSQL server.
//!
//! The real-world corpus, deployed and then checked for drift, proves the normalisation:
//! a database and its shadow built by the same migrations compare equal, object by object.
//! One manual change per object kind on a deployed fixture history
//! (`tests/fixtures/validate_drift/every_kind`) proves each difference is reported
//! precisely, and nothing else with it. The rest pins the shadow database's life: created
//! and dropped on success, failure, Ctrl-C, and after a `kill -9` by the next run; and a
//! `--shadow-url` database that must be empty and is left empty.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use pgward_tests::{
    cluster, corpus_history, fixtures_dir, path_str, run, spawn, warning_codes, Output, TestDb,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A fixture migrations folder of this file: `tests/fixtures/validate_drift/<name>`.
fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join("validate_drift").join(name)
}

/// `pgward-validate drift --dir <dir> <extra...> --database-url <db>`.
fn drift(db: &TestDb, dir: &Path, extra: &[&str]) -> Output {
    let url = db.url();
    let mut args = vec!["drift", "--dir", path_str(dir)];
    args.extend_from_slice(extra);
    args.extend(["--database-url", url.as_str()]);
    run("validate", &args, &[])
}

/// The `pgward-validate drift` arguments of [`drift`], for a spawned run.
fn spawn_drift(db: &TestDb, dir: &Path) -> Child {
    spawn(
        "validate",
        &["drift", "--dir", path_str(dir), "--database-url", &db.url()],
        &[],
    )
}

/// Asserts the exit code and returns the envelope.
fn expect(out: &Output, code: i32) -> Value {
    out.assert_code(code);
    let envelope = out.json();
    assert_eq!(envelope["exit_code"], code, "{out}");
    envelope
}

/// `(kind, object, change)` of every difference.
fn differences(envelope: &Value) -> Vec<(String, String, String)> {
    envelope["result"]["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("no differences array in {envelope}"))
        .iter()
        .map(|d| {
            let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            (text("kind"), text("object"), text("change"))
        })
        .collect()
}

/// Asserts that the shadow database the envelope names is gone.
fn assert_shadow_dropped(envelope: &Value) {
    let shadow = envelope["result"]["shadow"]
        .as_str()
        .unwrap_or_else(|| panic!("no result.shadow in {envelope}"));
    assert!(shadow.starts_with("pgward_shadow_"), "{shadow}");
    assert!(
        !cluster().database_exists(shadow),
        "the shadow {shadow} was not dropped"
    );
}

/// Polls `probe` every 50 ms until it returns something, for up to `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(started.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The shadow database of the drift process `pid`, once its replay sleeps in it.
fn shadow_of_sleeping_run(pid: u32) -> String {
    let mut admin = cluster().client("postgres");
    wait_for(
        "the replay to sleep in the shadow database",
        Duration::from_secs(60),
        || {
            admin
                .query(
                    "SELECT a.datname::text FROM pg_stat_activity a \
                     WHERE a.datname LIKE 'pgward\\_shadow\\_' || $1 || '\\_%' \
                       AND a.state = 'active' AND a.query LIKE '%pg_sleep%'",
                    &[&pid.to_string()],
                )
                .expect("pg_stat_activity can be read")
                .first()
                .map(|r| r.get(0))
        },
    )
}

// ---------------------------------------------------------------------------------------
// 1. No drift after deploy: the normalisation holds on real histories
// ---------------------------------------------------------------------------------------

fn assert_no_drift_after_deploy(dir: &Path) -> Value {
    let db = cluster().create_database();
    db.deploy(dir);
    let out = drift(&db, dir, &[]);
    let envelope = expect(&out, 0);
    assert_eq!(envelope["ok"], true, "{out}");
    assert_eq!(envelope["result"]["differences"], json!([]), "{out}");
    assert!(!warning_codes(&envelope).contains(&"DRIFT_DETECTED".to_string()));
    let local = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(envelope["result"]["migrations_applied"], local, "{out}");
    assert_eq!(envelope["result"]["shadow_temporary"], true);
    assert!(
        envelope["result"]["compared"]["tables"].as_u64().unwrap() > 0,
        "{out}"
    );
    assert_shadow_dropped(&envelope);
    envelope
}

#[test]
fn corpus_rallly_has_no_drift_after_deploy() {
    let Some(corpus) = corpus_history("lukevella__rallly") else {
        return;
    };
    let envelope = assert_no_drift_after_deploy(&corpus.join("migrations"));
    let compared = &envelope["result"]["compared"];
    // Its functions and trigger are compared; citext's and pgcrypto's own objects are not.
    assert!(compared["functions"].as_u64().unwrap() >= 2, "{compared}");
    assert!(compared["triggers"].as_u64().unwrap() >= 1, "{compared}");
    assert!(compared["extensions"].as_u64().unwrap() >= 3, "{compared}");
}

#[test]
fn corpus_papermark_has_no_drift_after_deploy() {
    let Some(corpus) = corpus_history("mfts__papermark") else {
        return;
    };
    assert_no_drift_after_deploy(&corpus.join("migrations"));
}

#[test]
fn corpus_langfuse_has_no_drift_after_deploy() {
    let corpus = corpus_history("langfuse__langfuse")
        .expect("langfuse's history is in tests/fixtures/corpus");
    assert_no_drift_after_deploy(&corpus.join("migrations"));
}

#[test]
fn fixture_covering_every_kind_has_no_drift_after_deploy() {
    let envelope = assert_no_drift_after_deploy(&fixture("every_kind"));
    let compared = &envelope["result"]["compared"];
    for kind in [
        "extensions",
        "schemas",
        "enums",
        "domains",
        "composite_types",
        "tables",
        "views",
        "materialized_views",
        "columns",
        "constraints",
        "indexes",
        "sequences",
        "functions",
        "triggers",
    ] {
        assert!(
            compared[kind].as_u64().unwrap_or(0) > 0,
            "the fixture has no {kind}: {compared}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. One manual change per object kind, reported precisely and alone
// ---------------------------------------------------------------------------------------

/// Deploys `every_kind`, applies `change` by hand, and asserts drift reports exactly one
/// difference, `(kind, object, change)`; returns it.
fn assert_reported_alone(manual_change: &str, kind: &str, object: &str, change: &str) -> Value {
    let dir = fixture("every_kind");
    let db = cluster().create_database();
    db.deploy(&dir);
    db.psql(manual_change);
    let out = drift(&db, &dir, &[]);
    let envelope = expect(&out, 3);
    assert_eq!(
        envelope["ok"], true,
        "drift is attention, not failure: {out}"
    );
    assert!(
        warning_codes(&envelope).contains(&"DRIFT_DETECTED".to_string()),
        "{out}"
    );
    assert_eq!(
        differences(&envelope),
        [(kind.to_string(), object.to_string(), change.to_string())],
        "{out}"
    );
    assert_shadow_dropped(&envelope);
    envelope["result"]["differences"][0].clone()
}

#[test]
fn added_column_is_extra_in_database() {
    let d = assert_reported_alone(
        "ALTER TABLE users ADD COLUMN nickname text",
        "column",
        "public.users.nickname",
        "extra_in_database",
    );
    assert_eq!(d["expected"], Value::Null);
    assert_eq!(d["actual"]["type"], "text");
    assert_eq!(d["actual"]["not_null"], false);
}

#[test]
fn changed_column_default_is_changed() {
    let d = assert_reported_alone(
        "ALTER TABLE users ALTER COLUMN status SET DEFAULT 'pending'",
        "column",
        "public.users.status",
        "changed",
    );
    assert_eq!(d["expected"], json!({"default": "'active'::text"}));
    assert_eq!(d["actual"], json!({"default": "'pending'::text"}));
    assert_eq!(
        d["detail"],
        "default: expected 'active'::text, found 'pending'::text"
    );
}

#[test]
fn changed_column_type_is_changed() {
    let d = assert_reported_alone(
        "ALTER TABLE users ALTER COLUMN age TYPE bigint",
        "column",
        "public.users.age",
        "changed",
    );
    assert_eq!(d["expected"], json!({"type": "integer"}));
    assert_eq!(d["actual"], json!({"type": "bigint"}));
}

#[test]
fn dropped_index_is_missing_in_database() {
    let d = assert_reported_alone(
        "DROP INDEX users_created_at_idx",
        "index",
        "public.users_created_at_idx",
        "missing_in_database",
    );
    assert_eq!(
        d["expected"]["definition"],
        "CREATE INDEX users_created_at_idx ON public.users USING btree (created_at)"
    );
    assert_eq!(d["actual"], Value::Null);
}

#[test]
fn index_made_partial_is_changed() {
    let d = assert_reported_alone(
        "DROP INDEX users_status_idx; CREATE INDEX users_status_idx ON users (status) WHERE status <> 'active'",
        "index",
        "public.users_status_idx",
        "changed",
    );
    assert_eq!(d["expected"]["predicate"], Value::Null);
    assert_eq!(d["actual"]["predicate"], "(status <> 'active'::text)");
}

#[test]
fn added_check_constraint_is_extra_in_database() {
    let d = assert_reported_alone(
        "ALTER TABLE users ADD CONSTRAINT users_age_check CHECK (age >= 0)",
        "constraint",
        "public.users.users_age_check",
        "extra_in_database",
    );
    assert_eq!(d["actual"]["type"], "check");
    assert_eq!(d["actual"]["definition"], "CHECK ((age >= 0))");
}

#[test]
fn changed_foreign_key_action_is_changed() {
    let d = assert_reported_alone(
        "ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey, \
         ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE",
        "constraint",
        "public.orders.orders_user_id_fkey",
        "changed",
    );
    assert_eq!(d["expected"]["on_delete"], "restrict");
    assert_eq!(d["actual"]["on_delete"], "cascade");
    assert_eq!(
        d["actual"]["definition"],
        "FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE"
    );
}

#[test]
fn changed_view_is_changed() {
    let d = assert_reported_alone(
        "CREATE OR REPLACE VIEW active_users AS SELECT id, email FROM users WHERE status = 'active' AND age >= 18",
        "view",
        "public.active_users",
        "changed",
    );
    assert!(
        d["actual"]["definition"]
            .as_str()
            .unwrap()
            .contains("age >= 18"),
        "{d}"
    );
}

#[test]
fn changed_function_body_is_changed() {
    let d = assert_reported_alone(
        "CREATE OR REPLACE FUNCTION order_count(p_user integer) RETURNS bigint LANGUAGE sql STABLE AS \
         $$ SELECT count(*) FROM orders WHERE user_id = p_user AND number > 0 $$",
        "function",
        "public.order_count(integer)",
        "changed",
    );
    let expected = d["expected"].as_object().unwrap();
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        ["body"],
        "only the body differs: {d}"
    );
    assert!(d["actual"]["body"].as_str().unwrap().contains("number > 0"));
}

#[test]
fn added_enum_value_is_changed() {
    let d = assert_reported_alone(
        "ALTER TYPE \"Role\" ADD VALUE 'guest' BEFORE 'admin'",
        "enum",
        "public.Role",
        "changed",
    );
    assert_eq!(d["expected"]["values"], json!(["user", "admin", "owner"]));
    assert_eq!(
        d["actual"]["values"],
        json!(["user", "guest", "admin", "owner"])
    );
}

#[test]
fn changed_sequence_increment_is_changed() {
    let d = assert_reported_alone(
        "ALTER SEQUENCE invoice_number_seq INCREMENT BY 5; SELECT nextval('invoice_number_seq')",
        "sequence",
        "public.invoice_number_seq",
        "changed",
    );
    // The current value moved too (nextval above), and is not compared.
    assert_eq!(d["expected"], json!({"increment": 1}));
    assert_eq!(d["actual"], json!({"increment": 5}));
}

#[test]
fn added_trigger_is_extra_in_database() {
    let d = assert_reported_alone(
        "CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch_updated_at()",
        "trigger",
        "public.orders.orders_touch",
        "extra_in_database",
    );
    assert_eq!(
        d["actual"]["definition"],
        "CREATE TRIGGER orders_touch BEFORE UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at()"
    );
}

#[test]
fn created_extension_is_extra_and_its_objects_are_not_reported() {
    let d = assert_reported_alone(
        "CREATE EXTENSION citext",
        "extension",
        "citext",
        "extra_in_database",
    );
    assert_eq!(d["actual"]["schema"], "public");
}

#[test]
fn added_table_is_one_difference_with_its_columns_keys_indexes_and_sequence() {
    let d = assert_reported_alone(
        "CREATE TABLE coupons (id serial PRIMARY KEY, code text UNIQUE, user_id integer REFERENCES users (id)); \
         CREATE INDEX coupons_user_id_idx ON coupons (user_id); \
         CREATE TRIGGER coupons_touch BEFORE UPDATE ON coupons FOR EACH ROW EXECUTE FUNCTION touch_updated_at()",
        "table",
        "public.coupons",
        "extra_in_database",
    );
    assert_eq!(d["actual"]["type"], "ordinary");
}

#[test]
fn added_schema_is_extra_in_database() {
    assert_reported_alone(
        "CREATE SCHEMA reporting; CREATE TABLE reporting.daily (day date PRIMARY KEY)",
        "schema",
        "reporting",
        "extra_in_database",
    );
}

#[test]
fn migration_applied_but_missing_locally_is_a_difference_with_what_it_made() {
    let db = cluster().create_database();
    db.deploy(&fixture("every_kind"));
    let copy = tempfile::tempdir().unwrap();
    let dir = copy.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["20240101000000_init", "20240102000000_concurrent_index"] {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::copy(
            fixture("every_kind").join(name).join("migration.sql"),
            dir.join(name).join("migration.sql"),
        )
        .unwrap();
    }
    let out = drift(&db, &dir, &[]);
    let envelope = expect(&out, 3);
    assert_eq!(
        differences(&envelope),
        [
            (
                "migration".to_string(),
                "20240103000000_sql_body".to_string(),
                "extra_in_database".to_string()
            ),
            (
                "enum".to_string(),
                "public.Role".to_string(),
                "changed".to_string()
            ),
            (
                "function".to_string(),
                "public.add_one(integer)".to_string(),
                "extra_in_database".to_string()
            ),
        ],
        "{out}"
    );
    assert_eq!(envelope["result"]["migrations_applied"], 2);
    assert_shadow_dropped(&envelope);
}

// ---------------------------------------------------------------------------------------
// 3. The shadow database's life
// ---------------------------------------------------------------------------------------

#[test]
fn failing_replay_reports_the_migration_and_drops_the_shadow() {
    let dir = fixture("needs_handmade");
    let db = cluster().create_database();
    run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--to",
            "20240101000000_base",
            "--database-url",
            &db.url(),
        ],
        &[],
    )
    .assert_code(0);
    db.psql("CREATE TABLE legacy (id int)");
    db.deploy(&dir);

    let out = drift(&db, &dir, &[]);
    let envelope = expect(&out, 1);
    assert_eq!(
        envelope["error"]["code"], "SHADOW_MIGRATION_FAILED",
        "{out}"
    );
    let message = envelope["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("20240102000000_uses_legacy")
            && message.contains("relation \"legacy\" does not exist"),
        "{message}"
    );
    assert_eq!(envelope["error"]["details"]["line"], 1, "{out}");
    assert_eq!(envelope["result"]["migrations_applied"], 1, "{out}");
    assert_shadow_dropped(&envelope);
}

#[test]
fn killed_run_leaves_a_shadow_that_the_next_run_drops() {
    let dir = fixture("slow_in_shadow");
    let db = cluster().create_database();
    db.deploy(&dir);
    let mut child = spawn_drift(&db, &dir);
    let shadow = shadow_of_sleeping_run(child.id());
    child.kill().expect("kill -9 the drift run");
    child.wait().expect("the killed run is reaped");

    // The server notices the dead client's idle live session at once; the shadow's
    // session sleeps on, unaware, and keeps the database busy.
    let mut admin = cluster().client("postgres");
    let tag = format!("pgward-validate shadow {shadow}");
    wait_for(
        "the dead run's live session to end",
        Duration::from_secs(10),
        || {
            let alive: bool = admin
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $1)",
                    &[&tag],
                )
                .unwrap()
                .get(0);
            (!alive).then_some(())
        },
    );

    // Any later run drops the leftover, also while the dead run's statement still runs in
    // it. (Another test's run may get there first; either way it must be gone.)
    let other = cluster().create_database();
    let was_there = cluster().database_exists(&shadow);
    let out = drift(&other, &fixture("every_kind"), &[]);
    let envelope = expect(&out, 0);
    assert!(
        !cluster().database_exists(&shadow),
        "the leftover {shadow} survived: {out}"
    );
    if was_there {
        let dropped = &envelope["result"]["leftovers_dropped"];
        let by_us = dropped
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str() == Some(shadow.as_str()));
        assert!(by_us || !cluster().database_exists(&shadow), "{out}");
    }
    let sleeping: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
            &[&shadow],
        )
        .unwrap()
        .get(0);
    assert_eq!(sleeping, 0, "the dead run's statement was ended");
}

#[test]
fn ctrl_c_cancels_the_replay_and_drops_the_shadow() {
    let dir = fixture("slow_in_shadow");
    let db = cluster().create_database();
    db.deploy(&dir);
    let child = spawn_drift(&db, &dir);
    let shadow = shadow_of_sleeping_run(child.id());
    let started = Instant::now();
    // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet, so
    // its pid names it.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let output = child.wait_with_output().expect("drift finishes");
    let out = Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    let envelope = expect(&out, 130);
    assert_eq!(envelope["error"]["code"], "INTERRUPTED", "{out}");
    assert_eq!(envelope["result"]["shadow"], shadow.as_str());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the sleeping statement was cancelled, not waited for"
    );
    assert_shadow_dropped(&envelope);
}

#[test]
fn non_empty_shadow_url_is_refused_and_left_alone() {
    let dir = fixture("every_kind");
    let live = cluster().create_database();
    live.deploy(&dir);
    let shadow = cluster().create_database();
    shadow.psql("CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (1)");

    let out = drift(&live, &dir, &["--shadow-url", &shadow.url()]);
    let envelope = expect(&out, 6);
    assert_eq!(envelope["error"]["code"], "SHADOW_NOT_EMPTY", "{out}");
    let message = envelope["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&shadow.name) && message.contains("table public.keep_me"),
        "{message}"
    );
    assert!(
        envelope["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("empty database"),
        "{out}"
    );
    assert_eq!(shadow.query_one_string("SELECT count(*) FROM keep_me"), "1");
}

#[test]
fn empty_shadow_url_is_used_and_left_empty_for_the_next_run() {
    let dir = fixture("every_kind");
    let live = cluster().create_database();
    live.deploy(&dir);
    let shadow = cluster().create_database();
    for _ in 0..2 {
        let out = drift(&live, &dir, &["--shadow-url", &shadow.url()]);
        let envelope = expect(&out, 0);
        assert_eq!(envelope["result"]["shadow"], shadow.name.as_str(), "{out}");
        assert_eq!(envelope["result"]["shadow_temporary"], false);
        assert_eq!(envelope["result"]["differences"], json!([]), "{out}");
        assert_eq!(
            shadow.query_one_string(
                "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')) \
                      + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') \
                      + (SELECT count(*) FROM pg_namespace WHERE nspname = 'audit')"
            ),
            "0",
            "the shadow is empty again"
        );
    }
}

#[test]
fn shadow_url_naming_the_live_database_is_refused() {
    let dir = fixture("every_kind");
    let live = cluster().create_database();
    let out = drift(&live, &dir, &["--shadow-url", &live.url()]);
    let envelope = expect(&out, 2);
    assert_eq!(envelope["error"]["code"], "USAGE", "{out}");
}
