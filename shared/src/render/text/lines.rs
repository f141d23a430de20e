//! The pieces the archive and report views share: the title line, aligned `label  value`
//! lines, the `error[CODE]: message` / `= hint: …` block of a failed run, warnings, and
//! counts and timestamps as people read them.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::TextStyle;
use crate::output::{Envelope, ErrorBody, Warning};

/// `text` in `paint` when `style` has colour; plain otherwise.
pub(crate) fn paint(style: TextStyle, paint: anstyle::Style, text: &str) -> String {
    if style.colour && !text.is_empty() {
        format!("{paint}{text}{paint:#}")
    } else {
        text.to_string()
    }
}

fn bold() -> anstyle::Style {
    anstyle::Style::new().bold()
}

fn coloured(colour: anstyle::AnsiColor) -> anstyle::Style {
    anstyle::Style::new().fg_color(Some(colour.into())).bold()
}

/// A view's first line (bold).
pub(crate) fn title(style: TextStyle, text: &str) -> String {
    format!("{}\n", paint(style, bold(), text))
}

/// A section's heading: a blank line, then the heading (bold).
pub(crate) fn section(style: TextStyle, text: &str) -> String {
    format!("\n{}\n", paint(style, bold(), text))
}

/// An alarm line, first in a view: `! text` (red).
pub(crate) fn alarm(style: TextStyle, text: &str) -> String {
    format!(
        "{}\n",
        paint(
            style,
            coloured(anstyle::AnsiColor::Red),
            &format!("! {}", wrap(text, 2, 4))
        )
    )
}

/// `label  value` lines, the values lined up, indented by two spaces.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(label, value)| {
            let value = wrap(value, width + 4, width + 4);
            let mut value_lines = value.lines().map(str::trim_start);
            let mut line = format!(
                "  {label:<width$}  {}\n",
                value_lines.next().unwrap_or_default()
            );
            for more in value_lines {
                line.push_str(&format!("  {:width$}  {more}\n", ""));
            }
            line
        })
        .collect()
}

/// Commands to run next, one a line, indented.
pub(crate) fn next_steps(style: TextStyle, commands: &[String]) -> String {
    if commands.is_empty() {
        return String::new();
    }
    let mut out = section(style, "Next");
    for c in commands {
        out.push_str(&format!("  {c}\n"));
    }
    out
}

/// The envelope's warnings (`warning[CODE]: message`) and error (`error[CODE]: message`
/// with `= hint: …`), after a view's body; continuation lines indented.
pub(crate) fn warnings_and_error(e: &Envelope, style: TextStyle) -> String {
    let mut out = String::new();
    if !e.warnings.is_empty() {
        out.push('\n');
    }
    out.push_str(&warning_lines(&e.warnings, &[], style));
    if let Some(err) = &e.error {
        out.push('\n');
        out.push_str(&error_block(err, style));
    }
    out
}

/// `warning[CODE]: message`, one a line (wrapped, continuation lines indented), for each
/// of `warnings` whose code is not in `shown` (those a view already told in its own words).
pub(crate) fn warning_lines(warnings: &[Warning], shown: &[&str], style: TextStyle) -> String {
    let mut out = String::new();
    for w in warnings
        .iter()
        .filter(|w| !shown.contains(&w.code.as_str()))
    {
        let head = paint(
            style,
            coloured(anstyle::AnsiColor::Yellow),
            &format!("warning[{}]", w.code),
        );
        let lead = format!("warning[{}]: ", w.code).chars().count();
        out.push_str(&format!("{head}: {}\n", wrap(&w.message, lead, 4)));
    }
    out
}

/// `error[CODE]: message` and `  = hint: …`.
pub(crate) fn error_block(err: &ErrorBody, style: TextStyle) -> String {
    let head = paint(
        style,
        coloured(anstyle::AnsiColor::Red),
        &format!("error[{}]", err.code),
    );
    let lead = format!("error[{}]: ", err.code).chars().count();
    let mut out = format!("{head}: {}\n", wrap(&err.message, lead, 4));
    if !err.hint.is_empty() {
        let eq = paint(style, bold(), "  = hint:");
        out.push_str(&format!("{eq} {}\n", wrap(&err.hint, 10, 10)));
    }
    out
}

/// Widest a line of prose gets (messages, hints); a table or a command may be wider.
pub(crate) const WIDTH: usize = 100;

/// `text` wrapped at spaces to [`WIDTH`] columns, its first line after `lead` columns
/// already used, the others indented by `indent`; a word longer than a line (a path, a
/// URL) is never cut, and the text's own line breaks are kept.
pub(crate) fn wrap(text: &str, lead: usize, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let mut used = lead;
    for (i, line) in text.trim_end().lines().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&pad);
            used = indent;
        }
        let mut first = true;
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            let len = word.chars().count();
            if !first && used + 1 + len > WIDTH {
                out.push('\n');
                out.push_str(&pad);
                used = indent;
                first = true;
            }
            if !first {
                out.push(' ');
                used += 1;
            }
            out.push_str(word);
            used += len;
            first = false;
        }
    }
    out
}

/// The view of a run that failed before it had a result: what was asked, on what, and
/// the error.
pub(crate) fn failed(e: &Envelope, style: TextStyle, what: &str) -> String {
    let mut out = title(style, &format!("{what}: FAILED (exit {})", e.exit_code));
    if let Some(at) = database(e) {
        out.push_str(&fields(&[("database", at)]));
    }
    out
}

/// The database the run worked on, `user@host:port/database`.
pub(crate) fn database(e: &Envelope) -> Option<String> {
    e.target
        .as_ref()
        .map(|t| format!("{}@{}:{}/{}", t.user, t.host, t.port, t.database))
}

/// Tables shown in a per-table summary; the rest are counted.
pub(crate) const TOP: usize = 10;

/// The view of `e` (one of the archive commands) with its result read as `T`; a failed
/// run without a result gets the failure view titled `what`.
pub(crate) fn view<T: DeserializeOwned>(
    e: &Envelope,
    style: TextStyle,
    what: &str,
    body: impl FnOnce(&T, &Envelope, TextStyle) -> String,
) -> Option<String> {
    let text = if e.result.is_null() && e.error.is_some() {
        failed(e, style, what)
    } else {
        body(&T::deserialize(&e.result).ok()?, e, style)
    };
    Some(
        format!("{text}{}", warnings_and_error(e, style))
            .trim_end()
            .to_string(),
    )
}

/// `12345` → `12,345`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// [`count`] of a signed number.
pub(crate) fn count_i(n: i64) -> String {
    if n < 0 {
        format!("-{}", count(n.unsigned_abs()))
    } else {
        count(n as u64)
    }
}

/// `2026-12-05 14:20 UTC`.
pub(crate) fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `n` things, singular for one: `plural(1, "table")` → `1 table`, `plural(2, "index")` →
/// `2 indexes`.
pub(crate) fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else if one.ends_with('x') || one.ends_with('s') {
        format!("{} {one}es", count(n))
    } else {
        format!("{} {one}s", count(n))
    }
}

/// The line under a table cut to its first rows: `  … and 2 more tables (750 rows)`.
pub(crate) fn and_more(n: u64, one: &str, details: &str) -> String {
    let things = plural(n, one);
    let (_, noun) = things.split_once(' ').unwrap_or_default();
    let details = if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    };
    format!("  … and {} more {noun}{details}\n", count(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_errors_read_as_people_write_them() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count_i(-1234), "-1,234");
        assert_eq!(plural(1, "table"), "1 table");
        assert_eq!(plural(2000, "row"), "2,000 rows");
        assert_eq!(plural(2, "index"), "2 indexes");
        assert_eq!(and_more(1, "table", ""), "  … and 1 more table\n");
        assert_eq!(
            and_more(3, "table", "9 rows"),
            "  … and 3 more tables (9 rows)\n"
        );
        let err = ErrorBody {
            code: "BACKUP_CORRUPT".into(),
            message: "two\nlines".into(),
            hint: "run verify".into(),
            details: None,
        };
        assert_eq!(
            error_block(&err, TextStyle::PLAIN),
            "error[BACKUP_CORRUPT]: two\n    lines\n  = hint: run verify\n"
        );
        let long = "word ".repeat(40);
        let wrapped = wrap(&long, 20, 4);
        assert!(wrapped.lines().count() > 1, "{wrapped}");
        assert!(
            wrapped.lines().next().unwrap().chars().count() + 20 <= WIDTH,
            "{wrapped}"
        );
        assert!(wrapped
            .lines()
            .skip(1)
            .all(|l| l.starts_with("    word") && l.chars().count() <= WIDTH));
        let path = format!("see {}", "/x".repeat(80));
        assert_eq!(wrap(&path, 0, 4), format!("see\n    {}", "/x".repeat(80)));
    }
}
