//! A traced deploy (`pgward-migrate deploy --trace`) in the human formats, against a real
//! server: the HTML page has one lock timeline per migration, with a row per relation and
//! its lock modes, and the per-relation table; Markdown has the table and the locks over
//! budget; Prometheus has the longest hold of the run and each relation's, labelled with
//! relation and mode. Printed at once (`--format`) or rendered later from the saved JSON
//! (`pgward-report render`), the document reads the same.

use std::collections::BTreeSet;
use std::path::Path;

use pgward_tests::{cluster, path_str, run, temp_dir, write_migrations, Output, TestDb};

/// A history whose first migration builds `orders` (200,000 rows) and `customers`, and
/// whose two pending ones lock them: the first rewrites `orders` and builds an index on
/// `customers` (SHARE), the second builds an index on `orders` concurrently (SHARE UPDATE
/// EXCLUSIVE, outside a transaction).
fn project(db: &TestDb, dir: &Path) {
    write_migrations(
        dir,
        &[(
            "20240101000000_init",
            "CREATE TABLE orders (id bigserial PRIMARY KEY, amount int NOT NULL, note text);\n\
             INSERT INTO orders (amount, note) SELECT i, md5(i::text) FROM generate_series(1, 200000) i;\n\
             CREATE TABLE customers (id bigserial PRIMARY KEY, email text);\n\
             INSERT INTO customers (email) SELECT i || '@example.com' FROM generate_series(1, 20000) i;\n",
        )],
    );
    db.deploy(dir);
    write_migrations(
        dir,
        &[
            (
                "20240201000000_widen_amount",
                "CREATE INDEX customers_email_idx ON customers (email);\n\
                 ALTER TABLE orders ALTER COLUMN amount TYPE bigint;\n",
            ),
            (
                "20240301000000_index_note",
                "CREATE INDEX CONCURRENTLY orders_note_idx ON orders (md5(note || amount::text));\n",
            ),
        ],
    );
}

fn deploy(db: &TestDb, dir: &Path, format: &str) -> Output {
    let url = db.url();
    run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(dir),
            "--database-url",
            &url,
            "--trace",
            "--max-lock",
            "1ms",
            "--format",
            format,
        ],
        &[],
    )
}

fn render(document: &Path, format: &str) -> Output {
    let out = run(
        "report",
        &["render", path_str(document), "--format", format],
        &[],
    );
    out.assert_code(0);
    out
}

/// The part of `page` from the element with `id` to the end of its figure.
fn figure<'p>(page: &'p str, id: &str) -> &'p str {
    let start = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element {id} in the page:\n{page}"));
    let end = start + page[start..].find("</figure>").expect("the figure ends");
    &page[start..end]
}

/// Every value of attribute `name` in `html`.
fn attributes(html: &str, name: &str) -> BTreeSet<String> {
    let key = format!("{name}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest[..rest.find('"').expect("the attribute ends")].to_string()
        })
        .collect()
}

/// The (relation, mode) pairs of the lock bars of a timeline.
fn bars(timeline: &str) -> BTreeSet<(String, String)> {
    timeline
        .split("<rect class=\"mark lock\"")
        .skip(1)
        .map(|bar| {
            let one = |n: &str| attributes(bar, n).into_iter().next().expect(n);
            (one("data-relation"), one("data-mode"))
        })
        .collect()
}

fn pair(relation: &str, mode: &str) -> (String, String) {
    (relation.to_string(), mode.to_string())
}

/// What every rendering of a traced deploy of [`project`] must show.
fn assert_html(page: &str) {
    assert_eq!(
        page.matches("<figure class=\"chart\" id=\"timeline-")
            .count(),
        2,
        "one timeline per migration applied:\n{page}"
    );
    let first = figure(page, "timeline-1");
    assert!(first.contains("20240201000000_widen_amount"), "{first}");
    let first_bars = bars(first);
    assert!(
        first_bars.contains(&pair("orders", "ACCESS EXCLUSIVE")),
        "{first_bars:?}"
    );
    assert!(
        first_bars.contains(&pair("customers", "SHARE")),
        "{first_bars:?}"
    );
    assert!(
        first_bars.iter().all(|(r, _)| r != "customers_email_idx"),
        "the index the migration built is its own: {first_bars:?}"
    );
    // Readable without colour: each relation's strongest mode is written beside it.
    assert!(first.contains(">ACCESS EXCLUSIVE</text>"), "{first}");
    assert!(first.contains("rewritten by it"), "{first}");
    let second = figure(page, "timeline-2");
    assert!(second.contains("20240301000000_index_note"), "{second}");
    let second_bars = bars(second);
    assert!(
        second_bars.contains(&pair("orders", "SHARE UPDATE EXCLUSIVE")),
        "{second_bars:?}"
    );
    assert!(
        second_bars.iter().all(|(_, m)| m != "ACCESS EXCLUSIVE"),
        "{second_bars:?}"
    );
    // The per-relation table: orders first (strongest), rewritten, with its size.
    let table = &page[page.find("id=\"lock-summary\"").expect("the summary table")..];
    let table = &table[..table.find("</table>").expect("the table ends")];
    let orders_row = table
        .split("<tr>")
        .find(|row| row.starts_with("<td>orders</td>"))
        .unwrap_or_else(|| panic!("a row for orders:\n{table}"));
    assert!(
        orders_row.contains("<td>ACCESS EXCLUSIVE</td>")
            && orders_row.contains("<td>reads and writes</td>")
            && orders_row.contains("<td>yes</td>")
            && orders_row.contains("MiB"),
        "{orders_row}"
    );
    assert!(
        table.contains("<td>customers</td><td>SHARE</td>"),
        "{table}"
    );
    assert!(!page.contains("<script"), "no script in the page");
}

/// The metric lines of `text` named `name`, as (labels, value).
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(|l| {
            let (labels, value) = l.rsplit_once(' ').expect("a value");
            (labels.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn a_traced_deploy_renders_timelines_summary_and_metrics_saved_or_at_once() {
    let db = cluster().create_database();
    let root = temp_dir("trace_render_");
    project(&db, root.path());
    let out = deploy(&db, root.path(), "json");
    let json = out.assert_envelope(3);
    let document = root.path().join("deploy.json");
    std::fs::write(&document, &out.stdout).expect("the document is writable");

    // HTML, rendered later from the saved JSON.
    assert_html(&render(&document, "html").stdout);

    // Prometheus: the longest hold of a lock that blocks writes or reads is that of the
    // relation summary's longest blocking one, and each relation has its own sample.
    let relations = json["result"]["relations"].as_array().expect("relations");
    let longest = relations
        .iter()
        .filter(|r| r["blocks"] != "nothing")
        .map(|r| r["held_ms"].as_f64().expect("held_ms"))
        .fold(0.0, f64::max);
    let metrics = render(&document, "prometheus").stdout;
    let database = db.name.as_str();
    let run_longest = samples(&metrics, "pgward_deploy_lock_longest_hold_seconds");
    assert_eq!(run_longest.len(), 1, "one sample per run:\n{metrics}");
    assert_eq!(
        run_longest[0].0,
        format!("pgward_deploy_lock_longest_hold_seconds{{database=\"{database}\"}}")
    );
    assert!(
        (run_longest[0].1 - longest / 1000.0).abs() < 1e-9 && longest > 0.0,
        "{metrics}"
    );
    let per_relation = samples(&metrics, "pgward_deploy_relation_lock_hold_seconds");
    let orders = per_relation
        .iter()
        .find(|(labels, _)| labels.contains("relation=\"orders\""))
        .unwrap_or_else(|| panic!("a sample for orders:\n{metrics}"));
    assert!(
        orders.0.contains("mode=\"ACCESS EXCLUSIVE\"")
            && orders.0.contains("blocks=\"reads_and_writes\"")
            && orders.0.contains(&format!("database=\"{database}\"")),
        "{}",
        orders.0
    );
    // customers' SHARE, taken first, is held through orders' rewrite until the commit.
    let longest_sample = per_relation
        .iter()
        .filter(|(labels, _)| !labels.contains("blocks=\"nothing\""))
        .map(|(_, v)| *v)
        .fold(0.0, f64::max);
    assert_eq!(longest_sample, run_longest[0].1, "{metrics}");
    assert!(orders.1 > 0.0 && orders.1 <= run_longest[0].1, "{metrics}");
    assert!(
        per_relation
            .iter()
            .any(|(l, _)| l.contains("relation=\"customers\"") && l.contains("mode=\"SHARE\"")),
        "{metrics}"
    );
    assert_eq!(per_relation.len(), relations.len(), "{metrics}");
    let over = samples(&metrics, "pgward_deploy_locks_over_budget");
    assert!(
        over[0].1 >= 2.0,
        "orders and customers exceed 1 ms: {metrics}"
    );

    // Markdown: the locks over budget, one line each, and the per-relation table.
    let md = render(&document, "markdown").stdout;
    let locks = &md[md.find("### Locks").unwrap_or_else(|| panic!("{md}"))..];
    assert!(
        locks.contains("| Relation | Strongest lock | Longest hold | Blocks | Rewritten | Size |"),
        "{locks}"
    );
    let orders_line = locks
        .lines()
        .find(|l| l.starts_with("| orders |"))
        .unwrap_or_else(|| panic!("{locks}"));
    assert!(
        orders_line.contains("| ACCESS EXCLUSIVE |") && orders_line.contains("| yes |"),
        "{orders_line}"
    );
    assert!(
        locks.lines().any(|l| l.starts_with("- ")
            && l.contains("holds ACCESS EXCLUSIVE on orders")
            && l.contains("rewrite of")),
        "{locks}"
    );

    // Printed at once, on a second database: the same page and metrics.
    let db2 = cluster().create_database();
    let root2 = temp_dir("trace_render_direct_");
    project(&db2, root2.path());
    let html = deploy(&db2, root2.path(), "html");
    html.assert_code(3);
    assert_html(&html.stdout);
    let db3 = cluster().create_database();
    let root3 = temp_dir("trace_render_prom_");
    project(&db3, root3.path());
    let prom = deploy(&db3, root3.path(), "prometheus");
    prom.assert_code(3);
    let direct = samples(&prom.stdout, "pgward_deploy_relation_lock_hold_seconds");
    assert!(
        direct
            .iter()
            .any(|(l, _)| l.contains("relation=\"orders\"")
                && l.contains("mode=\"ACCESS EXCLUSIVE\"")),
        "{}",
        prom.stdout
    );
    assert_eq!(
        samples(&prom.stdout, "pgward_deploy_lock_longest_hold_seconds").len(),
        1
    );
}

#[test]
fn documents_without_a_trace_get_no_lock_section_or_metric() {
    let db = cluster().create_database();
    let root = temp_dir("trace_render_off_");
    write_migrations(
        root.path(),
        &[("20240101000000_init", "CREATE TABLE t (id int);\n")],
    );
    let url = db.url();
    let args = |format: &'static str| {
        vec![
            "deploy".to_string(),
            "--dir".into(),
            path_str(root.path()).into(),
            "--database-url".into(),
            url.clone(),
            "--format".into(),
            format.into(),
        ]
    };
    let html_args = args("html");
    let html = run(
        "migrate",
        &html_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    html.assert_code(0);
    assert!(html.stdout.contains("<!DOCTYPE html>"), "{html}");
    assert!(!html.stdout.contains("id=\"locks\""), "{html}");
    // The database is up to date now: a second untraced deploy prints Prometheus.
    let prom_args = args("prometheus");
    let prom = run(
        "migrate",
        &prom_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    prom.assert_code(0);
    assert!(prom.stdout.contains("pgward_last_run_ok"), "{prom}");
    assert!(!prom.stdout.contains("pgward_deploy_"), "{prom}");
}
