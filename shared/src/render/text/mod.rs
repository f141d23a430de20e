//! `--format text`: the human view of a document, readable without colours or a terminal.
//!
//! A command with a designed view (a layout written for it, from its typed result) is
//! rendered by its module here; every other document, and a document whose result does not
//! read as its command's type (a failed run's null result, an older version's shape), gets
//! the generic summary ([`generic`]). Colour is a [`TextStyle`]: on for a terminal, off
//! when stdout is piped or `NO_COLOR` is set, so a view's words never depend on it.

#[cfg(feature = "storage")]
mod archive;
mod diagnostic;
mod fleet;
mod generic;
mod lines;
mod migrate;
mod report;
mod table;
mod validate;

use std::io::IsTerminal;

use crate::output::Envelope;

/// How a text view may style its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TextStyle {
    /// ANSI colours and emphasis (a terminal that did not ask for `NO_COLOR`).
    pub colour: bool,
}

impl TextStyle {
    /// Plain text: no escape sequences (files, pipes, snapshot tests).
    pub const PLAIN: TextStyle = TextStyle { colour: false };

    /// The style for a document printed on stdout: colour when stdout is a terminal and
    /// `NO_COLOR` is unset or empty (<https://no-color.org>).
    pub fn for_stdout() -> TextStyle {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        TextStyle {
            colour: !no_color && std::io::stdout().is_terminal(),
        }
    }
}

/// The human view of an envelope (`--format text`), styled for stdout.
pub fn render_text(e: &Envelope) -> String {
    render_text_styled(e, TextStyle::for_stdout())
}

/// The human view of an envelope in `style`: the command's designed view when it has one
/// and its result reads as the command's type, else the generic summary.
pub fn render_text_styled(e: &Envelope, style: TextStyle) -> String {
    designed_view(e, style).unwrap_or_else(|| generic::render_generic(e, style))
}

/// The designed view of `e`'s command, when it has one (one arm per command).
fn designed_view(e: &Envelope, style: TextStyle) -> Option<String> {
    match (e.tool.as_str(), e.command.as_str()) {
        // Any command run over a fleet (--targets / --fleet): one table of its targets.
        _ if crate::fleet::FleetResult::of(&e.result).is_some() => fleet::render(e, style),
        // pgward-migrate and pgward-validate: every command.
        ("migrate", "status" | "deploy" | "rollback" | "resolve" | "new" | "seed") => {
            migrate::view(e, style)
        }
        ("validate", "lint" | "schema" | "data" | "preflight" | "drift") => {
            validate::view(e, style)
        }
        // Backups, restores and the reports (archive.rs, report.rs).
        #[cfg(feature = "storage")]
        ("backup", "backup") => archive::backup(e, style),
        #[cfg(feature = "storage")]
        ("backup", "list") => archive::list(e, style),
        #[cfg(feature = "storage")]
        ("backup", "verify") => archive::verify(e, style),
        #[cfg(feature = "storage")]
        ("backup", "prune") => archive::prune(e, style),
        #[cfg(feature = "storage")]
        ("backup", "copy") => archive::copy(e, style),
        #[cfg(feature = "storage")]
        ("restore", "restore") => archive::restore(e, style),
        ("report", "health") => report::health(e, style),
        #[cfg(feature = "storage")]
        ("report", "backups") => report::backups(e, style),
        ("report", "migrations") => report::migrations(e, style),
        ("report", "audit") => report::audit(e, style),
        ("report", "settings") => report::settings(e, style),
        ("report", "app-health") => report::app_health(e, style),
        ("report", "notify") => report::notify(e, style),
        ("report", "render") => report::render(e, style),
        _ => None,
    }
}
