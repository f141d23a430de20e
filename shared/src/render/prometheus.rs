//! `--format prometheus`: metrics in the text format node_exporter's textfile collector
//! reads, so a cron job that runs `pgward-report backups --format prometheus >
//! /var/lib/node_exporter/pgward.prom` feeds existing dashboards and alerts.
//!
//! Every document gives the outcome of its run (`pgward_last_run_*`). Documents that list
//! backups (`pgward-report backups`, `pgward-backup list`) add the newest backup's age and
//! size; `pgward-report migrations` adds the last migration's duration and the failed and
//! pending counts; `pgward-report health` adds cache hit ratio, connections and blocked
//! sessions; a traced deploy (`pgward-migrate deploy --trace`) adds the longest lock hold
//! and each relation's. Every metric is a gauge: each file replaces the previous one.

use chrono::{DateTime, Utc};

use super::trace::TracedDeploy;
use super::{BackupListing, ListedBackupView, TypedResult};
use crate::health::HealthReport;
use crate::migrations::report::MigrationsReport;
use crate::output::Envelope;

/// The metrics of `e`.
pub fn render_prometheus(e: &Envelope) -> String {
    let mut m = Metrics::default();
    let mut run_labels = vec![("tool", e.tool.clone()), ("command", e.command.clone())];
    if let Some(t) = &e.target {
        run_labels.push(("database", t.database.clone()));
    }
    let started = DateTime::parse_from_rfc3339(&e.started_at)
        .ok()
        .map(|t| t.with_timezone(&Utc));
    m.gauge(
        "pgward_last_run_ok",
        "1 when the run succeeded (exit 0 or 3), else 0.",
        &run_labels,
        if e.ok { 1.0 } else { 0.0 },
    );
    m.gauge(
        "pgward_last_run_exit_code",
        "The exit code of the run.",
        &run_labels,
        e.exit_code as f64,
    );
    m.gauge(
        "pgward_last_run_duration_seconds",
        "How long the run took.",
        &run_labels,
        e.duration_ms as f64 / 1000.0,
    );
    if let Some(started) = started {
        m.gauge(
            "pgward_last_run_timestamp_seconds",
            "When the run started (Unix time).",
            &run_labels,
            started.timestamp() as f64,
        );
    }
    m.gauge(
        "pgward_last_run_warnings",
        "Warnings in the run's document.",
        &run_labels,
        e.warnings.len() as f64,
    );
    if let Some((listing, backups)) = BackupListing::of(e) {
        backup_metrics(&mut m, &listing, &backups, started.unwrap_or_else(Utc::now));
    }
    let db_labels: Vec<(&str, String)> = e
        .target
        .iter()
        .map(|t| ("database", t.database.clone()))
        .collect();
    if let Some(fleet) = crate::fleet::FleetResult::of(&e.result) {
        fleet_metrics(&mut m, &fleet, &run_labels);
    }
    match TypedResult::of(e) {
        TypedResult::Migrations(report) => migration_metrics(&mut m, &report, &db_labels),
        TypedResult::Health(report) => health_metrics(&mut m, &report, &db_labels),
        TypedResult::Other => {}
    }
    if let Some(deploy) = TracedDeploy::find(&e.result) {
        trace_metrics(&mut m, &deploy, &db_labels);
    }
    m.out.trim_end().to_string()
}

/// A traced deploy (`deploy --trace`, or a document carrying one): the longest hold of a
/// lock that blocks writes or reads, and per relation how long its strongest lock was
/// held.
fn trace_metrics(m: &mut Metrics, deploy: &TracedDeploy, labels: &[(&str, String)]) {
    m.gauge(
        "pgward_deploy_lock_longest_hold_seconds",
        "The longest a traced deploy held a lock that blocks writes or reads (0: none did).",
        labels,
        deploy
            .longest_blocking()
            .map_or(0.0, |r| r.held_ms / 1000.0),
    );
    for r in &deploy.relations {
        let mut with_relation = labels.to_vec();
        with_relation.push(("relation", r.relation.clone()));
        with_relation.push(("mode", r.strongest.name().to_string()));
        with_relation.push(("blocks", r.blocks.words().replace(' ', "_")));
        m.gauge(
            "pgward_deploy_relation_lock_hold_seconds",
            "Per relation, how long a traced deploy held its strongest lock on it.",
            &with_relation,
            r.held_ms / 1000.0,
        );
    }
    m.gauge(
        "pgward_deploy_locks_over_budget",
        "Locks a traced deploy held longer than --max-lock (0 without --max-lock).",
        labels,
        deploy.over_budget.len() as f64,
    );
}

fn backup_metrics(
    m: &mut Metrics,
    listing: &BackupListing,
    backups: &[ListedBackupView],
    now: DateTime<Utc>,
) {
    let labels = vec![("location", listing.location.clone())];
    m.gauge(
        "pgward_backups",
        "Complete backups at the location.",
        &labels,
        backups.len() as f64,
    );
    m.gauge(
        "pgward_backups_verified",
        "Backups checked by `pgward-backup verify`.",
        &labels,
        backups.iter().filter(|b| b.verified).count() as f64,
    );
    m.gauge(
        "pgward_backups_size_bytes",
        "Total size of the backups.",
        &labels,
        backups.iter().map(|b| b.size_bytes).sum(),
    );
    let newest = backups.iter().max_by_key(|b| b.created_at);
    let checked = listing.checked_at.unwrap_or(now);
    let mut age = None;
    if let Some(b) = newest {
        let at = b.created_at;
        let seconds = ((checked - at).num_milliseconds() as f64 / 1000.0).max(0.0);
        age = Some(seconds);
        m.gauge(
            "pgward_backup_newest_age_seconds",
            "Age of the newest backup.",
            &labels,
            seconds,
        );
        m.gauge(
            "pgward_backup_newest_timestamp_seconds",
            "When the newest backup's snapshot was taken (Unix time).",
            &labels,
            at.timestamp() as f64,
        );
        m.gauge(
            "pgward_backup_newest_size_bytes",
            "Size of the newest backup.",
            &labels,
            b.size_bytes,
        );
        if let Some(duration) = b.duration_s {
            m.gauge(
                "pgward_backup_newest_duration_seconds",
                "How long the newest backup took.",
                &labels,
                duration,
            );
        }
        m.gauge(
            "pgward_backup_newest_verified",
            "1 when the newest backup has been verified.",
            &labels,
            if b.verified { 1.0 } else { 0.0 },
        );
    }
    if let Some(max_age) = listing.max_age_s {
        m.gauge(
            "pgward_backup_max_age_seconds",
            "The --max-age the newest backup is held to.",
            &labels,
            max_age,
        );
        m.gauge(
            "pgward_backup_too_old",
            "1 when there is no backup or the newest is older than --max-age.",
            &labels,
            if age.is_none_or(|a| a > max_age) {
                1.0
            } else {
                0.0
            },
        );
    }
}

fn migration_metrics(m: &mut Metrics, r: &MigrationsReport, labels: &[(&str, String)]) {
    let t = &r.totals;
    for (value, name, help) in [
        (
            t.applied,
            "pgward_migrations_applied",
            "Migrations applied (and not rolled back).",
        ),
        (
            t.pending,
            "pgward_migrations_pending",
            "Migrations in the folder not applied yet.",
        ),
        (
            t.failed,
            "pgward_migrations_failed",
            "Migrations whose latest attempt failed (they block deploy).",
        ),
        (
            t.edited,
            "pgward_migrations_edited",
            "Applied migrations whose file changed since.",
        ),
        (
            t.missing_locally,
            "pgward_migrations_missing_locally",
            "Applied migrations missing from the folder.",
        ),
    ] {
        m.gauge(name, help, labels, value as f64);
    }
    if let Some(last) = &r.last_applied {
        let mut with_name = labels.to_vec();
        with_name.push(("migration", last.migration.clone()));
        m.gauge(
            "pgward_migration_last_duration_seconds",
            "How long the most recently applied migration took.",
            &with_name,
            last.duration_ms as f64 / 1000.0,
        );
        m.gauge(
            "pgward_migration_last_finished_timestamp_seconds",
            "When the most recently applied migration finished (Unix time).",
            &with_name,
            last.finished_at.timestamp() as f64,
        );
    }
}

fn health_metrics(m: &mut Metrics, r: &HealthReport, labels: &[(&str, String)]) {
    m.gauge(
        "pgward_health_database_bytes",
        "Size of the database.",
        labels,
        r.database_bytes as f64,
    );
    if let Some(v) = r.cache_hit_ratio {
        m.gauge(
            "pgward_health_cache_hit_ratio",
            "Share of block reads served from shared buffers.",
            labels,
            v,
        );
    }
    for c in &r.connections {
        let mut with_state = labels.to_vec();
        with_state.push(("state", c.state.clone()));
        m.gauge(
            "pgward_health_connections",
            "Client connections to the server by state.",
            &with_state,
            c.count as f64,
        );
    }
    for (count, name, help) in [
        (
            r.long_running.len(),
            "pgward_health_long_running_queries",
            "Queries and transactions running longer than --long-running.",
        ),
        (
            r.blocking.len(),
            "pgward_health_blocked_sessions",
            "Sessions waiting for a lock another session holds.",
        ),
        (
            r.unused_indexes.len(),
            "pgward_health_unused_indexes",
            "Indexes never scanned since the statistics were reset.",
        ),
        (
            r.maintenance_due.len(),
            "pgward_health_maintenance_due_tables",
            "Tables autovacuum's thresholds say need VACUUM or ANALYZE.",
        ),
    ] {
        m.gauge(name, help, labels, count as f64);
    }
    m.gauge(
        "pgward_health_dead_rows",
        "Dead rows in all tables.",
        labels,
        r.totals.dead_rows as f64,
    );
}

/// A fleet's counts per outcome, and per target (label `target`: its URL, password
/// masked) whether it was started, its exit code and duration.
fn fleet_metrics(m: &mut Metrics, fleet: &crate::fleet::FleetResult, run: &[(&str, String)]) {
    use crate::fleet::TargetOutcome as O;
    let s = &fleet.summary;
    for (outcome, count) in [
        (O::Ok, s.ok),
        (O::Attention, s.attention),
        (O::Failed, s.failed),
        (O::Unreachable, s.unreachable),
        (O::Interrupted, s.interrupted),
        (O::NotStarted, s.not_started),
    ] {
        let mut labels = run.to_vec();
        labels.push(("outcome", outcome.as_str().to_string()));
        m.gauge(
            "pgward_fleet_targets",
            "Targets of the fleet run by outcome.",
            &labels,
            count as f64,
        );
    }
    let per_target = |t: &crate::fleet::FleetTarget| {
        let mut labels = run.to_vec();
        labels.push(("target", t.target.clone()));
        labels
    };
    for t in &fleet.targets {
        m.gauge(
            "pgward_fleet_target_started",
            "1 when the command ran on the target, 0 when it was not started.",
            &per_target(t),
            if t.exit_code.is_some() { 1.0 } else { 0.0 },
        );
    }
    for t in fleet.targets.iter().filter(|t| t.exit_code.is_some()) {
        m.gauge(
            "pgward_fleet_target_exit_code",
            "The command's exit code on the target.",
            &per_target(t),
            t.exit_code.unwrap_or_default() as f64,
        );
    }
    for t in &fleet.targets {
        if let Some(ms) = t.duration_ms {
            m.gauge(
                "pgward_fleet_target_duration_seconds",
                "How long the command ran on the target.",
                &per_target(t),
                ms as f64 / 1000.0,
            );
        }
    }
}

/// Metric families written one after the other, each with its HELP and TYPE once.
#[derive(Default)]
struct Metrics {
    out: String,
    last: Option<&'static str>,
}

impl Metrics {
    /// One sample; samples of one family must be written one after the other.
    fn gauge(&mut self, name: &'static str, help: &str, labels: &[(&str, String)], value: f64) {
        if self.last != Some(name) {
            self.out
                .push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            self.last = Some(name);
        }
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        self.out
            .push_str(&format!("{name}{labels} {}\n", number(value)));
    }
}

/// Prometheus's escaping of label values.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_give_age_and_size_of_the_newest_and_labels_are_escaped() {
        let e = Envelope {
            tool: "report".into(),
            command: "backups".into(),
            version: "0".into(),
            ok: true,
            exit_code: 3,
            started_at: "2026-01-02T00:00:00Z".into(),
            duration_ms: 250,
            target: None,
            result: serde_json::json!({
                "location": "/backups/\"x\"",
                "max_age_s": 3600,
                "backups": [
                    {"created_at": "2026-01-01T00:00:00Z", "size_bytes": 10, "verified": true, "duration_s": 1.5},
                    {"created_at": "2025-12-31T00:00:00Z", "size_bytes": 5, "verified": false},
                ],
            }),
            warnings: vec![],
            error: None,
        };
        let text = render_prometheus(&e);
        assert!(
            text.contains("pgward_last_run_exit_code{tool=\"report\",command=\"backups\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "pgward_backup_newest_age_seconds{location=\"/backups/\\\"x\\\"\"} 86400"
            ),
            "{text}"
        );
        assert!(
            text.contains("pgward_backup_newest_size_bytes{location=\"/backups/\\\"x\\\"\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("pgward_backup_too_old{location=\"/backups/\\\"x\\\"\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "pgward_last_run_duration_seconds{tool=\"report\",command=\"backups\"} 0.25"
            ),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE pgward_backups gauge").count(), 1);
    }
}
