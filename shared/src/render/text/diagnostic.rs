//! Diagnostics in the manner of rustc and squawk, rendered by annotate-snippets (the crate
//! rustc uses): a finding with its source line and the offending text underlined, its
//! `= why:` and `= fix:` notes; an envelope's warnings and error as `warning[CODE]: …`
//! and `error[CODE]: …` with `= hint: …`. Colour comes from annotate-snippets' styled
//! renderer, used only when the [`TextStyle`] allows it.

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};

use super::TextStyle;
use crate::findings::{Finding, Severity, Totals};

/// The renderer for `style`: styled (ANSI) on a terminal, plain otherwise.
fn renderer(style: TextStyle) -> Renderer {
    if style.colour {
        Renderer::styled()
    } else {
        Renderer::plain()
    }
}

/// Renders `groups` as one report, ending in a line break.
fn render(groups: &[Group<'_>], style: TextStyle) -> String {
    let mut out = renderer(style).render(groups);
    out.push('\n');
    out
}

/// One finding as a diagnostic: `error[rule]: message`, where it is (`--> file:line:col`
/// with the source line and the span underlined when the finding carries its text, the
/// object otherwise), the lock as the underline's label, and `= why:` / `= fix:`.
pub(super) fn finding(f: &Finding, style: TextStyle) -> String {
    let level = match f.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
        Severity::Info => Level::INFO,
    };
    let mut group = Group::with_title(level.primary_title(&f.message).id(&f.rule));
    let file = f.location.file.as_deref().filter(|file| !file.is_empty());
    match (file, f.location.line, &f.span) {
        (Some(file), Some(line), Some(span)) => {
            let column = f.location.column.unwrap_or(1);
            let start = byte_of_column(&span.source, column);
            let end = if span.end_line == line {
                byte_of_column(&span.source, span.end_column).max(start)
            } else {
                span.source.len()
            };
            let mut underline = AnnotationKind::Primary.span(start..end);
            if let Some(lock) = &f.lock {
                underline = underline.label(format!("takes {lock}"));
            }
            group = group.element(
                Snippet::source(span.source.as_str())
                    .line_start(line)
                    .path(file)
                    .annotation(underline),
            );
        }
        (Some(file), line, _) => {
            let mut origin = Origin::path(file);
            if let Some(line) = line {
                origin = origin.line(line);
                if let Some(column) = f.location.column {
                    origin = origin.char_column(column);
                }
            }
            group = group.element(origin);
        }
        (None, _, _) => {
            if let Some(object) = &f.location.object {
                group = group.element(Origin::path(object.as_str()));
            }
        }
    }
    if f.span.is_none() {
        if let Some(lock) = &f.lock {
            group = group.element(Level::NOTE.with_name("lock").message(lock.as_str()));
        }
    }
    if file.is_some() && f.span.is_none() {
        if let Some(object) = &f.location.object {
            group = group.element(Level::NOTE.with_name("object").message(object.as_str()));
        }
    }
    if !f.why.is_empty() {
        group = group.element(Level::NOTE.with_name("why").message(&f.why));
    }
    if !f.fix.is_empty() {
        group = group.element(Level::HELP.with_name("fix").message(&f.fix));
    }
    render(&[group], style)
}

/// The byte offset of 1-based character column `column` of `line` (its end when the line
/// is shorter).
fn byte_of_column(line: &str, column: usize) -> usize {
    line.char_indices()
        .nth(column.saturating_sub(1))
        .map_or(line.len(), |(i, _)| i)
}

/// `2 errors, 1 warning` (`no findings` when there are none); notes when there are some.
pub(super) fn totals_words(t: &Totals) -> String {
    if t.errors + t.warnings + t.infos == 0 {
        return "no findings".into();
    }
    let mut parts = vec![
        plural(t.errors, "error", "errors"),
        plural(t.warnings, "warning", "warnings"),
    ];
    if t.infos > 0 {
        parts.push(plural(t.infos, "note", "notes"));
    }
    parts.join(", ")
}

/// `1 migration`, `2 migrations`.
pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{Location, Span};

    fn lint_finding(span: Option<Span>) -> Finding {
        Finding {
            rule: "create-index-not-concurrently".into(),
            severity: Severity::Error,
            location: Location {
                file: Some("m/migration.sql".into()),
                line: Some(2),
                column: Some(8),
                object: Some("\"i\"".into()),
            },
            message: "index \"i\" is built without CONCURRENTLY".into(),
            lock: Some("SHARE on \"t\"".into()),
            why: "writes wait".into(),
            fix: "CREATE INDEX CONCURRENTLY".into(),
            span,
            confirmed: None,
            observed: None,
        }
    }

    #[test]
    fn a_finding_with_its_span_underlines_exactly_that_text() {
        let f = lint_finding(Some(Span {
            end_line: 2,
            end_column: 24,
            source: "SELECT CREATE INDEX \"i\" ON t;".into(),
        }));
        let text = finding(&f, TextStyle::PLAIN);
        assert!(
            text.starts_with("error[create-index-not-concurrently]: index"),
            "{text}"
        );
        assert!(text.contains("--> m/migration.sql:2:8"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let source = lines
            .iter()
            .position(|l| l.contains("SELECT CREATE INDEX"))
            .expect("the source line");
        let (code, marks) = (lines[source], lines[source + 1]);
        let from = code.find("CREATE").unwrap();
        let to = code.find(" ON").unwrap();
        assert_eq!(&marks[from..to], "^".repeat(to - from), "{text}");
        assert_eq!(marks[..from].trim(), "|", "{text}");
        assert!(marks[to..].starts_with(" takes SHARE on \"t\""), "{text}");
        assert!(text.contains("= why: writes wait"), "{text}");
        assert!(text.contains("= fix: CREATE INDEX CONCURRENTLY"), "{text}");
        assert!(
            !text.contains('\u{1b}'),
            "plain text has no escapes: {text}"
        );
        let styled = finding(&f, TextStyle { colour: true });
        assert!(styled.contains('\u{1b}'), "{styled}");
    }

    #[test]
    fn a_finding_without_its_text_still_points_at_its_place() {
        let text = finding(&lint_finding(None), TextStyle::PLAIN);
        assert!(text.contains("--> m/migration.sql:2:8"), "{text}");
        assert!(text.contains("= lock: SHARE on \"t\""), "{text}");
    }
}
