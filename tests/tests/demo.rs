//! The README's demo, `bash scripts/demo.sh`, run the way a user runs it (against the
//! binaries this build made, through PGWARD_BIN, instead of a second `cargo build`): each
//! step of its walk happened and showed what it says, and it ends within two minutes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgward_tests::{bin, path_str, temp_dir, workspace_root};
use serde_json::Value;

/// The README promises the walk ends in under two minutes after the build.
const DEMO_LIMIT: Duration = Duration::from_secs(120);

/// The five example migrations: the four of examples/ and the demo's own.
const MIGRATIONS: &[&str] = &[
    "20260101090000_init",
    "20260105120000_add_orders",
    "20260110080000_index_orders_created_at",
    "20260115100000_add_order_status",
    "20260120090000_add_user_handle",
];

/// Runs the demo with stderr merged into stdout (the order a person sees); returns the
/// exit code, that text and how long it took.
fn run_demo(out_dir: &Path) -> (i32, String, Duration) {
    let bin_dir = bin("migrate")
        .parent()
        .expect("the binary sits in a folder")
        .to_path_buf();
    let mut command = Command::new("timeout");
    command
        .args([
            "--kill-after=10",
            "300",
            "bash",
            "-c",
            "bash scripts/demo.sh 2>&1",
        ])
        .current_dir(workspace_root())
        .env_clear()
        .env("PGWARD_BIN", &bin_dir)
        .env("PGWARD_DEMO_OUT", out_dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    let started = Instant::now();
    let output = command.output().expect("bash runs");
    let took = started.elapsed();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        took,
    )
}

/// The text under the heading `== PREFIX...` up to the next `== ` heading.
fn section<'t>(text: &'t str, prefix: &str) -> &'t str {
    let heading = format!("\n== {prefix}");
    let start = text
        .find(&heading)
        .unwrap_or_else(|| panic!("no step `== {prefix}` in the demo's output:\n{text}"))
        + 1;
    let end = text[start + 3..]
        .find("\n== ")
        .map(|i| start + 3 + i)
        .unwrap_or(text.len());
    &text[start..end]
}

/// The first line of `text` that is a JSON object, parsed.
fn json_line(text: &str, what: &str) -> Value {
    text.lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{what}: no JSON summary line in\n{text}"))
}

fn steps(json: &Value) -> Vec<String> {
    json["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {json}"))
        .iter()
        .map(|s| s.as_str().expect("a step").to_string())
        .collect()
}

#[test]
fn the_demo_walks_the_whole_workflow_in_under_two_minutes() {
    let out_dir = temp_dir("demo_out_");
    let (code, text, took) = run_demo(out_dir.path());
    assert_eq!(code, 0, "the demo failed:\n{text}");
    assert!(
        took < DEMO_LIMIT,
        "the demo took {took:?}, the README says under {DEMO_LIMIT:?}:\n{text}"
    );

    // 1. An app database with data.
    let s = section(&text, "1.");
    let json = json_line(s, "step 1");
    assert_eq!(json["ok"], true, "{s}");
    assert_eq!(json["applied"], serde_json::json!(MIGRATIONS[..2]), "{s}");
    assert!(s.contains("users: 2000, orders: 10000"), "{s}");

    // 2. Status: two pending, exit 3.
    let s = section(&text, "2.");
    for pending in &MIGRATIONS[2..4] {
        assert!(s.contains(pending), "{pending} is listed pending:\n{s}");
    }
    assert!(s.contains("exit 3"), "{s}");

    // 3. Lint in the text view: exactly the one finding of that file, with its fix.
    let s = section(&text, "3.");
    assert!(s.contains("concurrently-without-if-not-exists"), "{s}");
    assert!(
        s.contains("CREATE INDEX CONCURRENTLY IF NOT EXISTS"),
        "the fix is shown:\n{s}"
    );
    assert!(!s.contains("missing-lock-timeout"), "only that file:\n{s}");
    assert!(
        !s.trim_start().starts_with("{\""),
        "the text view, not JSON:\n{s}"
    );

    // 4. migrate.sh deploy: every step, a verified backup, both migrations deployed.
    let s = section(&text, "4.");
    let json = json_line(s, "step 4");
    assert_eq!(json["exit_code"], 0, "{s}");
    assert_eq!(json["deployed"], serde_json::json!(MIGRATIONS[2..4]), "{s}");
    assert!(
        json["backup"]
            .as_str()
            .is_some_and(|b| b.starts_with("demo-")),
        "{s}"
    );
    assert_eq!(
        steps(&json),
        [
            "status=3",
            // No verified backup yet: preflight says so, the next steps take one.
            "preflight=1",
            "baseline-schema=0",
            "baseline-drift=0",
            "backup=0",
            "verify=0",
            "lint=0",
            "deploy=0",
            "schema=0",
            "drift=0",
            "status-after=0"
        ],
        "{s}"
    );
    assert!(s.contains("no recent verified backup yet"), "{s}");

    // 5. The migration that fails halfway: the deploy fails, the backup is restored, the
    // half-applied column is gone, the data is kept, the migration is pending again.
    let s = section(&text, "5.");
    let json = json_line(s, "step 5");
    assert_eq!(json["exit_code"], 1, "{s}");
    assert_eq!(json["error"], "MIGRATION_FAILED", "{s}");
    assert_eq!(json["restored"]["ok"], true, "{s}");
    assert!(json["restored"]["safety_backup"].is_string(), "{s}");
    assert_eq!(
        steps(&json),
        [
            "status=3",
            "preflight=0",
            "baseline-schema=0",
            "baseline-drift=0",
            "backup=0",
            "verify=0",
            "lint=0",
            "deploy=1",
            "restore=0",
            "status-after-restore=3"
        ],
        "{s}"
    );
    assert!(s.contains("is duplicated"), "the cause is shown:\n{s}");
    assert!(s.contains("the database was restored from backup"), "{s}");
    let s = section(&text, "   after the automatic restore");
    assert!(
        s.contains("\"handle\" columns: 0, users: 2000, orders: 10000"),
        "{s}"
    );
    assert!(s.contains(MIGRATIONS[4]) && s.contains("exit 3"), "{s}");
    let s = section(&text, "   the fix");
    let json = json_line(s, "the fix");
    assert_eq!(json["exit_code"], 0, "{s}");
    assert_eq!(json["deployed"], serde_json::json!([MIGRATIONS[4]]), "{s}");

    // 6. The HTML report, at the path it prints, holding every migration.
    let s = section(&text, "6.");
    let path = s
        .lines()
        .find_map(|l| l.strip_prefix("report written to "))
        .unwrap_or_else(|| panic!("no report path printed:\n{s}"));
    assert!(
        Path::new(path).starts_with(out_dir.path()),
        "{path} is in PGWARD_DEMO_OUT"
    );
    let html = std::fs::read_to_string(path).expect("the report exists");
    assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
    for name in MIGRATIONS {
        assert!(html.contains(name), "{name} is in the report {path}");
    }

    // 7. The rehearsal: the pending migrations on a restored copy, the plain index build
    // over the 1 ms budget (exit 3), named with the lint rule that predicted it; the
    // scratch database dropped, the demo database still behind.
    let s = section(&text, "7.");
    let json = json_line(s, "step 7");
    assert_eq!(json["exit_code"], 3, "{s}");
    assert_eq!(json["scratch_dropped"], true, "{s}");
    assert_eq!(
        json["deployed"],
        serde_json::json!(["20260125090000_index_order_total"]),
        "{s}"
    );
    assert!(
        s.lines().any(|l| l.starts_with(
            "20260125090000_index_order_total/migration.sql:1: CREATE INDEX \"Order_totalCents_idx\" ON \"Order\"(\"totalCents\") holds SHARE on "
        ) && l.ends_with("; blocks writes; see lint create-index-not-concurrently")),
        "{s}"
    );
    assert!(
        s.contains("demo itself still has it pending: [\"20260125090000_index_order_total\"]"),
        "{s}"
    );

    // The throwaway cluster is gone.
    let end = text
        .lines()
        .find(|l| l.starts_with("demo done in "))
        .unwrap_or_else(|| panic!("no closing line:\n{text}"));
    let dir = end
        .split_whitespace()
        .find(|w| w.starts_with("/tmp/pgward-demo."))
        .unwrap_or_else(|| panic!("the closing line names the cluster: {end}"));
    let gone = Instant::now() + Duration::from_secs(10);
    while Path::new(dir).exists() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!Path::new(dir).exists(), "{dir} was removed");
    eprintln!(
        "demo took {took:?}; report at {}",
        path_str(Path::new(path))
    );
}
