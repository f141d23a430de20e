//! Databases pgward creates for its own work: the database a restore loads a new target
//! under until it is complete, and `verify --deep`'s scratch database. Each carries a
//! comment that marks it as pgward's, says what it is, and names the session that created
//! it, so that one a killed run left behind is recognised (marked, no session on it, its
//! creating session gone) and dropped by the next run, while a database pgward did not
//! make is never touched. The creating session matters: a run's database has no session
//! between its creation and its loader's first connection, and another run's cleanup must
//! not take it for a leftover then.

use crate::archive::manifest::BackupManifest;
use crate::error::{Error, Result};
use crate::sql::{quote_ident, quote_literal};
use serde::Serialize;

use crate::archive::load;

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
    /// Whether the session that created it (named in its mark) is still connected: the
    /// run that made it is alive.
    pub creator_running: bool,
}

impl Found {
    /// Whether it is what an interrupted run left: pgward's, nobody on it, and the session
    /// that created it gone.
    pub fn is_leftover(&self) -> bool {
        self.marked && self.sessions == 0 && !self.creator_running
    }
}

/// Whether the session named by a mark's `creating session PID:START_US` is connected,
/// given the mark as `$N` of a query (false for marks without it, from older versions).
fn creator_running_sql(mark: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_stat_activity a \
                 WHERE a.pid::text = (regexp_match({mark}, 'creating session ([0-9]+):([0-9]+)'))[1] \
                   AND floor(extract(epoch FROM a.backend_start) * 1000000)::bigint::text \
                       = (regexp_match({mark}, 'creating session ([0-9]+):([0-9]+)'))[2])"
    )
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
    // The session creating it, which stays connected until the run is done with it.
    let creator = admin
        .query_one(
            "SELECT pg_backend_pid(), floor(extract(epoch FROM backend_start) * 1000000)::bigint \
             FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[],
        )
        .map_err(|e| Error::query("reading this session's id", &e))?;
    let (pid, start): (i32, i64) = (creator.get(0), creator.get(1));
    load::create_database(admin, name, manifest)?;
    let comment = format!(
        "{MARK} {what} (started {}; creating session {pid}:{start})",
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
            &format!(
                "SELECT datname::text, coalesce(starts_with(shobj_description(oid, 'pg_database'), $3), false), \
                        (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname), {} \
                 FROM pg_database d \
                 WHERE datname = $1 OR ($2 AND starts_with(datname, $1)) ORDER BY datname",
                creator_running_sql("shobj_description(d.oid, 'pg_database')")
            ),
            &[&name, &prefix, &MARK],
        )
        .map_err(|e| Error::query("looking for databases an interrupted run left", &e))?;
    Ok(rows
        .iter()
        .map(|r| Found {
            name: r.get(0),
            marked: r.get(1),
            sessions: r.get(2),
            creator_running: r.get(3),
        })
        .collect())
}

/// Drops leftover `name` (no `FORCE`: a session that appeared since it was found makes
/// this fail rather than end someone's work).
pub fn drop_leftover(admin: &mut postgres::Client, found: &Found) -> Result<()> {
    crate::log::info(&format!(
        "dropping {}, which an interrupted run left",
        found.name
    ));
    admin
        .batch_execute(&format!("DROP DATABASE {}", quote_ident(&found.name)))
        .map_err(|e| Error::query(format!("dropping {}", found.name), &e))
}

/// Gives the complete database `work` its real name `name`, unmarked: the backup's
/// database comment (`comment`) replaces pgward's mark. The two go in one transaction: a
/// database never loses its mark without its new name.
pub fn publish(
    admin: &mut postgres::Client,
    work: &str,
    name: &str,
    comment: Option<&str>,
) -> Result<()> {
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {0} IS {2}; ALTER DATABASE {0} RENAME TO {1}",
            quote_ident(work),
            quote_ident(name),
            comment.map_or_else(|| "NULL".to_string(), quote_literal)
        ))
        .map_err(|e| Error::query(format!("renaming the restored {work} to {name}"), &e))
}

/// Gives database `work`, which a restore created and loaded, the settings the backed-up
/// database had (`ALTER DATABASE ... SET`; with `roles`, `ALTER ROLE ... IN DATABASE ...
/// SET` too), as `pg_restore --create` would. Run after the load: a setting such as
/// `statement_timeout` or `default_transaction_read_only` must not apply to it.
pub fn apply_settings(
    admin: &mut postgres::Client,
    work: &str,
    manifest: &BackupManifest,
    roles: bool,
) -> Result<()> {
    let Some(properties) = &manifest.database_properties else {
        return Ok(());
    };
    for setting in &properties.settings {
        let target = match &setting.role {
            None => format!("DATABASE {}", quote_ident(work)),
            Some(_) if !roles => continue,
            Some(role) => format!(
                "ROLE {} IN DATABASE {}",
                quote_ident(role),
                quote_ident(work)
            ),
        };
        admin
            .batch_execute(&format!(
                "ALTER {target} SET {} TO {}",
                quote_ident(&setting.name),
                setting_value(&setting.name, &setting.value)
            ))
            .map_err(|e| {
                Error::query(
                    format!(
                        "giving the restored database the setting {}={}",
                        setting.name, setting.value
                    ),
                    &e,
                )
            })?;
    }
    Ok(())
}

/// Gives database `work`, which a restore created, the privileges the backed-up database
/// had when they were not PostgreSQL's default (`REVOKE CONNECT ON DATABASE app FROM
/// PUBLIC` is a common guard, and a restore that dropped it would open the database to
/// every role), as `pg_restore --create` would. Privileges other than CONNECT, CREATE and
/// TEMPORARY (none exist on a database) are refused as a damaged manifest.
pub fn apply_grants(
    admin: &mut postgres::Client,
    work: &str,
    manifest: &BackupManifest,
) -> Result<()> {
    let Some(grants) = manifest
        .database_properties
        .as_ref()
        .and_then(|p| p.grants.as_ref())
    else {
        return Ok(());
    };
    let database = quote_ident(work);
    let mut sql = format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC");
    for grant in grants {
        let privilege = match grant.privilege.as_str() {
            p @ ("CONNECT" | "CREATE" | "TEMPORARY") => p,
            other => {
                return Err(Error::BackupCorrupt {
                    id: manifest.id.clone(),
                    problems: format!("manifest.json: `{other}` is not a privilege on a database"),
                    files: vec!["manifest.json".into()],
                })
            }
        };
        sql.push_str(&format!(
            "; GRANT {privilege} ON DATABASE {database} TO {}{}",
            grant
                .grantee
                .as_deref()
                .map_or_else(|| "PUBLIC".to_string(), quote_ident),
            if grant.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        ));
    }
    admin
        .batch_execute(&sql)
        .map_err(|e| Error::query("giving the restored database its privileges", &e))
}

/// The parameters whose stored value is a list of quoted names (PostgreSQL's
/// `GUC_LIST_QUOTE`, as pg_dump knows them): each element is set as a literal of its own.
const LIST_PARAMETERS: &[&str] = &[
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// `value` of parameter `name` as SQL after `SET name TO`: one literal, or for a list
/// parameter one literal per element (as pg_dump writes them).
fn setting_value(name: &str, value: &str) -> String {
    if !LIST_PARAMETERS.contains(&name.to_ascii_lowercase().as_str()) {
        return quote_literal(value);
    }
    split_list(value)
        .iter()
        .map(|element| quote_literal(element))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The elements of a stored list value (`"$user", public, "we""ird"`): separated by
/// commas, spaces around them dropped, double quotes (and doubled ones inside) removed.
fn split_list(value: &str) -> Vec<String> {
    let mut elements = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut element = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                    } else {
                        break;
                    }
                }
                element.push(c);
            }
            while chars.peek().is_some_and(|&c| c != ',') {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                element.push(c);
                chars.next();
            }
            element.truncate(element.trim_end().len());
        }
        elements.push(element);
        if chars.next().is_none() {
            break;
        }
    }
    if elements.len() == 1 && elements[0].is_empty() && !value.contains('"') {
        elements.clear();
    }
    elements
}

#[cfg(test)]
mod tests {
    use super::{setting_value, split_list};

    #[test]
    fn list_settings_are_split_as_postgresql_stores_them_and_each_element_quoted() {
        assert_eq!(split_list("\"$user\", public"), vec!["$user", "public"]);
        assert_eq!(
            split_list(" app ,\"we\"\"ird, x\",\"\""),
            vec!["app", "we\"ird, x", ""]
        );
        assert!(split_list("").is_empty());
        assert_eq!(
            setting_value("search_path", "\"$user\", app"),
            "'$user', 'app'"
        );
        assert_eq!(setting_value("TimeZone", "Europe/Paris"), "'Europe/Paris'");
        assert_eq!(
            setting_value("application_name", "it's, a list? no"),
            "'it''s, a list? no'"
        );
    }
}

/// A database pgward created for its work, as `pgward-report health` lists it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// What it is for, from its mark.
    pub what: String,
    /// `pg_database_size`; none without the CONNECT privilege on it.
    pub bytes: Option<i64>,
    /// Sessions connected to it.
    pub sessions: i64,
    /// Whether the session that created it is still connected. With no session on it and
    /// its creator gone, the run that made it is gone.
    pub creator_running: bool,
}

/// Every database on the server that carries pgward's mark, by name.
pub fn list(admin: &mut postgres::Client) -> Result<Vec<Listed>> {
    let rows = admin
        .query(
            &format!(
                "SELECT datname::text, substr(shobj_description(oid, 'pg_database'), length($1) + 2), \
                        CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END, \
                        (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname), {} \
                 FROM pg_database d \
                 WHERE starts_with(shobj_description(oid, 'pg_database'), $1) ORDER BY datname",
                creator_running_sql("shobj_description(d.oid, 'pg_database')")
            ),
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
            creator_running: r.get(4),
        })
        .collect())
}
