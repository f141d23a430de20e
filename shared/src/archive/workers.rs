//! What the parallel parts of backup and restore share: the worker pool, and which tables
//! a `--table` / `--tables` pattern selects.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// A pool of `jobs` threads (at least one).
pub fn pool(jobs: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| Error::usage(format!("cannot start {jobs} workers: {e}"), "lower --jobs"))
}

/// Runs `work` over `items` on a rayon pool of one thread per element of `states`, each
/// thread owning its state (a database session) throughout; results come back in item
/// order. Items are handed out one at a time in their order, so a list sorted largest
/// first keeps every worker busy to the end (rayon's own splitting of a list would hand
/// one worker the whole second half). `states` must not be empty when `items` is not.
pub fn queue<S, T, R>(
    states: Vec<S>,
    items: &[T],
    work: impl Fn(&mut S, &T) -> R + Sync,
) -> Result<Vec<R>>
where
    S: Send,
    T: Sync,
    R: Send,
{
    assert!(
        !states.is_empty() || items.is_empty(),
        "a work queue needs a worker"
    );
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    pool(states.len())?.scope(|scope| {
        let (next, done, work) = (&next, &done, &work);
        for mut state in states {
            scope.spawn(move |_| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else {
                    break;
                };
                let result = work(&mut state, item);
                done.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
            });
        }
    });
    Ok(done
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect())
}

/// [`queue`] for work that can fail: once an item has failed, the items not yet started
/// are skipped (those running finish), and the first failure in item order is returned.
pub fn try_queue<S, T, R>(
    states: Vec<S>,
    items: &[T],
    work: impl Fn(&mut S, &T) -> Result<R> + Sync,
) -> Result<Vec<R>>
where
    S: Send,
    T: Sync,
    R: Send,
{
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results = queue(states, items, |state, item| {
        if failed.load(Ordering::Relaxed) {
            return None;
        }
        let result = work(state, item);
        if result.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        Some(result)
    })?;
    let mut done = Vec::with_capacity(results.len());
    for result in results.into_iter().flatten() {
        done.push(result?);
    }
    Ok(done)
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
        self.0.iter().any(|p| matches(p, &full, name))
    }

    /// A usage error unless every pattern matches one of `tables` (schema, name) of
    /// `whose`: a pattern that selects nothing is a typo or a command word read as a
    /// pattern (`--tables a backup …`), and either would quietly leave tables out.
    pub fn require_each_matches<'t>(
        &self,
        tables: impl Iterator<Item = (&'t str, &'t str)> + Clone,
        whose: &str,
    ) -> Result<()> {
        let unmatched: Vec<&str> = self
            .0
            .iter()
            .filter(|p| {
                !tables
                    .clone()
                    .any(|(schema, name)| matches(p, &format!("{schema}.{name}"), name))
            })
            .map(glob::Pattern::as_str)
            .collect();
        if unmatched.is_empty() {
            return Ok(());
        }
        Err(Error::usage(
            format!("--tables {} matches no table of {whose}", unmatched.join(" ")),
            "every --tables pattern must match a table (schema.table or table, * and ? wildcards); \
             the patterns run up to the next flag, so a command word after them is read as a pattern: \
             put the command first (pgward-backup backup --tables …)",
        ))
    }
}

fn matches(pattern: &glob::Pattern, full: &str, name: &str) -> bool {
    pattern.matches(full) || pattern.matches(name)
}

#[cfg(test)]
mod tests {
    use super::{queue, try_queue, TablePatterns};
    use crate::error::Error;

    #[test]
    fn a_failure_stops_the_queue_and_is_returned() {
        let items: Vec<u64> = (0..1000).collect();
        let result = try_queue(vec![(), ()], &items, |_, &item| {
            if item == 3 {
                Err(Error::usage("item 3 fails", "none"))
            } else {
                Ok(item)
            }
        });
        assert_eq!(result.err().map(|e| e.code()), Some("USAGE"));
        let all = try_queue(vec![()], &items, |_, &item| Ok::<_, Error>(item + 1));
        assert_eq!(all.ok().map(|v| v.len()), Some(1000));
    }

    #[test]
    fn the_queue_runs_every_item_once_in_order_of_hand_out() {
        let items: Vec<u64> = (0..100).collect();
        let results = queue(vec![0u64, 0, 0], &items, |seen, item| {
            *seen += 1;
            item * 2
        })
        .expect("a pool of 3");
        assert_eq!(results, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let none: Vec<u64> =
            queue(Vec::<()>::new(), &[], |_, item: &u64| *item).expect("a pool of 1");
        assert!(none.is_empty());
    }

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
