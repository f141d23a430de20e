//! Splitting the schema archive's post-data (indexes, constraints, triggers) so that a
//! table's own indexes can be built while other tables are still loading, and its
//! pre-data so that the largest table can start loading before the rest of the schema
//! exists ([`split_pre_data`]).
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

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::archive::manifest::ManifestTable;

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
            .filter_map(|e| Some((e.id, *by_name.get(e.table_name()?)?)))
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

impl PostDataPlan {
    /// [`PostDataPlan::remaining_list`] in two `--use-list` files: what `pg_restore
    /// --jobs` runs first, and then, on one session in the archive's order, every
    /// `INDEX ATTACH` entry and whatever depends on it (foreign keys to partitioned
    /// tables). Two attachments under one partitioned index running at once can leave it
    /// invalid for good (PostgreSQL checks the parent's validity in each attaching
    /// transaction, and neither sees the other's attachment: 2 runs in 40 with a
    /// sub-partitioned table on PostgreSQL 15), and a foreign key to it then fails, or no
    /// one notices the invalid key. The second file is empty when the schema has no
    /// partitioned indexes.
    pub fn remaining_lists(&self, done: &[usize]) -> (String, String) {
        let skip: HashSet<usize> = done
            .iter()
            .flat_map(|&t| self.early_of(t))
            .copied()
            .collect();
        let mut serial: HashSet<u32> = self
            .entries
            .iter()
            .filter(|e| e.what.starts_with("INDEX ATTACH "))
            .map(|e| e.id)
            .collect();
        // Dependents, to a fixed point (an entry may come before what it depends on).
        loop {
            let before = serial.len();
            for e in &self.entries {
                if !serial.contains(&e.id) && e.deps.iter().any(|d| serial.contains(d)) {
                    serial.insert(e.id);
                }
            }
            if serial.len() == before {
                break;
            }
        }
        let (mut parallel, mut last) = (String::new(), String::new());
        for (n, e) in self.entries.iter().enumerate() {
            if skip.contains(&n) {
                continue;
            }
            let out = if serial.contains(&e.id) {
                &mut last
            } else {
                &mut parallel
            };
            let _ = writeln!(out, "{}", e.line);
        }
        (parallel, last)
    }
}

impl TocEntry {
    /// `schema name` of a `TABLE` entry (`TABLE public wide postgres`: `public wide`).
    fn table_name(&self) -> Option<&str> {
        let rest = self.what.strip_prefix("TABLE ")?;
        if rest.starts_with("ATTACH ") || rest.starts_with("DATA ") {
            return None;
        }
        Some(rest.rsplit_once(' ')?.0)
    }
}

/// The pre-data of a schema archive in two `--use-list` files, so that the largest table
/// can start loading before the rest of the schema exists.
///
/// Pre-data runs on one session, and on a schema of hundreds of tables it takes a second
/// or more, all of it before the first row loads; meanwhile the load of the largest table,
/// which the whole restore waits on, cannot begin. `head` holds everything that table
/// needs and everything that builds on it; `rest` holds the other tables and whatever
/// depends on them, and runs while the largest table loads.
///
/// `rest` is every entry that depends, directly or not, on another table's `TABLE` entry,
/// except those `head` needs; `head` is all the others: schemas, extensions, types,
/// functions and the like stay in it whatever the dependencies say, so a dependency
/// pg_dump did not record can only make `head` larger. Everything that depends on the
/// loading table (its defaults, comments, grants, views on it, attached partitions) is in
/// `head` with all it depends on, so that nothing in `rest` waits on the lock its load
/// holds. Each file keeps the archive's order.
#[derive(Debug, PartialEq)]
pub struct PreDataSplit {
    /// Entries to restore before the table loads.
    pub head: String,
    /// Entries to restore while it loads.
    pub rest: String,
}

/// Splits the pre-data of `list` (`pg_restore --list --verbose` output) around `table`;
/// `None` when its `TABLE` entry is not found by name or nothing would be left for `rest`.
pub fn split_pre_data(list: &str, table: &ManifestTable) -> Option<PreDataSplit> {
    let entries = parse_list(list);
    let name = format!("{} {}", table.schema, table.name);
    let loading = entries
        .iter()
        .find(|e| e.table_name() == Some(name.as_str()))?
        .id;
    let mut dependents: HashMap<u32, Vec<u32>> = HashMap::new();
    for e in &entries {
        for &d in &e.deps {
            dependents.entry(d).or_default().push(e.id);
        }
    }
    let deps: HashMap<u32, &[u32]> = entries.iter().map(|e| (e.id, e.deps.as_slice())).collect();
    let walk = |start: Vec<u32>, next: &dyn Fn(u32) -> Vec<u32>| -> HashSet<u32> {
        let mut seen: HashSet<u32> = start.iter().copied().collect();
        let mut todo = start;
        while let Some(id) = todo.pop() {
            for n in next(id) {
                if seen.insert(n) {
                    todo.push(n);
                }
            }
        }
        seen
    };
    let dependents_of = |id: u32| dependents.get(&id).cloned().unwrap_or_default();
    let deps_of = |id: u32| deps.get(&id).map_or_else(Vec::new, |d| d.to_vec());
    let needed = walk(
        walk(vec![loading], &dependents_of).into_iter().collect(),
        &deps_of,
    );
    let other_tables: Vec<u32> = entries
        .iter()
        .filter(|e| e.id != loading && e.table_name().is_some())
        .map(|e| e.id)
        .collect();
    let deferred: HashSet<u32> = walk(other_tables, &dependents_of)
        .into_iter()
        .filter(|id| !needed.contains(id))
        .collect();
    if deferred.is_empty() {
        return None;
    }
    let (mut head, mut rest) = (String::new(), String::new());
    for e in &entries {
        let out = if deferred.contains(&e.id) {
            &mut rest
        } else {
            &mut head
        };
        let _ = writeln!(out, "{}", e.line);
    }
    Some(PreDataSplit { head, rest })
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
    use crate::archive::manifest::CopyFormat;

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
    fn index_attachments_and_what_depends_on_them_run_last_on_one_session() {
        let list = "\
3762; 2606 17687 CONSTRAINT app orders orders_pkey postgres
;\tdepends on: 247
3764; 2606 17692 CONSTRAINT app orders_eu orders_eu_pkey postgres
;\tdepends on: 248 3762
3766; 2606 17697 CONSTRAINT app orders_eu_0 orders_eu_0_pkey postgres
;\tdepends on: 3764 249
3772; 2606 17722 CONSTRAINT app notes notes_pkey postgres
;\tdepends on: 253
3783; 0 0 INDEX ATTACH app orders_eu_0_pkey postgres
;\tdepends on: 3766 3764 248 3762 249
3782; 0 0 INDEX ATTACH app orders_eu_pkey postgres
;\tdepends on: 3764 248 3762
3792; 2606 17723 FK CONSTRAINT app notes notes_order_fkey postgres
;\tdepends on: 3782 3783 247 253
3793; 2620 17724 TRIGGER app notes notes_touch postgres
;\tdepends on: 3792
";
        let plan = PostDataPlan::new(list, &[]);
        let (parallel, last) = plan.remaining_lists(&[]);
        assert_eq!(ids(&parallel), vec![3762, 3764, 3766, 3772]);
        assert_eq!(
            ids(&last),
            vec![3783, 3782, 3792, 3793],
            "the attachments, the foreign key on them and what depends on it, in order"
        );
        let (parallel, last) = PostDataPlan::new(LIST, &[]).remaining_lists(&[]);
        assert_eq!(
            parallel,
            PostDataPlan::new(LIST, &[]).remaining_list(&[]),
            "no partitioned index: one parallel pass, as before"
        );
        assert!(last.is_empty());
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

    /// Shaped like `pg_restore --list --verbose` of a real archive: `wide` is loaded first.
    const SCHEMA: &str = "\
;
; Archive created at 2026-11-22 11:11:15 UTC
;
5470; 0 0 ENCODING - ENCODING 
5472; 0 0 SEARCHPATH - SEARCHPATH 
6; 2615 2200 SCHEMA - app postgres
7; 3079 16400 EXTENSION - citext 
8; 0 0 COMMENT - EXTENSION citext 
;\tdepends on: 7
9; 1247 16500 TYPE app mood postgres
;\tdepends on: 6
10; 1255 16510 FUNCTION app touch() postgres
216; 1259 16391 TABLE app accounts postgres
;\tdepends on: 6 9
219; 1259 16408 TABLE app wide postgres
;\tdepends on: 6
220; 1259 16420 TABLE app other postgres
;\tdepends on: 6
218; 1259 16407 SEQUENCE app wide_id_seq postgres
;\tdepends on: 219
5474; 0 0 SEQUENCE OWNED BY app wide_id_seq postgres
;\tdepends on: 218
4413; 2604 16411 DEFAULT app wide id postgres
;\tdepends on: 219 218 219
221; 1259 16430 SEQUENCE app accounts_id_seq postgres
;\tdepends on: 216
4414; 2604 16431 DEFAULT app accounts id postgres
;\tdepends on: 216 221
5480; 0 0 COMMENT app TABLE wide postgres
;\tdepends on: 219
5481; 0 0 COMMENT app TABLE other postgres
;\tdepends on: 220
222; 1259 16440 VIEW app wide_recent postgres
;\tdepends on: 219
5490; 0 0 ACL app TABLE wide postgres
;\tdepends on: 219
223; 1259 16460 TABLE ATTACH app accounts_part postgres
;\tdepends on: 216
4724; 2606 16417 CONSTRAINT app wide wide_pkey postgres
;\tdepends on: 219
4730; 2606 16450 FK CONSTRAINT app other other_wide_fkey postgres
;\tdepends on: 220 219 4724
";

    fn ids(list: &str) -> Vec<u32> {
        parse_list(list).iter().map(|e| e.id).collect()
    }

    #[test]
    fn pre_data_is_split_so_the_rest_never_touches_the_loading_table() {
        let wide = ManifestTable {
            schema: "app".into(),
            ..table("wide")
        };
        let split = split_pre_data(SCHEMA, &wide).expect("wide is in the archive");
        // Only what hangs off the other tables waits: accounts with its sequence, default
        // and attachment, and the comment on other. `other` itself is in the head, as its
        // foreign key to wide depends on it (post-data, but the closure keeps it whole).
        assert_eq!(ids(&split.rest), vec![216, 221, 4414, 5481, 223]);
        assert_eq!(
            ids(&split.head),
            vec![5470, 5472, 6, 7, 8, 9, 10, 219, 220, 218, 5474, 4413, 5480, 222, 5490, 4724, 4730],
            "settings, schema, extension, types and functions, wide with everything on it, in archive order"
        );
        // Each entry once, nothing lost.
        let mut all = ids(&split.head);
        all.extend(ids(&split.rest));
        all.sort_unstable();
        let mut expected = ids(SCHEMA);
        expected.sort_unstable();
        assert_eq!(all, expected);
    }

    #[test]
    fn pre_data_stays_whole_when_there_is_nothing_to_defer_or_no_such_table() {
        let lone = "5470; 0 0 ENCODING - ENCODING \n219; 1259 16408 TABLE public wide postgres\n218; 1259 16407 SEQUENCE public wide_id_seq postgres\n;\tdepends on: 219\n";
        assert_eq!(split_pre_data(lone, &table("wide")), None, "one table");
        assert_eq!(
            split_pre_data(SCHEMA, &table("wide")),
            None,
            "public.wide is not app.wide"
        );
        let t = "9; 1259 1 TABLE public t the owner\n10; 1259 2 TABLE public u x\n";
        assert_eq!(
            split_pre_data(t, &table("t")),
            None,
            "an owner with a space"
        );
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
