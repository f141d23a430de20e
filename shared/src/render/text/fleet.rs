//! The text view of a fleet run (`--targets` / `--fleet`): the verdict, the counts, why
//! it stopped early, then one line per target (problems first), each with its outcome,
//! exit code, duration and what went wrong.

use super::TextStyle;
use crate::fleet::{FleetResult, TargetOutcome};
use crate::output::Envelope;
use crate::render::fleet::problem_rank;
use crate::render::{human_seconds, verdict};

/// Targets listed one per line; the rest are counted (the JSON has every one).
const MAX_LINES: usize = 200;

/// A target's detail line is cut after this many characters (the JSON has it whole).
const DETAIL_CHARS: usize = 160;

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{cut}…")
}

/// The view, when `e`'s result is a fleet's.
pub(super) fn render(e: &Envelope, style: TextStyle) -> Option<String> {
    let fleet = FleetResult::of(&e.result)?;
    let s = &fleet.summary;
    let paint = |code: &str, text: &str| {
        if style.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let mut out = format!(
        "pgward-{} {} over {} target(s) of {}: {} (exit {}, {})\n",
        e.tool,
        e.command,
        s.total,
        fleet.fleet.source,
        verdict(e),
        e.exit_code,
        human_seconds(e.duration_ms as f64 / 1000.0)
    );
    if let Some(shard) = &fleet.fleet.shard {
        out.push_str(&format!("shard {shard} of {} listed\n", fleet.fleet.listed));
    }
    let counts: Vec<String> = [
        ("ok", s.ok),
        ("need attention", s.attention),
        ("failed", s.failed),
        ("unreachable", s.unreachable),
        ("interrupted", s.interrupted),
        ("not started", s.not_started),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{n} {what}"))
    .collect();
    out.push_str(&format!("{}\n", counts.join(", ")));
    if let Some(stopped) = &s.stopped {
        out.push_str(&format!("stopped: {stopped}\n"));
    }
    let mut targets: Vec<_> = fleet.targets.iter().collect();
    targets.sort_by_key(|t| (problem_rank(t.outcome), t.index));
    let width = targets
        .iter()
        .map(|t| t.outcome.as_str().len())
        .max()
        .unwrap_or(0);
    out.push('\n');
    for t in targets.iter().take(MAX_LINES) {
        let word = t.outcome.as_str().replace('_', " ");
        let colour = match t.outcome {
            TargetOutcome::Ok => "32",
            TargetOutcome::Attention => "33",
            TargetOutcome::NotStarted | TargetOutcome::Interrupted => "2",
            TargetOutcome::Failed | TargetOutcome::Unreachable => "31",
        };
        let timing = match (t.exit_code, t.duration_ms) {
            (Some(code), Some(ms)) => {
                format!("exit {code:<3} {:>8}", human_seconds(ms as f64 / 1000.0))
            }
            _ => format!("{:<8} {:>8}", "", ""),
        };
        out.push_str(&format!(
            "{:>4}  {}  {timing}  {}\n",
            format!("#{}", t.index),
            paint(colour, &format!("{word:<width$}")),
            t.target
        ));
        let detail = crate::render::fleet::detail(t);
        if let Some(line) = detail.lines().next().filter(|l| !l.is_empty()) {
            // Cut, then wrapped to the width of every view's prose.
            let detail = super::lines::wrap(&shorten(line, DETAIL_CHARS), 6, 6);
            out.push_str(&format!("      {detail}\n"));
        }
    }
    if targets.len() > MAX_LINES {
        out.push_str(&format!(
            "... and {} more target(s): the JSON document lists every one\n",
            targets.len() - MAX_LINES
        ));
    }
    if let Some(err) = &e.error {
        out.push('\n');
        out.push_str(&super::lines::error_block(err, style));
    }
    Some(out.trim_end().to_string())
}
