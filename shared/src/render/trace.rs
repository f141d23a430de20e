//! Traced deploys (`pgward-migrate deploy --trace`) in the human formats: a lock timeline
//! per migration and the per-relation summary table in HTML, the summary table and the
//! locks over budget in Markdown. (The Prometheus metrics are in
//! [`super::prometheus`].)
//!
//! The trace is read as its own types ([`ScriptTrace`], [`RelationSummary`],
//! [`OverBudget`]) from any document that carries a deploy result: `deploy --trace` itself,
//! or a document that holds one in a field of its result (a rehearsal's). [`TracedDeploy::find`]
//! is that one reading.

use serde::Deserialize;
use serde_json::Value;

use super::charts::{
    nice_ceiling, open_svg, shorten, Chart, AMBER, GREY, INK, LIGHT_BLUE, RED, RIGHT, TOP, WIDTH,
};
use super::html::escape;
use super::human;
use crate::locks::Blocks;
use crate::migrations::trace::{OverBudget, RelationSummary, ScriptTrace, StatementTrace};

/// What a traced deploy did, read from its document.
#[derive(Debug, Clone)]
pub struct TracedDeploy {
    /// The migrations applied, in order, each with its trace.
    pub migrations: Vec<(String, ScriptTrace)>,
    /// Per relation over the whole deploy, strongest lock first.
    pub relations: Vec<RelationSummary>,
    /// With `--max-lock`: the locks held longer than the budget, longest first.
    pub over_budget: Vec<OverBudget>,
}

/// A deploy result, as far as its trace goes.
#[derive(Deserialize)]
struct DeployView {
    applied: Vec<MigrationView>,
    /// Present only in a traced deploy.
    relations: Option<Vec<RelationSummary>>,
    #[serde(default)]
    over_budget: Option<Vec<OverBudget>>,
}

#[derive(Deserialize)]
struct MigrationView {
    name: String,
    #[serde(default)]
    trace: Option<ScriptTrace>,
}

impl TracedDeploy {
    /// The trace in `result`: a traced deploy's result itself, or a deploy result one
    /// field down (a document that runs a deploy among other steps, such as a rehearsal).
    /// None when no traced deploy result is there.
    pub fn find(result: &Value) -> Option<TracedDeploy> {
        TracedDeploy::read(result)
            .or_else(|| result.as_object()?.values().find_map(TracedDeploy::read))
    }

    fn read(value: &Value) -> Option<TracedDeploy> {
        let view = DeployView::deserialize(value).ok()?;
        Some(TracedDeploy {
            relations: view.relations?,
            migrations: view
                .applied
                .into_iter()
                .filter_map(|m| Some((m.name, m.trace?)))
                .collect(),
            over_budget: view.over_budget.unwrap_or_default(),
        })
    }

    /// The size after its largest rewrite, in words; `-` for a relation not rewritten.
    fn rewritten_size(&self, relation: &str) -> String {
        self.rewritten_bytes(relation)
            .map(|b| human::bytes(b as f64))
            .unwrap_or_else(|| "-".into())
    }

    /// The size after its largest rewrite, per relation the deploy rewrote.
    pub fn rewritten_bytes(&self, relation: &str) -> Option<i64> {
        self.migrations
            .iter()
            .flat_map(|(_, t)| &t.statements)
            .flat_map(|s| &s.rewrites)
            .filter(|r| r.relation == relation)
            .map(|r| r.bytes)
            .max()
    }

    /// The lock that blocked writes or reads the longest: (relation summary), if any did.
    pub fn longest_blocking(&self) -> Option<&RelationSummary> {
        self.relations
            .iter()
            .filter(|r| r.blocks != Blocks::Nothing)
            .max_by(|a, b| a.held_ms.total_cmp(&b.held_ms))
    }
}

/// The colour of a lock: by what it blocks.
fn colour(blocks: Blocks) -> &'static str {
    match blocks {
        Blocks::Nothing => LIGHT_BLUE,
        Blocks::Writes => AMBER,
        Blocks::ReadsAndWrites => RED,
    }
}

/// The legend every timeline shares.
const LEGEND: [(&str, &str); 4] = [
    (
        LIGHT_BLUE,
        "blocks nothing (ACCESS SHARE to SHARE UPDATE EXCLUSIVE)",
    ),
    (AMBER, "blocks writes (SHARE to EXCLUSIVE)"),
    (RED, "blocks reads and writes (ACCESS EXCLUSIVE)"),
    (GREY, "statements, in order; a black outline: rewritten"),
];

/// The HTML section of a traced deploy: a timeline per migration, then the summary table.
pub(crate) fn html_section(out: &mut String, deploy: &TracedDeploy) {
    out.push_str("<section id=\"locks\">\n<h2>Locks</h2>\n");
    if deploy.migrations.is_empty() {
        out.push_str("<p class=\"muted\">No migration was applied: nothing was traced.</p>\n");
    } else {
        out.push_str("<div class=\"charts\">\n");
        for (i, (name, trace)) in deploy.migrations.iter().enumerate() {
            let chart = timeline(name, trace);
            super::html::figure_as(out, &format!("timeline-{}", i + 1), &chart);
        }
        out.push_str("</div>\n");
    }
    out.push_str("<h3>Per relation</h3>\n<div class=\"table-wrap\"><table id=\"lock-summary\">\n<thead><tr><th>Relation</th><th>Strongest lock</th><th>Longest hold</th><th>Blocks</th><th>Rewritten</th><th>Size</th></tr></thead>\n<tbody>\n");
    for r in &deploy.relations {
        let size = deploy.rewritten_size(&r.relation);
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\" title=\"{} ms\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>\n",
            escape(&r.relation),
            r.strongest.name(),
            r.held_ms,
            human::seconds(r.held_ms / 1000.0),
            r.blocks.words(),
            if r.rewritten { "yes" } else { "no" },
            size,
        ));
    }
    out.push_str("</tbody></table></div>\n</section>\n");
}

/// Where each statement starts on the time axis, in milliseconds. The trace has each
/// statement's duration and how long its locks were then held: in one transaction every
/// lock is released at the same COMMIT, so two statements' holds differ by the time
/// between their starts (the tracer's own reads included). Where that cannot be told (a
/// statement without locks, outside a transaction, or the holds of two transactions), the
/// next statement starts where the previous one ended.
fn starts(statements: &[StatementTrace]) -> Vec<f64> {
    let mut out = Vec::with_capacity(statements.len());
    let mut at = 0.0;
    for (i, s) in statements.iter().enumerate() {
        if let Some(previous) = i.checked_sub(1).map(|p| &statements[p]) {
            let between = match (previous.locks.first(), s.locks.first()) {
                (Some(a), Some(b)) if previous.in_transaction && s.in_transaction => {
                    a.held_ms - b.held_ms
                }
                _ => 0.0,
            };
            at += between.max(previous.duration_ms);
        }
        out.push(at);
    }
    out
}

/// One migration's timeline: the statements on the time axis (top band), then one row
/// per relation with a bar per lock, from its statement's start for as long as it was
/// held, coloured by what it blocks; the mode is named beside the relation and in every
/// bar's tooltip.
pub fn timeline(name: &str, trace: &ScriptTrace) -> Chart {
    const LABEL_WIDTH: f64 = 150.0;
    const BAND: f64 = 20.0;
    const ROW: f64 = 32.0;
    const AXIS: f64 = 22.0;
    let statements = &trace.statements;
    let starts = starts(statements);
    let end = statements
        .iter()
        .zip(&starts)
        .flat_map(|(s, start)| {
            std::iter::once(start + s.duration_ms)
                .chain(s.locks.iter().map(move |l| start + l.held_ms))
        })
        .fold(0.0, f64::max);
    let top = nice_ceiling(end.max(1.0));
    let left = LABEL_WIDTH + 8.0;
    let plot = WIDTH - left - RIGHT;
    let x = |ms: f64| left + (ms / top).clamp(0.0, 1.0) * plot;
    let rows = &trace.relations;
    let height = TOP + BAND + 6.0 + ROW * rows.len().max(1) as f64 + AXIS;
    let title = format!("Lock timeline of {name}");
    let mut svg = open_svg(&title, height);
    // The statements band.
    for (i, (s, start)) in statements.iter().zip(&starts).enumerate() {
        let (x0, x1) = (x(*start), x(start + s.duration_ms));
        let w = (x1 - x0).max(1.5);
        svg.push_str(&format!(
            r##"<rect class="mark statement" x="{x0:.2}" y="{TOP}" width="{w:.2}" height="{BAND}" fill="{}" stroke="#ffffff" stroke-width="0.5"><title>statement {} (line {}): {} ({}{})</title></rect>"##,
            if i % 2 == 0 { GREY } else { "#d1d5db" },
            i + 1,
            s.position.line,
            escape(&shorten(&s.statement.replace('\n', " "), 120)),
            human::seconds(s.duration_ms / 1000.0),
            if s.in_transaction { "" } else { ", outside a transaction" },
        ));
        if w >= 16.0 {
            svg.push_str(&format!(
                r##"<text x="{:.2}" y="{:.1}" text-anchor="middle" font-size="11" fill="#111827" aria-hidden="true">{}</text>"##,
                x0 + w / 2.0,
                TOP + BAND * 0.7,
                i + 1
            ));
        }
    }
    svg.push_str(&format!(
        r#"<text x="{LABEL_WIDTH}" y="{:.1}" text-anchor="end" font-size="12" fill="{INK}">statements</text>"#,
        TOP + BAND * 0.7
    ));
    let rows_top = TOP + BAND + 6.0;
    if rows.is_empty() {
        svg.push_str(&format!(
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" fill="{INK}">no lock on a relation that existed before the migration</text>"#,
            left + plot / 2.0,
            rows_top + ROW * 0.6
        ));
    }
    for (row, relation) in rows.iter().enumerate() {
        let y = rows_top + row as f64 * ROW;
        svg.push_str(&format!(
            r#"<text class="relation" x="{LABEL_WIDTH}" y="{:.1}" text-anchor="end" font-size="12" fill="{INK}">{}<title>{}</title></text><text class="mode" x="{LABEL_WIDTH}" y="{:.1}" text-anchor="end" font-size="10" fill="{INK}">{}</text>"#,
            y + 13.0,
            escape(&shorten(&relation.relation, 20)),
            escape(&relation.relation),
            y + 26.0,
            relation.strongest.name(),
        ));
        for (i, (s, start)) in statements.iter().zip(&starts).enumerate() {
            let rewritten = s.rewrites.iter().any(|r| r.relation == relation.relation);
            for lock in s.locks.iter().filter(|l| l.relation == relation.relation) {
                let x0 = x(*start);
                let w = (x(start + lock.held_ms) - x0).max(2.0);
                let outline = if rewritten {
                    r##" stroke="#111827" stroke-width="1.5""##
                } else {
                    ""
                };
                svg.push_str(&format!(
                    r#"<rect class="mark lock" data-relation="{}" data-mode="{}" x="{x0:.2}" y="{:.1}" width="{w:.2}" height="{:.1}" fill="{}"{outline}><title>{}: {} held {} from statement {} (line {}); blocks {}{}</title></rect>"#,
                    escape(&relation.relation),
                    lock.mode.name(),
                    y + 4.0,
                    ROW - 10.0,
                    colour(lock.blocks),
                    escape(&relation.relation),
                    lock.mode.name(),
                    human::seconds(lock.held_ms / 1000.0),
                    i + 1,
                    s.position.line,
                    lock.blocks.words(),
                    if rewritten { "; rewritten by it" } else { "" },
                ));
            }
        }
    }
    let axis_y = rows_top + ROW * rows.len().max(1) as f64 + 14.0;
    for (at, anchor) in [(0.0, "start"), (top / 2.0, "middle"), (top, "end")] {
        svg.push_str(&format!(
            r#"<text x="{:.2}" y="{axis_y:.1}" text-anchor="{anchor}" font-size="12" fill="{INK}">{}</text>"#,
            x(at),
            human::seconds(at / 1000.0)
        ));
    }
    let total = statements
        .iter()
        .zip(&starts)
        .map(|(s, start)| start + s.duration_ms)
        .fold(0.0, f64::max);
    let summary = match rows.first() {
        Some(r) => format!(
            "{} statement(s) in {}; the strongest lock: {} on {}, held {}, blocks {}.",
            statements.len(),
            human::seconds(total / 1000.0),
            r.strongest.name(),
            r.relation,
            human::seconds(r.held_ms / 1000.0),
            r.blocks.words()
        ),
        None => format!(
            "{} statement(s) in {}; no lock on a relation other sessions could see.",
            statements.len(),
            human::seconds(total / 1000.0)
        ),
    };
    super::charts::finish("lock-timeline", name, summary, LEGEND.to_vec(), svg)
}

/// The Markdown section of a traced deploy: the locks over budget, one line each, and
/// the per-relation table.
pub(crate) fn markdown_section(
    out: &mut String,
    deploy: &TracedDeploy,
    escape: impl Fn(&str) -> String,
) {
    out.push_str("### Locks\n\n");
    if !deploy.over_budget.is_empty() {
        out.push_str("**Over the lock budget**\n\n");
        for o in &deploy.over_budget {
            out.push_str(&format!("- {}\n", escape(&o.line())));
        }
        out.push('\n');
    }
    if deploy.relations.is_empty() {
        out.push_str("No lock on a relation other sessions could see.\n\n");
        return;
    }
    out.push_str("| Relation | Strongest lock | Longest hold | Blocks | Rewritten | Size |\n| --- | --- | ---: | --- | --- | ---: |\n");
    for r in &deploy.relations {
        let size = deploy.rewritten_size(&r.relation);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            escape(&r.relation),
            r.strongest.name(),
            human::seconds(r.held_ms / 1000.0),
            r.blocks.words(),
            if r.rewritten { "yes" } else { "no" },
            size
        ));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy() -> Value {
        serde_json::json!({
            "applied": [{"name": "1_a", "mode": "transaction", "statements": 2, "duration_ms": 5, "retries": 0,
                "trace": {"statements": [
                    {"position": {"line": 1, "column": 1}, "statement": "ALTER TABLE t ALTER COLUMN a TYPE bigint", "duration_ms": 30.0, "rows": 0, "in_transaction": true,
                     "locks": [{"relation": "t", "kind": "table", "mode": "ACCESS EXCLUSIVE", "held_ms": 60.0, "blocks": "reads_and_writes"}],
                     "rewrites": [{"relation": "t", "bytes": 8192}]},
                    {"position": {"line": 2, "column": 1}, "statement": "CREATE INDEX i ON u (b)", "duration_ms": 20.0, "rows": 0, "in_transaction": true,
                     "locks": [{"relation": "u<x>", "kind": "table", "mode": "SHARE", "held_ms": 20.0, "blocks": "writes"}], "rewrites": []}],
                  "relations": [
                    {"relation": "t", "strongest": "ACCESS EXCLUSIVE", "held_ms": 60.0, "blocks": "reads_and_writes", "rewritten": true},
                    {"relation": "u<x>", "strongest": "SHARE", "held_ms": 20.0, "blocks": "writes", "rewritten": false}]}}],
            "relations": [
                {"relation": "t", "strongest": "ACCESS EXCLUSIVE", "held_ms": 60.0, "blocks": "reads_and_writes", "rewritten": true},
                {"relation": "u<x>", "strongest": "SHARE", "held_ms": 20.0, "blocks": "writes", "rewritten": false}],
        })
    }

    #[test]
    fn a_trace_is_found_in_a_deploy_result_or_one_field_down() {
        let found = TracedDeploy::find(&deploy()).expect("a traced deploy");
        assert_eq!(found.migrations.len(), 1);
        assert_eq!(found.rewritten_bytes("t"), Some(8192));
        assert_eq!(
            found.longest_blocking().map(|r| r.relation.as_str()),
            Some("t")
        );
        let nested = serde_json::json!({"deploy": deploy(), "verdict": "x"});
        assert!(TracedDeploy::find(&nested).is_some());
        let mut untraced = deploy();
        untraced.as_object_mut().unwrap().remove("relations");
        assert!(TracedDeploy::find(&untraced).is_none());
    }

    #[test]
    fn the_timeline_has_a_row_per_relation_and_names_modes_in_text() {
        let found = TracedDeploy::find(&deploy()).unwrap();
        let chart = timeline(&found.migrations[0].0, &found.migrations[0].1);
        assert_eq!(chart.svg.matches("class=\"relation\"").count(), 2);
        assert!(
            chart.svg.contains("data-mode=\"ACCESS EXCLUSIVE\""),
            "{}",
            chart.svg
        );
        assert!(chart.svg.contains("u&lt;x&gt;"), "names are escaped");
        assert!(!chart.svg.contains("u<x>"));
        assert!(chart.svg.contains(RED) && chart.svg.contains(AMBER));
    }

    #[test]
    fn statements_start_where_their_holds_say_within_a_transaction() {
        let found = TracedDeploy::find(&deploy()).unwrap();
        // Held 60 and 20 ms until the same COMMIT: the second started 40 ms after the
        // first, which ran 30 ms (10 ms of the tracer's own reads between them).
        assert_eq!(starts(&found.migrations[0].1.statements), vec![0.0, 40.0]);
    }
}
