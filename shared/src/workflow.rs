//! What the scripts in `scripts/` need beyond the database: an environment's settings
//! resolved (hooks, health check, notification, run log), the application's health
//! check, and the one notification a script run sends.
//!
//! The keys live in [`crate::config::EnvConfig`] with every other key of pgward.toml, so
//! the file has one reader: the scripts ask `pgward-report settings` for the resolved
//! values (defaults filled in, paths made absolute) and read them with jq.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use crate::config::{EnvConfig, Settings};
use crate::error::{Error, Result};
use crate::notify::NotifyOn;
use crate::output::Failure;

/// How long `pre_deploy` or `post_deploy` may run.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// The status a healthy application answers.
pub const DEFAULT_HEALTH_STATUS: u16 = 200;
/// GETs of the health URL at most.
pub const DEFAULT_HEALTH_RETRIES: u32 = 5;
/// How long the whole health check may take.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Run logs older than this many days are removed.
pub const DEFAULT_LOG_KEEP_DAYS: u32 = 30;
/// A rehearsal's lock budget in a protected environment that sets no `max_lock`.
pub const DEFAULT_PROTECTED_MAX_LOCK: Duration = Duration::from_secs(5);
/// The scripts notify on failures and on needs-attention (a cron job's old backup).
pub const DEFAULT_SCRIPT_NOTIFY_ON: NotifyOn = NotifyOn::Attention;
/// The pause after the first unhealthy answer; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(10);
/// One GET may take this long at most (less when the total timeout is nearer).
const MAX_REQUEST: Duration = Duration::from_secs(10);

/// What an unhealthy application (or a failing `post_deploy`) after a deploy undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnhealthy {
    /// Nothing: the script reports it and prints the commands that go back.
    Stop,
    /// The down.sql of each migration the deploy applied, newest first.
    Rollback,
    /// The backup taken before the deploy, as `auto_restore` restores it.
    Restore,
}

/// serde: a duration written like `30s`, `5min`, `500ms`.
pub fn duration<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    crate::config::parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The keys' checks beyond their types, run when pgward.toml is loaded.
pub fn check_env(env: &EnvConfig) -> std::result::Result<(), String> {
    if let Some(url) = &env.health_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "health_url = {:?} is not an http:// or https:// URL",
                crate::redact::scrub(url)
            ));
        }
    }
    if let Some(var) = env
        .rehearsal_url_env
        .as_ref()
        .filter(|v| !crate::config::is_variable_name(v))
    {
        return Err(format!(
            "rehearsal_url_env = {var:?} is not the name of an environment variable (letters, digits and _, not starting with a digit)"
        ));
    }
    if env.health_retries == Some(0) {
        return Err("health_retries must be at least 1".into());
    }
    if let Some(status) = env.health_status {
        if !(100..=599).contains(&status) {
            return Err(format!("health_status = {status} is not an HTTP status"));
        }
    }
    for (key, value) in [
        ("pre_deploy", &env.pre_deploy),
        ("post_deploy", &env.post_deploy),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(format!(
                "{key} is empty: remove the key, or give the command"
            ));
        }
    }
    Ok(())
}

/// What `on_unhealthy` means when the file does not say: like a failed check after the
/// deploy, the backup comes back only where `auto_restore` is on.
pub fn on_unhealthy(env: &EnvConfig) -> OnUnhealthy {
    env.on_unhealthy.unwrap_or(if env.auto_restore {
        OnUnhealthy::Restore
    } else {
        OnUnhealthy::Stop
    })
}

/// A rehearsal's lock budget: the environment's `max_lock`, else
/// [`DEFAULT_PROTECTED_MAX_LOCK`] in a protected environment, else none (the rehearsal
/// reports the locks and gives no verdict).
pub fn max_lock(env: &EnvConfig) -> Option<Duration> {
    env.max_lock
        .or(env.protected.then_some(DEFAULT_PROTECTED_MAX_LOCK))
}

fn selected(settings: &Settings) -> Result<(&str, &EnvConfig)> {
    match (&settings.env_name, &settings.env) {
        (Some(name), Some(env)) => Ok((name, env)),
        _ => Err(Error::Usage {
            message: "no environment selected".into(),
            hint: "pass --env NAME (or set PGWARD_ENV) naming an [env.NAME] of pgward.toml".into(),
        }),
    }
}

/// The selected environment's settings for the scripts, defaults filled in. The
/// notification URL is not in it (it carries a secret): `pgward-report notify` reads it.
pub fn script_settings(settings: &Settings) -> Result<Value> {
    let (name, env) = selected(settings)?;
    let secs = |d: Option<Duration>, default: Duration| d.unwrap_or(default).as_secs_f64();
    Ok(json!({
        "env": name,
        "config": settings.config_path.as_ref().map(|p| p.display().to_string()),
        "database_url_env": env.database_url_env,
        "backups": settings.backup_locations(),
        "protected": env.protected,
        "auto_restore": env.auto_restore,
        "fleet": env.fleet,
        "pre_deploy": env.pre_deploy,
        "post_deploy": env.post_deploy,
        "hook_timeout_s": secs(env.hook_timeout, DEFAULT_HOOK_TIMEOUT),
        "health_url": env.health_url.as_deref().map(crate::redact::scrub),
        "health_status": env.health_status.unwrap_or(DEFAULT_HEALTH_STATUS),
        "health_retries": env.health_retries.unwrap_or(DEFAULT_HEALTH_RETRIES),
        "health_timeout_s": secs(env.health_timeout, DEFAULT_HEALTH_TIMEOUT),
        "on_unhealthy": on_unhealthy(env),
        "notify": notify_url(settings).is_some(),
        "notify_on": env.notify_on.unwrap_or(DEFAULT_SCRIPT_NOTIFY_ON),
        "log_dir": env.log_dir.as_deref().map(|d| absolute(&settings.path_from_config(d))),
        "log_keep_days": env.log_keep_days.unwrap_or(DEFAULT_LOG_KEEP_DAYS),
        "retention": env.retention.as_ref().filter(|r| !r.is_empty()),
        "backup_format": env.backup_format.unwrap_or(crate::archive::manifest::BackupFormat::Directory),
        "migrations": absolute(&settings.migrations_dir(None)),
        "rehearsal_url_env": env.rehearsal_url_env,
        "rehearse": env.rehearse,
        "max_lock_ms": max_lock(env).map(|d| d.as_millis() as u64),
    }))
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Where the scripts' notification goes: `--notify` / PGWARD_NOTIFY_URL, else the
/// environment's `notify_url`.
fn notify_url(settings: &Settings) -> Option<&str> {
    settings
        .notify_url()
        .or_else(|| settings.env.as_ref()?.notify_url.as_deref())
}

/// The health check: flags given to `pgward-report app-health`, else the environment's.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// The URL to GET.
    pub url: String,
    /// The status a healthy application answers.
    pub expected: u16,
    /// GETs at most.
    pub retries: u32,
    /// The whole check's limit.
    pub timeout: Duration,
}

impl HealthCheck {
    /// `url` or the environment's `health_url` (one of them is needed), and the
    /// environment's other keys where the flags leave them out.
    pub fn resolve(
        settings: &Settings,
        url: Option<String>,
        expected: Option<u16>,
        retries: Option<u32>,
        timeout: Option<Duration>,
    ) -> Result<HealthCheck> {
        let env = settings.env.clone().unwrap_or_default();
        let url = url.or(env.health_url).ok_or_else(|| Error::Usage {
            message: "no health URL: neither --url nor health_url of the environment".into(),
            hint: "pass --url http://HOST/health, or set health_url in [env.NAME] of pgward.toml and pass --env NAME".into(),
        })?;
        Ok(HealthCheck {
            url,
            expected: expected
                .or(env.health_status)
                .unwrap_or(DEFAULT_HEALTH_STATUS),
            retries: retries
                .or(env.health_retries)
                .unwrap_or(DEFAULT_HEALTH_RETRIES)
                .max(1),
            timeout: timeout
                .or(env.health_timeout)
                .unwrap_or(DEFAULT_HEALTH_TIMEOUT),
        })
    }

    /// GETs the URL until it answers the expected status, at most `retries` times with a
    /// doubling pause (1 s, 2 s, 4 s, ... up to 10 s), all within `timeout`. The result
    /// lists every attempt; an unhealthy application is [`Error::AppUnhealthy`] with it.
    pub fn run(&self) -> std::result::Result<Value, Failure> {
        let started = Instant::now();
        let shown = crate::redact::scrub(&self.url);
        let mut attempts = Vec::new();
        let mut pause = FIRST_PAUSE;
        let mut last = String::from("no answer");
        let result = |attempts: &Vec<Value>, healthy: bool| {
            json!({"url": shown, "expected": self.expected, "healthy": healthy,
                   "attempts": attempts, "duration_ms": started.elapsed().as_millis() as u64})
        };
        for attempt in 1..=self.retries {
            let left = self.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            let t0 = Instant::now();
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(left.min(MAX_REQUEST)))
                .http_status_as_error(false)
                .build()
                .into();
            let answer = agent.get(&self.url).call();
            let ms = t0.elapsed().as_millis() as u64;
            match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    attempts.push(json!({"attempt": attempt, "status": status, "ms": ms}));
                    if status == self.expected {
                        crate::log::info(&format!(
                            "{shown} answered {status}: healthy (attempt {attempt})"
                        ));
                        return Ok(result(&attempts, true));
                    }
                    last = format!("HTTP {status}");
                }
                Err(e) => {
                    last = crate::redact::scrub(&e.to_string());
                    attempts.push(json!({"attempt": attempt, "error": last, "ms": ms}));
                }
            }
            if crate::interrupt::requested() {
                return Err(Failure::with_result(
                    Error::Interrupted,
                    result(&attempts, false),
                ));
            }
            let left = self.timeout.saturating_sub(started.elapsed());
            if attempt < self.retries && !left.is_zero() {
                let wait = pause.min(left);
                crate::log::warn(&format!(
                    "{shown}: attempt {attempt}/{}: {last}; trying again in {} ms",
                    self.retries,
                    wait.as_millis()
                ));
                std::thread::sleep(wait);
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
        let error = Error::AppUnhealthy {
            url: shown.clone(),
            expected: self.expected,
            attempts: attempts.len() as u32,
            waited_s: started.elapsed().as_secs(),
            last,
        };
        Err(Failure::with_result(error, result(&attempts, false)))
    }
}

/// Sends the one notification of a script run (`document`: the script's final JSON)
/// when the environment's `notify_on` wants it. Returns what happened; a delivery that
/// fails is `Err(reason)`, which never changes the script's exit code.
pub fn notify_run(settings: &Settings, document: &Value) -> std::result::Result<Value, String> {
    let on = settings
        .env
        .as_ref()
        .and_then(|e| e.notify_on)
        .unwrap_or(DEFAULT_SCRIPT_NOTIFY_ON);
    let ok = document["ok"].as_bool().unwrap_or(false);
    let code = document["exit_code"].as_i64().unwrap_or(1) as i32;
    let Some(url) = notify_url(settings) else {
        return Ok(json!({"sent": false, "why": "no notify_url and no PGWARD_NOTIFY_URL"}));
    };
    if !crate::notify::wanted_for(ok, code, on) {
        return Ok(
            json!({"sent": false, "why": format!("exit {code} is not notified with notify_on = {}", on_name(on))}),
        );
    }
    crate::notify::send(url, &run_message(document))?;
    Ok(json!({"sent": true, "to": crate::notify::shown_url(url)}))
}

fn on_name(on: NotifyOn) -> String {
    serde_json::to_value(on)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The message about a script run: what ran, on which target, how long, the outcome,
/// and the next step (the error's hint, else the first warning).
pub fn run_message(doc: &Value) -> Value {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let code = doc["exit_code"].as_i64().unwrap_or(1);
    let ok = doc["ok"].as_bool().unwrap_or(false);
    let (outcome, colour) = match (ok, code) {
        (true, 3) => ("needs attention", "warning"),
        (true, _) => ("succeeded", "good"),
        _ => ("FAILED", "danger"),
    };
    // backup-cron.sh and maintenance.sh have one command, `run`; "none" is a run that
    // stopped before its command was known.
    let what = [&doc["tool"], &doc["command"], &doc["result"]["env"]]
        .into_iter()
        .map(s)
        .filter(|w| !w.is_empty() && w != "run" && w != "none")
        .collect::<Vec<_>>()
        .join(" ");
    let target = match &doc["target"] {
        Value::Object(t) => format!("{}:{}/{}", s(&t["host"]), t["port"], s(&t["database"])),
        _ => "-".into(),
    };
    let ms = doc["duration_ms"].as_u64().unwrap_or(0);
    let duration = format!("{:.1} s", ms as f64 / 1000.0);
    let steps: Vec<String> = doc["result"]["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|st| format!("{} {}", s(&st["step"]), st["exit_code"]))
                .collect()
        })
        .unwrap_or_default();
    let error = &doc["error"];
    let next = if error.is_object() {
        s(&error["hint"])
    } else if code == 3 {
        doc["warnings"][0]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "see the run's log".into())
    } else {
        "none".into()
    };
    let mut text = format!("{what} {outcome} on {target} (exit {code}, {duration})");
    if error.is_object() {
        text.push_str(&format!(": {} {}", s(&error["code"]), s(&error["message"])));
    }
    if !next.is_empty() && next != "none" {
        text.push_str(&format!("\nnext step: {next}"));
    }
    let text = crate::redact::scrub(&text);
    let mut fields = vec![
        json!({"title": "ran", "value": what, "short": true}),
        json!({"title": "target", "value": target, "short": true}),
        json!({"title": "exit code", "value": code.to_string(), "short": true}),
        json!({"title": "duration", "value": duration, "short": true}),
        json!({"title": "steps", "value": steps.join(", "), "short": false}),
        json!({"title": "next step", "value": crate::redact::scrub(&next), "short": false}),
    ];
    if let Some(log) = doc["result"]["log_file"].as_str() {
        fields.push(json!({"title": "log", "value": log, "short": false}));
    }
    json!({
        "text": text,
        "attachments": [{"color": colour, "fields": fields}],
        "pgward": {
            "tool": doc["tool"], "command": doc["command"], "env": doc["result"]["env"],
            "outcome": outcome, "ok": ok, "exit_code": code, "target": target,
            "duration_ms": ms, "steps": steps,
            "error": error.get("code"), "next_step": crate::redact::scrub(&next),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rehearsals_budget_is_5s_when_protected_none_elsewhere_and_max_lock_wins() {
        let env = |toml: &str| -> EnvConfig { toml::from_str(toml).expect("an [env.NAME] table") };
        assert_eq!(
            max_lock(&env("protected = true")),
            Some(Duration::from_secs(5))
        );
        assert_eq!(max_lock(&env("")), None);
        let set = env("protected = true\nmax_lock = \"750ms\"\nrehearse = true");
        assert_eq!(max_lock(&set), Some(Duration::from_millis(750)));
        assert!(set.rehearse);
        assert!(toml::from_str::<EnvConfig>("max_lock = \"soon\"").is_err());
        assert!(check_env(&env("rehearsal_url_env = \"REHEARSAL_URL\"")).is_ok());
        let err = check_env(&env("rehearsal_url_env = \"$(rm -rf ~)\"")).expect_err("refused");
        assert!(
            err.contains("not the name of an environment variable"),
            "{err}"
        );
    }

    #[test]
    fn a_run_that_needs_attention_is_neither_success_nor_failure() {
        let doc = json!({"tool": "backup-cron.sh", "command": "run", "ok": true, "exit_code": 3,
            "duration_ms": 1234, "target": {"host": "db", "port": 5432, "database": "app"},
            "result": {"env": "prod", "steps": [{"step": "report", "exit_code": 3}]},
            "warnings": [{"code": "X", "message": "the newest backup is 30 h old"}], "error": null});
        let m = run_message(&doc);
        let text = m["text"].as_str().unwrap_or_default();
        assert!(
            text.starts_with("backup-cron.sh prod needs attention on db:5432/app (exit 3, 1.2 s)"),
            "{text}"
        );
        assert!(
            text.contains("next step: the newest backup is 30 h old"),
            "{text}"
        );
        assert_eq!(m["pgward"]["steps"][0], "report 3");
    }
}
