//! `--format github`: GitHub Actions workflow commands for the findings of check commands,
//! so a CI step annotates the migration files a lint or check points at.

/// GitHub Actions workflow commands for `result.findings` (the shape every check command
/// of pgward-validate reports): one `::error` / `::warning` / `::notice` line each.
pub fn render_github_annotations(result: &serde_json::Value) -> String {
    let Some(findings) = result.get("findings").and_then(|f| f.as_array()) else {
        return String::new();
    };
    // GitHub's escaping for workflow command data and properties.
    let esc = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let esc_prop = |s: &str| esc(s).replace(':', "%3A").replace(',', "%2C");
    let mut out = String::new();
    for f in findings {
        let text = |k: &str| f.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let level = match text("severity") {
            "error" => "error",
            "warning" => "warning",
            _ => "notice",
        };
        let mut props = Vec::new();
        if !text("file").is_empty() {
            props.push(format!("file={}", esc_prop(text("file"))));
        }
        for (key, name) in [("line", "line"), ("column", "col")] {
            if let Some(n) = f.get(key).and_then(|v| v.as_u64()) {
                props.push(format!("{name}={n}"));
            }
        }
        props.push(format!("title={}", esc_prop(text("rule"))));
        out.push_str(&format!(
            "::{level} {}::{}\n",
            props.join(","),
            esc(&format!(
                "{} — {} Fix: {}",
                text("message"),
                text("why"),
                text("fix")
            ))
        ));
    }
    out
}
