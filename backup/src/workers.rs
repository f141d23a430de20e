//! What the parallel parts of backup and restore share: the worker pool, and which tables
//! a `--table` / `--tables` pattern selects.

use pgward_shared::error::{Error, Result};

/// A pool of `jobs` threads (at least one).
pub fn pool(jobs: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| Error::usage(format!("cannot start {jobs} workers: {e}"), "lower --jobs"))
}

/// Table patterns as users write them: `schema.table` or `table`, with `*` and `?`.
pub struct TablePatterns(Vec<glob::Pattern>);

impl TablePatterns {
    /// Compiles `patterns`; a malformed one is a usage error.
    pub fn compile(patterns: &[String]) -> Result<TablePatterns> {
        patterns
            .iter()
            .map(|p| {
                glob::Pattern::new(p).map_err(|e| {
                    Error::usage(
                        format!("table pattern `{p}`: {e}"),
                        "use schema.table or table, with * and ? wildcards",
                    )
                })
            })
            .collect::<Result<_>>()
            .map(TablePatterns)
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any pattern matches `schema.name` or `name`.
    pub fn matches(&self, schema: &str, name: &str) -> bool {
        let full = format!("{schema}.{name}");
        self.0.iter().any(|p| p.matches(&full) || p.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::TablePatterns;

    #[test]
    fn patterns_match_qualified_or_bare_names() {
        let p = TablePatterns::compile(&["audit.*".into(), "small_?".into()]).expect("valid");
        assert!(p.matches("audit", "events"));
        assert!(p.matches("public", "small_1"));
        assert!(!p.matches("public", "small_10"));
        assert!(!p.matches("public", "events"));
        assert!(TablePatterns::compile(&[]).expect("valid").is_empty());
        assert_eq!(
            TablePatterns::compile(&["[".into()])
                .err()
                .map(|e| e.code()),
            Some("USAGE")
        );
    }
}
