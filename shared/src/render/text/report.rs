//! The text views of `pgward-report`: `health`, `backups` and `migrations` as tables
//! aligned in columns, the alarms first; `audit`, `settings`, `app-health` and `notify` in
//! brief. `render` prints a saved document, which keeps its own command's view (the
//! dispatch in `mod.rs` goes by the document's tool and command); only render's own
//! failure (a file that is not a document) comes here.

use serde::Deserialize;

use super::lines::{
    alarm, and_more, count, count_i, database, fields, next_steps, plural, section, title, view,
    when, TOP,
};
use super::table::{cut, Align, Mark, TextTable};
use super::TextStyle;
#[cfg(feature = "storage")]
use crate::archive::results::BackupsReport;
use crate::audit::AuditReport;
use crate::health::HealthReport;
use crate::migrations::report::{MigrationStatus, MigrationsReport};
use crate::output::Envelope;
use crate::render::human::{bytes, percent, seconds};

/// Widest a query or log line gets in a table cell.
const CELL: usize = 60;

/// `pgward-report health`: blocking, long-running queries and maintenance due first, then
/// the database in brief and its largest tables and unused indexes.
pub(super) fn health(e: &Envelope, style: TextStyle) -> Option<String> {
    view(e, style, "report health", |r: &HealthReport, e, style| {
        let mut out = String::new();
        for b in &r.blocking {
            let by: Vec<String> = b.blocked_by.iter().map(|x| x.pid.to_string()).collect();
            out.push_str(&alarm(
                style,
                &format!(
                    "pid {} has waited {} for a lock held by pid {}",
                    b.pid,
                    b.waiting_s.map(seconds).unwrap_or_else(|| "?".into()),
                    by.join(", ")
                ),
            ));
        }
        for l in &r.long_running {
            out.push_str(&alarm(
                style,
                &format!(
                    "pid {} ({}) has run {}: {}",
                    l.pid,
                    l.user.as_deref().unwrap_or("?"),
                    l.query_s
                        .or(l.transaction_s)
                        .map(seconds)
                        .unwrap_or_else(|| "?".into()),
                    cut(l.query.as_deref().unwrap_or(""), CELL)
                ),
            ));
        }
        if !r.maintenance_due.is_empty() {
            out.push_str(&alarm(
                style,
                &format!(
                    "{} due for VACUUM or ANALYZE (scripts/maintenance.sh runs them)",
                    plural(r.maintenance_due.len() as u64, "table")
                ),
            ));
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let database = database(e).unwrap_or_else(|| "the database".into());
        out.push_str(&title(style, &format!("Health of {database}")));
        let connections: i64 = r.connections.iter().map(|c| c.count).sum();
        let by_state: Vec<String> = r
            .connections
            .iter()
            .map(|c| format!("{} {}", c.count, c.state))
            .collect();
        out.push_str(&fields(&[
            ("server", r.server_version.clone()),
            ("size", bytes(r.database_bytes as f64)),
            (
                "contents",
                format!(
                    "{}, {} ({} live rows, {} dead)",
                    plural(r.totals.tables as u64, "table"),
                    plural(r.totals.indexes as u64, "index"),
                    count_i(r.totals.live_rows),
                    count_i(r.totals.dead_rows)
                ),
            ),
            (
                "cache hit ratio",
                r.cache_hit_ratio
                    .map(percent)
                    .unwrap_or_else(|| "no reads yet".into()),
            ),
            (
                "connections",
                format!(
                    "{connections} of {}{}",
                    r.max_connections,
                    if by_state.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", by_state.join(", "))
                    }
                ),
            ),
        ]));
        if !r.maintenance_due.is_empty() {
            out.push_str(&section(style, "Maintenance due"));
            let mut t = TextTable::new(&[
                ("table", Align::Left),
                ("vacuum", Align::Left),
                ("analyze", Align::Left),
                ("dead rows", Align::Right),
                ("changed since analyze", Align::Right),
            ]);
            for m in &r.maintenance_due {
                t.row(
                    [
                        format!("{}.{}", m.schema, m.table),
                        due(m.vacuum).into(),
                        due(m.analyze).into(),
                        count_i(m.dead_rows),
                        count_i(m.modified_since_analyze),
                    ],
                    Mark::Warn,
                );
            }
            out.push_str(&t.render(style));
        }
        if !r.tables.is_empty() {
            out.push_str(&section(style, "Largest tables"));
            let mut t = TextTable::new(&[
                ("table", Align::Left),
                ("live rows", Align::Right),
                ("dead rows", Align::Right),
                ("dead", Align::Right),
                ("table size", Align::Right),
                ("index size", Align::Right),
                ("seq scans", Align::Right),
            ]);
            for h in r.tables.iter().take(TOP) {
                t.row(
                    [
                        format!("{}.{}", h.schema, h.name),
                        count_i(h.live_rows),
                        count_i(h.dead_rows),
                        h.dead_ratio.map(percent).unwrap_or_else(|| "-".into()),
                        bytes(h.table_bytes as f64),
                        bytes(h.index_bytes as f64),
                        count_i(h.seq_scan),
                    ],
                    if h.vacuum_due || h.analyze_due {
                        Mark::Warn
                    } else {
                        Mark::Plain
                    },
                );
            }
            out.push_str(&t.render(style));
            if r.totals.tables > TOP.min(r.tables.len()) {
                out.push_str(&and_more(
                    (r.totals.tables - TOP.min(r.tables.len())) as u64,
                    "table",
                    "",
                ));
            }
        }
        if !r.unused_indexes.is_empty() {
            out.push_str(&section(
                style,
                "Unused indexes (no scans since the statistics were reset)",
            ));
            let mut t = TextTable::new(&[
                ("index", Align::Left),
                ("table", Align::Left),
                ("size", Align::Right),
                ("scans", Align::Right),
            ]);
            for i in r.unused_indexes.iter().take(TOP) {
                t.row(
                    [
                        format!("{}.{}", i.schema, i.name),
                        i.table.clone(),
                        bytes(i.bytes as f64),
                        count_i(i.idx_scan),
                    ],
                    Mark::Plain,
                );
            }
            out.push_str(&t.render(style));
            if r.unused_indexes.len() > TOP {
                out.push_str(&and_more(
                    (r.unused_indexes.len() - TOP) as u64,
                    "index",
                    "",
                ));
            }
        }
        if !r.work_databases.is_empty() {
            out.push_str(&section(style, "pgward's work databases"));
            let mut t = TextTable::new(&[
                ("database", Align::Left),
                ("what", Align::Left),
                ("size", Align::Right),
                ("sessions", Align::Right),
            ]);
            for w in &r.work_databases {
                t.row(
                    [
                        w.name.clone(),
                        cut(&w.what, CELL),
                        w.bytes
                            .map(|b| bytes(b as f64))
                            .unwrap_or_else(|| "-".into()),
                        count_i(w.sessions),
                    ],
                    Mark::Warn,
                );
            }
            out.push_str(&t.render(style));
        }
        out
    })
}

fn due(b: bool) -> &'static str {
    if b {
        "due"
    } else {
        "-"
    }
}

#[cfg(feature = "storage")]
/// `pgward-report backups`: too old (or none) first, then the newest and every backup.
pub(super) fn backups(e: &Envelope, style: TextStyle) -> Option<String> {
    view(
        e,
        style,
        "report backups",
        |r: &BackupsReport, _e, style| {
            let mut out = String::new();
            match &r.newest {
                None => out.push_str(&alarm(style, &format!("no backup in {}", r.location))),
                Some(n) if r.too_old => out.push_str(&alarm(
                    style,
                    &format!(
                        "the newest backup is {} old, older than --max-age {}",
                        seconds(n.age_s),
                        seconds(r.max_age_s)
                    ),
                )),
                Some(_) => {}
            }
            if r.newest.is_some() && r.newest_verified.is_none() {
                out.push_str(&alarm(style, "no backup has been verified"));
            }
            if !out.is_empty() {
                out.push('\n');
            }
            let of = r
                .source
                .as_ref()
                .map(|s| format!(" of {s}"))
                .unwrap_or_default();
            out.push_str(&title(style, &format!("Backups{of} in {}", r.location)));
            let mut pairs = vec![(
                "backups",
                format!(
                    "{}, {} verified, {} in all",
                    count(r.count as u64),
                    count(r.verified_count as u64),
                    bytes(r.total_bytes as f64)
                ),
            )];
            for (label, n) in [
                ("newest", &r.newest),
                ("newest verified", &r.newest_verified),
            ] {
                if let Some(n) = n {
                    pairs.push((
                        label,
                        format!(
                            "{} ({} old, {})",
                            n.id,
                            seconds(n.age_s),
                            bytes(n.size_bytes as f64)
                        ),
                    ));
                }
            }
            pairs.push(("max age", seconds(r.max_age_s)));
            if !r.incomplete.is_empty() {
                pairs.push(("incomplete", r.incomplete.join(", ")));
            }
            out.push_str(&fields(&pairs));
            if !r.locations.is_empty() {
                out.push('\n');
                let mut t = TextTable::new(&[
                    ("location", Align::Left),
                    ("copies", Align::Right),
                    ("newest", Align::Left),
                    ("age", Align::Right),
                ]);
                let newest_id = r.newest.as_ref().map(|n| n.id.as_str());
                for l in &r.locations {
                    let behind =
                        !l.readable || l.newest.as_ref().map(|n| n.id.as_str()) != newest_id;
                    t.row(
                        [
                            l.location.clone(),
                            if l.readable {
                                count(l.count as u64)
                            } else {
                                "unreadable".into()
                            },
                            l.newest
                                .as_ref()
                                .map_or_else(|| "-".into(), |n| n.id.clone()),
                            l.newest
                                .as_ref()
                                .map_or_else(|| "-".into(), |n| seconds(n.age_s)),
                        ],
                        if behind { Mark::Alarm } else { Mark::Good },
                    );
                }
                out.push_str(&t.render(style));
            }
            if !r.backups.is_empty() {
                out.push('\n');
                let mut t = TextTable::new(&[
                    ("id", Align::Left),
                    ("taken", Align::Left),
                    ("size", Align::Right),
                    ("took", Align::Right),
                    ("verified", Align::Left),
                    ("age", Align::Right),
                    ("gap", Align::Right),
                ]);
                let several = super::archive::several_locations(
                    r.backups.iter().map(|b| &b.backup),
                    &r.location,
                );
                for b in &r.backups {
                    let entry = &b.backup.entry;
                    t.row(
                        [
                            entry.id.clone(),
                            when(&entry.created_at),
                            bytes(entry.size_bytes as f64),
                            seconds(b.backup.duration_s),
                            super::archive::verified_cell(&b.backup, several),
                            seconds(b.age_s),
                            b.since_previous_s
                                .map(seconds)
                                .unwrap_or_else(|| "-".into()),
                        ],
                        if b.age_s > r.max_age_s {
                            Mark::Alarm
                        } else if entry.verified {
                            Mark::Good
                        } else {
                            Mark::Plain
                        },
                    );
                }
                out.push_str(&t.render(style));
            }
            if r.too_old {
                out.push_str(&next_steps(
                    style,
                    &[format!("pgward-backup --to {}", r.location)],
                ));
            }
            out
        },
    )
}

/// `pgward-report migrations`: failed, edited and missing migrations first, then the
/// totals, every migration and the slowest attempts.
pub(super) fn migrations(e: &Envelope, style: TextStyle) -> Option<String> {
    view(
        e,
        style,
        "report migrations",
        |r: &MigrationsReport, e, style| {
            let mut out = String::new();
            for m in &r.migrations {
                let problem = match m.status {
                    MigrationStatus::Failed => Some(format!(
                        "{} failed: {}",
                        m.name,
                        cut(
                            m.last_failure_logs.as_deref().map_or("no log", error_line),
                            CELL
                        )
                    )),
                    MigrationStatus::MissingLocally => {
                        Some(format!("{} is applied but missing from the folder", m.name))
                    }
                    _ if m.edited => Some(format!("{} was edited after it was applied", m.name)),
                    _ => None,
                };
                if let Some(p) = problem {
                    out.push_str(&alarm(style, &p));
                }
            }
            if !r.history_table {
                out.push_str(&alarm(
                    style,
                    "no _prisma_migrations table: nothing was ever deployed",
                ));
            }
            if !out.is_empty() {
                out.push('\n');
            }
            let t = &r.totals;
            out.push_str(&title(
                style,
                &format!(
                    "Migrations of schema {}{}",
                    r.schema,
                    r.migrations_dir
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
            ));
            let mut pairs: Vec<(&str, String)> =
                database(e).map(|at| ("database", at)).into_iter().collect();
            pairs.push((
                "status",
                format!(
                    "{} applied, {} pending, {} failed, {} edited, {} missing locally",
                    t.applied, t.pending, t.failed, t.edited, t.missing_locally
                ),
            ));
            pairs.push((
                "attempts",
                format!(
                    "{} ({} failed, {} rolled back, {} re-applied), {} in all",
                    t.attempts,
                    t.failed_attempts,
                    t.rolled_back_attempts,
                    t.reapplied,
                    seconds(t.total_duration_ms as f64 / 1000.0)
                ),
            ));
            if let Some(l) = &r.last_applied {
                pairs.push((
                    "last applied",
                    format!("{} at {}", l.migration, when(&l.finished_at)),
                ));
            }
            out.push_str(&fields(&pairs));
            if !r.migrations.is_empty() {
                out.push('\n');
                let mut table = TextTable::new(&[
                    ("migration", Align::Left),
                    ("status", Align::Left),
                    ("attempts", Align::Right),
                    ("took", Align::Right),
                    ("applied at", Align::Left),
                    ("note", Align::Left),
                ]);
                for m in &r.migrations {
                    let mut notes = Vec::new();
                    if m.edited {
                        notes.push("edited");
                    }
                    if m.reapplied {
                        notes.push("re-applied");
                    }
                    if m.has_down == Some(true) {
                        notes.push("down.sql");
                    }
                    table.row(
                        [
                            m.name.clone(),
                            status(m.status).into(),
                            count(m.attempts as u64),
                            m.duration_ms
                                .map(|ms| seconds(ms as f64 / 1000.0))
                                .unwrap_or_else(|| "-".into()),
                            m.finished_at
                                .as_ref()
                                .map(when)
                                .unwrap_or_else(|| "-".into()),
                            notes.join(", "),
                        ],
                        match m.status {
                            MigrationStatus::Failed | MigrationStatus::MissingLocally => {
                                Mark::Alarm
                            }
                            _ if m.edited => Mark::Alarm,
                            MigrationStatus::Pending => Mark::Warn,
                            _ => Mark::Plain,
                        },
                    );
                }
                out.push_str(&table.render(style));
            }
            if !r.slowest.is_empty() {
                out.push_str(&section(style, "Slowest attempts"));
                let mut table = TextTable::new(&[
                    ("migration", Align::Left),
                    ("started", Align::Left),
                    ("took", Align::Right),
                ]);
                for s in &r.slowest {
                    table.row(
                        [
                            s.migration.clone(),
                            when(&s.started_at),
                            seconds(s.duration_ms as f64 / 1000.0),
                        ],
                        Mark::Plain,
                    );
                }
                out.push_str(&table.render(style));
            }
            let mut steps = Vec::new();
            if let Some(failed) = r
                .migrations
                .iter()
                .find(|m| m.status == MigrationStatus::Failed)
            {
                steps.push(format!(
                "after fixing the database: pgward-migrate resolve --rolled-back {} (or --applied)",
                failed.name
            ));
            }
            if t.pending > 0 {
                steps.push("pgward-migrate deploy".into());
            }
            out.push_str(&next_steps(style, &steps));
            out
        },
    )
}

/// The line of a failed attempt's logs that says what went wrong: the one after
/// `Database error:` (how pgward and Prisma write them), else the first that is not the
/// `Migration name:` header.
fn error_line(logs: &str) -> &str {
    let mut lines = logs.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut rest = lines.clone();
    if rest.any(|l| l == "Database error:") {
        if let Some(line) = rest.next() {
            return line;
        }
    }
    lines
        .find(|l| !l.starts_with("Migration name:"))
        .unwrap_or("no log")
}

fn status(s: MigrationStatus) -> &'static str {
    match s {
        MigrationStatus::Applied => "applied",
        MigrationStatus::Failed => "FAILED",
        MigrationStatus::Pending => "pending",
        MigrationStatus::MissingLocally => "missing locally",
        MigrationStatus::RolledBack => "rolled back",
    }
}

/// `pgward-report audit`: the entries, newest first.
pub(super) fn audit(e: &Envelope, style: TextStyle) -> Option<String> {
    view(e, style, "report audit", |r: &AuditReport, _e, style| {
        let mut out = title(
            style,
            &format!(
                "{} of {} in {}",
                if r.matching == 1 {
                    "1 entry matches".to_string()
                } else {
                    format!("{} entries match", count(r.matching as u64))
                },
                plural(r.lines as u64, "line"),
                r.path
            ),
        );
        if !r.invalid_lines.is_empty() {
            let lines: Vec<String> = r.invalid_lines.iter().map(ToString::to_string).collect();
            out.push_str(&fields(&[("not audit lines", lines.join(", "))]));
        }
        if !r.entries.is_empty() {
            out.push('\n');
            let mut t = TextTable::new(&[
                ("at", Align::Left),
                ("command", Align::Left),
                ("exit", Align::Right),
                ("took", Align::Right),
                ("error", Align::Left),
                ("target", Align::Left),
                ("user", Align::Left),
            ]);
            for a in &r.entries {
                t.row(
                    [
                        a.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        format!("{} {}", a.tool, a.command),
                        a.exit_code
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "-".into()),
                        a.duration_ms
                            .map(|ms| seconds(ms as f64 / 1000.0))
                            .unwrap_or_else(|| "-".into()),
                        a.error.clone().unwrap_or_default(),
                        cut(a.target.as_deref().unwrap_or("-"), CELL),
                        a.os_user.clone().unwrap_or_default(),
                    ],
                    match a.exit_code {
                        Some(0) | Some(3) | None => Mark::Plain,
                        Some(_) => Mark::Alarm,
                    },
                );
            }
            out.push_str(&t.render(style));
        }
        out
    })
}

/// `settings`' result (a JSON value of `workflow::script_settings`): the keys read here.
#[derive(Deserialize)]
struct ScriptSettings {
    env: String,
    config: Option<String>,
    database_url_env: Option<String>,
    backups: Option<Vec<String>>,
    protected: Option<bool>,
    auto_restore: Option<bool>,
    pre_deploy: Option<String>,
    post_deploy: Option<String>,
    hook_timeout_s: f64,
    health_url: Option<String>,
    health_status: u16,
    health_retries: u32,
    health_timeout_s: f64,
    on_unhealthy: String,
    notify: bool,
    notify_on: String,
    log_dir: Option<String>,
    log_keep_days: u64,
}

/// `pgward-report settings`: the environment's keys, resolved.
pub(super) fn settings(e: &Envelope, style: TextStyle) -> Option<String> {
    view(
        e,
        style,
        "report settings",
        |s: &ScriptSettings, _e, style| {
            let none = || "-".to_string();
            let yes = |b: Option<bool>| if b == Some(true) { "yes" } else { "no" }.to_string();
            let mut out = title(
                style,
                &format!(
                    "Environment {}{}",
                    s.env,
                    s.config
                        .as_deref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default()
                ),
            );
            out.push_str(&fields(&[
                (
                    "database URL from",
                    s.database_url_env
                        .clone()
                        .unwrap_or_else(|| "DATABASE_URL".into()),
                ),
                (
                    "backups",
                    s.backups.as_ref().map_or_else(none, |b| b.join(", ")),
                ),
                ("protected", yes(s.protected)),
                ("auto_restore", yes(s.auto_restore)),
                ("pre_deploy", s.pre_deploy.clone().unwrap_or_else(none)),
                ("post_deploy", s.post_deploy.clone().unwrap_or_else(none)),
                ("hook timeout", seconds(s.hook_timeout_s)),
                (
                    "health check",
                    match &s.health_url {
                        Some(url) => format!(
                            "GET {url} until {} ({} tries within {}), else {}",
                            s.health_status,
                            s.health_retries,
                            seconds(s.health_timeout_s),
                            s.on_unhealthy
                        ),
                        None => "none".into(),
                    },
                ),
                (
                    "notification",
                    if s.notify {
                        format!("on {}", s.notify_on)
                    } else {
                        "none".into()
                    },
                ),
                (
                    "run logs",
                    s.log_dir
                        .as_deref()
                        .map(|d| format!("{d} (kept {} days)", s.log_keep_days))
                        .unwrap_or_else(|| "none".into()),
                ),
            ]));
            out
        },
    )
}

/// `app-health`'s result: the URL and every attempt.
#[derive(Deserialize)]
struct AppHealth {
    url: String,
    expected: u16,
    healthy: bool,
    attempts: Vec<AppAttempt>,
}

#[derive(Deserialize)]
struct AppAttempt {
    attempt: u32,
    status: Option<u16>,
    error: Option<String>,
    ms: u64,
}

/// `pgward-report app-health`: the verdict and each attempt.
pub(super) fn app_health(e: &Envelope, style: TextStyle) -> Option<String> {
    view(e, style, "report app-health", |h: &AppHealth, _e, style| {
        let verdict = if h.healthy { "healthy" } else { "NOT healthy" };
        let mut out = title(style, &format!("{} is {verdict}", h.url));
        out.push_str(&fields(&[
            ("expected", format!("HTTP {}", h.expected)),
            ("attempts", count(h.attempts.len() as u64)),
        ]));
        if !h.attempts.is_empty() {
            out.push('\n');
            let mut t = TextTable::new(&[
                ("attempt", Align::Right),
                ("answer", Align::Left),
                ("took", Align::Right),
            ]);
            for a in &h.attempts {
                let ok = a.status == Some(h.expected);
                t.row(
                    [
                        a.attempt.to_string(),
                        match (a.status, &a.error) {
                            (Some(s), _) => format!("HTTP {s}"),
                            (None, Some(err)) => cut(err, CELL),
                            (None, None) => "-".into(),
                        },
                        seconds(a.ms as f64 / 1000.0),
                    ],
                    if ok { Mark::Good } else { Mark::Alarm },
                );
            }
            out.push_str(&t.render(style));
        }
        out
    })
}

/// `notify`'s result.
#[derive(Deserialize)]
struct Notified {
    sent: bool,
    to: Option<String>,
    why: Option<String>,
}

/// `pgward-report notify`: sent where, or why not.
pub(super) fn notify(e: &Envelope, style: TextStyle) -> Option<String> {
    view(e, style, "report notify", |n: &Notified, _e, style| {
        if n.sent {
            title(
                style,
                &format!(
                    "Notification sent to {}",
                    n.to.as_deref().unwrap_or("the notify URL")
                ),
            )
        } else {
            title(
                style,
                &format!(
                    "No notification sent: {}",
                    n.why.as_deref().unwrap_or("no reason given")
                ),
            )
        }
    })
}

/// `pgward-report render` itself: only its failure (the document could not be read).
pub(super) fn render(e: &Envelope, style: TextStyle) -> Option<String> {
    // A rendered document is shown in its own command's view; render's own envelope is
    // only ever its failure.
    e.error.as_ref()?;
    view(
        e,
        style,
        "report render",
        |_: &serde_json::Value, _e, _style| String::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[test]
    fn a_failed_attempt_is_summed_up_by_its_database_error() {
        let logs = "Migration name: a\n\nDatabase error code: 42P01\n\nDatabase error:\nERROR: relation \"nope\" does not exist\n";
        assert_eq!(error_line(logs), "ERROR: relation \"nope\" does not exist");
        assert_eq!(
            error_line("Migration name: c\n\nERROR: boom"),
            "ERROR: boom"
        );
        assert_eq!(error_line(""), "no log");
    }
}
