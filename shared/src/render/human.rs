//! Numbers as people read them: bytes in binary units, durations in the largest sensible
//! unit, ratios as percentages. The field name says what a number is (`size_bytes`,
//! `duration_ms`, `age_s`, `dead_ratio`), so the Markdown and HTML renderers can show any
//! document's numbers this way without knowing the document.

use serde_json::Value;

/// `1536` → `1.5 KiB`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", n.round() as i64)
    } else if value.abs() >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `0.412` → `412 ms`, `3725` → `1 h 2 min`.
pub fn seconds(s: f64) -> String {
    let sign = if s < 0.0 { "-" } else { "" };
    let s = s.abs();
    let text = if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        two_units(s, 60.0, "min", 1.0, "s")
    } else if s < 86400.0 {
        two_units(s, 3600.0, "h", 60.0, "min")
    } else {
        two_units(s, 86400.0, "d", 3600.0, "h")
    };
    format!("{sign}{text}")
}

/// `3725 s` → `1 h 2 min`, `3600 s` → `1 h`.
fn two_units(s: f64, big: f64, big_name: &str, small: f64, small_name: &str) -> String {
    let whole = (s / big).floor();
    let rest = ((s - whole * big) / small).floor();
    if rest == 0.0 {
        format!("{whole:.0} {big_name}")
    } else {
        format!("{whole:.0} {big_name} {rest:.0} {small_name}")
    }
}

/// `0.1234` → `12.3 %`.
pub(crate) fn percent(ratio: f64) -> String {
    format!("{:.1} %", ratio * 100.0)
}

/// What a key's number means, by the key's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Bytes,
    Milliseconds,
    Seconds,
    Ratio,
    Plain,
}

/// The unit of a field called `key`.
pub(crate) fn unit_of(key: &str) -> Unit {
    if key == "bytes" || key.ends_with("_bytes") {
        Unit::Bytes
    } else if key.ends_with("_ms") {
        Unit::Milliseconds
    } else if key.ends_with("_s") {
        Unit::Seconds
    } else if key == "ratio" || key.ends_with("_ratio") {
        Unit::Ratio
    } else {
        Unit::Plain
    }
}

/// A scalar for a table cell or a summary line: numbers in their unit, `-` for null, the
/// first line of a multi-line string (with `…`).
pub(crate) fn scalar(key: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => match (unit_of(key), n.as_f64()) {
            (Unit::Bytes, Some(x)) => bytes(x),
            (Unit::Milliseconds, Some(x)) => seconds(x / 1000.0),
            (Unit::Seconds, Some(x)) => seconds(x),
            (Unit::Ratio, Some(x)) => percent(x),
            _ => n.to_string(),
        },
        Value::String(s) => {
            let mut lines = s.lines();
            let first = lines.next().unwrap_or_default();
            if lines.next().is_some() {
                format!("{first} …")
            } else {
                first.to_string()
            }
        }
        Value::Array(items) if items.is_empty() => "none".into(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => items
            .iter()
            .map(|i| scalar(key, i))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(items) => format!("({} items)", items.len()),
        Value::Object(map) if map.is_empty() => "-".into(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", scalar(k, v)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// `dead_ratio` → `Dead ratio`; a unit suffix the value shows anyway goes:
/// `duration_ms` → `Duration`, `index_bytes` → `Index size`.
pub(crate) fn label(key: &str) -> String {
    let base = if key == "bytes" {
        "size".to_string()
    } else if let Some(stem) = key.strip_suffix("size_bytes") {
        format!("{stem}size")
    } else if let Some(stem) = key.strip_suffix("_bytes") {
        format!("{stem}_size")
    } else if let Some(stem) = key.strip_suffix("_ms").or_else(|| key.strip_suffix("_s")) {
        stem.to_string()
    } else {
        key.to_string()
    };
    let spaced = base.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_the_field_name() {
        assert_eq!(scalar("size_bytes", &Value::from(1536)), "1.5 KiB");
        assert_eq!(scalar("size_bytes", &Value::from(512)), "512 B");
        assert_eq!(scalar("duration_ms", &Value::from(412)), "412 ms");
        assert_eq!(scalar("age_s", &Value::from(3725)), "1 h 2 min");
        assert_eq!(scalar("age_s", &Value::from(86400)), "1 d");
        assert_eq!(scalar("dead_ratio", &Value::from(0.1234)), "12.3 %");
        assert_eq!(scalar("rows", &Value::from(7)), "7");
        assert_eq!(scalar("logs", &Value::from("a\nb")), "a …");
        assert_eq!(label("dead_ratio"), "Dead ratio");
        assert_eq!(label("duration_ms"), "Duration");
        assert_eq!(label("size_bytes"), "Size");
        assert_eq!(label("index_bytes"), "Index size");
    }
}
