//! The audit log: one JSON line per command that changed something (docs/contract.md §1 "Safety"):
//! when, OS user, database user, target (redacted), tool, command, arguments (redacted),
//! outcome. Appended with O_APPEND so concurrent runs do not interleave within a line.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::output::Envelope;

/// What an audited command changed: a database (redacted URL) or a backup location.
#[derive(Debug, Clone)]
pub struct AuditTarget {
    /// Redacted URL or location.
    pub target: String,
    /// The database role, when a database is involved.
    pub db_user: Option<String>,
}

/// Appends the audit line for `envelope`, run against `target`.
pub fn append(path: &Path, target: &AuditTarget, envelope: &Envelope) -> std::io::Result<()> {
    let args: Vec<String> = redacted_args(std::env::args().skip(1));
    let line = serde_json::json!({
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "os_user": os_user(),
        "db_user": target.db_user,
        "target": target.target,
        "tool": envelope.tool,
        "command": envelope.command,
        "args": args,
        "outcome": {
            "ok": envelope.ok,
            "exit_code": envelope.exit_code,
            "error": envelope.error.as_ref().map(|e| e.code.clone()),
            "duration_ms": envelope.duration_ms,
        },
    });
    let mut text = serde_json::to_string(&line)?;
    text.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// The arguments with URL passwords and registered secrets replaced by `***`.
pub fn redacted_args(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|a| crate::redact::scrub(&a)).collect()
}

/// The OS user running pgward.
pub fn os_user() -> String {
    if let Ok(u) = std::env::var("USER") {
        if !u.is_empty() {
            return u;
        }
    }
    // SAFETY: getuid cannot fail; getpwuid returns NULL or a pointer to static storage,
    // read at once on this thread.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return libc::getuid().to_string();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// One entry of the report: an audit line, flat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the command ran.
    pub at: DateTime<Utc>,
    /// The binary (`migrate`, `backup`, ...).
    pub tool: String,
    /// Its command.
    pub command: String,
    /// Whether it succeeded.
    pub ok: Option<bool>,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// The error code, when it failed.
    pub error: Option<String>,
    /// How long it ran.
    pub duration_ms: Option<u64>,
    /// The database (redacted URL) or backup location.
    pub target: Option<String>,
    /// The OS user.
    pub os_user: Option<String>,
    /// The database role.
    pub db_user: Option<String>,
    /// The arguments (redacted), joined.
    pub args: String,
}

/// audit's `result`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    /// The audit log.
    pub path: String,
    /// Lines in the file.
    pub lines: usize,
    /// Entries that pass the filters.
    pub matching: usize,
    /// The newest of them, newest first (at most `--limit`).
    pub entries: Vec<AuditEntry>,
    /// Line numbers that are not audit lines.
    pub invalid_lines: Vec<usize>,
}
