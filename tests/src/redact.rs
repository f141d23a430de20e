//! Making pgward's JSON output comparable across runs.
//!
//! Every run has new timestamps, durations, ports, database names and temp paths; a
//! snapshot assertion must ignore exactly those and compare everything else. The
//! placeholders keep the shape visible: a redacted key still shows that it was present.

use serde_json::Value;

/// Keys whose values change from run to run. A `null` under one of them is kept, since
/// whether it is set is part of the behaviour.
const VOLATILE_KEYS: &[&str] = &[
    "started_at",
    "finished_at",
    "duration_ms",
    "id",
    "version",
    "port",
    "database",
    "pid",
];

/// What a temp dir's entry is replaced with; the path below it stays.
pub const TEMP_PATH_PLACEHOLDER: &str = "[TEMP]";

/// Returns `value` with run-specific parts replaced by placeholders: the non-null value
/// of any key in `started_at`, `finished_at`, `duration_ms`, `id`, `version`, `port`,
/// `database`, `pid` becomes the string `"[KEY]"`, and temp paths inside any string are
/// redacted as by [`redact_temp_paths`].
pub fn redact_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let redacted = if VOLATILE_KEYS.contains(&key.as_str()) && !value.is_null() {
                        Value::String(format!("[{key}]"))
                    } else {
                        redact_json(value)
                    };
                    (key.clone(), redacted)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        Value::String(text) => Value::String(redact_temp_paths(text)),
        other => other.clone(),
    }
}

/// Replaces each temp path's first component below the temp dir with
/// [`TEMP_PATH_PLACEHOLDER`], keeping the rest: `/tmp/pgward-test-x1Y/socket` becomes
/// `[TEMP]/socket`, also in the middle of a message. The temp dirs are `/tmp` and
/// `std::env::temp_dir()` (as given and resolved).
pub fn redact_temp_paths(text: &str) -> String {
    let mut redacted = text.to_string();
    for prefix in temp_prefixes() {
        redacted = redact_prefix(&redacted, &prefix);
    }
    redacted
}

/// The temp dirs, each with one trailing `/`, longest first so that `/tmp/` does not
/// cut into a longer temp dir below it.
fn temp_prefixes() -> Vec<String> {
    let temp = std::env::temp_dir();
    let mut prefixes: Vec<String> = [Some(temp.clone()), std::fs::canonicalize(&temp).ok()]
        .into_iter()
        .flatten()
        .map(|dir| format!("{}/", dir.to_string_lossy().trim_end_matches('/')))
        .chain(std::iter::once("/tmp/".to_string()))
        .filter(|prefix| prefix != "/")
        .collect();
    prefixes.sort_by_key(|prefix| std::cmp::Reverse(prefix.len()));
    prefixes.dedup();
    prefixes
}

fn redact_prefix(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let starts_path = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c != '/' && !is_component_char(c));
        let after = &rest[at + prefix.len()..];
        let entry_len = after
            .find(|c: char| !is_component_char(c))
            .unwrap_or(after.len());
        if starts_path && entry_len > 0 {
            out.push_str(&rest[..at]);
            out.push_str(TEMP_PATH_PLACEHOLDER);
            rest = &after[entry_len..];
        } else {
            out.push_str(&rest[..at + prefix.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Characters of one path component as temp dirs are named (`.tmpA1b2`, `pgward-test-x`).
fn is_component_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')
}
