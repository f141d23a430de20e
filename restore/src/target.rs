//! The database a restore writes into: does it exist, is it empty, and replacing it
//! (ending its sessions, dropping, recreating) through a session on another database.

use pgward_shared::connect::{connect, Session};
use pgward_shared::dburl::ConnectionSettings;
use pgward_shared::error::{Error, Result};

/// Application name of restore sessions.
pub const APP: &str = "pgward-restore";

/// Databases tried, in order, for the administrative session (never the target itself,
/// which may have to be dropped).
const ADMIN_DATABASES: &[&str] = &["postgres", "template1"];

/// A session on the same server, on a database other than `target`.
pub fn admin_session(db: &ConnectionSettings, target: &str) -> Result<Session> {
    let mut last = None;
    for name in std::iter::once(db.dbname.as_str())
        .chain(ADMIN_DATABASES.iter().copied())
        .filter(|n| *n != target)
    {
        match connect(&db.with_database(name), APP) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(Error::NoDatabaseUrl))
}

/// Whether database `name` exists.
pub fn exists(admin: &mut postgres::Client, name: &str) -> Result<bool> {
    Ok(admin
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .map_err(|e| Error::query("looking up the target database", &e))?
        .get(0))
}

/// How many objects of its own the database holds (tables, views, sequences, types,
/// functions outside the system schemas and not owned by extensions).
pub fn user_objects(target: &ConnectionSettings) -> Result<i64> {
    let mut s = connect(target, APP)?;
    let row = s
        .client
        .query_one(
            "WITH ext AS (SELECT objid FROM pg_depend WHERE deptype = 'e'), \
                  ns AS (SELECT oid FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') \
                         AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%') \
             SELECT (SELECT count(*) FROM pg_class WHERE relnamespace IN (SELECT oid FROM ns) \
                        AND relkind IN ('r','p','v','m','S','f') AND oid NOT IN (SELECT objid FROM ext)) \
                  + (SELECT count(*) FROM pg_proc WHERE pronamespace IN (SELECT oid FROM ns) AND oid NOT IN (SELECT objid FROM ext)) \
                  + (SELECT count(*) FROM pg_type WHERE typnamespace IN (SELECT oid FROM ns) AND typtype IN ('e','d','r','m') \
                        AND oid NOT IN (SELECT objid FROM ext))",
            &[],
        )
        .map_err(|e| Error::query("checking whether the target is empty", &e))?;
    Ok(row.get(0))
}

/// Ends every other session on `name` (the restore owns the database from here on).
pub fn terminate_sessions(admin: &mut postgres::Client, name: &str) -> Result<i64> {
    Ok(admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .map_err(|e| Error::query("ending sessions on the target", &e))?
        .get(0))
}
