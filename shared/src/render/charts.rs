//! Hand-written SVG charts for the HTML renderer: migration durations, the largest tables,
//! backup sizes and backup age over time. No script draws them, so they show the same in a
//! browser, a mail client, a phone and on paper.
//!
//! `pgward-report migrations` and `health` get their charts from their typed results
//! (`TypedResult` in the parent module). Backups are charted in any document whose
//! `result.backups` lists backups with `created_at` and `size_bytes` (`pgward-report
//! backups`, `pgward-backup list`: two result types), read through one view of what they
//! share (`BackupListing`), which the Prometheus metrics read too.

use chrono::{DateTime, Utc};

use super::html::escape;
use super::human;
use super::{BackupListing, ListedBackupView, TypedResult};
use crate::fleet::{FleetResult, TargetOutcome};
use crate::health::TableHealth;
use crate::migrations::report::{AttemptOutcome, AttemptRecord};
use crate::output::Envelope;

/// One chart, ready to be placed in a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Stable id (`migration-durations`, `largest-tables`, `backup-sizes`, `backup-age`);
    /// the page's element is `chart-<id>`.
    pub id: &'static str,
    /// The heading.
    pub title: String,
    /// One sentence on what it shows.
    pub summary: String,
    /// `(colour, meaning)` pairs for the legend.
    pub legend: Vec<(&'static str, &'static str)>,
    /// The `<svg>` element.
    pub svg: String,
}

/// How many tables the table-size chart shows.
pub const LARGEST_TABLES: usize = 10;

const BLUE: &str = "#2563eb";
pub(super) const LIGHT_BLUE: &str = "#93c5fd";
pub(super) const RED: &str = "#dc2626";
pub(super) const GREY: &str = "#9ca3af";
pub(super) const AMBER: &str = "#d97706";
const GRID: &str = "#e5e7eb";
const GREEN: &str = "#16a34a";
const PURPLE: &str = "#7c3aed";
pub(super) const INK: &str = "#374151";

/// The viewBox width every chart is drawn in; CSS scales it to the page.
pub(super) const WIDTH: f64 = 520.0;
const LEFT: f64 = 72.0;
pub(super) const RIGHT: f64 = 14.0;
pub(super) const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;
const PLOT_HEIGHT: f64 = 170.0;

/// The charts `envelope` has data for, in page order.
pub fn charts_for(envelope: &Envelope) -> Vec<Chart> {
    let mut charts = Vec::new();
    match TypedResult::of(envelope) {
        TypedResult::Migrations(report) => charts.push(migration_durations(&report.attempts)),
        TypedResult::Health(report) => {
            charts.push(largest_tables(&report.tables, report.totals.tables))
        }
        TypedResult::Other => {}
    }
    if let Some(fleet) = crate::fleet::FleetResult::of(&envelope.result) {
        charts.push(fleet_status(&fleet));
        charts.push(fleet_durations(&fleet));
    }
    if let Some((listing, mut backups)) = BackupListing::of(envelope) {
        backups.sort_by_key(|b| b.created_at);
        let now = listing
            .checked_at
            .or_else(|| {
                DateTime::parse_from_rfc3339(&envelope.started_at)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            })
            .or_else(|| backups.last().map(|b| b.created_at))
            .unwrap_or_else(Utc::now);
        charts.push(backup_sizes(&backups));
        charts.push(backup_age(&backups, now, listing.max_age_s));
    }
    charts
}

fn migration_durations(attempts: &[AttemptRecord]) -> Chart {
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let mut svg = open_svg("Migration durations", height);
    let applied: Vec<f64> = attempts
        .iter()
        .filter_map(|a| a.duration_ms.map(|ms| ms as f64))
        .collect();
    let failed = attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Failed)
        .count();
    let summary = if attempts.is_empty() {
        "No migration has been applied yet.".to_string()
    } else {
        format!(
            "{} attempt(s) in the order they started: {} finished, {failed} failed; the slowest took {}.",
            attempts.len(),
            applied.len(),
            human::seconds(applied.iter().cloned().fold(0.0, f64::max) / 1000.0)
        )
    };
    if attempts.is_empty() {
        no_data(&mut svg, height, "no migration attempts recorded yet");
        return finish(
            "migration-durations",
            "Migration durations",
            summary,
            vec![],
            svg,
        );
    }
    let top = nice_ceiling(applied.iter().cloned().fold(0.0, f64::max).max(1.0));
    y_grid(&mut svg, top, |v| human::seconds(v / 1000.0));
    let plot_width = WIDTH - LEFT - RIGHT;
    let slot = plot_width / attempts.len() as f64;
    let bar = (slot * 0.8).clamp(1.0, 40.0);
    for (i, a) in attempts.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let (h, colour, what) = match (a.duration_ms.map(|ms| ms as f64), a.outcome) {
            (Some(ms), AttemptOutcome::RolledBack) => {
                (ms / top * PLOT_HEIGHT, GREY, human::seconds(ms / 1000.0))
            }
            (Some(ms), _) => (ms / top * PLOT_HEIGHT, BLUE, human::seconds(ms / 1000.0)),
            (None, AttemptOutcome::Failed) => (PLOT_HEIGHT * 0.06, RED, "failed".to_string()),
            (None, AttemptOutcome::Applied) => (PLOT_HEIGHT * 0.06, GREY, "applied".to_string()),
            (None, AttemptOutcome::RolledBack) => {
                (PLOT_HEIGHT * 0.06, GREY, "rolled back".to_string())
            }
        };
        let h = h.max(1.5);
        svg.push_str(&format!(
            r#"<rect class="mark" x="{x:.2}" y="{:.2}" width="{bar:.2}" height="{h:.2}" fill="{colour}"><title>{}: {} ({})</title></rect>"#,
            TOP + PLOT_HEIGHT - h,
            escape(&a.migration),
            escape(&what),
            a.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        ));
    }
    let first = attempts.first().map(|a| a.started_at);
    let last = attempts.last().map(|a| a.started_at);
    if let (Some(first), Some(last)) = (first, last) {
        let fmt = date_format(first, last);
        x_label(&mut svg, LEFT, "start", &first.format(fmt).to_string());
        if attempts.len() > 1 {
            x_label(
                &mut svg,
                WIDTH - RIGHT,
                "end",
                &last.format(fmt).to_string(),
            );
        }
    }
    finish(
        "migration-durations",
        "Migration durations",
        summary,
        vec![
            (BLUE, "applied"),
            (RED, "failed (no duration recorded)"),
            (GREY, "rolled back"),
        ],
        svg,
    )
}

/// `tables` are those the document lists, `all` how many the database has.
fn largest_tables(tables: &[TableHealth], all: usize) -> Chart {
    // (table, data bytes, index bytes), drawn to scale.
    let mut largest: Vec<(&TableHealth, f64, f64)> = tables
        .iter()
        .map(|t| (t, t.table_bytes as f64, t.index_bytes as f64))
        .collect();
    largest.sort_by(|(_, ad, ai), (_, bd, bi)| (bd + bi).total_cmp(&(ad + ai)));
    largest.truncate(LARGEST_TABLES);
    let row = 24.0;
    let height = TOP + row * largest.len().max(3) as f64 + 8.0;
    let mut svg = open_svg("Largest tables", height);
    let summary = match largest.len() {
        0 => "The database has no tables yet.".to_string(),
        n => format!(
            "The {n} largest of {} table(s), data and indexes.",
            all.max(n)
        ),
    };
    if largest.is_empty() {
        no_data(&mut svg, height, "no tables yet");
        return finish("largest-tables", "Largest tables", summary, vec![], svg);
    }
    let label_width = 170.0;
    let value_width = 72.0;
    let bar_left = label_width + 8.0;
    let bar_space = WIDTH - bar_left - value_width - RIGHT;
    let max = largest
        .iter()
        .map(|(_, data, index)| data + index)
        .fold(1.0, f64::max);
    for (i, &(t, data, index)) in largest.iter().enumerate() {
        let y = TOP + i as f64 * row;
        let name = format!("{}.{}", t.schema, t.name);
        let total = data + index;
        let data_w = (data / max * bar_space).max(1.0);
        let index_w = index / max * bar_space;
        svg.push_str(&format!(
            r#"<text x="{label_width}" y="{:.1}" text-anchor="end" font-size="13" fill="{INK}">{}<title>{}</title></text>"#,
            y + row * 0.62,
            escape(&shorten(&name, 26)),
            escape(&name),
        ));
        svg.push_str(&format!(
            r#"<rect class="mark" x="{bar_left}" y="{:.1}" width="{data_w:.2}" height="{:.1}" fill="{BLUE}"><title>{}: data {}</title></rect>"#,
            y + 4.0,
            row - 8.0,
            escape(&name),
            human::bytes(data),
        ));
        if index_w > 0.0 {
            svg.push_str(&format!(
                r#"<rect class="mark" x="{:.2}" y="{:.1}" width="{index_w:.2}" height="{:.1}" fill="{LIGHT_BLUE}"><title>{}: indexes {}</title></rect>"#,
                bar_left + data_w,
                y + 4.0,
                row - 8.0,
                escape(&name),
                human::bytes(index),
            ));
        }
        svg.push_str(&format!(
            r#"<text x="{:.2}" y="{:.1}" font-size="13" fill="{INK}">{}</text>"#,
            bar_left + data_w + index_w + 6.0,
            y + row * 0.62,
            escape(&human::bytes(total)),
        ));
    }
    finish(
        "largest-tables",
        "Largest tables",
        summary,
        vec![(BLUE, "table data"), (LIGHT_BLUE, "indexes")],
        svg,
    )
}

fn backup_sizes(backups: &[ListedBackupView]) -> Chart {
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let mut svg = open_svg("Backup sizes over time", height);
    let summary = match backups.last() {
        None => "No backup yet.".to_string(),
        Some(newest) => format!(
            "{} backup(s); the newest is {}.",
            backups.len(),
            human::bytes(newest.size_bytes)
        ),
    };
    let (Some(first), Some(last)) = (backups.first(), backups.last()) else {
        no_data(&mut svg, height, "no backups yet");
        return finish(
            "backup-sizes",
            "Backup sizes over time",
            summary,
            vec![],
            svg,
        );
    };
    let top = nice_ceiling(backups.iter().map(|b| b.size_bytes).fold(1.0, f64::max));
    y_grid(&mut svg, top, human::bytes);
    let axis = TimeAxis::new(first.created_at, last.created_at);
    let points: Vec<(f64, f64)> = backups
        .iter()
        .map(|b| (axis.x(b.created_at), y_of(b.size_bytes, top)))
        .collect();
    polyline(&mut svg, &points, BLUE);
    for (b, (x, y)) in backups.iter().zip(&points) {
        let fill = if b.verified { BLUE } else { "#ffffff" };
        svg.push_str(&format!(
            r#"<circle class="mark" cx="{x:.2}" cy="{y:.2}" r="4" fill="{fill}" stroke="{BLUE}" stroke-width="2"><title>{}: {} ({}, {})</title></circle>"#,
            escape(&b.id),
            human::bytes(b.size_bytes),
            b.created_at.format("%Y-%m-%d %H:%M UTC"),
            if b.verified { "verified" } else { "not verified" },
        ));
    }
    axis.labels(&mut svg);
    finish(
        "backup-sizes",
        "Backup sizes over time",
        summary,
        vec![(BLUE, "verified (filled) / not verified (hollow)")],
        svg,
    )
}

fn backup_age(backups: &[ListedBackupView], now: DateTime<Utc>, max_age_s: Option<f64>) -> Chart {
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let mut svg = open_svg("Age of the newest backup over time", height);
    let (Some(first), Some(last)) = (backups.first(), backups.last()) else {
        no_data(
            &mut svg,
            height,
            "no backups yet: there is nothing to restore",
        );
        return finish(
            "backup-age",
            "Age of the newest backup over time",
            "No backup yet.".into(),
            vec![],
            svg,
        );
    };
    let now = now.max(last.created_at);
    let age_now = (now - last.created_at).num_milliseconds() as f64 / 1000.0;
    // The age of the newest backup climbs until the next backup resets it: a saw tooth whose
    // teeth are the gaps between backups; the last tooth ends now.
    let mut peaks: Vec<(DateTime<Utc>, f64)> = backups
        .windows(2)
        .map(|w| {
            (
                w[1].created_at,
                (w[1].created_at - w[0].created_at).num_milliseconds() as f64 / 1000.0,
            )
        })
        .collect();
    peaks.push((now, age_now));
    let highest = peaks.iter().map(|p| p.1).fold(1.0, f64::max);
    let top = nice_duration_ceiling(highest.max(max_age_s.unwrap_or(0.0) * 1.1));
    y_grid(&mut svg, top, human::seconds);
    let axis = TimeAxis::new(first.created_at, now);
    let mut points = vec![(axis.x(first.created_at), y_of(0.0, top))];
    for (at, age) in &peaks {
        points.push((axis.x(*at), y_of(*age, top)));
        points.push((axis.x(*at), y_of(0.0, top)));
    }
    points.pop();
    polyline(&mut svg, &points, BLUE);
    if let Some(limit) = max_age_s {
        let y = y_of(limit, top);
        svg.push_str(&format!(
            r#"<line x1="{LEFT}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="{AMBER}" stroke-width="1.5" stroke-dasharray="6 4"/><text x="{:.2}" y="{:.2}" text-anchor="end" font-size="13" fill="{AMBER}">max age {}</text>"#,
            WIDTH - RIGHT,
            WIDTH - RIGHT,
            y - 4.0,
            escape(&human::seconds(limit)),
        ));
    }
    for (at, age) in &peaks {
        let late = max_age_s.is_some_and(|limit| *age > limit);
        svg.push_str(&format!(
            r#"<circle class="mark" cx="{:.2}" cy="{:.2}" r="3.5" fill="{}"><title>{}: {} since the backup before</title></circle>"#,
            axis.x(*at),
            y_of(*age, top),
            if late { RED } else { BLUE },
            at.format("%Y-%m-%d %H:%M UTC"),
            escape(&human::seconds(*age)),
        ));
    }
    axis.labels(&mut svg);
    let summary = format!(
        "The newest backup is {} old{}.",
        human::seconds(age_now),
        match max_age_s {
            Some(limit) if age_now > limit =>
                format!(", older than the {} allowed", human::seconds(limit)),
            Some(limit) => format!(" (at most {} allowed)", human::seconds(limit)),
            None => String::new(),
        }
    );
    finish(
        "backup-age",
        "Age of the newest backup over time",
        summary,
        vec![
            (BLUE, "age of the newest backup"),
            (AMBER, "--max-age"),
            (RED, "older than allowed"),
        ],
        svg,
    )
}

/// The colour and the word of a fleet target's outcome.
fn outcome_colour(outcome: TargetOutcome) -> &'static str {
    match outcome {
        TargetOutcome::Ok => GREEN,
        TargetOutcome::Attention => AMBER,
        TargetOutcome::Failed => RED,
        TargetOutcome::Unreachable => PURPLE,
        TargetOutcome::Interrupted => GREY,
        TargetOutcome::NotStarted => GRID,
    }
}

const FLEET_LEGEND: [(&str, &str); 6] = [
    (GREEN, "ok"),
    (AMBER, "needs attention"),
    (RED, "failed"),
    (PURPLE, "unreachable"),
    (GREY, "interrupted"),
    (GRID, "not started"),
];

/// One square per target, in the list's order, coloured by outcome; hover for the target.
fn fleet_status(fleet: &FleetResult) -> Chart {
    let n = fleet.targets.len().max(1);
    // Squares of at most 36 units, as many per row as fit the width.
    let inner = WIDTH - 2.0 * RIGHT;
    let side = ((inner * 170.0 / n as f64).sqrt()).clamp(6.0, 36.0);
    let per_row = ((inner / side).floor() as usize).max(1);
    let rows = n.div_ceil(per_row);
    let height = TOP + rows as f64 * side + 4.0;
    let mut svg = open_svg("Targets by outcome", height);
    for (i, t) in fleet.targets.iter().enumerate() {
        let x = RIGHT + (i % per_row) as f64 * side;
        let y = TOP + (i / per_row) as f64 * side;
        svg.push_str(&format!(
            r#"<rect class="mark" x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{w:.2}" rx="2" fill="{}"><title>#{} {}: {}{}</title></rect>"#,
            outcome_colour(t.outcome),
            t.index,
            escape(&t.target),
            t.outcome.as_str().replace('_', " "),
            t.exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default(),
            w = (side - 2.0).max(1.0),
        ));
    }
    let s = &fleet.summary;
    let summary = format!(
        "{} target(s) in the list's order: {} ok, {} need attention, {} failed, {} unreachable, {} interrupted, {} not started.",
        s.total, s.ok, s.attention, s.failed, s.unreachable, s.interrupted, s.not_started
    );
    finish(
        "fleet-status",
        "Targets by outcome",
        summary,
        FLEET_LEGEND.to_vec(),
        svg,
    )
}

/// How long the command ran on each target, in the list's order, coloured by outcome.
fn fleet_durations(fleet: &FleetResult) -> Chart {
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let mut svg = open_svg("Duration per target", height);
    let timed: Vec<f64> = fleet
        .targets
        .iter()
        .filter_map(|t| t.duration_ms.map(|d| d as f64))
        .collect();
    if timed.is_empty() {
        no_data(&mut svg, height, "no target was started");
        return finish(
            "fleet-durations",
            "Duration per target",
            "No target was started.".into(),
            vec![],
            svg,
        );
    }
    let longest = timed.iter().cloned().fold(0.0, f64::max);
    let top = nice_ceiling(longest.max(1.0));
    y_grid(&mut svg, top, |v| human::seconds(v / 1000.0));
    let slot = (WIDTH - LEFT - RIGHT) / fleet.targets.len() as f64;
    let bar = (slot * 0.8).clamp(1.0, 40.0);
    for (i, t) in fleet.targets.iter().enumerate() {
        let Some(ms) = t.duration_ms.map(|d| d as f64) else {
            continue;
        };
        let h = (ms / top * PLOT_HEIGHT).max(1.5);
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        svg.push_str(&format!(
            r#"<rect class="mark" x="{x:.2}" y="{:.2}" width="{bar:.2}" height="{h:.2}" fill="{}"><title>#{} {}: {} ({})</title></rect>"#,
            TOP + PLOT_HEIGHT - h,
            outcome_colour(t.outcome),
            t.index,
            escape(&t.target),
            human::seconds(ms / 1000.0),
            t.outcome.as_str().replace('_', " "),
        ));
    }
    if let (Some(first), Some(last)) = (fleet.targets.first(), fleet.targets.last()) {
        x_label(&mut svg, LEFT, "start", &format!("#{}", first.index));
        if fleet.targets.len() > 1 {
            x_label(&mut svg, WIDTH - RIGHT, "end", &format!("#{}", last.index));
        }
    }
    let summary = format!(
        "{} target(s) ran, in the list's order; the slowest took {}, the median {}.",
        timed.len(),
        human::seconds(longest / 1000.0),
        human::seconds(median(&timed) / 1000.0)
    );
    finish(
        "fleet-durations",
        "Duration per target",
        summary,
        FLEET_LEGEND[..5].to_vec(),
        svg,
    )
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

pub(super) fn open_svg(title: &str, height: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{t}" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"><title>{t}</title>"#,
        t = escape(title)
    )
}

pub(super) fn finish(
    id: &'static str,
    title: &str,
    summary: String,
    legend: Vec<(&'static str, &'static str)>,
    mut svg: String,
) -> Chart {
    svg.push_str("</svg>");
    Chart {
        id,
        title: title.to_string(),
        summary,
        legend,
        svg,
    }
}

fn no_data(svg: &mut String, height: f64, message: &str) {
    svg.push_str(&format!(
        r#"<rect x="1" y="1" width="{}" height="{}" fill="none" stroke="{GRID}" stroke-width="2" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="middle" font-size="14" fill="{INK}">{}</text>"#,
        WIDTH - 2.0,
        height - 2.0,
        WIDTH / 2.0,
        height / 2.0 + 5.0,
        escape(message)
    ));
}

/// Horizontal grid lines with labels on the left, for values from 0 to `top`.
fn y_grid(svg: &mut String, top: f64, fmt: impl Fn(f64) -> String) {
    const STEPS: usize = 4;
    for i in 0..=STEPS {
        let value = top * i as f64 / STEPS as f64;
        let y = y_of(value, top);
        svg.push_str(&format!(
            r#"<line x1="{LEFT}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="{}" stroke-width="1"/><text x="{:.2}" y="{:.2}" text-anchor="end" font-size="13" fill="{INK}">{}</text>"#,
            WIDTH - RIGHT,
            if i == 0 { GREY } else { GRID },
            LEFT - 6.0,
            y + 4.0,
            escape(&fmt(value)),
        ));
    }
}

fn y_of(value: f64, top: f64) -> f64 {
    TOP + PLOT_HEIGHT - (value / top).clamp(0.0, 1.0) * PLOT_HEIGHT
}

fn x_label(svg: &mut String, x: f64, anchor: &str, text: &str) {
    svg.push_str(&format!(
        r#"<text x="{x:.2}" y="{:.2}" text-anchor="{anchor}" font-size="13" fill="{INK}">{}</text>"#,
        TOP + PLOT_HEIGHT + 18.0,
        escape(text)
    ));
}

fn polyline(svg: &mut String, points: &[(f64, f64)], colour: &str) {
    let list: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.2},{y:.2}"))
        .collect();
    svg.push_str(&format!(
        r#"<polyline class="mark" points="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>"#,
        list.join(" ")
    ));
}

/// A time scale over the plot's width.
struct TimeAxis {
    from: DateTime<Utc>,
    span_s: f64,
}

impl TimeAxis {
    fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> TimeAxis {
        let span_s = ((to - from).num_milliseconds() as f64 / 1000.0).max(1.0);
        TimeAxis { from, span_s }
    }

    fn x(&self, at: DateTime<Utc>) -> f64 {
        let offset = (at - self.from).num_milliseconds() as f64 / 1000.0;
        LEFT + (offset / self.span_s).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn labels(&self, svg: &mut String) {
        let to = self.from + chrono::Duration::milliseconds((self.span_s * 1000.0) as i64);
        let fmt = date_format(self.from, to);
        x_label(svg, LEFT, "start", &self.from.format(fmt).to_string());
        if self.span_s > 1.0 {
            x_label(svg, WIDTH - RIGHT, "end", &to.format(fmt).to_string());
        }
    }
}

/// Dates alone for long spans, times too for short ones.
fn date_format(from: DateTime<Utc>, to: DateTime<Utc>) -> &'static str {
    if (to - from).num_hours() >= 72 {
        "%Y-%m-%d"
    } else {
        "%Y-%m-%d %H:%M"
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10ⁿ that is at least `value`: a round top for an axis.
pub(super) fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|candidate| *candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

/// A round top for a time axis in seconds whose quarters are round too (15 s, 6 h, 1 d).
fn nice_duration_ceiling(seconds: f64) -> f64 {
    const MINUTE: f64 = 60.0;
    const HOUR: f64 = 3600.0;
    const DAY: f64 = 86400.0;
    const TOPS: [f64; 22] = [
        1.0,
        2.0,
        4.0,
        10.0,
        20.0,
        MINUTE,
        2.0 * MINUTE,
        4.0 * MINUTE,
        10.0 * MINUTE,
        20.0 * MINUTE,
        HOUR,
        2.0 * HOUR,
        4.0 * HOUR,
        8.0 * HOUR,
        12.0 * HOUR,
        DAY,
        2.0 * DAY,
        4.0 * DAY,
        8.0 * DAY,
        16.0 * DAY,
        28.0 * DAY,
        56.0 * DAY,
    ];
    TOPS.iter()
        .copied()
        .find(|top| *top >= seconds)
        .unwrap_or_else(|| (seconds / (28.0 * DAY)).ceil() * 28.0 * DAY)
}

/// At most `max` characters, with `…` when cut.
pub(super) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn envelope(tool: &str, command: &str, result: Value) -> Envelope {
        Envelope {
            tool: tool.into(),
            command: command.into(),
            version: "0".into(),
            ok: true,
            exit_code: 0,
            started_at: "2026-01-10T00:00:00Z".into(),
            duration_ms: 1,
            target: None,
            result,
            warnings: vec![],
            error: None,
        }
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
        assert_eq!(nice_ceiling(4100.0), 5000.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_duration_ceiling(100_000.0), 2.0 * 86400.0);
        assert_eq!(nice_duration_ceiling(19.3), 20.0);
    }

    #[test]
    fn backups_of_any_document_get_size_and_age_charts_with_escaped_text() {
        let doc = envelope(
            "backup",
            "list",
            serde_json::json!({"backups": [
                {"id": "a<b>-default-20260101T000000Z", "created_at": "2026-01-01T00:00:00Z", "size_bytes": 1000, "verified": true},
                {"id": "x-default-20260105T000000Z", "created_at": "2026-01-05T00:00:00Z", "size_bytes": 3000, "verified": false},
            ], "max_age_s": 93600}),
        );
        let charts = charts_for(&doc);
        let ids: Vec<&str> = charts.iter().map(|c| c.id).collect();
        assert_eq!(ids, ["backup-sizes", "backup-age"]);
        assert!(charts[0].svg.contains("a&lt;b&gt;"), "{}", charts[0].svg);
        assert!(!charts[0].svg.contains("a<b>"));
        assert!(
            charts[1].summary.contains("older than the 1 d 2 h allowed"),
            "{}",
            charts[1].summary
        );
        assert!(charts[1].svg.contains(RED), "the late tooth is red");
    }

    #[test]
    fn empty_data_draws_a_placeholder_not_nothing() {
        let doc = envelope("report", "migrations", serde_json::json!({"attempts": []}));
        let charts = charts_for(&doc);
        assert_eq!(charts.len(), 1);
        assert!(charts[0].svg.contains("no migration attempts recorded yet"));
        let doc = envelope("report", "health", serde_json::json!({"tables": "?"}));
        assert!(
            charts_for(&doc).is_empty(),
            "a shape it does not know gets no chart"
        );
    }
}
