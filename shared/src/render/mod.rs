//! Every `--format` but JSON: one envelope in, one document out.
//!
//! Each binary prints its own envelope through [`render`], and `pgward-report render`
//! reads an envelope any binary printed ([`parse_document`]) and hands it to the same
//! function, so a document looks the same whether it is printed at once or rendered later
//! from a saved JSON file. The text, Markdown and HTML renderers show any result
//! generically (objects, arrays of rows, scalars; units by field suffix). The charts
//! ([`charts`]) and Prometheus metrics ([`prometheus`]) read typed results: `report
//! migrations` and `health` as their own result types (`TypedResult`), and any document
//! that lists backups (`backup list`, `report backups`) through one view of what the two
//! share (`BackupListing`).

pub mod charts;
pub(crate) mod fleet;
mod github;
pub mod html;
mod human;
pub mod markdown;
pub mod prometheus;
pub mod text;
pub mod trace;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::config::OutputFormat;
use crate::connect::Target;
use crate::health::HealthReport;
use crate::migrations::report::MigrationsReport;
use crate::output::{Envelope, ErrorBody, Warning};

pub use github::render_github_annotations;
pub use human::{bytes as human_bytes, seconds as human_seconds};
pub use text::{render_text, render_text_styled, TextStyle};

/// The result of a document whose command the renderers know, read once into its typed
/// result (the type the command itself builds): the charts and the Prometheus metrics read
/// fields, not JSON keys. A document whose result does not read as its command's type (a
/// failed run's null result, a foreign shape) is [`TypedResult::Other`] and gets only the
/// generic rendering.
pub(crate) enum TypedResult {
    /// `pgward-report migrations`.
    Migrations(Box<MigrationsReport>),
    /// `pgward-report health`.
    Health(Box<HealthReport>),
    /// Any other document.
    Other,
}

impl TypedResult {
    /// `envelope`'s result, typed by its tool and command.
    pub(crate) fn of(envelope: &Envelope) -> TypedResult {
        fn read<T: serde::de::DeserializeOwned>(result: &Value) -> Option<T> {
            T::deserialize(result).ok()
        }
        let result = &envelope.result;
        let typed = match (envelope.tool.as_str(), envelope.command.as_str()) {
            ("report", "migrations") => read(result).map(|m| TypedResult::Migrations(Box::new(m))),
            ("report", "health") => read(result).map(|h| TypedResult::Health(Box::new(h))),
            _ => None,
        };
        typed.unwrap_or(TypedResult::Other)
    }
}

/// A document that lists backups: `pgward-backup list` and `pgward-report backups`, two
/// result types whose rows both carry the inventory entry. The charts and the Prometheus
/// metrics read the fields they share through this one view, so any document whose
/// `result.backups` lists backups gets them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct BackupListing {
    /// The location.
    pub location: String,
    /// Its backups, in the document's order (none: the document lists no backups).
    pub backups: Option<Vec<ListedBackupView>>,
    /// When the listing was read (`report backups`); else the run's start counts.
    pub checked_at: Option<DateTime<Utc>>,
    /// The `--max-age` the newest is held to (`report backups`).
    pub max_age_s: Option<f64>,
}

/// One backup of a [`BackupListing`].
#[derive(Debug, Deserialize)]
pub(crate) struct ListedBackupView {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// When its snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// Its size.
    pub size_bytes: f64,
    /// Whether `verify` has checked it.
    #[serde(default)]
    pub verified: bool,
    /// How long it took.
    pub duration_s: Option<f64>,
}

impl BackupListing {
    /// `envelope`'s backups, when its result lists backups (every row one): the listing
    /// and its rows.
    pub(crate) fn of(envelope: &Envelope) -> Option<(BackupListing, Vec<ListedBackupView>)> {
        let mut listing = BackupListing::deserialize(&envelope.result).ok()?;
        let backups = listing.backups.take()?;
        Some((listing, backups))
    }
}

/// `envelope` as `format` asks (JSON compact), without a trailing newline.
pub fn render(envelope: &Envelope, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string(envelope).unwrap_or_else(|e| {
            format!(
                "{{\"ok\":false,\"error\":{{\"code\":\"{}\",\"message\":\"{e}\"}}}}",
                crate::codes::ErrorCode::Internal
            )
        }),
        OutputFormat::Text => render_text(envelope),
        OutputFormat::Github => format!(
            "{}{}",
            render_github_annotations(&envelope.result),
            render_text(envelope)
        ),
        OutputFormat::Markdown => markdown::render_markdown(envelope),
        OutputFormat::Html => html::render_html(envelope),
        OutputFormat::Prometheus => prometheus::render_prometheus(envelope),
    }
}

/// Reads a JSON document a pgward binary printed (compact or pretty). It must be an
/// envelope: an object naming its `tool` and `command`; every other field may be missing
/// (then it reads as absent, zero or empty), so documents of older versions render too.
pub fn parse_document(text: &str) -> Result<Envelope, String> {
    let value: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| format!("the input is not one JSON document: {e}"))?;
    let Value::Object(map) = &value else {
        return Err(
            "the input is JSON but not a pgward document (an object with `tool` and `command`)"
                .into(),
        );
    };
    let string = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
    let (Some(tool), Some(command)) = (string("tool"), string("command")) else {
        return Err(
            "the input is JSON but not a pgward document: it has no `tool` and `command`".into(),
        );
    };
    let exit_code = map
        .get("exit_code")
        .and_then(Value::as_i64)
        .map(|c| c as i32);
    let ok = map
        .get("ok")
        .and_then(Value::as_bool)
        .unwrap_or(matches!(exit_code, Some(0 | 3) | None));
    let target = map.get("target").and_then(|t| {
        let field = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Target {
            host: field("host")?,
            port: t.get("port").and_then(Value::as_u64).unwrap_or(5432) as u16,
            database: field("database")?,
            user: field("user").unwrap_or_default(),
        })
    });
    let warnings = map
        .get("warnings")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|w| Warning {
                    code: text_of(w, "code"),
                    message: text_of(w, "message"),
                })
                .collect()
        })
        .unwrap_or_default();
    let error = map
        .get("error")
        .filter(|e| e.is_object())
        .map(|e| ErrorBody {
            code: text_of(e, "code"),
            message: text_of(e, "message"),
            hint: text_of(e, "hint"),
            details: e.get("details").cloned().filter(|d| !d.is_null()),
        });
    Ok(Envelope {
        tool,
        command,
        version: string("version").unwrap_or_default(),
        ok,
        exit_code: exit_code.unwrap_or(if ok { 0 } else { 1 }),
        started_at: string("started_at").unwrap_or_default(),
        duration_ms: map.get("duration_ms").and_then(Value::as_u64).unwrap_or(0),
        target,
        result: map.get("result").cloned().unwrap_or(Value::Null),
        warnings,
        error,
    })
}

fn text_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The one-line verdict every human format starts with: `ok`, `needs attention` or `FAILED`.
pub(crate) fn verdict(e: &Envelope) -> &'static str {
    match (e.ok, e.exit_code) {
        (true, 3) => "needs attention",
        (true, _) => "ok",
        (false, _) => "FAILED",
    }
}

/// `user@host:port/database`.
pub(crate) fn target_line(t: &Target) -> String {
    format!("{}@{}:{}/{}", t.user, t.host, t.port, t.database)
}

/// Keys that name a row, shown first; the rest follow in name order (JSON objects reach
/// the renderers with sorted keys).
const LEADING_KEYS: &[&str] = &[
    "at",
    "id",
    "name",
    "migration",
    "schema",
    "table",
    "index",
    "tool",
    "command",
    "pid",
    "state",
    "outcome",
    "status",
];

/// The keys of `map` in display order.
pub(crate) fn ordered_keys(map: &serde_json::Map<String, Value>) -> Vec<&str> {
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort_by_key(|k| {
        (
            LEADING_KEYS
                .iter()
                .position(|l| l == k)
                .unwrap_or(LEADING_KEYS.len()),
            *k,
        )
    });
    keys
}

/// The columns of a table of `rows`: every key any row has, in display order.
pub(crate) fn columns(rows: &[Value]) -> Vec<String> {
    let mut all = serde_json::Map::new();
    for row in rows {
        if let Value::Object(map) = row {
            for key in map.keys() {
                all.entry(key.clone()).or_insert(Value::Null);
            }
        }
    }
    ordered_keys(&all).into_iter().map(str::to_string).collect()
}

/// Whether `items` are rows of a table: objects, all of them.
pub(crate) fn is_table(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_leniently_but_must_name_tool_and_command() {
        let doc = parse_document(
            r#"{"tool":"backup","command":"list","exit_code":3,"result":{"backups":[]},
                "target":{"host":"db","port":6432,"database":"app","user":"u"},
                "warnings":[{"code":"W","message":"m"}],"error":null}"#,
        )
        .expect("an envelope");
        assert!(doc.ok, "exit 3 is ok when `ok` is missing");
        assert_eq!(doc.target.expect("target").port, 6432);
        assert_eq!(doc.warnings[0].code, "W");
        assert!(doc.error.is_none());
        assert!(parse_document("[1, 2]").is_err());
        assert!(parse_document(r#"{"ok": true}"#).is_err());
        assert!(parse_document("not json").is_err());
    }
}
