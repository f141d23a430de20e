//! `--notify URL`: a Slack-compatible message about the outcome, POSTed when a command
//! fails (and on success with `--notify-on success`), so a cron job or CI step that nobody
//! watches still gets noticed. A notification that cannot be delivered never changes the
//! command's exit code: it becomes a warning in the envelope.

use std::time::Duration;

use crate::output::Envelope;

/// Also read from the environment, like `--notify`.
pub const ENV_VAR_NOTIFY_URL: &str = "PGWARD_NOTIFY_URL";
/// How long delivery may take before it is given up.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// When to notify (the flag `--notify-on`, and `notify_on` in pgward.toml for the scripts).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    clap::ValueEnum,
    Default,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// Only when the command fails (exit codes other than 0 and 3).
    #[default]
    Failure,
    /// On failure and when it needs attention (exit 3: pending migrations, drift, an old
    /// backup).
    Attention,
    /// On every outcome, success included.
    #[serde(alias = "always")]
    Success,
}

/// Whether an outcome (`ok`, `exit_code`) calls for a notification.
pub fn wanted_for(ok: bool, exit_code: i32, on: NotifyOn) -> bool {
    match on {
        NotifyOn::Failure => !ok,
        NotifyOn::Attention => !ok || exit_code == crate::Exit::Attention.code(),
        NotifyOn::Success => true,
    }
}

/// Whether `envelope` calls for a notification.
pub fn wanted(envelope: &Envelope, on: NotifyOn) -> bool {
    wanted_for(envelope.ok, envelope.exit_code, on)
}

/// The message: Slack's `text` plus one attachment with the details (other webhook
/// receivers read `text` alone, or the `pgward` object).
pub fn message(envelope: &Envelope) -> serde_json::Value {
    let target = envelope
        .target
        .as_ref()
        .map(|t| format!("{}:{}/{}", t.host, t.port, t.database))
        .unwrap_or_else(|| "-".into());
    let (outcome, colour) = match (envelope.ok, envelope.exit_code) {
        (false, _) => ("FAILED", "danger"),
        (true, 3) => ("needs attention", "warning"),
        (true, _) => ("succeeded", "good"),
    };
    let mut text = format!(
        "pgward-{} {} {outcome} on {target} (exit {}, {} ms)",
        envelope.tool, envelope.command, envelope.exit_code, envelope.duration_ms
    );
    if let Some(e) = &envelope.error {
        text.push_str(&format!(": {} {}", e.code, e.message));
    }
    let text = crate::redact::scrub(&text);
    serde_json::json!({
        "text": text,
        "attachments": [{
            "color": colour,
            "fields": [
                { "title": "tool", "value": format!("pgward-{} {}", envelope.tool, envelope.command), "short": true },
                { "title": "target", "value": target, "short": true },
                { "title": "exit code", "value": envelope.exit_code.to_string(), "short": true },
                { "title": "duration", "value": format!("{} ms", envelope.duration_ms), "short": true },
            ],
        }],
        "pgward": {
            "tool": envelope.tool,
            "command": envelope.command,
            "ok": envelope.ok,
            "exit_code": envelope.exit_code,
            "target": target,
            "duration_ms": envelope.duration_ms,
            "error": envelope.error.as_ref().map(|e| &e.code),
        },
    })
}

/// POSTs the message; an error says why, without the URL's secret path.
pub fn send(url: &str, body: &serde_json::Value) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(DELIVERY_TIMEOUT))
        .build()
        .into();
    agent
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .map(|_| ())
        .map_err(|e| format!("cannot deliver the notification to {}: {e}", shown_url(url)))
}

/// Scheme and host only: webhook URLs carry their secret in the path.
pub fn shown_url(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let host_end = rest.find('/').unwrap_or(rest.len());
            format!("{}{}/***", &url[..i + 3], &rest[..host_end])
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn webhook_secrets_are_not_shown() {
        assert_eq!(
            super::shown_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/***"
        );
    }
}
