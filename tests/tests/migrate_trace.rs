//! `pgward-migrate deploy --trace` against a real server: for every statement, the locks
//! it took (read from `pg_locks`), how long they were held, whether it rewrote the table,
//! and the rows it reported; the per-relation summary; and nothing of it without
//! `--trace`.

use std::path::Path;

use pgward_tests::{cluster, path_str, run, temp_dir, write_migrations, Output, TestDb};
use serde_json::Value;

fn deploy(db: &TestDb, dir: &Path, extra: &[&str]) -> Output {
    let url = db.url();
    let mut args = vec!["deploy", "--dir", path_str(dir), "--database-url", &url];
    args.extend_from_slice(extra);
    run("migrate", &args, &[])
}

/// The locks of `statement` as (relation, mode) pairs.
fn locks(statement: &Value) -> Vec<(String, String)> {
    statement["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .map(|l| {
            (
                l["relation"].as_str().expect("relation").to_string(),
                l["mode"].as_str().expect("mode").to_string(),
            )
        })
        .collect()
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
fn a_trace_reports_each_statements_locks_rewrites_and_rows() {
    let db = cluster().create_database();
    let root = temp_dir("migrate_trace_");
    // The table and its 300,000 rows come first, untraced, as production's history would.
    write_migrations(
        root.path(),
        &[(
            "20231231000000_orders",
            "CREATE TABLE orders (id integer PRIMARY KEY, amount integer NOT NULL, note text);\n\
             INSERT INTO orders SELECT g, g % 1000, 'n' || g FROM generate_series(1, 1000000) AS g;\n",
        )],
    );
    deploy(&db, root.path(), &[]).assert_code(0);
    db.psql("ANALYZE orders");
    write_migrations(
        root.path(),
        &[
            (
                "20240101000000_widen_amount",
                "ALTER TABLE orders ALTER COLUMN amount TYPE bigint;\n",
            ),
            (
                "20240101000001_index_amount",
                "CREATE INDEX orders_amount_idx ON orders (md5(note), amount);\n",
            ),
            (
                "20240101000002_index_note",
                "CREATE INDEX CONCURRENTLY orders_note_idx ON orders (note);\n",
            ),
            (
                "20240101000003_add_status",
                "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';\n\
                 UPDATE orders SET note = 'first' WHERE id <= 10;\n",
            ),
        ],
    );
    // A budget the rewrite and the plain index build overrun on a million rows (the
    // index hashes every row, so even a fast machine takes several times the budget),
    // and the concurrent build and the constant default keep (a few ms, more under load).
    let out = deploy(&db, root.path(), &["--trace", "--max-lock", "100ms"]);
    out.assert_code(3);
    let json = out.json();
    let applied = json["result"]["applied"].as_array().expect("applied");
    assert_eq!(applied.len(), 4, "{out}");
    let statement = |m: usize, s: usize| -> &Value { &applied[m]["trace"]["statements"][s] };

    // (a) ALTER COLUMN TYPE: ACCESS EXCLUSIVE, the table rewritten, held until commit.
    let widen = statement(0, 0);
    let lock = lock_on(widen, "orders");
    assert_eq!(lock["mode"], "ACCESS EXCLUSIVE", "{widen}");
    assert_eq!(lock["blocks"], "reads_and_writes", "{widen}");
    assert!(
        widen["rewrites"].as_array().is_some_and(|r| r
            .iter()
            .any(|x| x["relation"] == "orders" && x["bytes"].as_i64() > Some(8 * 1024 * 1024))),
        "the table was rewritten, and its new size is given: {widen}"
    );
    assert_eq!(widen["in_transaction"], true);
    assert!(
        lock["held_ms"].as_f64() >= widen["duration_ms"].as_f64(),
        "a lock taken in a transaction is held at least as long as its statement: {widen}"
    );
    assert_eq!(widen["position"]["line"], 1, "{widen}");

    // (b) CREATE INDEX: SHARE, which blocks writes and not reads; nothing rewritten.
    let index = statement(1, 0);
    let lock = lock_on(index, "orders");
    assert_eq!(lock["mode"], "SHARE", "{index}");
    assert_eq!(lock["blocks"], "writes", "{index}");
    assert_eq!(index["rewrites"], serde_json::json!([]), "{index}");

    // (c) CREATE INDEX CONCURRENTLY: outside a transaction, SHARE UPDATE EXCLUSIVE seen
    // by the observer session while it ran; blocks neither reads nor writes.
    let concurrent = statement(2, 0);
    assert_eq!(concurrent["in_transaction"], false, "{concurrent}");
    let lock = lock_on(concurrent, "orders");
    assert_eq!(lock["mode"], "SHARE UPDATE EXCLUSIVE", "{concurrent}");
    assert_eq!(lock["blocks"], "nothing", "{concurrent}");
    assert!(
        !locks(concurrent).iter().any(|(r, m)| r == "orders"
            && (m == "SHARE" || m.contains("EXCLUSIVE") && m != "SHARE UPDATE EXCLUSIVE")),
        "no write-blocking lock: {concurrent}"
    );

    // (d) ADD COLUMN with a constant default: ACCESS EXCLUSIVE but no rewrite; the
    // UPDATE after it reports its rows and takes ROW EXCLUSIVE (already covered by the
    // stronger lock of the same transaction, so not a new lock of its own).
    let add = statement(3, 0);
    assert_eq!(lock_on(add, "orders")["mode"], "ACCESS EXCLUSIVE", "{add}");
    assert_eq!(add["rewrites"], serde_json::json!([]), "{add}");
    let update = statement(3, 1);
    assert_eq!(update["rows"], 10, "{update}");
    assert_eq!(update["position"]["line"], 2, "{update}");
    let held_add = lock_on(add, "orders")["held_ms"].as_f64().expect("held_ms");
    assert!(
        // Each figure is rounded to a microsecond.
        held_add + 0.002
            >= add["duration_ms"].as_f64().expect("duration")
                + update["duration_ms"].as_f64().expect("duration"),
        "the ADD COLUMN's lock is held through the UPDATE until commit: {}",
        applied[3]
    );

    // The deploy's summary: orders, strongest ACCESS EXCLUSIVE, rewritten.
    let relations = json["result"]["relations"].as_array().expect("relations");
    let orders = relations
        .iter()
        .find(|r| r["relation"] == "orders")
        .expect("orders in the summary");
    assert_eq!(orders["strongest"], "ACCESS EXCLUSIVE");
    assert_eq!(orders["rewritten"], true);
    assert_eq!(
        relations[0]["relation"], "orders",
        "strongest first: {relations:?}"
    );

    // The history is what an untraced deploy writes, and the data is intact.
    assert_eq!(
        db.query_one_string(
            "SELECT count(*)::text FROM _prisma_migrations WHERE finished_at IS NOT NULL"
        ),
        "5"
    );
    assert_eq!(
        db.query_one_string("SELECT count(*)::text FROM orders WHERE status = 'new'"),
        "1000000"
    );

    // The verdict: exit 3 for (a) and (b), each named by file, line, table, mode and time;
    // (c) and (d) stay within the budget.
    let over = json["result"]["over_budget"]
        .as_array()
        .expect("over_budget");
    let mut files: Vec<&str> = over
        .iter()
        .map(|o| o["file"].as_str().expect("file"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "20240101000000_widen_amount/migration.sql",
            "20240101000001_index_amount/migration.sql"
        ],
        "{out}"
    );
    let warnings: Vec<&str> = json["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter(|w| w["code"] == "LOCK_OVER_BUDGET")
        .map(|w| w["message"].as_str().expect("message"))
        .collect();
    assert_eq!(warnings.len(), 2, "{out}");
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "20240101000000_widen_amount/migration.sql:1: ALTER TABLE orders ALTER COLUMN amount TYPE bigint holds ACCESS EXCLUSIVE on orders for "
        ) && w.contains("(rewrite of ") && w.contains("blocks reads and writes")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "20240101000001_index_amount/migration.sql:1: CREATE INDEX orders_amount_idx ON orders (md5(note), amount) holds SHARE on orders for "
        ) && w.ends_with("; blocks writes, over the 100 ms budget")),
        "{warnings:?}"
    );
}

#[test]
fn without_trace_the_result_has_no_trace_and_trace_refuses_a_dry_run() {
    let db = cluster().create_database();
    let root = temp_dir("migrate_trace_off_");
    write_migrations(
        root.path(),
        &[("20240101000000_t", "CREATE TABLE t (id int);\n")],
    );
    let out = deploy(&db, root.path(), &["--trace", "--dry-run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("--trace") && out.stderr.contains("--dry-run"),
        "the usage error names both flags\n{out}"
    );
    let out = deploy(&db, root.path(), &[]);
    out.assert_code(0);
    let json = out.json();
    assert!(json["result"].get("relations").is_none(), "{out}");
    assert!(json["result"]["applied"][0].get("trace").is_none(), "{out}");
}
