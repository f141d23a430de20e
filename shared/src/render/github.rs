//! `--format github`: GitHub Actions workflow commands for the findings of check commands,
//! so a CI step annotates the migration files a lint or check points at.

use serde::Deserialize;

use crate::findings::{Finding, Severity};

/// The result of a check command of pgward-validate, as far as annotations go.
#[derive(Deserialize)]
struct Checked {
    findings: Vec<Finding>,
}

/// GitHub Actions workflow commands for `result.findings` (the shape every check command
/// of pgward-validate reports): one `::error` / `::warning` / `::notice` line each.
pub fn render_github_annotations(result: &serde_json::Value) -> String {
    let Ok(Checked { findings }) = Checked::deserialize(result) else {
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
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut props = Vec::new();
        if let Some(file) = f.location.file.as_deref().filter(|f| !f.is_empty()) {
            props.push(format!("file={}", esc_prop(file)));
        }
        for (n, name) in [(f.location.line, "line"), (f.location.column, "col")] {
            if let Some(n) = n {
                props.push(format!("{name}={n}"));
            }
        }
        props.push(format!("title={}", esc_prop(&f.rule)));
        out.push_str(&format!(
            "::{level} {}::{}\n",
            props.join(","),
            esc(&format!("{} — {} Fix: {}", f.message, f.why, f.fix))
        ));
    }
    out
}
