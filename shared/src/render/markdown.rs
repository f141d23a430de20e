//! `--format markdown`: for pull-request comments and CI step summaries
//! (`>> "$GITHUB_STEP_SUMMARY"`). GitHub-flavoured: tables for rows, every text escaped so
//! a migration or table name cannot turn into markup, long tables cut short (a comment
//! has a size limit; the JSON has every row).

use serde_json::Value;

use super::{columns, human, is_table, ordered_keys, target_line, verdict};
use crate::output::Envelope;

/// Rows of one table shown before the rest is summarised.
const MAX_ROWS: usize = 50;

/// The Markdown document for `e`.
pub fn render_markdown(e: &Envelope) -> String {
    let mut out = format!(
        "## pgward-{} {}: {} (exit {}, {})\n\n",
        escape(&e.tool),
        escape(&e.command),
        verdict(e),
        e.exit_code,
        human::seconds(e.duration_ms as f64 / 1000.0)
    );
    if let Some(t) = &e.target {
        out.push_str(&format!("Target: `{}`\n\n", code(&target_line(t))));
    }
    if let Some(err) = &e.error {
        out.push_str(&format!(
            "> **Error `{}`:** {}\n>\n> **Hint:** {}\n\n",
            code(&err.code),
            escape(&err.message),
            escape(&err.hint)
        ));
    }
    if !e.warnings.is_empty() {
        out.push_str("**Warnings**\n\n");
        for w in &e.warnings {
            out.push_str(&format!("- `{}` {}\n", code(&w.code), escape(&w.message)));
        }
        out.push('\n');
    }
    if let Some(deploy) = super::trace::TracedDeploy::find(&e.result) {
        super::trace::markdown_section(&mut out, &deploy, escape);
    }
    if let Some(fleet) = crate::fleet::FleetResult::of(&e.result) {
        value(&mut out, None, &super::fleet::flat(&fleet), 2);
    } else if !e.result.is_null() {
        value(&mut out, None, &e.result, 2);
    }
    out.trim_end().to_string()
}

fn value(out: &mut String, heading: Option<&str>, v: &Value, level: usize) {
    if let Some(h) = heading {
        out.push_str(&format!("{} {}\n\n", "#".repeat(level.min(6)), escape(h)));
    }
    match v {
        Value::Object(map) => {
            let keys = ordered_keys(map);
            let (nested, scalars): (Vec<&str>, Vec<&str>) = keys.into_iter().partition(|k| {
                matches!(&map[*k], Value::Object(m) if !m.is_empty())
                    || matches!(&map[*k], Value::Array(a) if is_table(a))
            });
            for k in &scalars {
                out.push_str(&format!(
                    "- **{}:** {}\n",
                    escape(&human::label(k)),
                    escape(&human::scalar(k, &map[*k]))
                ));
            }
            if !scalars.is_empty() {
                out.push('\n');
            }
            for k in nested {
                value(out, Some(&human::label(k)), &map[k], level + 1);
            }
        }
        Value::Array(rows) if is_table(rows) => table(out, rows),
        other => out.push_str(&format!("{}\n\n", escape(&human::scalar("", other)))),
    }
}

fn table(out: &mut String, rows: &[Value]) {
    let cols = columns(rows);
    out.push_str(&format!(
        "| {} |\n|{}|\n",
        cols.iter()
            .map(|c| escape(&human::label(c)))
            .collect::<Vec<_>>()
            .join(" | "),
        cols.iter()
            .map(|c| {
                let numeric = rows.iter().any(|r| r.get(c).is_some_and(Value::is_number));
                if numeric {
                    " ---: "
                } else {
                    " --- "
                }
            })
            .collect::<Vec<_>>()
            .join("|")
    ));
    // Multi-line texts (a failed migration's logs) show their first line in the table and
    // in full below it, folded.
    let mut long_texts = Vec::new();
    for row in rows.iter().take(MAX_ROWS) {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| escape(&human::scalar(c, row.get(c).unwrap_or(&Value::Null))))
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
        for c in &cols {
            if let Some(text) = row
                .get(c)
                .and_then(Value::as_str)
                .filter(|t| t.contains('\n'))
            {
                long_texts.push((format!("{}: {}", human::label(c), cells[0]), text));
            }
        }
    }
    out.push('\n');
    for (summary, text) in long_texts {
        let fence = "`".repeat(longest_backtick_run(text).max(2) + 1);
        out.push_str(&format!(
            "<details><summary>{summary}</summary>\n\n{fence}text\n{}\n{fence}\n\n</details>\n\n",
            text.trim_end()
        ));
    }
    if rows.len() > MAX_ROWS {
        out.push_str(&format!(
            "_… and {} more row(s) in the JSON document._\n\n",
            rows.len() - MAX_ROWS
        ));
    }
}

/// Text that stays text: Markdown's punctuation escaped, `<` kept from starting HTML,
/// line breaks folded (a table row is one line).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// The longest run of backticks in `text`, so a fence longer than it cannot be closed
/// early by the text.
fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Text inside a code span: backticks cannot close it early.
fn code(text: &str) -> String {
    text.replace('`', "'").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_a_table_and_names_stay_text() {
        let e = Envelope {
            tool: "report".into(),
            command: "migrations".into(),
            version: "0.1.0".into(),
            ok: true,
            exit_code: 0,
            started_at: String::new(),
            duration_ms: 1500,
            target: None,
            result: serde_json::json!({
                "attempts": [
                    {"migration": "a|*b*", "duration_ms": 20},
                    {"migration": "c", "logs": "Migration name: c\n\nERROR: ``` boom"},
                ],
                "schema": "public",
            }),
            warnings: vec![],
            error: None,
        };
        let md = render_markdown(&e);
        assert!(
            md.starts_with("## pgward-report migrations: ok (exit 0, 1.5 s)"),
            "{md}"
        );
        assert!(md.contains("- **Schema:** public"), "{md}");
        assert!(md.contains("| Migration | Duration |"), "{md}");
        assert!(md.contains("| a\\|\\*b\\* | 20 ms | - |"), "{md}");
        assert!(
            md.contains("<details><summary>Logs: c</summary>\n\n````text\nMigration name: c\n\nERROR: ``` boom\n````"),
            "{md}"
        );
    }
}
