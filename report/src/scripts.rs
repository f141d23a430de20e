//! The commands `scripts/` call for what is not a database: `settings` (the environment's
//! keys of pgward.toml resolved, so the file has one reader), `app-health` (the
//! application's health URL after a deploy) and `notify` (a script run's one
//! notification). None of them connects to the database.

use std::time::Duration;

use pgward_shared::codes::WarningCode;
use pgward_shared::config::GlobalArgs;
use pgward_shared::error::Error;
use pgward_shared::output::{Context, Failure, Outcome};
use pgward_shared::workflow::{self, HealthCheck};

/// The database URL these commands resolve with: they never connect, and a run must not
/// fail (nor its notification go unsent) because the environment's URL variable is unset.
const NO_DATABASE: &str = "postgresql://no-database.invalid/none";

/// `args` with a database URL that is never used, so that resolving them does not require
/// the environment's URL variable.
pub fn without_database(mut args: GlobalArgs) -> GlobalArgs {
    args.database_url = Some(NO_DATABASE.into());
    args
}

/// `pgward-report settings`.
pub fn settings(ctx: &Context) -> Result<Outcome, Failure> {
    Ok(Outcome::ok(workflow::script_settings(&ctx.settings)?))
}

/// `pgward-report app-health`.
pub fn app_health(
    ctx: &Context,
    url: Option<String>,
    expect: Option<u16>,
    retries: Option<u32>,
    timeout: Option<Duration>,
) -> Result<Outcome, Failure> {
    let check = HealthCheck::resolve(&ctx.settings, url, expect, retries, timeout)?;
    check.run().map(Outcome::ok)
}

/// `pgward-report notify FILE`: FILE is the script's final JSON document.
pub fn notify(ctx: &Context, file: &str) -> Result<Outcome, Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io("read", file, e))?;
    let document: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::usage(
            format!("{file} is not a JSON document: {e}"),
            "pass the JSON document a script printed (scripts/lib/common.sh writes it)",
        )
    })?;
    match workflow::notify_run(&ctx.settings, &document) {
        Ok(result) => Ok(Outcome::ok(result)),
        Err(reason) => {
            ctx.warn(WarningCode::NotifyFailed, reason.clone());
            Ok(Outcome::ok(
                serde_json::json!({"sent": false, "why": reason}),
            ))
        }
    }
}
