//! The generic text view: any envelope as a plain summary (its result's fields as lines),
//! for the commands that have no designed view of their own.

use super::TextStyle;
use crate::output::Envelope;

/// The generic human summary of an envelope, ending in the warnings and error block every
/// view shares ([`super::lines::warnings_and_error`]).
pub(super) fn render_generic(e: &Envelope, style: TextStyle) -> String {
    let mut out = format!(
        "pgward-{} {}: {} (exit {}, {} ms)\n",
        e.tool,
        e.command,
        if e.ok { "ok" } else { "FAILED" },
        e.exit_code,
        e.duration_ms
    );
    if let Some(t) = &e.target {
        out.push_str(&format!(
            "target: {}@{}:{}/{}\n",
            t.user, t.host, t.port, t.database
        ));
    }
    if !e.result.is_null() {
        render_value(&mut out, &e.result, 0);
    }
    out.push_str(&super::lines::warnings_and_error(e, style));
    out.trim_end().to_string()
}

fn render_value(out: &mut String, v: &serde_json::Value, indent: usize) {
    let pad = "  ".repeat(indent);
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map {
                match val {
                    serde_json::Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        render_value(out, val, indent + 1);
                    }
                    serde_json::Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{k}: ({})\n", a.len()));
                        render_value(out, val, indent + 1);
                    }
                    other => out.push_str(&format!("{pad}{k}: {}\n", scalar(other))),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                match item {
                    serde_json::Value::Object(m) => {
                        let line: Vec<String> = m
                            .iter()
                            .filter(|(_, v)| !v.is_null())
                            .map(|(k, v)| format!("{k}={}", scalar(v)))
                            .collect();
                        out.push_str(&format!("{pad}- {}\n", line.join(" ")));
                    }
                    other => out.push_str(&format!("{pad}- {}\n", scalar(other))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => {
            let first = s.lines().next().unwrap_or_default();
            if s.lines().count() > 1 {
                format!("{first} …")
            } else {
                first.to_string()
            }
        }
        serde_json::Value::Null => "-".into(),
        serde_json::Value::Array(a) if a.is_empty() => "none".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_without_a_view_ends_in_the_same_warnings_and_error_block() {
        let e = crate::render::parse_document(
            r#"{"tool": "migrate", "command": "someday", "ok": false, "exit_code": 2,
                "result": {"files": 3},
                "warnings": [{"code": "LOCK_OVER_BUDGET", "message": "held too long"}],
                "error": {"code": "USAGE", "message": "no such thing", "hint": "ask for help"}}"#,
        )
        .expect("a document");
        let text = render_generic(&e, TextStyle::PLAIN);
        assert!(
            text.starts_with("pgward-migrate someday: FAILED (exit 2"),
            "{text}"
        );
        assert!(text.contains("files: 3\n"), "{text}");
        assert!(
            text.ends_with(
                "warning[LOCK_OVER_BUDGET]: held too long\n\nerror[USAGE]: no such thing\n  = hint: ask for help"
            ),
            "{text}"
        );
    }
}
