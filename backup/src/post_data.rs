//! Splitting the schema archive's post-data (indexes, constraints, triggers) so that a
//! table's own indexes can be built while other tables are still loading.
//!
//! A restore is otherwise idle at its tail: one session loads the largest table while the
//! others have nothing left to do, and every index waits for the last row. pg_restore
//! overlaps the two from its dependency graph; pgward reads the same graph from
//! `pg_restore --list --verbose`, which prints each entry's dependencies on the line
//! after it (after a tab):
//!
//! ```text
//! 4722; 1259 16419 INDEX public wide_created postgres
//! ;    depends on: 219
//! ```
//!
//! An `INDEX` or `CONSTRAINT` (primary key, unique, exclusion) entry whose only dependency
//! is the `TABLE` entry of a table we load can run as soon as that table is loaded. Every
//! other post-data entry (foreign keys, triggers, rules, partition index attachments,
//! indexes on expressions that depend on functions) runs in the final pass, after all data,
//! as before. Matching is by the names pg_restore prints; a name it cannot match (a schema
//! or owner containing a space) only sends that table's entries to the final pass.

use std::collections::HashMap;
use std::fmt::Write as _;

use pgward_shared::manifest::ManifestTable;

/// One entry of `pg_restore --list` output.
#[derive(Debug, Clone, PartialEq)]
struct TocEntry {
    /// The dump id that starts the line.
    id: u32,
    /// The whole line, as `--use-list` reads it back.
    line: String,
    /// `DESC NAMESPACE TAG OWNER`: what follows the two catalog oids.
    what: String,
    /// Dump ids it depends on.
    deps: Vec<u32>,
}

/// The post-data entries of a schema archive, grouped by the loaded table they build on.
#[derive(Debug, Default)]
pub struct PostDataPlan {
    entries: Vec<TocEntry>,
    /// For each table index given to [`PostDataPlan::new`], its early entries (indexes
    /// into `entries`).
    early: Vec<Vec<usize>>,
}

impl PostDataPlan {
    /// Plans from `pg_restore --list --verbose` output for `tables` (those whose data the
    /// restore loads).
    pub fn new(list: &str, tables: &[&ManifestTable]) -> PostDataPlan {
        let entries = parse_list(list);
        let by_name: HashMap<String, usize> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("{} {}", t.schema, t.name), i))
            .collect();
        let table_of_entry: HashMap<u32, usize> = entries
            .iter()
            .filter_map(|e| {
                let rest = e.what.strip_prefix("TABLE ")?;
                let (name, _owner) = rest.rsplit_once(' ')?;
                Some((e.id, *by_name.get(name)?))
            })
            .collect();
        let mut early = vec![Vec::new(); tables.len()];
        for (n, e) in entries.iter().enumerate() {
            let kind_ok = e.what.starts_with("INDEX ") && !e.what.starts_with("INDEX ATTACH ")
                || e.what.starts_with("CONSTRAINT ");
            if let ([dep], true) = (e.deps.as_slice(), kind_ok) {
                if let Some(&table) = table_of_entry.get(dep) {
                    early[table].push(n);
                }
            }
        }
        PostDataPlan { entries, early }
    }

    /// The early entries of table `table` (indexes into `entries`).
    fn early_of(&self, table: usize) -> &[usize] {
        self.early.get(table).map_or(&[], Vec::as_slice)
    }

    /// How many entries of table `table` can run once it is loaded.
    pub fn early_count(&self, table: usize) -> usize {
        self.early_of(table).len()
    }

    /// A `--use-list` file naming the early entries of `tables`.
    pub fn early_list(&self, tables: &[usize]) -> String {
        let mut out = String::new();
        for &t in tables {
            for &n in self.early_of(t) {
                let _ = writeln!(out, "{}", self.entries[n].line);
            }
        }
        out
    }

    /// A `--use-list` file naming every entry except the early entries of `done` (already
    /// built); pg_restore's `--section` picks the post-data ones.
    pub fn remaining_list(&self, done: &[usize]) -> String {
        let skip: std::collections::HashSet<usize> = done
            .iter()
            .flat_map(|&t| self.early_of(t))
            .copied()
            .collect();
        let mut out = String::new();
        for (n, e) in self.entries.iter().enumerate() {
            if !skip.contains(&n) {
                let _ = writeln!(out, "{}", e.line);
            }
        }
        out
    }
}

/// Entries of `pg_restore --list --verbose` output; comment lines other than an entry's
/// `depends on:` are skipped.
fn parse_list(list: &str) -> Vec<TocEntry> {
    let mut entries: Vec<TocEntry> = Vec::new();
    for line in list.lines() {
        if let Some(deps) = line.strip_prefix(';').map(str::trim_start) {
            if let (Some(ids), Some(last)) = (deps.strip_prefix("depends on:"), entries.last_mut())
            {
                last.deps = ids
                    .split_whitespace()
                    .filter_map(|d| d.parse().ok())
                    .collect();
            }
            continue;
        }
        let Some((id, rest)) = line.split_once("; ") else {
            continue;
        };
        let Ok(id) = id.trim().parse() else {
            continue;
        };
        // "1259 16419 INDEX public wide_created postgres": skip the two catalog oids.
        let mut parts = rest.splitn(3, ' ');
        let (Some(_), Some(_), Some(what)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        entries.push(TocEntry {
            id,
            line: line.to_string(),
            what: what.to_string(),
            deps: Vec::new(),
        });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgward_shared::manifest::CopyFormat;

    const LIST: &str = "\
;
; Archive created at 2026-11-22 11:11:15 UTC
;
5470; 0 0 ENCODING - ENCODING 
216; 1259 16391 TABLE public accounts postgres
219; 1259 16408 TABLE public wide postgres
220; 1259 16420 TABLE public other postgres
4719; 2606 16406 CONSTRAINT public accounts accounts_pkey postgres
;\tdepends on: 216
4722; 1259 16419 INDEX public wide_created postgres
;\tdepends on: 219
4723; 1259 16421 INDEX public wide_lower postgres
;\tdepends on: 219 301
4724; 2606 16417 CONSTRAINT public wide wide_pkey postgres
;\tdepends on: 219
4730; 2606 16430 FK CONSTRAINT public wide wide_account_fkey postgres
;\tdepends on: 219 216 4719
4731; 1259 16431 INDEX public other_name postgres
;\tdepends on: 220
4740; 2620 16440 TRIGGER public wide wide_touch postgres
;\tdepends on: 219 302
";

    fn table(name: &str) -> ManifestTable {
        ManifestTable {
            schema: "public".into(),
            name: name.into(),
            columns: Vec::new(),
            copy_format: CopyFormat::Text,
            rows: 0,
            chunks: Vec::new(),
        }
    }

    #[test]
    fn a_tables_own_indexes_and_keys_run_early_the_rest_last() {
        let (accounts, wide) = (table("accounts"), table("wide"));
        // `other` is not loaded (a --tables restore): its index waits for the final pass.
        let plan = PostDataPlan::new(LIST, &[&accounts, &wide]);
        assert_eq!(plan.early_count(0), 1);
        assert_eq!(
            plan.early_count(1),
            2,
            "wide_lower depends on a function too"
        );
        assert_eq!(
            plan.early_list(&[1]),
            "4722; 1259 16419 INDEX public wide_created postgres\n\
             4724; 2606 16417 CONSTRAINT public wide wide_pkey postgres\n"
        );
        let rest = plan.remaining_list(&[1]);
        assert!(!rest.contains("wide_created") && !rest.contains("wide_pkey"));
        for kept in [
            "accounts_pkey",
            "wide_lower",
            "wide_account_fkey",
            "other_name",
            "wide_touch",
            "TABLE public wide",
            "ENCODING",
        ] {
            assert!(rest.contains(kept), "{kept} must stay in the final pass");
        }
        assert_eq!(plan.remaining_list(&[]).lines().count(), 11, "every entry");
    }

    #[test]
    fn unmatched_names_only_lose_the_overlap() {
        let odd = ManifestTable {
            schema: "my schema".into(),
            ..table("t")
        };
        let list = "9; 1259 1 TABLE my schema t postgres\n10; 1259 2 INDEX my schema t_i postgres\n;\tdepends on: 9\n";
        // "my schema t" still matches; an owner with a space would not, and that is fine.
        assert_eq!(PostDataPlan::new(list, &[&odd]).early_count(0), 1);
        let list =
            "9; 1259 1 TABLE public t the owner\n10; 1259 2 INDEX public t_i x\n;\tdepends on: 9\n";
        assert_eq!(PostDataPlan::new(list, &[&table("t")]).early_count(0), 0);
    }
}
