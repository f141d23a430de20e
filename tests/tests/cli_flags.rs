//! Flags are defined once (`pgward_shared::cli` and `config`): a flag that several commands
//! or binaries take reads the same in every `--help`; `--tables` is also spelled `--table`
//! wherever a command takes it; and the exit-code line of each `--help` is the one
//! `pgward_shared::error::Exit` defines, not a hand-written copy.

use std::collections::BTreeMap;

use pgward_shared::error::Exit;
use pgward_tests::{cluster, path_str, restore_into_new_database, run, temp_dir};
use serde_json::Value;

const TOOLS: [&str; 5] = ["migrate", "backup", "restore", "validate", "report"];

/// Flags that mean something else in one command than elsewhere, by design: the seeds
/// folder of `seed` (the migrations folder elsewhere), the migration `deploy` and
/// `rollback` stop at (a backup location elsewhere), the single backup `restore` reads
/// (a location elsewhere), `report`'s list lengths, and `app-health`'s GET attempts (a
/// migration's lock-timeout retries in deploy).
const DIFFERENT_MEANING: &[(&str, &str, &str)] = &[
    ("migrate", "seed", "--dir"),
    ("migrate", "deploy", "--to"),
    ("migrate", "rollback", "--to"),
    ("restore", "", "--from"),
    ("restore", "restore", "--from"),
    ("report", "health", "--limit"),
    ("report", "audit", "--limit"),
    ("report", "app-health", "--retries"),
    // deploy's traces the deploy; lint's runs the files on a shadow to check the findings.
    ("validate", "lint", "--trace"),
];

/// The commands of a binary, as its `--help` lists them.
fn commands(tool: &str) -> Vec<String> {
    let help = run(tool, &["--help"], &[]);
    help.assert_code(0);
    help.stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Each option of a `--help` with its help text, wrapping and indentation undone (the
/// column clap wraps at depends on the longest flag of the command).
fn options(help: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in help.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if !line.is_empty() && indent == 0 {
            // A heading (Options:, Examples:, ...): what follows belongs to no flag yet.
            if let Some((flag, words)) = current.take() {
                found.insert(flag, words.join(" "));
            }
            continue;
        }
        if (2..=6).contains(&indent) && text.starts_with('-') {
            if let Some((flag, words)) = current.take() {
                found.insert(flag, words.join(" "));
            }
            // `-q, --quiet`, `--dir <PATH>  Migrations folder ...`
            let mut parts = text.split_whitespace().peekable();
            let mut flag = String::new();
            while let Some(part) = parts.peek() {
                let part = part.trim_end_matches(',');
                if part.starts_with("--") {
                    flag = part.split('=').next().unwrap_or(part).to_string();
                } else if !(part.starts_with('-') || part.starts_with('<') || part == "...") {
                    break;
                }
                parts.next();
            }
            current = Some((flag, parts.map(str::to_string).collect()));
        } else if let Some((_, words)) = current.as_mut() {
            words.extend(text.split_whitespace().map(str::to_string));
        }
    }
    if let Some((flag, words)) = current {
        found.insert(flag, words.join(" "));
    }
    found
}

#[test]
fn a_flag_reads_the_same_in_every_help_that_has_it() {
    // flag -> help text -> where it is shown
    let mut seen: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut helps = 0;
    for tool in TOOLS {
        let mut places = vec![String::new()];
        places.extend(commands(tool));
        assert!(places.len() > 1, "pgward-{tool} lists its commands");
        for command in places {
            let args: Vec<&str> = [command.as_str(), "--help"]
                .into_iter()
                .filter(|a| !a.is_empty())
                .collect();
            let out = run(tool, &args, &[]);
            out.assert_code(0);
            helps += 1;
            for (flag, text) in options(&out.stdout) {
                if flag.is_empty() || flag == "--help" || flag == "--version" {
                    continue;
                }
                assert!(!text.is_empty(), "pgward-{tool} {command}: {flag} has help");
                if DIFFERENT_MEANING.contains(&(tool, command.as_str(), flag.as_str())) {
                    continue;
                }
                seen.entry(flag)
                    .or_default()
                    .entry(text)
                    .or_default()
                    .push(format!("pgward-{tool} {command}"));
            }
        }
    }
    assert!(helps >= 20, "every command's help was read ({helps})");
    for shared in [
        "--dir",
        "--jobs",
        "--from",
        "--to",
        "--tables",
        "--lock-timeout",
        "--statement-timeout",
        "--dry-run",
        "--strict",
        "--s3-endpoint",
        "--sse",
        "--force",
        "--format",
        "--no-large-objects",
    ] {
        let texts = seen
            .get(shared)
            .unwrap_or_else(|| panic!("{shared} is in some help"));
        let places: usize = texts.values().map(Vec::len).sum();
        assert!(places >= 2, "{shared} is shared: {texts:#?}");
    }
    let differing: Vec<_> = seen.iter().filter(|(_, texts)| texts.len() > 1).collect();
    assert!(
        differing.is_empty(),
        "flags with more than one help text: {differing:#?}"
    );
}

/// The text `Exit` gives a class, as a `--help` lists it: "3 needs attention".
fn class_text(exit: Exit) -> String {
    format!("{} {}", exit.code(), exit.summary())
}

/// The `Exit codes: ...` sentence of a help, unwrapped: clap wraps long paragraphs.
fn exit_sentence(what: &str, help: &str) -> String {
    let lines: Vec<&str> = help.lines().map(str::trim).collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("Exit codes: "))
        .collect();
    assert_eq!(starts.len(), 1, "{what} has one exit-code line:\n{help}");
    let paragraph = lines[starts[0]..]
        .iter()
        .take_while(|l| !l.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    // The sentence ends at the first full stop outside the parentheses of a note.
    let mut depth = 0;
    let end = paragraph
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            c == '.' && depth == 0
        })
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{what}: the exit-code line ends with a full stop: {paragraph}"));
    paragraph[..=end].to_string()
}

/// The classes an `Exit codes: ...` line lists, checked item by item against `Exit`.
fn exit_line_classes(what: &str, help: &str) -> Vec<Exit> {
    let line = exit_sentence(what, help);
    let items = line
        .strip_prefix("Exit codes: ")
        .and_then(|l| l.strip_suffix('.'))
        .unwrap_or_else(|| panic!("{what}: {line}"));
    let mut classes = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let exit = Exit::ALL
            .into_iter()
            .find(|e| {
                rest.strip_prefix(&class_text(*e))
                    .is_some_and(|after| after.is_empty() || after.starts_with([',', ' ']))
            })
            .unwrap_or_else(|| panic!("{what}: `{rest}` starts with no class of Exit"));
        rest = &rest[class_text(exit).len()..];
        // A note on what the class means for this command, in parentheses.
        if let Some(noted) = rest.strip_prefix(" (") {
            let close = noted.find(')').unwrap_or_else(|| panic!("{what}: {rest}"));
            rest = &noted[close + 1..];
        }
        rest = rest.strip_prefix(", ").unwrap_or(rest);
        classes.push(exit);
    }
    let codes: Vec<i32> = classes.iter().map(|e| e.code()).collect();
    assert!(
        codes.windows(2).all(|w| w[0] < w[1]),
        "{what}: {codes:?} in order"
    );
    assert_eq!(
        line,
        pgward_shared::cli::exit_codes_noted(&classes, &notes(&line, &classes)),
        "{what}"
    );
    classes
}

/// The notes of an exit-code line, so that the line can be rebuilt.
fn notes<'a>(line: &'a str, classes: &[Exit]) -> Vec<(Exit, &'a str)> {
    classes
        .iter()
        .filter_map(|&exit| {
            let start = line.find(&format!("{} (", class_text(exit)))? + class_text(exit).len() + 2;
            let end = start + line[start..].find(')')?;
            Some((exit, &line[start..end]))
        })
        .collect()
}

#[test]
fn each_help_lists_its_exit_codes_as_exit_defines_them() {
    for tool in TOOLS {
        let out = run(tool, &["--help"], &[]);
        out.assert_code(0);
        let classes = exit_line_classes(&format!("pgward-{tool} --help"), &out.stdout);
        // Every binary can be called wrongly, fail to connect or be interrupted.
        for always in [Exit::Success, Exit::Usage, Exit::Connect, Exit::Interrupted] {
            assert!(
                classes.contains(&always),
                "pgward-{tool} lists {}",
                class_text(always)
            );
        }
    }
    // Backups live in storage; a migration history never does.
    let backup = exit_line_classes("backup", &run("backup", &["--help"], &[]).stdout);
    assert!(backup.contains(&Exit::Storage) && backup.contains(&Exit::Integrity));
    let migrate = exit_line_classes("migrate", &run("migrate", &["--help"], &[]).stdout);
    assert!(!migrate.contains(&Exit::Storage) && migrate.contains(&Exit::Attention));
    // A command whose codes mean something particular says what, in the same words.
    let status = run("migrate", &["status", "--help"], &[]);
    assert_eq!(
        exit_line_classes("migrate status", &status.stdout),
        [Exit::Success, Exit::Attention, Exit::Integrity]
    );
    assert!(status
        .stdout
        .contains(&format!("{} (pending)", class_text(Exit::Attention))));
    let drift = run("validate", &["drift", "--help"], &[]);
    assert_eq!(
        exit_line_classes("validate drift", &drift.stdout),
        [Exit::Success, Exit::Attention, Exit::Refused]
    );
}

/// The tables a backup (or its dry run) reports, by name.
fn table_names(tables: &Value) -> Vec<String> {
    tables
        .as_array()
        .unwrap_or_else(|| panic!("a list of tables: {tables}"))
        .iter()
        .map(|t| t["table"].as_str().expect("a table name").to_string())
        .collect()
}

#[test]
fn tables_is_also_spelled_table_in_backup_and_restore() {
    let db = cluster().create_database();
    db.psql(
        "CREATE TABLE alpha (id int); INSERT INTO alpha VALUES (1);
         CREATE TABLE beta (id int); INSERT INTO beta VALUES (2);",
    );
    let root = temp_dir("cli_flags_");
    let url = db.url();
    let to = path_str(root.path());
    let tools = cluster().pg_tools_env();
    let backup = |extra: &[&str]| {
        let mut args = vec!["backup", "--to", to, "--database-url", &url];
        args.extend_from_slice(extra);
        let out = run("backup", &args, &tools);
        out.assert_code(0);
        out.json()
    };
    for spelling in ["--table", "--tables"] {
        let planned = backup(&["--dry-run", spelling, "alpha"]);
        assert_eq!(
            table_names(&planned["result"]["tables"]),
            ["public.alpha"],
            "{spelling}: {planned}"
        );
    }
    // Several patterns after one flag, as restore always took them, and the flag repeated.
    for patterns in [
        &["--tables", "alpha", "beta"][..],
        &["--table", "alpha", "--table", "beta"][..],
    ] {
        let planned = backup(&[&["--dry-run"][..], patterns].concat());
        assert_eq!(
            table_names(&planned["result"]["tables"]),
            ["public.alpha", "public.beta"],
            "{patterns:?}: {planned}"
        );
    }

    let taken = backup(&[]);
    let id = taken["result"]["id"].as_str().expect("an id");
    assert_eq!(
        table_names(&taken["result"]["tables"]),
        ["public.alpha", "public.beta"]
    );
    let from = format!("{to}/{id}");
    for spelling in ["--table", "--tables"] {
        let target = cluster().vacant_database();
        let out = restore_into_new_database(&db, &from, &target, &[spelling, "beta"]);
        out.assert_code(0);
        let json = out.json();
        assert_eq!(
            table_names(&json["result"]["load"]["tables"]),
            ["public.beta"],
            "{spelling}: {out}"
        );
        assert_eq!(
            target.query_one_string("SELECT count(*)::text FROM alpha"),
            "0"
        );
        assert_eq!(
            target.query_one_string("SELECT count(*)::text FROM beta"),
            "1"
        );
    }
}

/// A `--tables` pattern that selects no table is refused before anything is written or
/// touched: a typo, or a command word read as a pattern (`--tables a backup …`, since the
/// patterns run up to the next flag), would otherwise quietly leave tables out.
#[test]
fn a_tables_pattern_that_matches_nothing_is_refused_in_backup_and_restore() {
    let db = cluster().create_database();
    db.psql(
        "CREATE TABLE alpha (id int); INSERT INTO alpha VALUES (1);
         CREATE TABLE beta (id int); INSERT INTO beta VALUES (2);",
    );
    let root = temp_dir("cli_flags_unmatched_");
    let url = db.url();
    let to = path_str(root.path());
    let tools = cluster().pg_tools_env();
    for args in [
        // A typo among good patterns.
        &[
            "backup",
            "--to",
            to,
            "--database-url",
            &url,
            "--tables",
            "alpha",
            "bta",
        ][..],
        // The command word after the patterns: read as a pattern, not as the command.
        &[
            "--tables",
            "alpha",
            "backup",
            "--to",
            to,
            "--database-url",
            &url,
        ][..],
    ] {
        let out = run("backup", args, &tools);
        let json = out.assert_error(2, "USAGE");
        let unmatched = if args[0] == "backup" { "bta" } else { "backup" };
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("--tables {unmatched} matches no table"))),
            "the message names the pattern that matched nothing\n{out}"
        );
        assert_eq!(
            std::fs::read_dir(root.path())
                .map(|d| d.count())
                .unwrap_or(0),
            0,
            "nothing was written for a refused backup\n{out}"
        );
    }

    let out = run(
        "backup",
        &["backup", "--to", to, "--database-url", &url],
        &tools,
    );
    out.assert_code(0);
    let id = out.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let from = format!("{to}/{id}");
    let target = cluster().vacant_database();
    let out = restore_into_new_database(&db, &from, &target, &["--tables", "beta", "alhpa"]);
    let json = out.assert_error(2, "USAGE");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--tables alhpa matches no table of backup")),
        "{out}"
    );
    assert_eq!(
        db.query_one_string(&format!(
            "SELECT count(*)::text FROM pg_database WHERE datname = '{}'",
            target.name
        )),
        "0",
        "the refused restore created no database\n{out}"
    );
}
