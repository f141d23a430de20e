//! Snapshots of the `--format text` views: what varies from run to run, as insta filters
//! (`insta::with_settings!({filters => TEXT_FILTERS.to_vec()}, { ... })`), and the text
//! itself with temp paths redacted and the tables that hold such values squeezed.

use std::sync::OnceLock;

use regex::Regex;

use crate::{redact_temp_paths, Output};

/// Regex and replacement, applied in order: backup ids (they hold the database's name and
/// the snapshot's second), test database names, ports, timestamps, rates, durations and
/// ages (also as humantime writes them: `26h`), and the sizes that include a backup's manifest (it records timings).
pub const TEXT_FILTERS: &[(&str, &str)] = &[
    (r"\b[A-Za-z0-9_-]+-\d{8}T\d{6}Z(?:-\d+)?\b", "[ID]"),
    (r"\bt_\d+_\d+(?:_[a-z0-9_]+)?\b", "[DB]"),
    (r"(127\.0\.0\.1|localhost):\d+", "[HOST]"),
    (
        r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?(?: UTC)?",
        "[TIME]",
    ),
    (r"[\d.,]+ (?:B|KiB|MiB|GiB|rows)/s\b", "[RATE]"),
    (
        r"\b\d+(?:\.\d+)? (?:ms|s|min|h|d)(?: \d+ (?:s|min|h))?\b",
        "[DUR]",
    ),
    (r"\b\d+(?:\.\d+)?(?:ms|s|m|min|h|d)\b", "[DUR]"),
    (r"(\[ID\].*?)\b\d+(?:\.\d+)? (?:B|KiB|MiB)\b", "${1}[SIZE]"),
    (
        r"\b\d+(?:\.\d+)? (?:B|KiB|MiB) in (all|\d+ files?)\b",
        "[SIZE] in $1",
    ),
    (r" \(\d+(?:\.\d+)? (?:B|KiB|MiB)\)\n", " ([SIZE])\n"),
];

fn volatile() -> &'static [Regex] {
    static RES: OnceLock<Vec<Regex>> = OnceLock::new();
    RES.get_or_init(|| {
        TEXT_FILTERS
            .iter()
            .map(|(re, _)| Regex::new(re).expect("a filter is a regex"))
            .collect()
    })
}

/// stdout of a `--format text` run, temp paths redacted; panics when it is a JSON
/// document (the text view was not used), holds an escape sequence (it was piped) or has
/// a line of prose wider than [`PROSE_WIDTH`] ([`assert_prose_fits`]). Wrapped prose is
/// joined again (where a message breaks depends on the width of a port or a name).
///
/// A table with a value the filters replace has columns as wide as that run's values, so
/// its runs of spaces become two and its header's underline three dashes: the snapshot
/// keeps its cells and their order, and tests assert the alignment on the text as printed.
/// Every other line is kept as printed.
pub fn text_view(out: &Output) -> String {
    assert!(
        !out.stdout.trim_start().starts_with('{'),
        "a JSON document instead of the text view:\n{out}"
    );
    assert!(
        !out.stdout.contains('\u{1b}'),
        "escape sequences on a pipe:\n{out}"
    );
    assert_prose_fits(&out.stdout);
    let text = redact_temp_paths(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let spaces = Regex::new(" {2,}").expect("a regex");
    let mut kept: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let underlined = lines
            .get(i + 1)
            .is_some_and(|l| l.trim().starts_with('─') && l.trim().chars().all(|c| c == '─'));
        if !underlined {
            // A continuation of prose the view wrapped (indented by four or more): joined
            // again, since where a line breaks depends on the width of what varies.
            match kept.last_mut() {
                Some(last) if lines[i].starts_with("    ") && !lines[i].trim().is_empty() => {
                    last.push(' ');
                    last.push_str(lines[i].trim());
                }
                _ => kept.push(lines[i].to_string()),
            }
            i += 1;
            continue;
        }
        // A table: header, underline, rows up to a line that is not indented or a blank.
        let end = (i + 2..lines.len())
            .find(|&j| !lines[j].starts_with("  ") || lines[j].trim().is_empty())
            .unwrap_or(lines.len());
        let block = &lines[i..end];
        let varies = block
            .iter()
            .any(|l| volatile().iter().any(|re| re.is_match(l)));
        for (k, line) in block.iter().enumerate() {
            kept.push(match (varies, k) {
                (false, _) => line.to_string(),
                (true, 1) => "  ───".to_string(),
                (true, _) => format!("  {}", spaces.replace_all(line.trim(), "  ")),
            });
        }
        i = end;
    }
    let mut squeezed = kept.join("\n");
    if text.ends_with('\n') {
        squeezed.push('\n');
    }
    squeezed
}

/// Widest a line of a view's prose may be; tables and the commands under `Next` may be
/// wider (a terminal scrolls them; a command is copied whole).
pub const PROSE_WIDTH: usize = 100;

/// Asserts every line of `view` outside its tables and its `Next` commands fits in
/// [`PROSE_WIDTH`] columns.
pub fn assert_prose_fits(view: &str) {
    let lines: Vec<&str> = view.lines().collect();
    let mut in_block = false;
    for (i, line) in lines.iter().enumerate() {
        let underlined = lines
            .get(i + 1)
            .is_some_and(|l| l.trim_start().starts_with('─'));
        if underlined || *line == "Next" {
            in_block = true;
        } else if !line.starts_with("  ") {
            in_block = false;
        }
        assert!(
            in_block || line.chars().count() <= PROSE_WIDTH,
            "a line wider than {PROSE_WIDTH} columns:\n{line}\nin\n{view}"
        );
    }
}
