//! `pgward-validate lint --trace` against a real server: the pending migrations run on a
//! throwaway shadow database under `deploy --trace`'s tracer; each finding that predicts
//! a lock or a rewrite is marked confirmed or not by what the statement did there, and
//! what the trace saw but no rule predicted becomes a `trace-unpredicted` finding. The
//! target database is never changed, and the shadow is dropped also when a file fails.

use std::path::Path;

use pgward_tests::{cluster, path_str, run, temp_dir, write_migrations, Output, TestDb};
use serde_json::Value;

/// The history's first migration: `orders` and `events` with rows. Deployed to the
/// target, so lint reads it as applied (context) and lints only what follows.
const INIT: &str =
    "CREATE TABLE orders (id bigserial PRIMARY KEY, amount int NOT NULL, note varchar(100));\n\
INSERT INTO orders (amount, note) SELECT i, 'n' || i FROM generate_series(1, 5000) i;\n\
CREATE TABLE events (id bigserial PRIMARY KEY, n int);\n\
INSERT INTO events (n) SELECT i FROM generate_series(1, 5000) i;\n";

/// The pending migration, a statement per case (line numbers matter):
/// 2. a plain index build: create-index-not-concurrently predicts SHARE on orders;
/// 3. int to bigint: alter-column-type predicts a rewrite, which happens;
/// 4. varchar to text with a USING that only relabels: alter-column-type predicts a
///    rewrite, which does not happen;
/// 5. a column without default: ACCESS EXCLUSIVE on events, which no rule predicts;
/// 6. a type change inside a DO block: a rewrite of events no rule can see.
const PENDING: &str = "SET lock_timeout = '5s';\n\
CREATE INDEX orders_amount_idx ON orders (amount);\n\
ALTER TABLE orders ALTER COLUMN amount TYPE bigint;\n\
ALTER TABLE orders ALTER COLUMN note TYPE text USING note;\n\
ALTER TABLE events ADD COLUMN flag boolean;\n\
DO $$ BEGIN EXECUTE 'ALTER TABLE events ALTER COLUMN n TYPE bigint'; END $$;\n";

fn lint(db: &TestDb, dir: &Path, extra: &[&str]) -> Output {
    let url = db.url();
    let mut args = vec!["lint", "--dir", path_str(dir), "--database-url", &url];
    args.extend_from_slice(extra);
    run("validate", &args, &[])
}

/// Everything of the target a run could change: its schema, its rows, its history.
fn snapshot(db: &TestDb) -> (String, String) {
    let data = db.query_one_string(
        "SELECT concat_ws(' | ', \
           (SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o), \
           (SELECT md5(string_agg(e::text, ',' ORDER BY id)) FROM events e), \
           (SELECT string_agg(migration_name || ':' || coalesce(finished_at::text, '-'), ',' ORDER BY migration_name) FROM _prisma_migrations), \
           (SELECT count(*) FROM pg_class))",
    );
    (db.pg_dump_schema(), data)
}

/// The finding of `rule` at `line`.
fn finding<'v>(json: &'v Value, rule: &str, line: u64) -> &'v Value {
    json["result"]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == rule && f["line"] == line)
        .unwrap_or_else(|| panic!("no {rule} finding at line {line}: {json:#}"))
}

/// The shadow databases of lint --trace runs on `db` still on the server.
fn shadows_of(db: &TestDb) -> Vec<String> {
    let mut client = cluster().client("postgres");
    client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pgward\\_shadow\\_%' \
             AND shobj_description(oid, 'pg_database') LIKE '%lint --trace on ' || $1 || ',%'",
            &[&db.name],
        )
        .expect("pg_database")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn lint_trace_confirms_refutes_and_adds_findings_and_leaves_the_target_alone() {
    let db = cluster().create_database();
    let root = temp_dir("lint_trace_");
    write_migrations(root.path(), &[("20240101000000_init", INIT)]);
    db.deploy(root.path());
    write_migrations(root.path(), &[("20240201000000_changes", PENDING)]);
    let before = snapshot(&db);

    let out = lint(&db, root.path(), &["--trace"]);
    // The plain index build and the type changes are lint errors: the run fails as
    // without --trace.
    let json = out.assert_error(1, "CHECKS_FAILED");

    // Predicted and seen: SHARE on orders for the plain index build.
    let index = finding(&json, "create-index-not-concurrently", 2);
    assert_eq!(index["confirmed"], true, "{index:#}");
    assert!(
        index["observed"]
            .as_str()
            .unwrap_or_default()
            .contains("SHARE on orders"),
        "{index:#}"
    );
    // Predicted and seen: the rewrite of int to bigint.
    let widen = finding(&json, "alter-column-type", 3);
    assert_eq!(widen["confirmed"], true, "{widen:#}");
    assert!(
        widen["observed"]
            .as_str()
            .unwrap_or_default()
            .contains("rewrote orders"),
        "{widen:#}"
    );
    // Predicted, not seen: a USING that only relabels varchar as text rewrites nothing.
    let relabel = finding(&json, "alter-column-type", 4);
    assert_eq!(relabel["confirmed"], false, "{relabel:#}");
    assert!(
        relabel["observed"]
            .as_str()
            .unwrap_or_default()
            .contains("no rewrite"),
        "{relabel:#}"
    );
    // Seen, not predicted: the rewrite inside the DO block is a warning.
    let hidden = finding(&json, "trace-unpredicted", 6);
    assert_eq!(hidden["severity"], "warning", "{hidden:#}");
    assert!(
        hidden["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rewrote events"),
        "{hidden:#}"
    );
    assert_eq!(hidden["lock"], "ACCESS EXCLUSIVE on events", "{hidden:#}");
    // ... and the ACCESS EXCLUSIVE of ADD COLUMN, which no rule predicts, is an info.
    let exclusive = finding(&json, "trace-unpredicted", 5);
    assert_eq!(exclusive["severity"], "info", "{exclusive:#}");
    assert!(
        exclusive["lock"].as_str().unwrap_or_default() == "ACCESS EXCLUSIVE on events",
        "{exclusive:#}"
    );
    // Findings of rules without a prediction carry no mark; the applied migration's
    // statements are not reported.
    for f in json["result"]["findings"].as_array().expect("findings") {
        assert!(
            f["file"]
                .as_str()
                .unwrap_or_default()
                .contains("20240201000000_changes"),
            "{f:#}"
        );
    }
    let trace = &json["result"]["trace"];
    assert_eq!(trace["not_confirmed"], 1, "{trace:#}");
    assert!(trace["confirmed"].as_u64() >= Some(2), "{trace:#}");
    assert_eq!(trace["unpredicted"], 2, "{trace:#}");
    assert_eq!(trace["statements"], 5, "SET is not traced: {trace:#}");
    assert_eq!(trace["shadow_temporary"], true);
    let shadow = trace["shadow"].as_str().expect("the shadow's name");
    assert!(!cluster().database_exists(shadow), "{shadow} was dropped");

    // The target: same schema, same rows, same history, not one relation more.
    assert_eq!(snapshot(&db), before, "the target changed");

    // Without --trace: the same findings, none marked, no trace.
    let plain = lint(&db, root.path(), &[]).assert_error(1, "CHECKS_FAILED");
    assert!(plain["result"].get("trace").is_none(), "{plain:#}");
    let plain_findings = plain["result"]["findings"].as_array().expect("findings");
    assert!(plain_findings.iter().all(|f| f.get("confirmed").is_none()));
    assert_eq!(
        plain_findings.len() + 2,
        json["result"]["findings"]
            .as_array()
            .expect("findings")
            .len(),
        "--trace adds the two unpredicted findings and removes none"
    );
}

#[test]
fn a_file_that_fails_on_the_shadow_drops_it_and_keeps_the_static_findings() {
    let db = cluster().create_database();
    let root = temp_dir("lint_trace_fail_");
    write_migrations(root.path(), &[("20240101000000_init", INIT)]);
    db.deploy(root.path());
    write_migrations(
        root.path(),
        &[(
            "20240201000000_broken",
            "CREATE INDEX orders_amount_idx ON orders (amount);\n\
             ALTER TABLE made_by_hand ADD COLUMN x int;\n",
        )],
    );
    let before = snapshot(&db);
    let out = lint(&db, root.path(), &["--trace"]);
    let json = out.assert_error(1, "SHADOW_MIGRATION_FAILED");
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("20240201000000_broken") && message.contains("made_by_hand"),
        "{out}"
    );
    assert!(
        json["result"]["findings"].as_array().is_some_and(|f| f
            .iter()
            .any(|f| f["rule"] == "create-index-not-concurrently")),
        "{out}"
    );
    assert!(
        shadows_of(&db).is_empty(),
        "the shadow was left: {:?}",
        shadows_of(&db)
    );
    assert_eq!(snapshot(&db), before, "the target changed");
}

#[test]
fn shadow_url_needs_trace_and_a_given_shadow_is_left_empty() {
    let db = cluster().create_database();
    let root = temp_dir("lint_trace_url_");
    write_migrations(root.path(), &[("20240101000000_init", INIT)]);
    db.deploy(root.path());
    write_migrations(root.path(), &[("20240201000000_changes", PENDING)]);
    let shadow = cluster().create_database();
    let out = lint(&db, root.path(), &["--shadow-url", &shadow.url()]);
    out.assert_error(2, "USAGE");
    let out = lint(
        &db,
        root.path(),
        &["--trace", "--shadow-url", &shadow.url()],
    );
    let json = out.json();
    assert_eq!(
        json["result"]["trace"]["shadow"],
        shadow.name.as_str(),
        "{out}"
    );
    assert_eq!(json["result"]["trace"]["shadow_temporary"], false, "{out}");
    assert_eq!(
        finding(&json, "alter-column-type", 3)["confirmed"],
        true,
        "{out}"
    );
    assert_eq!(
        shadow.query_one_string(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        ),
        "0",
        "the given shadow is emptied again"
    );
}

#[test]
fn server_wide_statements_are_refused_as_drift_refuses_them_and_no_shadow_is_left() {
    let db = cluster().create_database();
    let root = temp_dir("lint_trace_server_");
    write_migrations(root.path(), &[("20240101000000_init", INIT)]);
    db.deploy(root.path());
    write_migrations(
        root.path(),
        &[(
            "20240201000000_tune",
            "ALTER SYSTEM SET work_mem = '8MB';\nCREATE INDEX orders_amount_idx ON orders (amount);\n",
        )],
    );
    let setting = || {
        db.query_one_string(
            "SELECT coalesce((SELECT setting FROM pg_file_settings WHERE name = 'work_mem' AND sourcefile LIKE '%auto.conf'), 'unset')",
        )
    };
    let before = (snapshot(&db), setting());
    let out = lint(&db, root.path(), &["--trace"]);
    let json = out.assert_error(6, "CLUSTER_WIDE_REPLAY");
    assert!(
        json["result"]["findings"].as_array().is_some_and(|f| f
            .iter()
            .any(|f| f["rule"] == "create-index-not-concurrently")),
        "the static findings stay: {out}"
    );
    assert!(shadows_of(&db).is_empty(), "{:?}", shadows_of(&db));
    assert_eq!(
        (snapshot(&db), setting()),
        before,
        "nothing ran on the server"
    );
}
