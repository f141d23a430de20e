//! The HTML pages fit the window (issue 21): at 1280 pixels and at a phone's 390, no page
//! scrolls sideways and no box's text runs out of it; long tables scroll inside their own
//! box. Each page is shown in headless Chromium, measured by a script in the browser, and
//! screenshotted at both widths; pages and screenshots are kept under
//! `target/test-artifacts/html-fit/` (the test prints the folder).
//!
//! The pages hold what makes real pages wide: a failed migration whose error quotes a
//! 130-character API token, migration and table names of PostgreSQL's 63 characters, a
//! backup folder of a long path, the 434 migrations of langfuse's history linted, and an
//! error whose message names that folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgward_tests::{artefacts, cluster, headless, path_str, run, temp_dir, Output};
use serde_json::Value;

/// The widths checked: a desktop's and a phone's.
const WIDTHS: [u32; 2] = [1280, 390];

/// A table name of PostgreSQL's 63 characters (the longest).
const LONG_TABLE: &str = "workspace_billing_invoice_line_item_adjustment_history_archived";

/// A token with no place to break a line (no space, no hyphen): 136 characters.
fn token() -> String {
    format!("sk_live_{}", "a1b2c3d4".repeat(16))
}

/// A migration name as long as teams write them (underscores only).
const LONG_MIGRATION: &str =
    "20240102000000_backfill_api_tokens_for_every_workspace_created_before_the_billing_migration";

/// A page, shown unchanged in a frame `WIDTH` pixels wide, measured once it has loaded:
/// the window's width, the page's scroll width, every element whose content runs out of
/// its box while its overflow is visible (so it would be drawn over its neighbours or off
/// the page), and the boxes that scroll sideways (allowed: that is how wide tables fit).
const PROBE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>body { margin: 0; } iframe { border: 0; display: block; }</style>
<script>
function measure(frame) {
  var doc = frame.contentDocument, win = frame.contentWindow;
  frame.style.height = doc.documentElement.scrollHeight + 'px';
  var out = { innerWidth: win.innerWidth, scrollWidth: doc.documentElement.scrollWidth,
              overflowing: [], scrolling: 0 };
  doc.querySelectorAll('body *').forEach(function (el) {
    if (el.clientWidth === 0 || el.scrollWidth <= el.clientWidth + 1) return;
    var x = win.getComputedStyle(el).overflowX;
    if (x === 'auto' || x === 'scroll') { out.scrolling += 1; return; }
    out.overflowing.push({ tag: el.tagName.toLowerCase(), class: el.className,
                           scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
                           text: (el.textContent || '').trim().slice(0, 80) });
  });
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}
</script></head>
<body><iframe src="PAGE" style="width: WIDTHpx; height: 1600px" onload="measure(this)"></iframe></body></html>
"#;

/// The probe page for `page` at `width`, written beside it.
fn probe_page(page: &Path, width: u32) -> PathBuf {
    let name = page.file_name().and_then(|n| n.to_str()).expect("a name");
    let probe = page.with_file_name(format!("{name}.at-{width}.html"));
    std::fs::write(
        &probe,
        PROBE
            .replace("PAGE", name)
            .replace("WIDTH", &width.to_string()),
    )
    .expect("the probe page is writable");
    probe
}

/// Shows `page` `width` pixels wide (the frame fills the window's left `width` pixels,
/// and the window is cut to them): the browser's measurements, and the path of the
/// screenshot taken in the same run.
fn measure_and_screenshot(page: &Path, width: u32) -> (Value, PathBuf) {
    let png = page.with_extension(format!("{width}.png"));
    let _ = std::fs::remove_file(&png);
    let dom = headless(
        &probe_page(page, width),
        width,
        1600,
        &["--dump-dom", &format!("--screenshot={}", path_str(&png))],
    );
    let start = dom
        .find("<pre id=\"probe\">")
        .map(|i| i + "<pre id=\"probe\">".len())
        .unwrap_or_else(|| panic!("the probe did not run on {}:\n{dom}", page.display()));
    let end = start
        + dom[start..]
            .find("</pre>")
            .expect("the probe's output ends");
    let text = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let measured = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the probe wrote JSON ({e}): {text}"));
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png).expect("the screenshot was written"),
    ));
    let reader = decoder.read_info().expect("the screenshot is a PNG");
    assert_eq!(reader.info().width, width, "{}", png.display());
    (measured, png)
}

/// Keeps `out`'s stdout as `NAME.html` among the artefacts; checks it at both widths.
fn assert_fits(name: &str, out: &Output) -> Vec<String> {
    assert!(
        out.stdout.starts_with("<!DOCTYPE html>"),
        "{name}: an HTML page\n{out}"
    );
    let page = artefacts("html-fit").join(format!("{name}.html"));
    std::fs::write(&page, &out.stdout).expect("the page is writable");
    let mut problems = Vec::new();
    for width in WIDTHS {
        let (m, png) = measure_and_screenshot(&page, width);
        assert_eq!(m["innerWidth"], width, "{name}: the frame's width: {m}");
        // The wide tables fit by scrolling in their own box, not by being cut off.
        if width == 390 && ["migrations", "health", "lint"].contains(&name) {
            assert!(
                m["scrolling"].as_u64() > Some(0),
                "{name} at {width}px: its wide tables scroll in their box: {m}"
            );
        }
        let scroll = m["scrollWidth"].as_u64().expect("a scroll width");
        if scroll > u64::from(width) {
            problems.push(format!(
                "{name} at {width}px: the page is {scroll}px wide and scrolls sideways ({})",
                png.display()
            ));
        }
        for el in m["overflowing"].as_array().expect("a list") {
            problems.push(format!(
                "{name} at {width}px: <{} class=\"{}\"> runs out of its box ({} > {} px): {} ({})",
                el["tag"].as_str().unwrap_or_default(),
                el["class"].as_str().unwrap_or_default(),
                el["scrollWidth"],
                el["clientWidth"],
                el["text"].as_str().unwrap_or_default(),
                png.display()
            ));
        }
    }
    problems
}

fn write_migration(dir: &Path, name: &str, sql: &str) {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).expect("a migration folder");
    std::fs::write(folder.join("migration.sql"), sql).expect("migration.sql");
}

#[test]
fn html_pages_fit_a_desktop_and_a_phone_without_sideways_scrolling() {
    let db = cluster().create_database();
    let project = temp_dir("html_fit_");
    let migrations = project.path().join("migrations");
    // 40 tables with the longest names PostgreSQL allows, and rows in them.
    write_migration(
        &migrations,
        "20240101000000_init",
        "CREATE TABLE api_token (id bigserial PRIMARY KEY, token text NOT NULL UNIQUE);\n\
         DO $$ BEGIN FOR i IN 1..40 LOOP\n\
           EXECUTE format('CREATE TABLE workspace_billing_invoice_line_item_adjustment_history_%s (id bigserial PRIMARY KEY, note text)', lpad(i::text, 3, '0'));\n\
           EXECUTE format('INSERT INTO workspace_billing_invoice_line_item_adjustment_history_%s (note) SELECT repeat(''x'', 40) FROM generate_series(1, %s)', lpad(i::text, 3, '0'), i * 20);\n\
         END LOOP; END $$;\n",
    );
    // A migration that fails on a duplicated token: its error quotes the token.
    let token = token();
    write_migration(
        &migrations,
        LONG_MIGRATION,
        &format!("INSERT INTO api_token (token) VALUES ('{token}'), ('{token}');\n"),
    );
    let url = db.url();
    let dir = path_str(&migrations);
    run(
        "migrate",
        &["deploy", "--dir", dir, "--database-url", &url],
        &[],
    )
    .assert_code(1);

    let backups = project
        .path()
        .join("backups_of_the_production_database_of_acme_corporation_kept_thirty_days");
    for _ in 0..2 {
        run(
            "backup",
            &["backup", "--to", path_str(&backups), "--database-url", &url],
            &cluster().pg_tools_env(),
        )
        .assert_code(0);
        // Backup ids carry the second.
        std::thread::sleep(Duration::from_millis(1100));
    }

    // A traced deploy with its lock timeline: a table of the longest name, rewritten and
    // indexed, on a database of its own (the failed migration above blocks this one).
    let traced_db = cluster().create_database();
    let traced = project.path().join("traced");
    write_migration(
        &traced,
        "20240101000000_init",
        &format!("CREATE TABLE {LONG_TABLE} (id bigserial PRIMARY KEY, n int, note text);\n\
                  INSERT INTO {LONG_TABLE} (n, note) SELECT i, 'x' FROM generate_series(1, 20000) i;\n"),
    );
    run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&traced),
            "--database-url",
            &traced_db.url(),
        ],
        &[],
    )
    .assert_code(0);
    write_migration(
        &traced,
        LONG_MIGRATION,
        &format!(
            "CREATE INDEX traced_n_idx ON {LONG_TABLE} (n);\n\
                  ALTER TABLE {LONG_TABLE} ALTER COLUMN n TYPE bigint;\n\
                  UPDATE {LONG_TABLE} SET note = 'y' WHERE id < 100;\n"
        ),
    );
    let deploy_trace = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&traced),
            "--database-url",
            &traced_db.url(),
            "--trace",
            "--max-lock",
            "1ms",
            "--format",
            "html",
        ],
        &[],
    );
    deploy_trace.assert_code(3);

    let corpus = pgward_tests::fixtures_dir().join("corpus/langfuse__langfuse/migrations");
    let missing = backups.join("and_a_folder_that_does_not_exist_under_it");
    let pages = [
        (
            "migrations",
            run(
                "report",
                &[
                    "migrations",
                    "--dir",
                    path_str(&migrations),
                    "--database-url",
                    &url,
                    "--format",
                    "html",
                ],
                &[],
            ),
        ),
        (
            "health",
            run(
                "report",
                &["health", "--database-url", &url, "--format", "html"],
                &[],
            ),
        ),
        (
            "backups",
            run(
                "report",
                &["backups", "--from", path_str(&backups), "--format", "html"],
                &[],
            ),
        ),
        (
            "lint",
            run(
                "validate",
                &[
                    "lint",
                    "--all",
                    "--dir",
                    path_str(&corpus),
                    "--format",
                    "html",
                ],
                &[],
            ),
        ),
        ("deploy-trace", deploy_trace),
        (
            "error",
            run(
                "backup",
                &[
                    "verify",
                    "latest",
                    "--from",
                    path_str(&missing),
                    "--format",
                    "html",
                ],
                &[],
            ),
        ),
    ];
    // What each page must show, so a page that lost its content cannot pass by being
    // small: the token, the long names, the findings, the folder.
    let must_show = [
        ("migrations", token.as_str()),
        ("migrations", LONG_MIGRATION),
        (
            "health",
            "workspace_billing_invoice_line_item_adjustment_history_040",
        ),
        ("backups", "backups_of_the_production_database"),
        ("lint", "create-index-not-concurrently"),
        ("error", "and_a_folder_that_does_not_exist_under_it"),
        ("deploy-trace", "id=\"timeline-1\""),
        ("deploy-trace", "id=\"lock-summary\""),
        ("deploy-trace", LONG_TABLE),
    ];
    for (name, needle) in must_show {
        let (_, out) = pages.iter().find(|(n, _)| *n == name).expect("a page");
        assert!(out.stdout.contains(needle), "{name} shows {needle}\n{out}");
    }
    let problems: Vec<String> = pages
        .iter()
        .flat_map(|(name, out)| assert_fits(name, out))
        .collect();
    eprintln!(
        "pages and screenshots (1280 and 390 px): {}",
        artefacts("html-fit").display()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}
