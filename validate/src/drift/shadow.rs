//! The shadow database drift replays the migrations into: a temporary one created on the
//! live database's server and always dropped again, or one the user names with
//! `--shadow-url`, which must be empty and is emptied again afterwards.
//!
//! Dropping is tied to a guard ([`Shadow`]): the normal path closes it explicitly (and
//! reports a failure to drop as a warning); an error, a panic or Ctrl-C drops it on the way
//! out. Ctrl-C cancels the running query (see `pgward_shared::interrupt`), the run unwinds
//! with `Error::Interrupted`, and the guard's DROP runs on the live session, which stays
//! usable after a cancel.
//!
//! Leftovers of runs that died without cleaning up (kill -9, a lost machine) are found as
//! every database pgward makes for its work is (`pgward_shared::workdb`): the shadow is
//! created on the run's live session, which stays open for the run's whole life, and marked
//! with a comment naming that session. A `pgward_shadow_*` database so marked whose
//! creating session is gone is a leftover, and the next run drops it `WITH (FORCE)`, which
//! also ends the dead run's statements still running in it (a slow migration the server has
//! not noticed is orphaned): a shadow holds nothing anyone needs. `pgward-report health`
//! lists them with the other work databases. We chose the creating session over the two
//! simpler tests: a pid in the name says nothing about runs on other hosts (CI runners
//! sharing a server) and pids are reused; "older than this run and unused per
//! pg_stat_activity" waits out whatever a killed run left running in the shadow, and cannot
//! tell an idle live run from a dead one. Only databases the role may drop (it is a member
//! of the owner) are touched, and an unmarked one never. The live session's
//! `application_name`, `pgward-validate shadow <shadow name>`, tells people in
//! `pg_stat_activity` which shadow it owns.

use pgward_shared::codes::WarningCode;
use pgward_shared::connect::dburl::ConnectionSettings;
use pgward_shared::connect::{connect, Session};
use pgward_shared::error::{describe_pg_error, Error, Result};
use pgward_shared::log;
use pgward_shared::output::Context;
use pgward_shared::sql::{quote_ident, quote_literal};
use pgward_shared::workdb;

/// Names of temporary shadow databases start with this; the prefix is pgward's.
pub const SHADOW_PREFIX: &str = "pgward_shadow_";

/// `application_name` of a run's live session, followed by its shadow's name (see the
/// module docs).
const OWNER_TAG_PREFIX: &str = "pgward-validate shadow ";

/// Objects cut off in the error about a non-empty `--shadow-url` database.
const NOT_EMPTY_LISTED: usize = 5;

/// A new temporary shadow database name: `pgward_shadow_<pid>_<random>`, recognisable
/// for people and for the leftover check, unique on the server.
pub fn temporary_name() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{SHADOW_PREFIX}{}_{}", std::process::id(), &random[..8])
}

/// The `application_name` of the live session of the run that owns `shadow`.
pub fn owner_tag(shadow: &str) -> String {
    format!("{OWNER_TAG_PREFIX}{shadow}")
}

/// Drops the shadow databases of earlier runs that died (see the module docs); returns
/// their names. One that cannot be dropped is a warning, not a failure.
pub fn drop_leftovers(ctx: &Context, client: &mut postgres::Client) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    for found in workdb::find(client, SHADOW_PREFIX, true)? {
        if !found.is_abandoned() || !found.droppable {
            continue;
        }
        let name = found.name;
        match client.batch_execute(&drop_database_sql(&name)) {
            Ok(()) => {
                log::info(&format!(
                    "dropped the shadow database {name}, left behind by a run that did not finish"
                ));
                dropped.push(name);
            }
            Err(e) => ctx.warn(
                WarningCode::ShadowLeftoverNotDropped,
                format!(
                    "the shadow database {name} was left by a run that did not finish and cannot be dropped: {}",
                    describe_pg_error(&e).1
                ),
            ),
        }
    }
    Ok(dropped)
}

fn drop_database_sql(name: &str) -> String {
    format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name))
}

/// A shadow database in use; cleaned up (dropped, or emptied when the user gave it)
/// when closed or dropped.
pub struct Shadow {
    name: String,
    temporary: bool,
    /// The run's session on the live database: creates and drops the temporary shadow,
    /// marks this run as alive (its `application_name`), and reads the live schema.
    live: Session,
    /// The session on the shadow; `None` once cleanup has closed it.
    shadow: Option<Session>,
    cleaned: bool,
}

impl Shadow {
    /// Creates the temporary shadow `name` beside the live database (same server,
    /// encoding and locale, from `template0`) and connects to it with the live
    /// database's credentials and schema. `live` must carry [`owner_tag`] of `name`.
    /// `command` (`pgward-validate drift`) names the run in the database's mark.
    pub fn create(mut live: Session, name: &str, command: &str) -> Result<Shadow> {
        let create_sql = create_database_sql(&mut live, name)?;
        let what = format!(
            "shadow database of {command} on {}, dropped when it ends; once the session that created it is gone, the next drift or lint --trace drops it",
            live.settings.dbname
        );
        let mark = workdb::Mark::new(&mut live.client, &what)?;
        live.client.batch_execute(&create_sql).map_err(|e| {
            Error::query(
                format!(
                    "creating the shadow database {name} (the role needs the CREATEDB privilege; \
                     or pass --shadow-url with an empty database)"
                ),
                &e,
            )
        })?;
        let settings = live.settings.with_database(name);
        let mut shadow = Shadow {
            name: name.to_string(),
            temporary: true,
            live,
            shadow: None,
            cleaned: false,
        };
        // From here on, the guard drops it whatever happens.
        mark.put(&mut shadow.live.client, name)?;
        shadow.shadow = Some(connect(&settings, "pgward-validate")?);
        log::info(&format!("created the shadow database {name}"));
        Ok(shadow)
    }

    /// Uses the database of `settings` (already given the live schema) as the shadow,
    /// after checking that it is empty.
    pub fn adopt(live: Session, settings: &ConnectionSettings) -> Result<Shadow> {
        let mut session = connect(settings, "pgward-validate")?;
        let objects = shadow_objects(&mut session.client)?;
        if !objects.is_empty() {
            return Err(Error::ShadowNotEmpty {
                database: settings.dbname.clone(),
                total: objects.len(),
                objects: objects
                    .into_iter()
                    .take(NOT_EMPTY_LISTED)
                    .map(|o| o.description)
                    .collect(),
            });
        }
        Ok(Shadow {
            name: settings.dbname.clone(),
            temporary: false,
            live,
            shadow: Some(session),
            cleaned: false,
        })
    }

    /// The shadow database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the run created it (and drops it again), rather than `--shadow-url` naming it.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// Another session on the shadow (`deploy --trace`'s observer of lint --trace).
    pub fn connect_again(&self, application_name: &str) -> Result<Session> {
        let settings = &self
            .shadow
            .as_ref()
            .expect("the shadow session lives until the shadow is cleaned up")
            .settings;
        connect(settings, application_name)
    }

    /// Whether the shadow database lives on the live database's server (cluster): always
    /// for a temporary one; for a `--shadow-url` one, when both sessions see the same
    /// server, whatever host names the two URLs use.
    pub fn on_live_server(&mut self) -> Result<bool> {
        if self.temporary {
            return Ok(true);
        }
        let (live, shadow) = self.sessions();
        // One running server has one postmaster start time (microseconds) and port, which
        // every role may read; two servers practically never share both. The system
        // identifier, when both roles may read it, also tells apart a clone of the live
        // server (same identifier, its own start time) from the live server itself.
        const STARTED: &str = "SELECT pg_catalog.pg_postmaster_start_time()::text || ' port ' || pg_catalog.current_setting('port')";
        const SYSTEM_ID: &str =
            "SELECT system_identifier::text FROM pg_catalog.pg_control_system()";
        let read = |client: &mut postgres::Client,
                    sql: &str|
         -> std::result::Result<String, postgres::Error> {
            Ok(client.query_one(sql, &[])?.get(0))
        };
        let a = read(live, STARTED).map_err(|e| Error::query("identifying the live server", &e))?;
        let b = read(shadow, STARTED)
            .map_err(|e| Error::query("identifying the shadow database's server", &e))?;
        if a != b {
            return Ok(false);
        }
        Ok(match (read(live, SYSTEM_ID), read(shadow, SYSTEM_ID)) {
            (Ok(a), Ok(b)) => a == b,
            // Unreadable to one of the roles: the same start time and port decide.
            _ => true,
        })
    }

    /// The live session and the shadow session, to use at the same time.
    pub fn sessions(&mut self) -> (&mut postgres::Client, &mut postgres::Client) {
        let shadow = self
            .shadow
            .as_mut()
            .expect("the shadow session lives until the shadow is cleaned up");
        (&mut self.live.client, &mut shadow.client)
    }

    /// Drops the temporary shadow, or empties the given one.
    pub fn close(mut self) -> Result<()> {
        self.clean_up()
    }

    /// [`Shadow::close`], a failure told as a warning with what to do about it.
    pub fn close_or_warn(self, ctx: &Context) {
        let (name, temporary) = (self.name.clone(), self.temporary);
        let Err(e) = self.close() else {
            return;
        };
        let (code, advice) = if temporary {
            (
                WarningCode::ShadowNotDropped,
                format!(
                    "drop it by hand (DROP DATABASE {} WITH (FORCE)); the next drift or lint --trace also drops it",
                    quote_ident(&name)
                ),
            )
        } else {
            (
                WarningCode::ShadowNotEmptied,
                "empty it (or drop and recreate it) before the next run, which refuses a non-empty shadow".to_string(),
            )
        };
        ctx.warn(code, format!("{e}; {advice}"));
    }

    fn clean_up(&mut self) -> Result<()> {
        self.cleaned = true;
        if !self.temporary {
            let Some(session) = self.shadow.as_mut() else {
                return Ok(());
            };
            return empty_database(&mut session.client, &self.name);
        }
        // Close our own session rather than have FORCE kill it; FORCE still ends a backend
        // that is slow to exit, and anything else connected.
        self.shadow = None;
        let sql = drop_database_sql(&self.name);
        let mut result = self.live.client.batch_execute(&sql);
        if matches!(&result, Err(e) if describe_pg_error(e).0.as_deref() == Some("57014")) {
            // The cancel Ctrl-C sent to every session can land on this DROP instead of
            // the query it was meant for; the DROP itself must still happen.
            result = self.live.client.batch_execute(&sql);
        }
        result.map_err(|e| {
            let (sqlstate, message) = describe_pg_error(&e);
            Error::Query {
                context: format!("dropping the shadow database {}", self.name),
                sqlstate,
                message,
            }
        })?;
        log::info(&format!("dropped the shadow database {}", self.name));
        Ok(())
    }
}

impl Drop for Shadow {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        if let Err(e) = self.clean_up() {
            let hint = if self.temporary {
                format!(
                    "drop it by hand (DROP DATABASE {} WITH (FORCE)); the next drift run also drops it",
                    quote_ident(&self.name)
                )
            } else {
                "empty it (or drop and recreate it) before the next run".to_string()
            };
            log::warn(&format!("{e}\nhint: {hint}"));
        }
    }
}

/// `CREATE DATABASE` of the shadow with the live database's encoding and locale, so
/// that migrations behave there as they did live.
fn create_database_sql(live: &mut Session, name: &str) -> Result<String> {
    let locale_column = match live.server_version_num {
        v if v >= 170000 => "datlocale",
        v if v >= 150000 => "daticulocale",
        _ => "NULL::text",
    };
    let provider_column = if live.server_version_num >= 150000 {
        "datlocprovider::text"
    } else {
        "'c'"
    };
    let row = live
        .client
        .query_one(
            &format!(
                "SELECT pg_catalog.pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text, \
                        {provider_column}, {locale_column} \
                 FROM pg_catalog.pg_database WHERE datname = current_database()"
            ),
            &[],
        )
        .map_err(|e| Error::query("reading the live database's encoding and locale", &e))?;
    let (encoding, collate, ctype, provider, locale): (
        String,
        String,
        String,
        String,
        Option<String>,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let mut sql = format!(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote_ident(name),
        quote_literal(&encoding),
        quote_literal(&collate),
        quote_literal(&ctype)
    );
    match (provider.as_str(), locale) {
        ("i", Some(locale)) => sql.push_str(&format!(
            " LOCALE_PROVIDER icu ICU_LOCALE {}",
            quote_literal(&locale)
        )),
        ("b", Some(locale)) => sql.push_str(&format!(
            " LOCALE_PROVIDER builtin BUILTIN_LOCALE {}",
            quote_literal(&locale)
        )),
        _ => {}
    }
    Ok(sql)
}

/// Something in a `--shadow-url` database that makes it not empty.
struct ShadowObject {
    /// `table public.users`, `extension citext`.
    description: String,
    /// The statement that removes it (and what depends on it).
    drop_sql: String,
}

/// What a database holds beyond what `CREATE DATABASE` gives: schemas other than
/// `public`, extensions other than plpgsql, and relations, types and routines that no
/// extension owns. Listed in the order they are best dropped in.
fn shadow_objects(client: &mut postgres::Client) -> Result<Vec<ShadowObject>> {
    let user_schema = "n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'";
    let not_in_extension = |catalog: &str, oid: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend x WHERE x.classid = 'pg_catalog.{catalog}'::pg_catalog.regclass \
             AND x.objid = {oid} AND x.deptype = 'e')"
        )
    };
    let sql = format!(
        "SELECT what, drop_sql FROM ( \
           SELECT 1 AS step, 'schema ' || quote_ident(n.nspname) AS what, \
                  format('DROP SCHEMA IF EXISTS %I CASCADE', n.nspname) AS drop_sql \
           FROM pg_catalog.pg_namespace n WHERE {user_schema} AND n.nspname <> 'public' \
           UNION ALL \
           SELECT 2, 'extension ' || quote_ident(e.extname), format('DROP EXTENSION IF EXISTS %I CASCADE', e.extname) \
           FROM pg_catalog.pg_extension e WHERE e.extname <> 'plpgsql' \
           UNION ALL \
           SELECT 3, k.noun || ' ' || format('%I.%I', n.nspname, c.relname), \
                  format('DROP %s IF EXISTS %I.%I CASCADE', upper(k.noun), n.nspname, c.relname) \
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
           JOIN (VALUES ('r', 'table'), ('p', 'table'), ('f', 'foreign table'), ('v', 'view'), \
                        ('m', 'materialized view'), ('S', 'sequence')) k(relkind, noun) ON k.relkind = c.relkind::text \
           WHERE {user_schema} AND {} \
           UNION ALL \
           SELECT 4, 'type ' || format('%I.%I', n.nspname, t.typname), \
                  format('DROP %s IF EXISTS %I.%I CASCADE', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname) \
           FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
           WHERE (t.typtype IN ('e', 'd', 'r') \
                  OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c'))) \
             AND {user_schema} AND {} \
           UNION ALL \
           SELECT 5, 'routine ' || format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)), \
                  format('DROP %s IF EXISTS %I.%I(%s) CASCADE', CASE p.prokind WHEN 'a' THEN 'AGGREGATE' WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, \
                         n.nspname, p.proname, oidvectortypes(p.proargtypes)) \
           FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
           WHERE {user_schema} AND {} \
         ) o ORDER BY step, what",
        not_in_extension("pg_class", "c.oid"),
        not_in_extension("pg_type", "t.oid"),
        not_in_extension("pg_proc", "p.oid"),
    );
    let rows = client
        .query(&sql, &[])
        .map_err(|e| Error::query("listing what the shadow database holds", &e))?;
    Ok(rows
        .iter()
        .map(|r| ShadowObject {
            description: r.get(0),
            drop_sql: r.get(1),
        })
        .collect())
}

/// Empties a `--shadow-url` database again, so that the next run accepts it.
fn empty_database(client: &mut postgres::Client, name: &str) -> Result<()> {
    let objects = shadow_objects(client)?;
    let mut failures = Vec::new();
    for object in &objects {
        if let Err(e) = client.batch_execute(&object.drop_sql) {
            failures.push(format!(
                "{}: {}",
                object.description,
                describe_pg_error(&e).1
            ));
        }
    }
    if failures.is_empty() {
        log::info(&format!("emptied the shadow database {name} again"));
        return Ok(());
    }
    Err(Error::Query {
        context: format!("emptying the shadow database {name} after the run"),
        sqlstate: None,
        message: failures.join("; "),
    })
}
