//! Databases pgward creates for its own work: the database a restore loads a new target
//! under until it is complete, and `verify --deep`'s scratch database. Each carries a
//! comment that marks it as pgward's and says what it is, so that one a killed run left
//! behind is recognised (marked, no session on it) and dropped by the next run, while a
//! database pgward did not make is never touched.

use pgward_shared::error::{Error, Result};
use pgward_shared::manifest::BackupManifest;
use pgward_shared::sql::{quote_ident, quote_literal};
use serde::Serialize;

use crate::load;

/// The start of the comment of every database pgward creates for its own work. Kept as
/// it is across versions, so that a newer pgward recognises what an older one left.
const MARK: &str = "pgward work in progress:";

/// A database whose name matched, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its name.
    pub name: String,
    /// Whether it carries pgward's mark.
    pub marked: bool,
    /// Sessions connected to it.
    pub sessions: i64,
}

impl Found {
    /// Whether it is what an interrupted run left: pgward's, and nobody is on it.
    pub fn is_leftover(&self) -> bool {
        self.marked && self.sessions == 0
    }
}

/// Creates database `name` with the backup's encoding and locale (see
/// [`load::create_database`]) and marks it as pgward's work: `what` says what it is for
/// and what becomes of it if the run dies.
pub fn create(
    admin: &mut postgres::Client,
    name: &str,
    manifest: &BackupManifest,
    what: &str,
) -> Result<()> {
    load::create_database(admin, name, manifest)?;
    let comment = format!(
        "{MARK} {what} (started {})",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(name),
            quote_literal(&comment)
        ))
        .map_err(|e| Error::query(format!("marking {name} as pgward's work in progress"), &e))
}

/// Databases whose name is `name`, or starts with it when `prefix` is true.
pub fn find(admin: &mut postgres::Client, name: &str, prefix: bool) -> Result<Vec<Found>> {
    let rows = admin
        .query(
            "SELECT datname::text, coalesce(starts_with(shobj_description(oid, 'pg_database'), $3), false), \
                    (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) \
             FROM pg_database d \
             WHERE datname = $1 OR ($2 AND starts_with(datname, $1)) ORDER BY datname",
            &[&name, &prefix, &MARK],
        )
        .map_err(|e| Error::query("looking for databases an interrupted run left", &e))?;
    Ok(rows
        .iter()
        .map(|r| Found {
            name: r.get(0),
            marked: r.get(1),
            sessions: r.get(2),
        })
        .collect())
}

/// Drops leftover `name` (no `FORCE`: a session that appeared since it was found makes
/// this fail rather than end someone's work).
pub fn drop_leftover(admin: &mut postgres::Client, found: &Found) -> Result<()> {
    pgward_shared::log::info(&format!(
        "dropping {}, which an interrupted run left",
        found.name
    ));
    admin
        .batch_execute(&format!("DROP DATABASE {}", quote_ident(&found.name)))
        .map_err(|e| Error::query(format!("dropping {}", found.name), &e))
}

/// Gives the complete database `work` its real name `name`, unmarked. The two go in one
/// transaction: a database never loses its mark without its new name.
pub fn publish(admin: &mut postgres::Client, work: &str, name: &str) -> Result<()> {
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {0} IS NULL; ALTER DATABASE {0} RENAME TO {1}",
            quote_ident(work),
            quote_ident(name)
        ))
        .map_err(|e| Error::query(format!("renaming the restored {work} to {name}"), &e))
}

/// A database pgward created for its work, as `pgward-report health` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// What it is for, from its mark.
    pub what: String,
    /// `pg_database_size`; none without the CONNECT privilege on it.
    pub bytes: Option<i64>,
    /// Sessions connected to it: none means the run that made it is gone.
    pub sessions: i64,
}

/// Every database on the server that carries pgward's mark, by name.
pub fn list(admin: &mut postgres::Client) -> Result<Vec<Listed>> {
    let rows = admin
        .query(
            "SELECT datname::text, substr(shobj_description(oid, 'pg_database'), length($1) + 2), \
                    CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END, \
                    (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) \
             FROM pg_database d \
             WHERE starts_with(shobj_description(oid, 'pg_database'), $1) ORDER BY datname",
            &[&MARK],
        )
        .map_err(|e| Error::query("listing the databases pgward created for its work", &e))?;
    Ok(rows
        .iter()
        .map(|r| Listed {
            name: r.get(0),
            what: r.get(1),
            bytes: r.get(2),
            sessions: r.get(3),
        })
        .collect())
}
