//! A fleet's document (`--targets` / `--fleet`, [`crate::fleet`]) for the Markdown and HTML
//! renderers: its result flattened to what a reader scans, how it ran and the counts, then
//! one row per target (its command's own result stays in the JSON). The charts (a status
//! grid, durations) are in [`super::charts`], the per-target series in [`super::prometheus`],
//! the text view in `text/fleet.rs`.

use serde_json::{json, Map, Value};

use crate::fleet::{FleetResult, TargetOutcome};

/// `fleet` as one object: the run's settings and counts as scalars, `targets` as rows of
/// `index`, `target`, `outcome`, `exit_code`, `duration_ms` and `detail` (the error, or
/// the first warning).
pub(crate) fn flat(fleet: &FleetResult) -> Value {
    let mut map = Map::new();
    let run = &fleet.fleet;
    let s = &fleet.summary;
    map.insert("source".into(), json!(run.source));
    if let Some(shard) = &run.shard {
        map.insert(
            "shard".into(),
            json!(format!("{shard} of {} listed", run.listed)),
        );
    }
    map.insert("parallel".into(), json!(run.parallel));
    if run.canary > 0 {
        map.insert("canary".into(), json!(run.canary));
    }
    map.insert(
        "stop_after_failures".into(),
        json!(run
            .stop_after_failures
            .map_or("never".to_string(), |n| n.to_string())),
    );
    for (key, count) in [
        ("targets", s.total),
        ("ok", s.ok),
        ("attention", s.attention),
        ("failed", s.failed),
        ("unreachable", s.unreachable),
        ("interrupted", s.interrupted),
        ("not_started", s.not_started),
    ] {
        if count > 0 || key == "targets" {
            map.insert(format!("{key}_count"), json!(count));
        }
    }
    if let Some(stopped) = &s.stopped {
        map.insert("stopped".into(), json!(stopped));
    }
    // Problems first (a Markdown comment shows the first rows only), each group in the
    // list's order.
    let mut targets: Vec<&crate::fleet::FleetTarget> = fleet.targets.iter().collect();
    targets.sort_by_key(|t| (problem_rank(t.outcome), t.index));
    let rows: Vec<Value> = targets
        .iter()
        .map(|t| {
            json!({
                "index": t.index,
                "target": t.target,
                "outcome": t.outcome.as_str().replace('_', " "),
                "exit_code": t.exit_code,
                "duration_ms": t.duration_ms,
                "detail": detail(t),
            })
        })
        .collect();
    map.insert("per_target".into(), Value::Array(rows));
    Value::Object(map)
}

/// The order of the rows: what needs a look first.
pub(crate) fn problem_rank(outcome: TargetOutcome) -> u8 {
    match outcome {
        TargetOutcome::Failed => 0,
        TargetOutcome::Unreachable => 1,
        TargetOutcome::Interrupted => 2,
        TargetOutcome::Attention => 3,
        TargetOutcome::NotStarted => 4,
        TargetOutcome::Ok => 5,
    }
}

/// What a reader of one row needs besides its outcome: the error's code and message, or
/// its first warning.
pub(crate) fn detail(t: &crate::fleet::FleetTarget) -> String {
    if let Some(e) = &t.error {
        return format!("{}: {}", e.code, e.message);
    }
    t.warnings
        .first()
        .and_then(|w| w.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_default()
}
