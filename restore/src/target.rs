//! The database a restore writes into: does it exist, is it empty, and replacing it
//! (ending its sessions, dropping), and the database a new target is loaded under until it
//! is complete, through a session on another database.

use pgward_shared::archive::manifest::{BackupFormat, BackupManifest};
use pgward_shared::connect::dburl::ConnectionSettings;
use pgward_shared::connect::{connect, Session};
use pgward_shared::error::{Error, Result};
use pgward_shared::pgtools::{self, ClientVersion};
use pgward_shared::workdb;

/// Application name of restore sessions.
pub const APP: &str = "pgward-restore";

/// Databases tried, in order, for the administrative session (never the target itself,
/// which may have to be dropped).
const ADMIN_DATABASES: &[&str] = &["postgres", "template1"];

/// The major that added `transaction_timeout`, which pg_dump and pg_restore of it and later
/// set whatever the server.
const TRANSACTION_TIMEOUT_MAJOR: u32 = 17;

/// Refuses a target server of an older major than the backup's source (a dump loads only
/// into the same major or a newer one: that is how a backup upgrades a database), and
/// picks the client program the load runs (pg_restore, or psql for a --backup-format sql
/// backup): it must be of the newer of the two majors, since it reads what the source's
/// pg_dump wrote and writes into the target.
pub fn check_server_versions(
    id: &str,
    manifest: &BackupManifest,
    target_version_num: i32,
) -> Result<()> {
    let target_major = (target_version_num / 10_000).max(0) as u32;
    let major = |text: &str| ClientVersion::parse(text).map_or(0, |v| v.major);
    let backup_major = major(&manifest.server_version);
    let pg_dump_major = major(&manifest.pg_dump_version);
    if target_major < backup_major {
        return Err(Error::TargetServerOlder {
            id: id.to_string(),
            backup_major,
            pg_dump_major: None,
            target_major,
        });
    }
    // pg_dump and pg_restore 17 and later begin with `SET transaction_timeout = 0`.
    if pg_dump_major >= TRANSACTION_TIMEOUT_MAJOR && target_major < TRANSACTION_TIMEOUT_MAJOR {
        return Err(Error::TargetServerOlder {
            id: id.to_string(),
            backup_major: TRANSACTION_TIMEOUT_MAJOR,
            pg_dump_major: Some(pg_dump_major),
            target_major,
        });
    }
    let tool = match manifest.format {
        BackupFormat::Sql => "psql",
        BackupFormat::Directory => "pg_restore",
    };
    // Older tools cannot read what a newer pg_dump wrote, nor load a newer server.
    let needed = target_major.max(pg_dump_major);
    pgtools::check_fits_server(tool, (needed * 10_000) as i32)?;
    Ok(())
}

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
/// functions outside the system schemas and not owned by extensions, and large objects:
/// a database holding nothing else still holds data).
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
                        AND oid NOT IN (SELECT objid FROM ext)) \
                  + (SELECT count(*) FROM pg_largeobject_metadata)",
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

/// The name a restore loads under begins with this.
const PARTIAL_PREFIX: &str = "pgward_restoring_";
/// PostgreSQL's longest identifier, in bytes (NAMEDATALEN - 1).
const MAX_NAME_BYTES: usize = 63;

/// The name a new database is loaded under until it is complete, never the target's own:
/// no application or person can take a half-loaded database for the restored one, and a
/// restore killed midway leaves a database whose name says what it is.
pub fn partial_name(target: &str) -> String {
    let mut name = String::from(PARTIAL_PREFIX);
    for c in target.chars() {
        if name.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        name.push(c);
    }
    name
}

/// Makes sure a restore into `target` can load under [`partial_name`], before anything is
/// touched: a database of that name that an interrupted restore left (marked, no session)
/// is dropped (not under `dry_run`); any other is refused. Returns the name.
pub fn prepare_partial(
    admin: &mut postgres::Client,
    target: &str,
    dry_run: bool,
) -> Result<String> {
    let name = partial_name(target);
    for found in workdb::find(admin, &name, false)? {
        if !found.marked {
            return Err(Error::usage(
                format!("a database named {name} exists, and pgward-restore did not create it"),
                format!(
                    "a restore into {target} loads into {name} first: rename or drop that database"
                ),
            ));
        }
        if !found.is_leftover() {
            return Err(Error::usage(
                format!(
                    "{name}, where a restore into {target} loads, has {} session(s): another restore into {target} is running",
                    found.sessions
                ),
                "wait for it to finish (or end it), then run this restore again",
            ));
        }
        if !dry_run {
            workdb::drop_leftover(admin, &found)?;
        }
    }
    Ok(name)
}

/// Creates `name` (from [`prepare_partial`]), where a restore into `target` loads backup
/// `id`, marked as pgward's work.
pub fn create_partial(
    admin: &mut postgres::Client,
    name: &str,
    target: &str,
    id: &str,
    manifest: &BackupManifest,
) -> Result<()> {
    workdb::create(
        admin,
        name,
        manifest,
        &format!("restore of backup {id} into {target}, renamed to {target} once complete; with no session on it, that restore was interrupted, and the next restore into {target} drops it"),
    )
}
