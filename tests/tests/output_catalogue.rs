//! The output contract's catalogue (`pgward_shared::codes`) and its documentation agree:
//! `docs/errors.md` lists every error code with the exit code the catalogue gives it, and
//! every warning code, and nothing the catalogue no longer has. And the catalogue is the
//! only place a code is spelled: no binary or module writes one as a string literal.
//! The shell scripts' own codes are documented in `docs/scripts.md`, each once, and that
//! page lists none the scripts no longer print. Last, the warnings a migration state
//! deserves are worded once: deploy, `report
//! migrations` and drift, run on one database, say the same of the same migration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pgward_shared::codes::{ErrorCode, WarningCode};
use pgward_tests::{
    cluster, path_str, run, temp_dir, workspace_root, write_migration, write_migrations, Output,
};
use serde_json::Value;

/// `docs/errors.md`'s two tables: the codes of each row's first cell (a row may name
/// several, `` `IO_ERROR`, `PERMISSION_DENIED` ``) with the row's second cell (the exit
/// code in the error table, the meaning in the warning table). A code that appears in
/// several rows (warnings documented per command) keeps each second cell.
fn documented(section: &str) -> BTreeMap<String, Vec<String>> {
    let mut codes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "| `CODE` | ... |" splits into ["", "`CODE`", ..., ""].
        let (Some(first), Some(second)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        if !first.starts_with('`') {
            continue;
        }
        for code in first.split(',').map(|c| c.trim().trim_matches('`')) {
            codes
                .entry(code.to_string())
                .or_default()
                .push(second.to_string());
        }
    }
    codes
}

fn errors_md() -> (String, String) {
    let path = workspace_root().join("docs/errors.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let (errors, warnings) = text
        .split_once("## Warning codes")
        .expect("docs/errors.md has a `## Warning codes` section after the error table");
    (errors.to_string(), warnings.to_string())
}

/// What the docs lack and what they list beyond the catalogue, as one message.
fn compare(kind: &str, catalogue: &BTreeSet<String>, docs: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for code in catalogue.difference(docs) {
        problems.push(format!(
            "docs/errors.md lacks the {kind} code {code}, which the catalogue has"
        ));
    }
    for code in docs.difference(catalogue) {
        problems.push(format!(
            "docs/errors.md lists the {kind} code {code}, which the catalogue no longer has"
        ));
    }
    problems
}

#[test]
fn docs_errors_md_lists_exactly_the_catalogues_codes_with_their_exit_codes() {
    let (errors_section, warnings_section) = errors_md();
    let errors = documented(&errors_section);
    let warnings = documented(&warnings_section);
    assert!(
        errors.len() > 40 && warnings.len() > 30,
        "the tables were read: {} error and {} warning codes",
        errors.len(),
        warnings.len()
    );

    let error_codes: BTreeSet<String> = ErrorCode::ALL.iter().map(|c| c.to_string()).collect();
    let warning_codes: BTreeSet<String> = WarningCode::ALL.iter().map(|c| c.to_string()).collect();
    let mut problems = compare("error", &error_codes, &errors.keys().cloned().collect());
    problems.extend(compare(
        "warning",
        &warning_codes,
        &warnings.keys().cloned().collect(),
    ));
    for code in ErrorCode::ALL {
        let exit = code.exit().code().to_string();
        if let Some(cells) = errors.get(code.as_str()) {
            if cells.iter().any(|c| *c != exit) {
                problems.push(format!(
                    "docs/errors.md gives {code} the exit code {cells:?}; the catalogue gives {exit}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_comparison_catches_a_missing_and_a_stale_code() {
    // The check above compares sets; prove it reports both directions on a doctored copy.
    let (errors_section, _) = errors_md();
    let doctored = errors_section
        .replace("| `LOCK_HELD` |", "| `LOCK_HELD_GONE` |")
        .replace("| `USAGE` | 2 |", "| `USAGE` | 9 |");
    let docs: BTreeSet<String> = documented(&doctored).keys().cloned().collect();
    let catalogue: BTreeSet<String> = ErrorCode::ALL.iter().map(|c| c.to_string()).collect();
    let problems = compare("error", &catalogue, &docs);
    assert_eq!(
        problems,
        [
            "docs/errors.md lacks the error code LOCK_HELD, which the catalogue has",
            "docs/errors.md lists the error code LOCK_HELD_GONE, which the catalogue no longer has",
        ]
    );
    assert_eq!(documented(&doctored)["USAGE"], ["9"]);
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_code_is_spelled_outside_the_catalogue() {
    let root = workspace_root();
    let mut files = Vec::new();
    for krate in [
        "shared", "migrate", "backup", "restore", "validate", "report",
    ] {
        rust_files(&root.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 50, "the sources were found: {}", files.len());
    let catalogue = root.join("shared/src/codes.rs");
    let codes: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(WarningCode::ALL.iter().map(|c| c.as_str()))
        .collect();
    let mut spelled = Vec::new();
    for file in files.iter().filter(|f| **f != catalogue) {
        let text = std::fs::read_to_string(file).expect("a readable source file");
        // Unit tests (the `mod tests` a file ends with) may write codes as the JSON shows
        // them: they check the contract.
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for c in &codes {
            if code.contains(&format!("\"{c}\"")) {
                spelled.push(format!(
                    "{} writes \"{c}\": use the catalogue's constant",
                    file.strip_prefix(&root).unwrap_or(file).display()
                ));
            }
        }
    }
    assert!(spelled.is_empty(), "{}", spelled.join("\n"));
}

/// The messages of the warnings with `code` in a run's envelope.
fn messages(out: &Output, code: WarningCode) -> Vec<String> {
    out.json()["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings array\n{out}"))
        .iter()
        .filter(|w| w["code"] == code.as_str())
        .filter_map(|w| w["message"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn deploy_report_and_drift_word_a_migration_state_alike() {
    let db = cluster().create_database();
    let url = db.url();
    let tmp = temp_dir("output_catalogue_state_");
    let dir = tmp.path().join("migrations");
    let write = |name: &str, sql: &str| write_migration(&dir, name, sql, None);
    write_migrations(
        &dir,
        &[
            ("20240101000000_a", "CREATE TABLE a (id int);\n"),
            ("20240102000000_b", "CREATE TABLE b (id int);\n"),
        ],
    );
    let d = path_str(&dir);
    db.deploy(&dir);

    // a edited (a comment: the schema it makes is the same), b gone, c pending.
    write(
        "20240101000000_a",
        "-- reviewed\nCREATE TABLE a (id int);\n",
    );
    std::fs::remove_dir_all(dir.join("20240102000000_b")).expect("b can be removed");
    write("20240103000000_c", "CREATE TABLE c (id int);\n");

    let deploy = run(
        "migrate",
        &["deploy", "--dry-run", "--dir", d, "--database-url", &url],
        &[],
    );
    deploy.assert_code(0);
    let report = run(
        "report",
        &["migrations", "--dir", d, "--database-url", &url],
        &[],
    );
    report.assert_code(0);
    let drift = run(
        "validate",
        &["drift", "--dir", d, "--database-url", &url],
        &[],
    );
    // Exit 3: b, applied but gone from the folder, is a difference.
    let drift_json: Value = drift.json();
    assert_eq!(drift_json["ok"], true, "{drift}");

    let edited = "migration `20240101000000_a` was edited after it was applied";
    let missing = "migration `20240102000000_b` is applied but missing from the migrations folder";
    assert_eq!(
        messages(&deploy, WarningCode::EditedMigration),
        [format!("{edited} (checksum differs)")],
        "{deploy}"
    );
    assert_eq!(
        messages(&report, WarningCode::EditedMigration),
        messages(&deploy, WarningCode::EditedMigration),
        "{report}"
    );
    assert_eq!(
        messages(&deploy, WarningCode::MissingMigration),
        [missing],
        "{deploy}"
    );
    assert_eq!(
        messages(&report, WarningCode::MissingMigration),
        [missing],
        "{report}"
    );
    assert_eq!(
        messages(&report, WarningCode::PendingMigrations),
        ["1 migration(s) pending: 20240103000000_c"],
        "{report}"
    );
    assert!(
        messages(&deploy, WarningCode::PendingMigrations).is_empty(),
        "deploy applies pending migrations; it does not warn of them\n{deploy}"
    );
    let drift_edited = messages(&drift, WarningCode::EditedMigration);
    assert_eq!(drift_edited.len(), 1, "{drift}");
    assert!(
        drift_edited[0].starts_with(&format!("{edited}; the shadow replays")),
        "{drift}"
    );
}

/// The codes the shell scripts print themselves, as they write them: `pgw_fail EXIT CODE`,
/// `pgw_error_json CODE`, `pgw_warn CODE`, `pgw_command_step NAME TOOL CODE`, `code=CODE`
/// and jq's `code: "CODE"`; with the exit code where the call gives one.
fn script_codes() -> BTreeMap<String, Option<String>> {
    let forms = [
        r#"pgw_fail ([0-9]+) "?([A-Z][A-Z0-9_]+)"#,
        r#"pgw_error_json "?([A-Z][A-Z0-9_]+)"#,
        r#"pgw_warn "?([A-Z][A-Z0-9_]+)"#,
        r#"pgw_command_step "?[^ ]+"? [a-z_]+ ([A-Z][A-Z0-9_]+)"#,
        r#"\bcode=([A-Z][A-Z0-9_]+)"#,
        r#"code: "([A-Z][A-Z0-9_]+)""#,
    ]
    .map(|f| regex::Regex::new(f).expect("a valid pattern"));
    let mut codes = BTreeMap::new();
    let dir = workspace_root().join("scripts");
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in [dir.clone(), dir.join("lib")] {
        for entry in std::fs::read_dir(&sub).expect("scripts/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_some_and(|e| e == "sh") {
                files.push(path);
            }
        }
    }
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a script is readable");
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            for form in &forms {
                for caps in form.captures_iter(line) {
                    let (code, exit) = match caps.len() {
                        3 => (caps[2].to_string(), Some(caps[1].to_string())),
                        _ => (caps[1].to_string(), None),
                    };
                    let known = codes.entry(code).or_insert(None);
                    if exit.is_some() {
                        *known = exit;
                    }
                }
            }
        }
    }
    codes
}

/// Every code the scripts print is documented, once: in `docs/scripts.md`'s "The
/// scripts' own codes" section (with the exit code a `pgw_fail` gives it), or, when the
/// binaries print it too, in the catalogue. And that section lists nothing the scripts no
/// longer print.
#[test]
fn every_code_the_scripts_print_is_documented_and_nothing_else() {
    let path = workspace_root().join("docs/scripts.md");
    let text = std::fs::read_to_string(&path).expect("docs/scripts.md is readable");
    let section = text
        .split_once("## The scripts' own codes")
        .and_then(|(_, rest)| rest.split("\n## ").next())
        .expect("docs/scripts.md has a section `## The scripts' own codes`");
    let table = documented(section);
    let warnings: BTreeSet<String> = section
        .split_once("Warnings:")
        .map(|(_, w)| {
            regex::Regex::new(r"`([A-Z][A-Z0-9_]+)`")
                .expect("a valid pattern")
                .captures_iter(w)
                .map(|c| c[1].to_string())
                .collect()
        })
        .unwrap_or_default();
    let printed = script_codes();
    assert!(
        printed.contains_key("HOOK_FAILED") && printed.contains_key("TOOL_MISSING"),
        "the scan finds the scripts' codes: {printed:?}"
    );
    let mut problems = Vec::new();
    for (code, exit) in &printed {
        let in_catalogue = ErrorCode::parse(code).is_some() || WarningCode::parse(code).is_some();
        match table.get(code) {
            Some(exits) => {
                if let Some(exit) = exit {
                    if !exits.iter().any(|e| e == exit || e.contains("the ")) {
                        problems.push(format!(
                            "a script exits {exit} with {code}; docs/scripts.md says {exits:?}"
                        ));
                    }
                }
            }
            None if warnings.contains(code) || in_catalogue => {}
            None => problems.push(format!(
                "the scripts print {code}, which neither docs/scripts.md's codes section nor the catalogue documents"
            )),
        }
    }
    for code in table.keys().chain(&warnings) {
        let in_catalogue = ErrorCode::parse(code).is_some() || WarningCode::parse(code).is_some();
        if !printed.contains_key(code) && !in_catalogue {
            problems.push(format!(
                "docs/scripts.md lists {code}, which no script prints any more"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
