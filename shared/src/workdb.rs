//! Databases pgward creates for its own work: the database a restore loads a new target
//! under until it is complete, `verify --deep`'s scratch database, and `validate drift`'s
//! shadow. Each carries a comment ([`Mark`]) that marks it as pgward's, says what it is,
//! and names the session that created it, so that one a killed run left behind is
//! recognised (marked, its creating session gone) and dropped by the next run of its kind,
//! `pgward-report health` lists every one ([`list`]), and a database pgward did not make is
//! never touched. The creating session matters: a run's database may have no session
//! between its creation and its loader's first connection, and another run's cleanup must
//! not take it for a leftover then; and a run killed with `kill -9` may leave statements
//! running in it that the server has not noticed are orphaned.
//!
//! The mark and what is read from it need no storage, so validate (built without it) uses
//! them too; [`create`], which gives a restore's database the backup's encoding and
//! locale, is behind the `storage` feature.

use crate::archive::manifest::BackupManifest;
use crate::error::{Error, Result};
use crate::sql::{quote_ident, quote_literal};
use serde::Serialize;

/// The start of the comment of every database pgward creates for its own work. Kept as
/// it is across versions, so that a newer pgward recognises what an older one left.
/// `scripts/rehearse.sh` writes the same mark (its psql holder session as the creator).
const MARK: &str = "pgward work in progress:";

/// A database pgward created for its work (or one whose name it would use), as found;
/// `pgward-report health` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WorkDatabase {
    /// Its name.
    pub name: String,
    /// Whether it carries pgward's mark.
    #[serde(skip)]
    pub marked: bool,
    /// What it is for, from its mark (empty without one).
    pub what: String,
    /// `pg_database_size`; none without the CONNECT privilege on it.
    pub bytes: Option<i64>,
    /// Sessions connected to it.
    pub sessions: i64,
    /// Whether the session that created it (named in its mark) is still connected: the
    /// run that made it is alive.
    pub creator_running: bool,
    /// Whether this session's role may drop it (a member of its owner).
    #[serde(skip)]
    pub droppable: bool,
}

impl WorkDatabase {
    /// Whether the run that made it is gone: pgward's, and the session that created it
    /// gone. Statements of that run may still run in it (the server has not noticed their
    /// client died).
    pub fn is_abandoned(&self) -> bool {
        self.marked && !self.creator_running
    }

    /// Whether it is what an interrupted run left, with nothing running in it: abandoned
    /// and no session on it. (A mark of an older pgward names no creating session: then no
    /// session on it is the only sign that its run is gone.)
    pub fn is_leftover(&self) -> bool {
        self.is_abandoned() && self.sessions == 0
    }
}

/// Whether the session named by a mark's `creating session PID:START_US` is connected,
/// given the mark as an expression of a query (false for marks without it, from older
/// versions). A role that may not see another role's sessions in full reads their
/// `backend_start` as NULL: then the pid alone decides, so that such a run is taken for
/// alive rather than its database for a leftover.
fn creator_running_sql(mark: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_stat_activity a \
                 WHERE a.pid::text = (regexp_match({mark}, 'creating session ([0-9]+):([0-9]+)'))[1] \
                   AND (a.backend_start IS NULL \
                        OR floor(extract(epoch FROM a.backend_start) * 1000000)::bigint::text \
                           = (regexp_match({mark}, 'creating session ([0-9]+):([0-9]+)'))[2]))"
    )
}

/// The mark of a database `admin`'s session is about to create for pgward's work: `what`
/// says what it is for and what becomes of it if the run dies. Read before the database is
/// created, so that [`Mark::put`] right after `CREATE DATABASE` is one statement: a run
/// killed between the two leaves an unmarked database, which no cleanup touches.
pub struct Mark(String);

impl Mark {
    /// The mark naming `admin`'s session as the creator. That session must stay connected
    /// while the run uses the database: its end is what says the run is gone.
    pub fn new(admin: &mut postgres::Client, what: &str) -> Result<Mark> {
        let creator = admin
            .query_one(
                "SELECT pg_backend_pid(), floor(extract(epoch FROM backend_start) * 1000000)::bigint \
                 FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                &[],
            )
            .map_err(|e| Error::query("reading this session's id", &e))?;
        let (pid, start): (i32, i64) = (creator.get(0), creator.get(1));
        Ok(Mark(format!(
            "{MARK} {what} (started {}; creating session {pid}:{start})",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        )))
    }

    /// Puts the mark on database `name`, which `admin`'s session has just created.
    pub fn put(&self, admin: &mut postgres::Client, name: &str) -> Result<()> {
        admin
            .batch_execute(&format!(
                "COMMENT ON DATABASE {} IS {}",
                quote_ident(name),
                quote_literal(&self.0)
            ))
            .map_err(|e| Error::query(format!("marking {name} as pgward's work in progress"), &e))
    }
}

/// Creates database `name` with the backup's encoding and locale (see
/// [`crate::archive::load::create_database`]) and marks it ([`Mark`]).
#[cfg(feature = "storage")]
pub fn create(
    admin: &mut postgres::Client,
    name: &str,
    manifest: &BackupManifest,
    what: &str,
) -> Result<()> {
    let mark = Mark::new(admin, what)?;
    crate::archive::load::create_database(admin, name, manifest)?;
    mark.put(admin, name)
}

/// Databases whose name is `name`, or starts with it when `prefix` is true, marked or not.
pub fn find(admin: &mut postgres::Client, name: &str, prefix: bool) -> Result<Vec<WorkDatabase>> {
    query(
        admin,
        "datname = $2 OR ($3 AND starts_with(datname, $2))",
        &[&name, &prefix],
        "looking for databases an interrupted run left",
    )
}

/// Every database on the server that carries pgward's mark, by name.
pub fn list(admin: &mut postgres::Client) -> Result<Vec<WorkDatabase>> {
    query(
        admin,
        "starts_with(shobj_description(oid, 'pg_database'), $1)",
        &[],
        "listing the databases pgward created for its work",
    )
}

/// The databases `filter` (a condition on `pg_database d`; `$1` is [`MARK`], `params` are
/// `$2`...) selects, by name.
fn query(
    admin: &mut postgres::Client,
    filter: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    doing: &str,
) -> Result<Vec<WorkDatabase>> {
    let comment = "shobj_description(d.oid, 'pg_database')";
    let mut all: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&MARK];
    all.extend_from_slice(params);
    let rows = admin
        .query(
            &format!(
                "SELECT datname::text, coalesce(starts_with({comment}, $1), false), \
                        CASE WHEN starts_with({comment}, $1) THEN substr({comment}, length($1) + 2) ELSE '' END, \
                        CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END, \
                        (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname), {}, \
                        pg_has_role(datdba, 'MEMBER') \
                 FROM pg_database d WHERE {filter} ORDER BY datname",
                creator_running_sql(comment)
            ),
            &all,
        )
        .map_err(|e| Error::query(doing, &e))?;
    Ok(rows
        .iter()
        .map(|r| WorkDatabase {
            name: r.get(0),
            marked: r.get(1),
            what: r.get(2),
            bytes: r.get(3),
            sessions: r.get(4),
            creator_running: r.get(5),
            droppable: r.get(6),
        })
        .collect())
}

/// Drops leftover `name` (no `FORCE`: a session that appeared since it was found makes
/// this fail rather than end someone's work).
pub fn drop_leftover(admin: &mut postgres::Client, found: &WorkDatabase) -> Result<()> {
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
