//! `--format html`: one self-contained page. Inline CSS and SVG only: no script, no font,
//! no image or style sheet from anywhere, so the file can be mailed, archived as a CI
//! artefact or opened offline. It reads on a phone (the viewport is set, wide tables scroll
//! inside their box, charts scale) and prints (print CSS: no clipped boxes, no split
//! charts).

use serde_json::Value;

use super::charts::{charts_for, Chart};
use super::{columns, human, is_table, ordered_keys, target_line, verdict};
use crate::output::Envelope;

/// Rows of one table shown before the rest is summarised (the JSON has them all).
const MAX_ROWS: usize = 1000;
/// Strings longer than this, or with several lines, go into a scrolling block.
const LONG_TEXT: usize = 120;

/// The page's CSS. `overflow-wrap: break-word` on body: a long path, token or name breaks
/// inside its box instead of running out of it (off a phone's page); unlike `anywhere` it
/// leaves table columns' widths alone, so wide tables still scroll in `.table-wrap`
/// (tests/tests/html_fit.rs).
const STYLE: &str = r#"
:root { color-scheme: light; --ink: #111827; --muted: #4b5563; --line: #e5e7eb; --soft: #f9fafb; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 64rem; padding: 1rem; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #fff; overflow-wrap: break-word; }
h1 { font-size: 1.45rem; margin: 0 0 .3rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem; padding-bottom: .2rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.status { display: inline-block; padding: .1rem .7rem; border-radius: 1rem; font-weight: 600; }
.status-ok { background: #dcfce7; color: #166534; }
.status-attention { background: #fef3c7; color: #92400e; }
.status-failed { background: #fee2e2; color: #991b1b; }
dl.kv { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .15rem 1rem; margin: .5rem 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.box { border-radius: .5rem; padding: .6rem .9rem; margin: 1rem 0; }
.box-error { background: #fee2e2; border: 1px solid #fca5a5; }
.box-warnings { background: #fffbeb; border: 1px solid #fcd34d; }
.box ul { margin: .3rem 0; padding-left: 1.2rem; }
.table-wrap { overflow-x: auto; margin: .5rem 0; }
table { border-collapse: collapse; font-size: .85rem; min-width: 100%; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 26rem), 1fr)); gap: 1rem; }
figure.chart { margin: 0; padding: .75rem; border: 1px solid var(--line); border-radius: .5rem; break-inside: avoid; }
figure.chart svg { display: block; width: 100%; height: auto; }
figcaption { font-size: .85rem; color: var(--muted); margin-bottom: .5rem; }
figcaption strong { display: block; color: var(--ink); font-size: 1rem; }
.legend { display: flex; flex-wrap: wrap; gap: .2rem .9rem; margin-top: .3rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: .15rem; margin-right: .3rem; vertical-align: -.1rem; }
pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; font-size: .8rem; }
pre.long { max-height: 9rem; overflow: auto; background: var(--soft); padding: .3rem .4rem; min-width: 14rem; }
.muted { color: var(--muted); }
footer { margin-top: 2rem; font-size: .8rem; color: var(--muted); }
@media (max-width: 40rem) {
  body { padding: .6rem; font-size: 14px; }
  dl.kv { grid-template-columns: minmax(0, 1fr); }
  dl.kv dd { margin-bottom: .35rem; }
}
@media print {
  @page { margin: 1.5cm; }
  body { max-width: none; padding: 0; font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .table-wrap, pre.long { overflow: visible; max-height: none; }
  .charts { display: block; }
  figure.chart { margin-bottom: 1rem; }
  tr, figure.chart, .box { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
}
"#;

/// `text` safe in HTML and SVG text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The page for `e`.
pub fn render_html(e: &Envelope) -> String {
    let name = format!("pgward-{} {}", e.tool, e.command);
    let title = match &e.target {
        Some(t) => format!("{name} · {}", t.database),
        None => name.clone(),
    };
    let status_class = match verdict(e) {
        "ok" => "status-ok",
        "needs attention" => "status-attention",
        _ => "status-failed",
    };
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!(
        "<meta name=\"generator\" content=\"pgward {}\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&e.version),
        escape(&title)
    ));
    out.push_str(&format!(
        "<header>\n<h1>{}</h1>\n<p><span class=\"status {status_class}\">{} · exit {}</span></p>\n<dl class=\"kv\">",
        escape(&name),
        verdict(e),
        e.exit_code
    ));
    if let Some(t) = &e.target {
        out.push_str(&format!(
            "<dt>Target</dt><dd>{}</dd>",
            escape(&target_line(t))
        ));
    }
    if !e.started_at.is_empty() {
        out.push_str(&format!(
            "<dt>Started</dt><dd>{}</dd>",
            escape(&e.started_at)
        ));
    }
    out.push_str(&format!(
        "<dt>Duration</dt><dd>{}</dd>",
        human::seconds(e.duration_ms as f64 / 1000.0)
    ));
    out.push_str("</dl>\n</header>\n<main>\n");
    if let Some(err) = &e.error {
        out.push_str(&format!(
            "<section class=\"box box-error\" id=\"error\"><strong>Error <code>{}</code></strong><p>{}</p><p><strong>Hint:</strong> {}</p></section>\n",
            escape(&err.code),
            escape(&err.message),
            escape(&err.hint)
        ));
    }
    if !e.warnings.is_empty() {
        out.push_str(
            "<section class=\"box box-warnings\" id=\"warnings\"><strong>Warnings</strong><ul>",
        );
        for w in &e.warnings {
            out.push_str(&format!(
                "<li><code>{}</code> {}</li>",
                escape(&w.code),
                escape(&w.message)
            ));
        }
        out.push_str("</ul></section>\n");
    }
    let charts = charts_for(e);
    if !charts.is_empty() {
        out.push_str("<section id=\"charts\">\n<h2>Charts</h2>\n<div class=\"charts\">\n");
        for chart in &charts {
            figure(&mut out, chart);
        }
        out.push_str("</div>\n</section>\n");
    }
    if let Some(deploy) = super::trace::TracedDeploy::find(&e.result) {
        super::trace::html_section(&mut out, &deploy);
    }
    if !e.result.is_null() {
        out.push_str("<section id=\"result\">\n");
        match crate::fleet::FleetResult::of(&e.result) {
            Some(fleet) => value_section(&mut out, "Fleet", &super::fleet::flat(&fleet), 2),
            None => value_section(&mut out, "Result", &e.result, 2),
        }
        out.push_str("</section>\n");
    }
    out.push_str(&format!(
        "</main>\n<footer>Rendered by pgward {} from its JSON document. No scripts, no network.</footer>\n</body>\n</html>",
        escape(&e.version)
    ));
    out
}

fn figure(out: &mut String, chart: &Chart) {
    figure_as(out, &format!("chart-{}", chart.id), chart);
}

/// `chart` as a figure whose element id is `id`.
pub(super) fn figure_as(out: &mut String, id: &str, chart: &Chart) {
    out.push_str(&format!(
        "<figure class=\"chart\" id=\"{}\"><figcaption><strong>{}</strong>{}",
        escape(id),
        escape(&chart.title),
        escape(&chart.summary)
    ));
    if !chart.legend.is_empty() {
        out.push_str("<span class=\"legend\">");
        for (colour, meaning) in &chart.legend {
            out.push_str(&format!(
                "<span><span class=\"swatch\" style=\"background:{colour}\"></span>{}</span>",
                escape(meaning)
            ));
        }
        out.push_str("</span>");
    }
    out.push_str("</figcaption>\n");
    out.push_str(&chart.svg);
    out.push_str("\n</figure>\n");
}

/// A heading and `v`: an object's scalars as a list, its arrays and objects as
/// sub-sections; rows as a table.
fn value_section(out: &mut String, heading: &str, v: &Value, level: usize) {
    let h = level.min(6);
    out.push_str(&format!("<h{h}>{}</h{h}>\n", escape(heading)));
    match v {
        Value::Object(map) => {
            let keys = ordered_keys(map);
            let (nested, scalars): (Vec<&str>, Vec<&str>) = keys.into_iter().partition(|k| {
                matches!(&map[*k], Value::Object(m) if !m.is_empty())
                    || matches!(&map[*k], Value::Array(a) if !a.is_empty())
            });
            if !scalars.is_empty() {
                out.push_str("<dl class=\"kv\">");
                for k in scalars {
                    out.push_str(&format!(
                        "<dt>{}</dt><dd>{}</dd>",
                        escape(&human::label(k)),
                        cell(k, &map[k])
                    ));
                }
                out.push_str("</dl>\n");
            }
            for k in nested {
                value_section(out, &human::label(k), &map[k], level + 1);
            }
        }
        Value::Array(items) if is_table(items) => table(out, items),
        Value::Array(items) => {
            out.push_str("<ul>");
            for item in items {
                out.push_str(&format!("<li>{}</li>", cell("", item)));
            }
            out.push_str("</ul>\n");
        }
        other => out.push_str(&format!("<p>{}</p>\n", cell("", other))),
    }
}

fn table(out: &mut String, rows: &[Value]) {
    let cols = columns(rows);
    out.push_str("<div class=\"table-wrap\"><table>\n<thead><tr>");
    for c in &cols {
        out.push_str(&format!("<th>{}</th>", escape(&human::label(c))));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows.iter().take(MAX_ROWS) {
        out.push_str("<tr>");
        for c in &cols {
            let v = row.get(c).unwrap_or(&Value::Null);
            let class = if v.is_number() { " class=\"num\"" } else { "" };
            let title = match v {
                Value::Number(n) if human::unit_of(c) != human::Unit::Plain => {
                    format!(" title=\"{n}\"")
                }
                _ => String::new(),
            };
            out.push_str(&format!("<td{class}{title}>{}</td>", cell(c, v)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    if rows.len() > MAX_ROWS {
        out.push_str(&format!(
            "<p class=\"muted\">{} more row(s) are in the JSON document.</p>\n",
            rows.len() - MAX_ROWS
        ));
    }
}

/// One value in a cell or a list: long or multi-line text in a scrolling block, nested rows
/// as pretty JSON, scalars in their unit.
fn cell(key: &str, v: &Value) -> String {
    match v {
        Value::String(s) if s.contains('\n') || s.chars().count() > LONG_TEXT => {
            format!("<pre class=\"long\">{}</pre>", escape(s))
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => format!(
            "<pre class=\"long\">{}</pre>",
            escape(&serde_json::to_string_pretty(v).unwrap_or_default())
        ),
        _ => escape(&human::scalar(key, v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{ErrorBody, Warning};

    #[test]
    fn the_page_is_self_contained_and_escapes_every_text() {
        let e = Envelope {
            tool: "migrate".into(),
            command: "status".into(),
            version: "0.1.0".into(),
            ok: false,
            exit_code: 5,
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 12,
            target: None,
            result: serde_json::json!({
                "failed": [{"name": "<script>alert(1)</script>", "logs": "line 1\nline 2"}],
                "size_bytes": 2048,
            }),
            warnings: vec![Warning {
                code: "W".into(),
                message: "a & b".into(),
            }],
            error: Some(ErrorBody {
                code: "FAILED_MIGRATIONS".into(),
                message: "\"quoted\"".into(),
                hint: "<b>".into(),
                details: None,
            }),
        };
        let page = render_html(&e);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("name=\"viewport\""));
        assert!(page.contains("@media print"));
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("a &amp; b"));
        assert!(page.contains("&quot;quoted&quot;"));
        assert!(page.contains("2.0 KiB"));
        assert!(!page.contains("http"), "no link to anywhere");
        assert!(!page.contains("src="), "nothing is loaded from elsewhere");
    }
}
