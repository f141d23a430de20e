//! The one JSON document every binary prints on stdout, and the `main` skeleton that
//! guarantees it: parse flags (a usage error still prints an envelope), resolve settings,
//! run the command, print the envelope, append the audit line, exit with the code.
//!
//! The envelope's `error.code` and `warnings[].code` come from one catalogue,
//! [`crate::codes`]. Its `result` is the command's own result type, a `Serialize` struct;
//! the ones the renderers read by field live in this crate and also `Deserialize`:
//!
//! | command | `result` type |
//! |---|---|
//! | `pgward-migrate deploy` / `status` / `resolve` / `rollback` (refused: `RollbackRefused`) / `new` / `seed` | `DeployResult`, `StatusResult`, `ResolveResult`, `RollbackResult`, `NewResult`, `SeedResult` in [`crate::migrations::results`] |
//! | `pgward-backup backup` | `archive::write::DumpResult`; `--dry-run`: `archive::results::BackupPlan` |
//! | `pgward-backup list` | `archive::inventory::ListResult` (read back by other binaries as [`crate::archive::sources::Listing`]) |
//! | `pgward-backup verify` | `archive::results::VerifyResult` |
//! | `pgward-backup prune` | `archive::prune::PruneResult` |
//! | `pgward-restore` | `archive::results::RestoreResult` |
//! | `pgward-validate lint` / `schema` / `data` / `preflight` / `drift` | `LintResult`, `SchemaResult`, `DataResult`, `PreflightResult`, `DriftResult` in [`crate::findings`], each with [`crate::findings::Finding`]s |
//! | `pgward-report migrations` | [`crate::migrations::report::MigrationsReport`] |
//! | `pgward-report health` | [`crate::health::HealthReport`] |
//! | `pgward-report backups` / `audit` | `archive::results::BackupsReport` / [`crate::audit::AuditReport`] |
//! | `pgward-report settings` / `app-health` / `notify` | JSON values built in [`crate::workflow`] (not yet typed structs) |
//!
//! `pgward-report render` has no result of its own: it prints the document it reads.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::codes::WarningCode;
use crate::config::{GlobalArgs, OutputFormat, Settings};
use crate::connect::dburl::ConnectionSettings;
use crate::connect::{Session, Target};
use crate::error::{Error, Exit, Result};

/// pgward's version, printed in every envelope.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Something worth a look that did not stop the command.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Warning {
    /// Stable SCREAMING_SNAKE code, one of [`WarningCode`] (a string, so that a document
    /// of another version read back by `pgward-report render` keeps codes this one lacks).
    pub code: String,
    /// What happened.
    pub message: String,
}

impl Warning {
    /// A warning of the catalogue.
    pub fn new(code: WarningCode, message: String) -> Warning {
        Warning {
            code: code.as_str().to_string(),
            message,
        }
    }
}

/// `error` in the envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// Stable SCREAMING_SNAKE code.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// What to do next.
    pub hint: String,
    /// Machine-readable details, when the error has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> ErrorBody {
        ErrorBody {
            code: e.code().to_string(),
            message: crate::redact::scrub(&e.to_string()),
            hint: crate::redact::scrub(&e.hint()),
            details: e.details(),
        }
    }
}

/// Another binary's envelope, read back from its stdout with its `result` typed as `R`
/// (binaries compose through these documents, never by importing each other).
#[derive(Debug, Clone, Deserialize)]
pub struct ReadEnvelope<R> {
    /// Whether the command ran (exit 0 or 3).
    pub ok: bool,
    /// The command's result.
    pub result: Option<R>,
    /// The error, when it failed.
    pub error: Option<ErrorBody>,
}

/// The document on stdout (docs/contract.md §1 "Output").
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    /// `migrate`, `backup`, ...
    pub tool: String,
    /// The subcommand.
    pub command: String,
    /// pgward's version.
    pub version: String,
    /// False when the command failed (exit codes other than 0 and 3).
    pub ok: bool,
    /// The exit code the process ends with.
    pub exit_code: i32,
    /// When the command started (UTC, RFC 3339).
    pub started_at: String,
    /// How long it ran.
    pub duration_ms: u64,
    /// The database worked on, if any.
    pub target: Option<Target>,
    /// The command's own result (null when it failed before producing one).
    pub result: serde_json::Value,
    /// Things worth a look.
    pub warnings: Vec<Warning>,
    /// What went wrong, when `ok` is false.
    pub error: Option<ErrorBody>,
}

/// What a command returns when it ran to the end.
#[derive(Debug)]
pub struct Outcome {
    /// The command-specific result.
    pub result: serde_json::Value,
    /// [`Exit::Success`] or [`Exit::Attention`].
    pub exit: Exit,
}

impl Outcome {
    /// A successful result.
    pub fn ok(result: impl Serialize) -> Outcome {
        Outcome {
            result: to_value(result),
            exit: Exit::Success,
        }
    }

    /// A result that needs attention (exit 3): pending migrations, drift, old backups.
    pub fn attention(result: impl Serialize) -> Outcome {
        Outcome {
            result: to_value(result),
            exit: Exit::Attention,
        }
    }
}

/// What a command returns when it failed: the error, and any partial result.
#[derive(Debug)]
pub struct Failure {
    /// The error (boxed: a failure travels up many frames and should stay small).
    pub error: Box<Error>,
    /// What the command found before failing (e.g. `status` listing failed migrations).
    pub result: Option<serde_json::Value>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            error: Box::new(error),
            result: None,
        }
    }
}

impl Failure {
    /// An error with the result gathered so far.
    pub fn with_result(error: Error, result: impl Serialize) -> Failure {
        Failure {
            error: Box::new(error),
            result: Some(to_value(result)),
        }
    }
}

fn to_value(v: impl Serialize) -> serde_json::Value {
    serde_json::to_value(v)
        .unwrap_or_else(|e| serde_json::json!({ "serialization_error": e.to_string() }))
}

/// What a command sees: resolved settings, and a place for warnings and the target.
pub struct Context {
    /// Flags, environment and config, resolved.
    pub settings: Settings,
    tool: &'static str,
    command: String,
    warnings: Mutex<Vec<Warning>>,
    target: Mutex<Option<Target>>,
    audited: Mutex<Option<crate::audit::AuditTarget>>,
}

impl Context {
    /// Adds a warning to the envelope and logs it.
    pub fn warn(&self, code: WarningCode, message: impl Into<String>) {
        let message = crate::redact::scrub(&message.into());
        crate::log::warn(&message);
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Warning::new(code, message));
    }

    /// Adds each `(code, message)` warning, in order.
    pub fn warn_all(&self, warnings: impl IntoIterator<Item = (WarningCode, String)>) {
        for (code, message) in warnings {
            self.warn(code, message);
        }
    }

    /// The connection settings; unknown URL parameters become warnings (once per run,
    /// however often a command asks: deploy asks here and again in [`Context::connect`]).
    pub fn database(&self) -> Result<ConnectionSettings> {
        let db = self.settings.database()?;
        let mut target = self.target.lock().unwrap_or_else(|e| e.into_inner());
        if target.is_none() {
            for p in &db.unknown_params {
                self.warn(
                    WarningCode::UnknownUrlParameter,
                    format!(
                        "the database URL parameter `{p}` is not known to pgward and is ignored"
                    ),
                );
            }
        }
        *target = Some(Target::from(&db));
        Ok(db)
    }

    /// Connects to the configured database as `pgward-<tool>`.
    pub fn connect(&self) -> Result<Session> {
        let db = self.database()?;
        crate::connect::connect(&db, &format!("pgward-{}", self.tool))
    }

    /// Starts connecting as [`Context::connect`] does, on a helper thread, so that the
    /// command can read its files meanwhile; `None` when the settings give no database
    /// (then [`Context::connect`] reports why, in its turn).
    pub fn connect_early(&self) -> Option<crate::connect::early::EarlySession> {
        let db = self.settings.database().ok()?;
        Some(crate::connect::early::EarlySession::start(
            db,
            format!("pgward-{}", self.tool),
        ))
    }

    /// The session [`Context::connect_early`] started, or a new one.
    pub fn connect_from(
        &self,
        early: Option<crate::connect::early::EarlySession>,
    ) -> Result<Session> {
        // Its unknown-parameter warnings, once, as connect would give them.
        self.database()?;
        match early {
            Some(early) => early.finish(),
            None => self.connect(),
        }
    }

    /// Marks this run as one that changes something: it gets an audit line.
    pub fn audit(&self, db: &ConnectionSettings) {
        *self.audited.lock().unwrap_or_else(|e| e.into_inner()) = Some(crate::audit::AuditTarget {
            target: db.redacted_url(),
            db_user: Some(db.user.clone()),
        });
    }

    /// Marks this run as one that changes a backup location (no database involved).
    pub fn audit_location(&self, location: &str) {
        *self.audited.lock().unwrap_or_else(|e| e.into_inner()) = Some(crate::audit::AuditTarget {
            target: crate::redact::scrub(location),
            db_user: None,
        });
    }

    /// The subcommand's name.
    pub fn command(&self) -> &str {
        &self.command
    }
}

/// Parses the flags of a binary; on a usage error prints the envelope (stdout) and clap's
/// message (stderr) and exits 2. `--help` and `--version` print as usual.
pub fn parse_args<C: clap::Parser>(tool: &'static str) -> C {
    if let Some(what) = generate_request() {
        generate_docs::<C>(&what);
    }
    match C::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(0);
            }
            // clap quotes the offending value, which can be a database URL typed in the
            // wrong place (`pgward-migrate deploy "$DATABASE_URL"`): print its message
            // scrubbed (plain, without colours, only when there is something to hide).
            let plain = e.render().to_string();
            let scrubbed = crate::redact::scrub(&plain);
            if scrubbed == plain {
                let _ = e.print();
            } else {
                let _ = std::io::stderr().write_all(scrubbed.as_bytes());
            }
            let error = Error::usage(
                crate::redact::scrub(&usage_message(&e)),
                format!("see `pgward-{tool} --help`"),
            );
            // The subcommand, when the first argument names one.
            let command = std::env::args()
                .nth(1)
                .filter(|a| !a.starts_with('-') && !a.contains("://"))
                .unwrap_or_default();
            let envelope = Envelope {
                tool: tool.to_string(),
                command,
                version: VERSION.to_string(),
                ok: false,
                exit_code: Exit::Usage.code(),
                started_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                duration_ms: 0,
                target: None,
                result: serde_json::Value::Null,
                warnings: Vec::new(),
                error: Some(ErrorBody::from(&error)),
            };
            print_envelope(&envelope, OutputFormat::Json);
            std::process::exit(Exit::Usage.code());
        }
    }
}

/// The first line of clap's own message without its `error: ` prefix, e.g. "unexpected
/// argument '--frobnicate' found": it names the flag or value at fault, which the error
/// kind alone ("unexpected argument found") does not.
fn usage_message(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default().trim();
    let message = first.strip_prefix("error:").unwrap_or(first).trim();
    if message.is_empty() {
        e.kind().as_str().unwrap_or("invalid arguments").to_string()
    } else {
        message.to_string()
    }
}

/// `--generate bash|zsh|fish|elvish|powershell|man`, anywhere on the command line: the
/// shell completions or the man page of the binary, generated from its clap definition.
fn generate_request() -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--generate") {
            Some("") => args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        })
}

/// Prints completions or the man page and exits (0, or 2 for an unknown kind).
fn generate_docs<C: clap::CommandFactory>(what: &str) -> ! {
    use clap_complete::Shell;
    let mut cmd = C::command();
    let name = cmd.get_name().to_string();
    let mut out = std::io::stdout().lock();
    let result = match what {
        "man" => clap_mangen::Man::new(cmd).render(&mut out),
        shell => match shell.parse::<Shell>() {
            Ok(shell) => {
                clap_complete::generate(shell, &mut cmd, name, &mut out);
                Ok(())
            }
            Err(_) => {
                eprintln!(
                    "--generate takes bash, zsh, fish, elvish, powershell or man, not `{what}`"
                );
                std::process::exit(Exit::Usage.code());
            }
        },
    };
    let _ = result.and_then(|_| out.flush());
    std::process::exit(0);
}

/// Runs one command and ends the process: envelope on stdout, audit line, exit code.
pub fn run(
    tool: &'static str,
    command: &str,
    args: GlobalArgs,
    body: impl FnOnce(&Context) -> std::result::Result<Outcome, Failure>,
) -> ! {
    crate::interrupt::install();
    crate::log::set_quiet(args.quiet);
    let started = Instant::now();
    let started_at: DateTime<Utc> = Utc::now();
    let format = args.format;
    let settings = match Settings::resolve(args, &|k| std::env::var(k).ok()) {
        Ok(settings) => settings,
        Err(e) => {
            crate::log::error(&format!("{e}\nhint: {}", e.hint()));
            print_envelope(
                &failed_envelope(tool, command, started, started_at, &e),
                format,
            );
            std::process::exit(e.exit().code());
        }
    };
    let ctx = Context {
        settings,
        tool,
        command: command.to_string(),
        warnings: Mutex::new(Vec::new()),
        target: Mutex::new(None),
        audited: Mutex::new(None),
    };
    let result = body(&ctx);
    let warnings = ctx
        .warnings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let target = ctx.target.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (exit, result_value, error) = match result {
        Ok(o) => (o.exit, o.result, None),
        Err(f) => {
            // An interrupt turns whatever failed into "interrupted".
            let error = if crate::interrupt::requested() {
                Error::Interrupted
            } else {
                *f.error
            };
            crate::log::error(&format!("{error}\nhint: {}", error.hint()));
            (
                error.exit(),
                f.result.unwrap_or(serde_json::Value::Null),
                Some(ErrorBody::from(&error)),
            )
        }
    };
    let mut envelope = Envelope {
        tool: tool.to_string(),
        command: command.to_string(),
        version: VERSION.to_string(),
        ok: matches!(exit, Exit::Success | Exit::Attention),
        exit_code: exit.code(),
        started_at: started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        duration_ms: started.elapsed().as_millis() as u64,
        target,
        result: result_value,
        warnings,
        error,
    };
    if let Some(url) = ctx.settings.notify_url() {
        if crate::notify::wanted(&envelope, ctx.settings.args.notify_on) {
            if let Err(reason) = crate::notify::send(url, &crate::notify::message(&envelope)) {
                crate::log::warn(&reason);
                envelope
                    .warnings
                    .push(Warning::new(WarningCode::NotifyFailed, reason));
            }
        }
    }
    if let Some(db) = ctx
        .audited
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        if let Some(path) = ctx.settings.audit_log() {
            if let Err(e) = crate::audit::append(path, &db, &envelope) {
                crate::log::error(&format!("cannot write the audit log: {e}"));
            }
        }
    }
    print_envelope(&envelope, format);
    std::process::exit(exit.code());
}

fn failed_envelope(
    tool: &str,
    command: &str,
    started: Instant,
    started_at: DateTime<Utc>,
    e: &Error,
) -> Envelope {
    Envelope {
        tool: tool.to_string(),
        command: command.to_string(),
        version: VERSION.to_string(),
        ok: false,
        exit_code: e.exit().code(),
        started_at: started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        duration_ms: started.elapsed().as_millis() as u64,
        target: None,
        result: serde_json::Value::Null,
        warnings: Vec::new(),
        error: Some(ErrorBody::from(e)),
    }
}

/// Writes the envelope to stdout in `format` (see [`crate::render`]; JSON is pretty on a
/// terminal); a closed pipe is not an error.
pub fn print_envelope(envelope: &Envelope, format: OutputFormat) {
    let text = match format {
        OutputFormat::Json if std::io::stdout().is_terminal() => {
            serde_json::to_string_pretty(envelope)
                .unwrap_or_else(|_| crate::render::render(envelope, format))
        }
        _ => crate::render::render(envelope, format),
    };
    let mut out = std::io::stdout().lock();
    // ripgrep's rule: a reader that went away (`| head`) is not a failure.
    let _ = writeln!(out, "{text}").and_then(|_| out.flush());
}
