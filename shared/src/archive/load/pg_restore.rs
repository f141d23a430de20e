//! The pg_restore runs of a load: the command builders, the archive's table of contents,
//! and the two post-data passes ([`PostData`]) that `post_data.rs` plans.

use std::process::Stdio;

use crate::archive::load::post_data::PostDataPlan;
use crate::archive::load::staging;
use crate::archive::manifest::ManifestTable;
use crate::connect::dburl::ConnectionSettings;
use crate::connect::libpq::libpq_dbname_arg;
use crate::connect::Session;
use crate::error::{Error, Result};
use crate::log;
use crate::pgtools;

/// Post-data of the schema archive, run in two passes (see [`crate::archive::load::post_data`]).
pub(super) struct PostData<'a> {
    pub(super) plan: PostDataPlan,
    pub(super) target: &'a ConnectionSettings,
    pub(super) archive: &'a std::path::Path,
    pub(super) staging: &'a std::path::Path,
    pub(super) no_owner: bool,
}

impl PostData<'_> {
    /// While other tables still load: the indexes and keys of the loaded `tables` (by
    /// index into `all`), then ANALYZE of them, on `session`, in batches of about an
    /// eighth of their rows, largest tables first. Before each batch it asks
    /// `loading_over`: once every table is loaded, the rest is left to the final pass,
    /// which runs with all `--jobs`, so the last load never waits long for this one
    /// session. Returns the tables it did.
    pub(super) fn run_early(
        &self,
        session: &mut Session,
        all: &[&ManifestTable],
        tables: &[usize],
        loading_over: impl Fn() -> bool,
    ) -> Result<Vec<usize>> {
        let items: usize = tables.iter().map(|&i| self.plan.early_count(i)).sum();
        log::info(&format!(
            "building {items} index(es) and key(s) of {} loaded table(s) while the rest loads",
            tables.len()
        ));
        let rows: Vec<(usize, u64)> = tables.iter().map(|&i| (i, all[i].rows)).collect();
        let mut built = Vec::new();
        for (n, batch) in early_batches(&rows).into_iter().enumerate() {
            if loading_over() {
                break;
            }
            if batch.iter().any(|&i| self.plan.early_count(i) > 0) {
                // A list of its own per batch: lists are created new, never overwritten.
                let name = format!("early-{n}.list");
                let list = self.write_list(&name, &self.plan.early_list(&batch))?;
                run(pg_restore(
                    self.target,
                    self.archive,
                    "post-data",
                    Workers::Alone,
                    self.no_owner,
                    Some(&list),
                ))?;
            }
            let names: Vec<String> = batch.iter().map(|&i| all[i].qualified()).collect();
            session
                .client
                .batch_execute(&format!("ANALYZE {}", names.join(", ")))
                .map_err(|e| Error::query("running ANALYZE", &e))?;
            built.extend(batch);
        }
        Ok(built)
    }

    /// After all data: every post-data entry the early pass (over `early`) did not run;
    /// index attachments of partitioned indexes, and what depends on them, last on one
    /// session.
    pub(super) fn run_rest(&self, early: &[usize], jobs: usize) -> Result<()> {
        let (parallel, attachments) = self.plan.remaining_lists(early);
        let list = self.write_list("rest.list", &parallel)?;
        run(pg_restore(
            self.target,
            self.archive,
            "post-data",
            Workers::Jobs(jobs),
            self.no_owner,
            Some(&list),
        ))?;
        if attachments.is_empty() {
            return Ok(());
        }
        // One session: see `PostDataPlan::remaining_lists`.
        let list = self.write_list("attachments.list", &attachments)?;
        run(pg_restore(
            self.target,
            self.archive,
            "post-data",
            Workers::Jobs(1),
            self.no_owner,
            Some(&list),
        ))
    }

    fn write_list(&self, name: &str, text: &str) -> Result<std::path::PathBuf> {
        staging::write_new(self.staging, name, text.as_bytes())
    }
}

/// `tables` (index, rows) in batches for the early post-data pass: largest first, each
/// batch closed once it holds an eighth of all their rows (so at most about eight
/// batches, and a table of more than an eighth is a batch of its own).
fn early_batches(tables: &[(usize, u64)]) -> Vec<Vec<usize>> {
    let mut by_rows = tables.to_vec();
    by_rows.sort_by_key(|&(i, rows)| (std::cmp::Reverse(rows), i));
    let eighth = (by_rows.iter().map(|&(_, rows)| rows).sum::<u64>() / 8).max(1);
    let mut batches = Vec::new();
    let (mut batch, mut rows) = (Vec::new(), 0);
    for (i, r) in by_rows {
        batch.push(i);
        rows += r;
        if rows >= eighth {
            batches.push(std::mem::take(&mut batch));
            rows = 0;
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// How many server processes a pg_restore run may keep busy.
#[derive(Debug, Clone, Copy)]
pub(super) enum Workers {
    /// `--jobs` sessions, each free to use the server's parallel workers.
    Jobs(usize),
    /// One session and no parallel workers (`max_parallel_maintenance_workers = 0`): the
    /// early post-data pass runs while other sessions still load, and an index build that
    /// started two more workers there would take CPU from the load the restore waits on.
    Alone,
}

/// Runs a [`pg_restore`] command to its end.
pub(super) fn run(mut pg_restore: std::process::Command) -> Result<()> {
    let out = pg_restore
        .output()
        .map_err(|e| pgtools::not_started("pg_restore", e))?;
    pgtools::check_status("pg_restore", out.status, &out.stderr)
}

/// The pg_restore command that restores `section` of archive `file` into `target`.
pub(super) fn pg_restore(
    target: &ConnectionSettings,
    file: &std::path::Path,
    section: &str,
    workers: Workers,
    no_owner: bool,
    use_list: Option<&std::path::Path>,
) -> std::process::Command {
    let mut cmd = pg_restore_command(target, no_owner);
    match workers {
        Workers::Jobs(jobs) if jobs > 1 => {
            cmd.arg(format!("--jobs={jobs}"));
        }
        Workers::Jobs(_) => {}
        // `pgtools::command` clears the caller's PGOPTIONS; nothing else is set there.
        Workers::Alone => {
            cmd.env("PGOPTIONS", "-c max_parallel_maintenance_workers=0");
        }
    }
    cmd.arg(format!("--section={section}"));
    if let Some(list) = use_list {
        cmd.arg("--use-list").arg(list);
    }
    cmd.arg(file);
    cmd
}

/// pg_restore into `target`, stopping at the first error, its output discarded and its
/// messages kept; without ownership and privileges when `no_owner`. The archive and what
/// to restore of it are the caller's to add.
pub(crate) fn pg_restore_command(
    target: &ConnectionSettings,
    no_owner: bool,
) -> std::process::Command {
    let mut cmd = pgtools::command("pg_restore", target);
    cmd.arg("--exit-on-error")
        .arg("--no-password")
        .arg(libpq_dbname_arg(&target.dbname))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if no_owner {
        cmd.args(["--no-owner", "--no-privileges"]);
    }
    cmd
}

/// The archive's table of contents with each entry's dependencies
/// (`pg_restore --list --verbose`).
pub(super) fn pg_restore_list(
    target: &ConnectionSettings,
    file: &std::path::Path,
) -> Result<String> {
    let out = pgtools::command("pg_restore", target)
        .args(["--list", "--verbose"])
        .arg(file)
        .output()
        .map_err(|e| pgtools::not_started("pg_restore", e))?;
    pgtools::check_status("pg_restore", out.status, &out.stderr)?;
    String::from_utf8(out.stdout).map_err(|_| Error::ExternalTool {
        tool: "pg_restore".into(),
        reason: "its --list output is not UTF-8".into(),
        hint: format!(
            "check the pg_restore on PATH, or set {}",
            pgtools::BINDIR_ENV
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::{early_batches, pg_restore, Workers};

    use crate::connect::dburl::ConnectionSettings;

    #[test]
    fn the_early_pass_keeps_the_servers_parallel_workers_off_the_loading_cpus() {
        let target = ConnectionSettings::from_url("postgresql://u@localhost:5432/db").unwrap();
        let file = std::path::Path::new("schema.dump");
        let pgoptions = |cmd: &std::process::Command| {
            cmd.get_envs()
                .find(|(k, _)| *k == "PGOPTIONS")
                .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        };
        let args = |cmd: &std::process::Command| -> Vec<String> {
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let early = pg_restore(&target, file, "post-data", Workers::Alone, false, None);
        assert_eq!(
            pgoptions(&early).as_deref(),
            Some("-c max_parallel_maintenance_workers=0"),
            "set by pgward; the caller's PGOPTIONS is cleared"
        );
        assert!(!args(&early).iter().any(|a| a.starts_with("--jobs")));
        let last = pg_restore(&target, file, "post-data", Workers::Jobs(2), false, None);
        assert_eq!(pgoptions(&last), None, "cleared: the server's defaults");
        assert!(args(&last).contains(&"--jobs=2".to_string()));
        let pre = pg_restore(&target, file, "pre-data", Workers::Jobs(1), false, None);
        assert!(!args(&pre).iter().any(|a| a.starts_with("--jobs")));
    }

    #[test]
    fn early_batches_go_largest_first_in_eighths() {
        // pgbench_accounts-like, three mid tables, and many small ones.
        let mut tables = vec![(0, 5_000_000), (1, 600_000), (2, 500_000), (3, 400_000)];
        tables.extend((4..304).map(|i| (i, 200)));
        let batches = early_batches(&tables);
        assert_eq!(batches[0], vec![0], "the largest table alone, first");
        assert_eq!(batches[1], vec![1, 2], "closed at an eighth of all rows");
        assert_eq!(batches.len(), 3, "the rest together: {batches:?}");
        assert_eq!(batches[2][0], 3);
        assert_eq!(batches[2].len(), 301);
        assert_eq!(early_batches(&[(7, 0)]), vec![vec![7]], "empty tables too");
        assert!(early_batches(&[]).is_empty());
    }
}
