//! The `result` of a fleet run: what happened on each target, and a summary. The renderers
//! read it typed (a fleet table, a status grid, per-target Prometheus series), so it also
//! `Deserialize`s.

use serde::{Deserialize, Serialize};

use crate::output::ErrorBody;

/// How the number of slowest targets the summary names.
pub const SLOWEST: usize = 5;

/// What became of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOutcome {
    /// The command succeeded on it (exit 0; for `deploy`: applied, or already up to date).
    Ok,
    /// The command ran and needs attention (exit 3: pending migrations, drift, warnings).
    Attention,
    /// The command failed on it (any other exit code but 4 and 130).
    Failed,
    /// It could not be reached (exit 4: network, authentication, TLS, connect timeout).
    Unreachable,
    /// It was running when the fleet was interrupted (exit 130).
    Interrupted,
    /// It was never started: a canary failed, `--stop-after-failures` was reached, or the
    /// fleet was interrupted first. Nothing was done to it.
    NotStarted,
}

impl TargetOutcome {
    /// The outcome of a command that ended with `exit_code`.
    pub fn of_exit(exit_code: i32) -> TargetOutcome {
        match exit_code {
            0 => TargetOutcome::Ok,
            3 => TargetOutcome::Attention,
            4 => TargetOutcome::Unreachable,
            130 => TargetOutcome::Interrupted,
            _ => TargetOutcome::Failed,
        }
    }

    /// The word printed in the JSON (`not_started`).
    pub fn as_str(self) -> &'static str {
        match self {
            TargetOutcome::Ok => "ok",
            TargetOutcome::Attention => "attention",
            TargetOutcome::Failed => "failed",
            TargetOutcome::Unreachable => "unreachable",
            TargetOutcome::Interrupted => "interrupted",
            TargetOutcome::NotStarted => "not_started",
        }
    }

    /// Whether it counts as a failure for `--stop-after-failures` and the canary.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            TargetOutcome::Failed | TargetOutcome::Unreachable | TargetOutcome::Interrupted
        )
    }
}

/// One target of the fleet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FleetTarget {
    /// Its 1-based place in the whole list (before `--shard`), so shards of one list
    /// number their targets alike.
    pub index: usize,
    /// The target, password masked (`postgresql://app:***@db:5432/app?schema=tenant_7`).
    pub target: String,
    /// Whether it ran in the canary phase.
    #[serde(default)]
    pub canary: bool,
    /// What became of it.
    pub outcome: TargetOutcome,
    /// The command's exit code on it (none when it was not started).
    pub exit_code: Option<i32>,
    /// How long the command ran on it (none when it was not started).
    pub duration_ms: Option<u64>,
    /// The command's own `result` for it, as it prints it alone.
    #[serde(default)]
    pub result: serde_json::Value,
    /// The command's warnings on it.
    #[serde(default)]
    pub warnings: Vec<serde_json::Value>,
    /// The command's error on it.
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

/// A slow target, for the summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SlowTarget {
    /// Its index.
    pub index: usize,
    /// The target, password masked.
    pub target: String,
    /// How long the command ran on it.
    pub duration_ms: u64,
}

/// Counts per outcome, and why the fleet stopped early if it did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FleetSummary {
    /// Targets in this run (after `--shard`).
    pub total: usize,
    /// Exit 0.
    pub ok: usize,
    /// Exit 3.
    pub attention: usize,
    /// Failed (other exit codes).
    pub failed: usize,
    /// Exit 4.
    pub unreachable: usize,
    /// Running when interrupted.
    pub interrupted: usize,
    /// Never started.
    pub not_started: usize,
    /// Why no new target was started before the list ended, when that happened.
    pub stopped: Option<String>,
    /// The slowest targets, slowest first (at most [`SLOWEST`]).
    pub slowest: Vec<SlowTarget>,
}

/// How the fleet was chosen and run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FleetRun {
    /// Where the targets came from: `FILE`, `stdin` or `fleet NAME`.
    pub source: String,
    /// Targets in the whole list, before `--shard`.
    pub listed: usize,
    /// `I/N` under `--shard`.
    pub shard: Option<String>,
    /// Targets run at once.
    pub parallel: usize,
    /// Targets run first, alone.
    pub canary: usize,
    /// No new target starts after this many failures (none: never stop).
    pub stop_after_failures: Option<usize>,
}

/// The `result` of every command run over a fleet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FleetResult {
    /// How it was run.
    pub fleet: FleetRun,
    /// Counts and the slowest targets.
    pub summary: FleetSummary,
    /// Every target, in the list's order.
    pub targets: Vec<FleetTarget>,
}

impl FleetResult {
    /// Reads a document's result as a fleet's, if it is one.
    pub fn of(result: &serde_json::Value) -> Option<FleetResult> {
        result.get("fleet")?;
        FleetResult::deserialize(result).ok()
    }

    /// The summary of `targets`.
    pub fn summarize(targets: &[FleetTarget], stopped: Option<String>) -> FleetSummary {
        let count = |o: TargetOutcome| targets.iter().filter(|t| t.outcome == o).count();
        let mut timed: Vec<SlowTarget> = targets
            .iter()
            .filter_map(|t| {
                t.duration_ms.map(|d| SlowTarget {
                    index: t.index,
                    target: t.target.clone(),
                    duration_ms: d,
                })
            })
            .collect();
        timed.sort_by(|a, b| {
            b.duration_ms
                .cmp(&a.duration_ms)
                .then(a.index.cmp(&b.index))
        });
        timed.truncate(SLOWEST);
        FleetSummary {
            total: targets.len(),
            ok: count(TargetOutcome::Ok),
            attention: count(TargetOutcome::Attention),
            failed: count(TargetOutcome::Failed),
            unreachable: count(TargetOutcome::Unreachable),
            interrupted: count(TargetOutcome::Interrupted),
            not_started: count(TargetOutcome::NotStarted),
            stopped,
            slowest: timed,
        }
    }
}

/// How serious an exit code is, for the fleet's own exit code: integrity (5) over failed
/// (1) over refused (6), storage (7), usage (2), interrupted (130) over cannot connect
/// (4) over needs attention (3) over success (0). So a fleet exits 4 only when every
/// failure was a connection failure.
pub fn severity(exit_code: i32) -> u8 {
    match exit_code {
        0 => 0,
        3 => 1,
        4 => 2,
        130 => 3,
        2 => 4,
        7 => 5,
        6 => 6,
        1 => 7,
        5 => 9,
        _ => 8, // a crash: worse than a clean failure, not an integrity finding
    }
}
