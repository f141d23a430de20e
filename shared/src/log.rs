//! Human-facing log lines on stderr: timestamped, coloured only on a terminal without
//! NO_COLOR, silenced by `--quiet`, and scrubbed of secrets. stdout is never touched here:
//! it belongs to the one JSON document.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences info and warning lines (errors still print).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::SeqCst);
}

/// Whether `--quiet` is in force.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::SeqCst)
}

/// Whether stderr gets ANSI colours: a terminal, and NO_COLOR unset or empty.
pub fn colour() -> bool {
    static COLOUR: OnceLock<bool> = OnceLock::new();
    *COLOUR.get_or_init(|| {
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    })
}

fn emit(level: &str, ansi: &str, message: &str) {
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let text = crate::redact::scrub(message);
    let mut err = std::io::stderr().lock();
    // A closed stderr is no reason to fail the command.
    let _ = if colour() {
        writeln!(err, "{ts} \x1b[{ansi}m{level:<5}\x1b[0m {text}")
    } else {
        writeln!(err, "{ts} {level:<5} {text}")
    };
}

/// Progress and what is being done.
pub fn info(message: &str) {
    if !is_quiet() {
        emit("INFO", "32", message);
    }
}

/// Something the user should look at, though the command goes on.
pub fn warn(message: &str) {
    if !is_quiet() {
        emit("WARN", "33", message);
    }
}

/// The command failed; printed even under `--quiet`.
pub fn error(message: &str) {
    emit("ERROR", "31", message);
}
