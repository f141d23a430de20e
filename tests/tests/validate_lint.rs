//! End-to-end tests of `pgward-validate lint`.
//!
//! Every rule of the catalogue (`pgward_validate::lint::Rule::all`) has a folder in
//! `tests/fixtures/lint/rules/<rule-id>/`: `bad.sql` triggers it at the line and column its
//! catalogue entry names, `good.sql` is its safe rewrite and must not (nor carry
//! any error), and optional `before*.sql` are earlier migrations linted first, for rules
//! that depend on what earlier files built. The real-world corpora prove the parser and
//! the rules hold up on whole Prisma histories; the rest pins the modes (files, `--all`,
//! pending migrations of a database), suppression, output formats and failures.

use std::path::PathBuf;

use pgward_tests::{cluster, corpus_history, fixtures_dir, path_str, run, run_in, Output};
use pgward_validate::lint::Rule;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn lint_fixtures() -> PathBuf {
    fixtures_dir().join("lint")
}

/// `pgward-validate lint <args...>`.
fn lint(args: &[&str]) -> Output {
    let mut all = vec!["lint"];
    all.extend_from_slice(args);
    run("validate", &all, &[])
}

/// The findings of an envelope, optionally only those of files ending in `file_suffix`.
fn findings<'a>(envelope: &'a Value, file_suffix: &str) -> Vec<&'a Value> {
    envelope["result"]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no result.findings in {envelope}"))
        .iter()
        .filter(|f| {
            f["file"]
                .as_str()
                .unwrap_or_default()
                .ends_with(file_suffix)
        })
        .collect()
}

/// `(rule, line, column)` of each finding.
fn places(findings: &[&Value]) -> Vec<(String, u64, u64)> {
    findings
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["line"].as_u64().unwrap_or_default(),
                f["column"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Lints the `before*.sql` of a rule folder, then `target`; returns the envelope.
fn lint_rule_file(rule: &str, target: &str) -> (Output, Value) {
    let dir = lint_fixtures().join("rules").join(rule);
    let mut before: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("before"))
        })
        .collect();
    before.sort();
    let target_path = dir.join(target);
    let mut args: Vec<&str> = before.iter().map(|p| path_str(p)).collect();
    args.push(path_str(&target_path));
    let out = lint(&args);
    let envelope = out.json();
    (out, envelope)
}

// ---------------------------------------------------------------------------------------
// Every rule: triggered where expected, silent on the safe rewrite
// ---------------------------------------------------------------------------------------

#[test]
fn every_rule_fires_on_its_unsafe_sql_and_not_on_the_safe_rewrite() {
    let fixture_rules: Vec<String> = std::fs::read_dir(lint_fixtures().join("rules"))
        .expect("rule fixtures exist")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    for rule in &fixture_rules {
        assert!(
            Rule::from_id(rule).is_some(),
            "fixture folder {rule} is no rule of the catalogue"
        );
    }
    let mut failures = Vec::new();
    // Every rule of the catalogue (validate/src/lint/checks/), and where `bad.sql` of its
    // fixture triggers it.
    for info in Rule::all() {
        let (rule, (line, column)) = (info.id, info.fires_at);
        let (line, column) = (line as u64, column as u64);
        let missing: Vec<&str> = ["bad.sql", "good.sql"]
            .into_iter()
            .filter(|f| !lint_fixtures().join("rules").join(rule).join(f).is_file())
            .collect();
        if !missing.is_empty() {
            failures.push(format!(
                "{rule}: no fixture {missing:?} in tests/fixtures/lint/rules/{rule}/ (a case that fires and its safe rewrite)"
            ));
            continue;
        }
        let (out, bad) = lint_rule_file(rule, "bad.sql");
        let hits = findings(&bad, "bad.sql");
        let ours: Vec<&Value> = hits.iter().copied().filter(|f| f["rule"] == rule).collect();
        if places(&ours) != vec![(rule.to_string(), line, column)] {
            failures.push(format!(
                "{rule}: bad.sql expected exactly one finding at {line}:{column}, got {:?}\n{out}",
                places(&hits)
            ));
            continue;
        }
        let finding = ours[0];
        for key in ["message", "why", "fix"] {
            if finding[key].as_str().unwrap_or_default().len() < 20 {
                failures.push(format!("{rule}: `{key}` says too little: {finding}"));
            }
        }
        let expected_exit = if hits.iter().any(|f| f["severity"] == "error") {
            1
        } else {
            0
        };
        if out.code != expected_exit {
            failures.push(format!(
                "{rule}: bad.sql exit {} (expected {expected_exit})\n{out}",
                out.code
            ));
        }

        let (out, good) = lint_rule_file(rule, "good.sql");
        let hits = findings(&good, "good.sql");
        if hits
            .iter()
            .any(|f| f["rule"] == rule || f["severity"] == "error")
        {
            failures.push(format!(
                "{rule}: the safe rewrite good.sql still has {:?}\n{out}",
                places(&hits)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn findings_carry_the_lock_and_the_shape_github_annotations_read() {
    let (_, envelope) = lint_rule_file("add-foreign-key-without-not-valid", "bad.sql");
    let finding = findings(&envelope, "bad.sql")[0];
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["object"], "\"Post\".\"Post_authorId_fkey\"");
    assert_eq!(
        finding["lock"],
        "SHARE ROW EXCLUSIVE on \"Post\" and \"User\""
    );
    assert!(
        finding["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("NOT VALID")
            && finding["fix"]
                .as_str()
                .unwrap_or_default()
                .contains("VALIDATE CONSTRAINT \"Post_authorId_fkey\";"),
        "{finding}"
    );
    assert_eq!(envelope["result"]["files"], 1);
    assert_eq!(envelope["result"]["statements"], 2);
    assert_eq!(envelope["result"]["suppressed"], 0);
    assert_eq!(
        envelope["result"]["totals"],
        serde_json::json!({"errors": 1, "warnings": 0, "infos": 0})
    );
    assert_eq!(envelope["error"]["code"], "CHECKS_FAILED");
}

#[test]
fn a_value_added_to_an_enum_created_in_the_same_transaction_is_not_usable_either() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("migration.sql");
    // PostgreSQL 13 to 16 refuse it too ("unsafe use of new value"; 17 accepts it): see
    // tests/enum_value_judgement.rs, which runs it on the server.
    std::fs::write(
        &file,
        "CREATE TYPE mood AS ENUM ('ok');\nALTER TYPE mood ADD VALUE 'meh' AFTER 'ok';\nCREATE TABLE t (m mood DEFAULT 'meh');\n",
    )
    .expect("write");
    let envelope = lint(&[path_str(&file)]).assert_code(1).json();
    assert_eq!(
        places(&findings(&envelope, "")),
        vec![("enum-value-used-in-same-transaction".to_string(), 3, 32)]
    );

    // Inside an explicit block the message says it fails under pgward-migrate too.
    std::fs::write(
        &file,
        "BEGIN;\nALTER TYPE mood ADD VALUE 'meh';\nUPDATE t SET m = 'meh' WHERE m IS NULL;\nCOMMIT;\n",
    )
    .expect("write");
    let envelope = lint(&[path_str(&file)]).assert_code(1).json();
    let used = findings(&envelope, "")
        .into_iter()
        .find(|f| f["rule"] == "enum-value-used-in-same-transaction")
        .unwrap_or_else(|| panic!("no enum finding in {envelope}"));
    assert_eq!(
        (used["line"].as_u64(), used["column"].as_u64()),
        (Some(3), Some(18))
    );
    assert!(
        used["why"]
            .as_str()
            .unwrap_or_default()
            .contains("pgward-migrate and Prisma alike"),
        "{used}"
    );
}

// ---------------------------------------------------------------------------------------
// Real-world histories
// ---------------------------------------------------------------------------------------

/// Lints the corpus history `project` with `--all`; its envelope, or `None` (after the
/// harness's "skipped" line) when the history is not present.
fn lint_corpus(project: &str) -> Option<(std::path::PathBuf, Value)> {
    let dir = corpus_history(project)?.join("migrations");
    let out = lint(&["--all", "--dir", path_str(&dir)]);
    assert!(
        out.code == 0 || out.code == 1,
        "{project}: exit {}\n{out}",
        out.code
    );
    let envelope = out.json();
    let local = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert_eq!(
        envelope["result"]["files"], local as u64,
        "{project}: every migration is linted"
    );
    let parse_errors: Vec<&Value> = findings(&envelope, "")
        .into_iter()
        .filter(|f| f["rule"] == "parse-error")
        .collect();
    assert!(parse_errors.is_empty(), "{project}: {parse_errors:?}");
    Some((dir, envelope))
}

#[test]
fn corpus_rallly_lints_without_parse_errors() {
    lint_corpus("lukevella__rallly");
}

#[test]
fn corpus_papermark_lints_without_parse_errors() {
    lint_corpus("mfts__papermark");
}

/// Whether a migration file holds exactly one statement (`--` comments and blank lines
/// aside) — a test-side reading of the corpus, good enough for its files, which hold no
/// `--` or `;` inside strings.
fn is_single_statement(sql: &str) -> bool {
    let code: Vec<&str> = sql
        .lines()
        .filter_map(|l| l.split("--").next())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = code.join(" ");
    joined.trim_end().trim_end_matches(';').matches(';').count() == 0
}

#[test]
fn corpus_langfuse_lints_and_leaves_single_statement_concurrently_files_alone() {
    let (dir, envelope) =
        lint_corpus("langfuse__langfuse").expect("langfuse's history is in tests/fixtures/corpus");
    let mut single = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("corpus folder").flatten() {
        let sql = std::fs::read_to_string(entry.path().join("migration.sql")).unwrap_or_default();
        if sql.to_uppercase().contains("CONCURRENTLY") && is_single_statement(&sql) {
            single.push(entry.file_name().into_string().expect("UTF-8 name"));
        }
    }
    assert!(
        single.len() >= 90,
        "expected the corpus's ~98 single-statement files, found {}",
        single.len()
    );
    let offending: Vec<&Value> = findings(&envelope, "")
        .into_iter()
        .filter(|f| {
            let file = f["file"].as_str().unwrap_or_default();
            let rule = f["rule"].as_str().unwrap_or_default();
            // The placement rules; `concurrently-without-if-not-exists` is about retrying
            // a failed build and fires on these files when they lack IF NOT EXISTS.
            matches!(
                rule,
                "concurrently-in-transaction" | "concurrently-in-multi-statement-file"
            ) && single
                .iter()
                .any(|name| file.contains(&format!("/{name}/")))
        })
        .collect();
    assert!(offending.is_empty(), "{offending:#?}");
}

// ---------------------------------------------------------------------------------------
// Suppression
// ---------------------------------------------------------------------------------------

#[test]
fn ignore_comments_suppress_their_statement_only_and_unknown_ids_warn() {
    let file = lint_fixtures().join("suppression.sql");
    let out = lint(&[path_str(&file)]);
    let envelope = out.assert_code(1).json();
    assert_eq!(
        places(&findings(&envelope, "")),
        vec![("create-index-not-concurrently".to_string(), 6, 1)],
        "{out}"
    );
    assert_eq!(envelope["result"]["suppressed"], 2);
    let warnings = envelope["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{out}");
    assert_eq!(warnings[0]["code"], "UNKNOWN_LINT_RULE");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("suppression.sql:5"),
        "{out}"
    );
}

#[test]
fn config_ignore_suppresses_a_rule_everywhere() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("pgward.toml"),
        "[lint]\nignore = [\"create-index-not-concurrently\", \"not-a-rule\"]\n",
    )
    .expect("write config");
    let file = lint_fixtures().join("suppression.sql");
    let out = run_in(dir.path(), "validate", &["lint", path_str(&file)], &[]);
    let envelope = out.assert_code(0).json();
    assert_eq!(places(&findings(&envelope, "")), vec![], "{out}");
    assert_eq!(envelope["result"]["suppressed"], 3);
    let codes: Vec<&str> = envelope["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        vec!["UNKNOWN_LINT_RULE", "UNKNOWN_LINT_RULE"],
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------
// Output, exit codes and failures
// ---------------------------------------------------------------------------------------

#[test]
fn github_format_prints_one_annotation_per_finding() {
    let rules = lint_fixtures().join("rules");
    let out = run_in(
        &rules,
        "validate",
        &[
            "lint",
            "--format",
            "github",
            "add-check-without-not-valid/bad.sql",
            "drop-table/bad.sql",
            "enum-add-value-without-position/bad.sql",
        ],
        &[],
    );
    out.assert_code(1);
    let annotations: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("::")).collect();
    // `::level properties::message`: the part before the message.
    let heads: Vec<&str> = annotations
        .iter()
        .map(|l| l[2..].find("::").map_or(*l, |end| &l[..end + 2]))
        .collect();
    assert_eq!(
        heads,
        vec![
            "::error file=add-check-without-not-valid/bad.sql,line=2,col=24,title=add-check-without-not-valid",
            "::warning file=drop-table/bad.sql,line=1,col=1,title=drop-table",
            "::warning file=drop-table/bad.sql,line=1,col=1,title=missing-lock-timeout",
            "::notice file=enum-add-value-without-position/bad.sql,line=1,col=1,title=enum-add-value-without-position",
        ],
        "{out}"
    );
    assert!(
        annotations[0].contains("::check constraint orders_total_positive is added to existing table orders without NOT VALID — ")
            && annotations[0].contains(" Fix: add it as `ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (...) NOT VALID;`"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("\nerror[CHECKS_FAILED]: lint found 1 error(s)"),
        "{out}"
    );
}

#[test]
fn warnings_exit_0_and_3_under_strict() {
    let file = lint_fixtures().join("rules/drop-column/bad.sql");
    lint(&[path_str(&file)]).assert_code(0);
    let out = lint(&["--strict", path_str(&file)]);
    let envelope = out.assert_code(3).json();
    assert_eq!(envelope["ok"], true, "{out}");
    assert_eq!(envelope["result"]["totals"]["warnings"], 1, "{out}");
}

#[test]
fn a_file_the_parser_rejects_is_an_error_finding_with_its_position() {
    let file = lint_fixtures().join("parse_error.sql");
    let out = lint(&[path_str(&file)]);
    let envelope = out.assert_code(1).json();
    let found = findings(&envelope, "");
    assert_eq!(
        places(&found),
        vec![("parse-error".to_string(), 2, 29)],
        "{out}"
    );
    let message = found[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("syntax error at or near \";\""), "{out}");
    assert_eq!(found[0]["severity"], "error");
    assert_eq!(envelope["error"]["code"], "CHECKS_FAILED");
}

#[test]
fn a_path_that_cannot_be_read_is_a_storage_error() {
    let folder = lint_fixtures().join("rules");
    let out = lint(&[path_str(&folder)]);
    let envelope = out.assert_code(7).json();
    assert_eq!(envelope["error"]["code"], "IO_ERROR", "{out}");
    let message = envelope["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot read") && message.contains("rules"),
        "{out}"
    );

    let missing = lint_fixtures().join("no-such-file.sql");
    let out = lint(&[path_str(&missing)]);
    let envelope = out.assert_code(7).json();
    assert_eq!(envelope["error"]["code"], "IO_ERROR", "{out}");
    assert!(
        envelope["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no-such-file.sql"),
        "{out}"
    );
    assert!(
        envelope["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("exists"),
        "{out}"
    );
}

#[test]
fn all_without_a_migrations_folder_is_a_usage_error() {
    let missing = lint_fixtures().join("no-such-folder");
    let out = lint(&["--all", "--dir", path_str(&missing)]);
    assert_eq!(
        out.assert_code(2).json()["error"]["code"],
        "MIGRATIONS_DIR_MISSING"
    );
}

// ---------------------------------------------------------------------------------------
// Default mode: the pending migrations of a database
// ---------------------------------------------------------------------------------------

#[test]
fn default_mode_lints_only_the_pending_migrations() {
    let db = cluster().create_database();
    let dir = lint_fixtures().join("pending");
    let url = db.url();
    let pending = |extra: &[&str]| {
        let mut args = vec!["--dir", path_str(&dir), "--database-url", url.as_str()];
        args.extend_from_slice(extra);
        lint(&args)
    };

    // Nothing applied: all three are pending, and the unconcurrent index is an error.
    let out = pending(&[]);
    let envelope = out.assert_code(1).json();
    assert_eq!(envelope["result"]["files"], 3, "{out}");
    assert_eq!(envelope["target"]["database"], db.name.as_str(), "{out}");

    // Two applied: only the third is linted, knowing what the first two built (the
    // VARCHAR(50) to VARCHAR(100) change is free), so only its warning remains.
    let deployed = run(
        "migrate",
        &[
            "deploy",
            "--dir",
            path_str(&dir),
            "--to",
            "20240102000000_email_index",
            "--database-url",
            &url,
        ],
        &[],
    );
    deployed.assert_code(0);
    let out = pending(&[]);
    let envelope = out.assert_code(0).json();
    assert_eq!(envelope["result"]["files"], 1, "{out}");
    assert_eq!(envelope["result"]["statements"], 3, "{out}");
    assert_eq!(
        places(&findings(&envelope, "")),
        vec![("drop-column".to_string(), 4, 21)],
        "{out}"
    );
    assert!(
        findings(&envelope, "")[0]["file"]
            .as_str()
            .unwrap_or_default()
            .ends_with("20240103000000_drop_nickname/migration.sql"),
        "{out}"
    );
    pending(&["--strict"]).assert_code(3);

    // All applied: nothing to lint.
    run(
        "migrate",
        &["deploy", "--dir", path_str(&dir), "--database-url", &url],
        &[],
    )
    .assert_code(0);
    let envelope = pending(&[]).assert_code(0).json();
    assert_eq!(envelope["result"]["files"], 0);
}

#[test]
fn default_mode_without_a_database_says_how_to_give_one() {
    let dir = lint_fixtures().join("pending");
    let out = lint(&["--dir", path_str(&dir)]);
    assert_eq!(
        out.assert_code(2).json()["error"]["code"],
        "NO_DATABASE_URL",
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------
// missing-lock-timeout: the locks that are easy to forget
// ---------------------------------------------------------------------------------------

/// Every write-blocking lock on a relation the file did not create counts for
/// `missing-lock-timeout` — also the referenced table of a foreign key from a new table,
/// triggers, views and policies — and locks on relations the file created, or no table
/// lock at all, do not.
#[test]
fn missing_lock_timeout_counts_every_write_blocking_lock_on_an_existing_relation() {
    let dir = pgward_tests::temp_dir("lint_locks_");
    // (file, SQL, the lock the finding names, or None for no finding)
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "fk_from_new_table",
            "CREATE TABLE \"Post\" (id int PRIMARY KEY, \"userId\" int NOT NULL);\n\
             ALTER TABLE \"Post\" ADD CONSTRAINT \"Post_userId_fkey\" FOREIGN KEY (\"userId\") REFERENCES \"User\"(id);\n",
            Some("SHARE ROW EXCLUSIVE on \"User\""),
        ),
        (
            "inline_fk_from_new_table",
            "CREATE TABLE \"Post\" (id int PRIMARY KEY, \"userId\" int REFERENCES \"User\"(id));\n",
            Some("SHARE ROW EXCLUSIVE on \"User\""),
        ),
        ("drop_trigger", "DROP TRIGGER audit ON orders;\n", Some("ACCESS EXCLUSIVE on orders")),
        (
            "create_trigger",
            "CREATE TRIGGER audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit();\n",
            Some("SHARE ROW EXCLUSIVE on orders"),
        ),
        (
            "replace_view",
            "CREATE OR REPLACE VIEW order_totals AS SELECT 1 AS total;\n",
            Some("ACCESS EXCLUSIVE on order_totals"),
        ),
        (
            "drop_and_create_view",
            "DROP VIEW IF EXISTS order_totals;\nCREATE VIEW order_totals AS SELECT 1 AS total;\n",
            Some("ACCESS EXCLUSIVE on order_totals"),
        ),
        ("create_policy", "CREATE POLICY mine ON orders USING (true);\n", Some("ACCESS EXCLUSIVE on orders")),
        (
            "alter_constraint",
            "ALTER TABLE orders ALTER CONSTRAINT orders_user_fkey DEFERRABLE;\n",
            Some("ACCESS EXCLUSIVE on orders"),
        ),
        (
            "fk_between_new_tables",
            "CREATE TABLE a (id int PRIMARY KEY);\nCREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a(id), parent int REFERENCES b(id));\n",
            None,
        ),
        ("new_view", "CREATE VIEW fresh AS SELECT 1 AS one;\n", None),
        ("enum_value", "ALTER TYPE \"Role\" ADD VALUE 'AUDITOR';\n", None),
        (
            "concurrently",
            "CREATE INDEX CONCURRENTLY orders_at_idx ON orders (at);\n",
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (name, sql, expected) in cases {
        let file = dir.path().join(format!("{name}.sql"));
        std::fs::write(&file, sql).expect("the file is written");
        let out = lint(&[path_str(&file)]);
        let envelope = out.json();
        let found: Vec<&Value> = findings(&envelope, "")
            .into_iter()
            .filter(|f| f["rule"] == "missing-lock-timeout")
            .collect();
        let locks: Vec<&str> = found.iter().filter_map(|f| f["lock"].as_str()).collect();
        match expected {
            Some(lock) if locks != [*lock] => failures.push(format!(
                "{name}: expected one finding for {lock}, got {locks:?}"
            )),
            None if !found.is_empty() => {
                failures.push(format!("{name}: expected no finding, got {locks:?}"))
            }
            _ => {}
        }
        let with_timeout = dir.path().join(format!("{name}_guarded.sql"));
        std::fs::write(&with_timeout, format!("SET lock_timeout = '5s';\n{sql}"))
            .expect("the file is written");
        let guarded = lint(&[path_str(&with_timeout)]).json();
        if findings(&guarded, "")
            .iter()
            .any(|f| f["rule"] == "missing-lock-timeout")
        {
            failures.push(format!("{name}: flagged although lock_timeout is set"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Rules judge an ALTER TABLE's subcommands in order, and know when a table must be
/// empty or a column all NULL: `(before, file, rule, expected severity or None)`.
#[test]
fn rules_follow_what_earlier_subcommands_and_statements_proved() {
    let dir = pgward_tests::temp_dir("lint_order_");
    let before = "CREATE TABLE t (id INTEGER NOT NULL, code TEXT NOT NULL);\nCREATE TABLE r (id BIGINT PRIMARY KEY);\n";
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        (
            "key_retyped_to_text",
            "ALTER TABLE t ALTER COLUMN id TYPE TEXT, ADD PRIMARY KEY (id);\n",
            "prefer-bigint-primary-key",
            None,
        ),
        (
            "key_retyped_to_integer",
            "ALTER TABLE t ALTER COLUMN code TYPE INTEGER USING code::integer, ADD PRIMARY KEY (code);\n",
            "prefer-bigint-primary-key",
            Some("warning"),
        ),
        (
            "fk_on_a_table_proven_empty",
            "ALTER TABLE t ADD COLUMN r_id BIGINT NOT NULL;\nALTER TABLE t ADD CONSTRAINT t_r_fkey FOREIGN KEY (r_id) REFERENCES r (id);\n",
            "add-foreign-key-without-not-valid",
            None,
        ),
        (
            "check_on_a_table_proven_empty",
            "ALTER TABLE t ADD COLUMN n INTEGER NOT NULL;\nALTER TABLE t ADD CONSTRAINT t_n_check CHECK (n > 0);\n",
            "add-check-without-not-valid",
            None,
        ),
        (
            "fk_on_a_column_all_null",
            "ALTER TABLE t ADD COLUMN r_id BIGINT;\nALTER TABLE t ADD CONSTRAINT t_r_fkey FOREIGN KEY (r_id) REFERENCES r (id);\n",
            "add-foreign-key-without-not-valid",
            Some("warning"),
        ),
        (
            "fk_on_a_column_with_values",
            "ALTER TABLE t ADD COLUMN r_id BIGINT DEFAULT 1;\nALTER TABLE t ADD CONSTRAINT t_r_fkey FOREIGN KEY (r_id) REFERENCES r (id);\n",
            "add-foreign-key-without-not-valid",
            Some("error"),
        ),
    ];
    let before_path = dir.path().join("0_before.sql");
    std::fs::write(&before_path, before).expect("written");
    let mut failures = Vec::new();
    for (name, sql, rule, expected) in cases {
        let file = dir.path().join(format!("1_{name}.sql"));
        std::fs::write(&file, format!("SET lock_timeout = '5s';\n{sql}")).expect("written");
        let envelope = lint(&[path_str(&before_path), path_str(&file)]).json();
        let found: Vec<&str> = findings(&envelope, &format!("1_{name}.sql"))
            .into_iter()
            .filter(|f| f["rule"] == *rule)
            .filter_map(|f| f["severity"].as_str())
            .collect();
        let expected: Vec<&str> = expected.iter().copied().collect();
        if found != expected {
            failures.push(format!(
                "{name}: {rule} expected {expected:?}, got {found:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `statements-after-commit` names the first statement doing work after each COMMIT that
/// ended earlier work: a file of three parts has two such boundaries.
#[test]
fn statements_after_commit_are_named_once_per_commit() {
    let dir = pgward_tests::temp_dir("lint_commit_");
    let file = dir.path().join("three_parts.sql");
    std::fs::write(
        &file,
        "SET lock_timeout = '5s';\nBEGIN;\nUPDATE a SET x = 1 WHERE id = 1;\nCOMMIT;\n\
         UPDATE a SET x = 2 WHERE id = 2;\nCOMMIT;\nUPDATE a SET x = 3 WHERE id = 3;\n",
    )
    .expect("written");
    let envelope = lint(&[path_str(&file)]).json();
    let lines: Vec<u64> = findings(&envelope, "")
        .into_iter()
        .filter(|f| f["rule"] == "statements-after-commit")
        .filter_map(|f| f["line"].as_u64())
        .collect();
    assert_eq!(lines, [5, 7], "{envelope}");
}
