//! The generic text view: any envelope as a plain summary (its result's fields as lines),
//! for the commands that have no designed view of their own.

use crate::output::Envelope;

/// The generic human summary of an envelope.
pub(super) fn render_generic(e: &Envelope) -> String {
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
    for w in &e.warnings {
        out.push_str(&format!("warning [{}]: {}\n", w.code, w.message));
    }
    if let Some(err) = &e.error {
        out.push_str(&format!(
            "error [{}]: {}\nhint: {}\n",
            err.code, err.message, err.hint
        ));
    }
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
