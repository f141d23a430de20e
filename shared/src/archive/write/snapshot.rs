//! One consistent view of the database for every reader of a backup.
//!
//! A coordinator session opens a REPEATABLE READ, READ ONLY transaction, exports its
//! snapshot (`pg_export_snapshot()`), lists the tables and takes ACCESS SHARE locks on
//! them (as pg_dump does, with a lock timeout), so no DDL can change a table mid-backup.
//! Worker sessions adopt the snapshot (`SET TRANSACTION SNAPSHOT`), and pg_dump reads the
//! schema from it (`--snapshot`): schema and data describe the same instant. The
//! coordinator stays open until the last reader is done, since an exported snapshot lives
//! only as long as its transaction.

use std::time::Duration;

use crate::archive::manifest::{
    CopyFormat, ManifestDatabase, ManifestGrant, ManifestLargeObjects, ManifestSequence,
    ManifestSetting, ManifestView,
};
use crate::connect::copy::CopySession;
use crate::connect::dburl::ConnectionSettings;
use crate::connect::{connect, Session, EXACT_COPY_SETTINGS, READ_EVERY_ROW};
use crate::error::{Error, LockHolder, Result};
use crate::migrations::history;
use crate::sql::{quote_ident, quote_literal};
use chrono::{DateTime, Utc};

/// Application name of pgward-backup's sessions.
pub const APP: &str = "pgward-backup";

/// A table to read.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Schema.
    pub schema: String,
    /// Table.
    pub name: String,
    /// Heap size in bytes (pg_relation_size), for chunking and progress.
    pub bytes: u64,
    /// Columns COPY reads (generated columns excluded), quoted.
    pub columns: Vec<String>,
    /// How its rows are copied.
    pub copy_format: CopyFormat,
    /// Whether row-level security policies apply to the backup's role on it
    /// (`row_security_active`): then a read would see only the rows they show.
    pub row_security: bool,
    /// For a configuration table of an extension (`pg_extension_config_dump`), the
    /// extension's filter (`WHERE ...`, or empty for every row): pg_dump backs up the rows
    /// it selects, and so does pgward.
    pub extension_filter: Option<String>,
}

impl TableInfo {
    /// `"schema"."name"`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// The source database's properties recorded in the manifest.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// `server_version`.
    pub server_version: String,
    /// `server_version_num`.
    pub server_version_num: i32,
    /// Encoding name.
    pub encoding: String,
    /// `datcollate`.
    pub lc_collate: String,
    /// `datctype`.
    pub lc_ctype: String,
    /// `block_size`.
    pub block_size: u64,
}

/// The coordinator: holds the exported snapshot and the table locks.
pub struct Coordinator {
    /// Its session (inside the snapshot's transaction).
    pub session: Session,
    /// The exported snapshot's id.
    pub snapshot_id: String,
    /// The server's clock when the snapshot was taken.
    pub snapshot_time: DateTime<Utc>,
    /// The source's properties.
    pub source: SourceInfo,
    /// The role the session runs as (`current_user`), for the errors that name it.
    pub role: String,
}

impl Coordinator {
    /// Opens the snapshot transaction and exports it.
    pub fn open(settings: &ConnectionSettings) -> Result<Coordinator> {
        let mut session = connect(settings, APP)?;
        let client = &mut session.client;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; {READ_EVERY_ROW}; {EXACT_COPY_SETTINGS}"
            ))
            .map_err(|e| Error::query("starting the snapshot transaction", &e))?;
        let row = client
            .query_one(
                "SELECT pg_export_snapshot(), now(), current_setting('server_version'), \
                        pg_encoding_to_char(d.encoding), d.datcollate::text, d.datctype::text, \
                        current_setting('block_size')::bigint, current_user::text \
                 FROM pg_database d WHERE d.datname = current_database()",
                &[],
            )
            .map_err(|e| Error::query("exporting the snapshot", &e))?;
        let block_size: i64 = row.get(6);
        let source = SourceInfo {
            server_version: row.get(2),
            server_version_num: session.server_version_num,
            encoding: row.get(3),
            lc_collate: row.get(4),
            lc_ctype: row.get(5),
            block_size: block_size as u64,
        };
        Ok(Coordinator {
            snapshot_id: row.get(0),
            snapshot_time: row.get(1),
            role: row.get(7),
            source,
            session,
        })
    }

    /// The tables holding data, largest first (partitioned parents hold none; their
    /// partitions are listed; extension-owned and temporary tables are skipped).
    ///
    /// Sizing a table takes a lock on it, so this already runs under `lock_timeout`: a
    /// table another session holds exclusively stops the backup here, with the holder named.
    pub fn tables(&mut self, lock_timeout: Duration) -> Result<Vec<TableInfo>> {
        let client = &mut self.session.client;
        client
            .batch_execute(&format!(
                "SET LOCAL lock_timeout = {}; SAVEPOINT pgward_list",
                lock_timeout.as_millis().max(1)
            ))
            .map_err(|e| Error::query("setting the lock timeout", &e))?;
        let listed = client
            .query(
                "SELECT n.nspname::text, c.relname::text, pg_relation_size(c.oid), \
                        array(SELECT quote_ident(a.attname) FROM pg_attribute a \
                              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
                              ORDER BY a.attnum), \
                        coalesce((SELECT bool_and(t.oid < 10000 AND t.typelem::oid < 10000 \
                                                  AND t.typsend::oid <> 0 AND t.typreceive::oid <> 0) \
                                  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                                    AND a.attgenerated = ''), false), \
                        row_security_active(c.oid), \
                        (SELECT coalesce(e.extcondition[array_position(e.extconfig, c.oid)], '') \
                         FROM pg_extension e WHERE c.oid = ANY (e.extconfig) LIMIT 1) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'r' AND c.relpersistence <> 't' \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                   AND (NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                                    AND d.objid = c.oid AND d.deptype = 'e') \
                        OR EXISTS (SELECT 1 FROM pg_extension e WHERE c.oid = ANY (e.extconfig))) \
                 ORDER BY 3 DESC, 1, 2",
                &[],
            );
        let rows = match listed {
            Ok(rows) => rows,
            Err(e) if e.code().map(|c| c.code()) == Some("55P03") => {
                return Err(lock_timeout_error(
                    client,
                    "pgward_list",
                    lock_timeout,
                    "a table",
                ))
            }
            Err(e) => return Err(Error::query("listing the tables", &e)),
        };
        rows.iter()
            .map(|r| {
                let (schema, name): (String, String) = (r.get(0), r.get(1));
                // NULL: the table the snapshot lists was dropped since (its size is read
                // from the current catalog), so it can be neither locked nor read.
                let Some(bytes) = r.get::<_, Option<i64>>(2) else {
                    return Err(Error::Query {
                        context: "listing the tables".into(),
                        sqlstate: None,
                        message: format!(
                            "table {schema}.{name} was dropped after the backup's snapshot was taken (a DROP TABLE committed while the backup started); run the backup again once no migration or DROP is running"
                        ),
                    });
                };
                Ok(TableInfo {
                    schema,
                    name,
                    bytes: bytes.max(0) as u64,
                    columns: r.get(3),
                    copy_format: if r.get::<_, bool>(4) {
                        CopyFormat::Binary
                    } else {
                        CopyFormat::Text
                    },
                    row_security: r.get(5),
                    extension_filter: r.get(6),
                })
            })
            .collect()
    }

    /// Takes ACCESS SHARE locks on `tables` (under the lock timeout [`Coordinator::tables`]
    /// set); on timeout names the session holding a conflicting lock.
    pub fn lock(&mut self, tables: &[TableInfo], timeout: Duration) -> Result<()> {
        if tables.is_empty() {
            return Ok(());
        }
        let client = &mut self.session.client;
        // One savepoint per table would be slow for thousands of tables; lock them in
        // one statement and, on timeout, find out which one was held.
        client
            .batch_execute("SAVEPOINT pgward_lock")
            .map_err(|e| Error::query("locking the tables", &e))?;
        let list: Vec<String> = tables.iter().map(TableInfo::qualified).collect();
        match client.batch_execute(&format!(
            "LOCK TABLE {} IN ACCESS SHARE MODE",
            list.join(", ")
        )) {
            Ok(()) => Ok(()),
            Err(e) if e.code().map(|c| c.code()) == Some("55P03") => Err(lock_timeout_error(
                client,
                "pgward_lock",
                timeout,
                &list.join(", "),
            )),
            Err(e) => Err(Error::query("locking the tables", &e)),
        }
    }

    /// The `_prisma_migrations` rows as the snapshot sees them, and the newest finished
    /// migration.
    pub fn migrations(&mut self, schema: &str) -> Result<(serde_json::Value, Option<String>)> {
        let client = &mut self.session.client;
        if !history::table_exists(client, schema)? {
            return Ok((serde_json::Value::Array(Vec::new()), None));
        }
        let rows = history::read_rows(client, schema)?;
        let head = rows
            .iter()
            .filter(|r| r.is_applied())
            .max_by_key(|r| r.finished_at)
            .map(|r| r.migration_name.clone());
        let value = serde_json::to_value(&rows).unwrap_or_default();
        Ok((value, head))
    }

    /// The large objects the snapshot sees: how many, and, unless they are to be left out
    /// (`exclude`), a check that this role may read every one of them. pg_dump would fail
    /// on the first it may not read, once the tables were already written; this fails
    /// before anything is written, with the way out.
    pub fn large_objects(&mut self, database: &str, exclude: bool) -> Result<ManifestLargeObjects> {
        let client = &mut self.session.client;
        let row = client
            .query_one(
                "SELECT count(*), coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) \
                        OR current_setting('lo_compat_privileges')::boolean \
                 FROM pg_largeobject_metadata",
                &[],
            )
            .map_err(|e| Error::query("counting the large objects", &e))?;
        let large_objects = ManifestLargeObjects {
            count: row.get::<_, i64>(0).max(0) as u64,
            excluded: exclude,
        };
        let reads_all = row.get::<_, bool>(1);
        if !large_objects.held() || reads_all {
            return Ok(large_objects);
        }
        // Opening each one checks the SELECT privilege, and reads nothing.
        client
            .batch_execute("SAVEPOINT pgward_large_objects")
            .map_err(|e| Error::query("checking the large objects", &e))?;
        match client.query_one(
            "SELECT count(*) FROM pg_largeobject_metadata WHERE lo_get(oid, 0, 0) IS NULL",
            &[],
        ) {
            Ok(_) => client
                .batch_execute("RELEASE SAVEPOINT pgward_large_objects")
                .map_err(|e| Error::query("checking the large objects", &e))
                .map(|()| large_objects),
            Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                Err(Error::LargeObjectsUnreadable {
                    database: database.to_string(),
                    reason: crate::error::describe_pg_error(&e).1,
                    safety_backup: false,
                })
            }
            Err(e) => Err(Error::query("checking the large objects", &e)),
        }
    }

    /// Every sequence a backup carries (extension members only when the extension marked
    /// them with `pg_extension_config_dump`), and whether the role may read its value
    /// (SELECT on it, USAGE on its schema).
    fn list_sequences(&mut self) -> Result<Vec<(String, String, bool)>> {
        let rows = self
            .session
            .client
            .query(
                "SELECT n.nspname::text, c.relname::text, \
                        has_sequence_privilege(c.oid, 'SELECT') AND has_schema_privilege(n.oid, 'USAGE') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                   AND (NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                                    AND d.objid = c.oid AND d.deptype = 'e') \
                        OR EXISTS (SELECT 1 FROM pg_extension e WHERE c.oid = ANY (e.extconfig))) \
                 ORDER BY 1, 2",
                &[],
            )
            .map_err(|e| Error::query("listing the sequences", &e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Fails with [`Error::SequenceUnreadable`] naming every sequence whose value the role
    /// may not read. (`pg_sequences` shows such a value as NULL, as it shows a sequence
    /// never called: taking NULL for "never called" would restore the sequence at its
    /// start, and the next insert would collide with the rows already there.)
    pub fn check_sequences(&mut self) -> Result<()> {
        let unreadable: Vec<String> = self
            .list_sequences()?
            .into_iter()
            .filter(|(_, _, readable)| !readable)
            .map(|(schema, name, _)| format!("{}.{}", quote_ident(&schema), quote_ident(&name)))
            .collect();
        if unreadable.is_empty() {
            Ok(())
        } else {
            Err(Error::SequenceUnreadable {
                role: self.role.clone(),
                sequences: unreadable,
            })
        }
    }

    /// Sequence values, read as late as possible (sequences ignore snapshots, and a later
    /// value is the safe side after a restore): `last_value` and `is_called` from each
    /// sequence itself, as pg_dump reads them, so a sequence never called, or set with
    /// `setval(..., false)`, comes back exactly.
    pub fn sequences(&mut self) -> Result<Vec<ManifestSequence>> {
        self.check_sequences()?;
        let names: Vec<(String, String)> = self
            .list_sequences()?
            .into_iter()
            .map(|(schema, name, _)| (schema, name))
            .collect();
        let mut values = Vec::with_capacity(names.len());
        for batch in names.chunks(500) {
            let sql = batch
                .iter()
                .enumerate()
                .map(|(i, (schema, name))| {
                    format!(
                        "SELECT {i}, last_value, is_called FROM {}.{}",
                        quote_ident(schema),
                        quote_ident(name)
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let mut rows = self
                .session
                .client
                .query(&format!("{sql} ORDER BY 1"), &[])
                .map_err(|e| Error::query("reading sequence values", &e))?;
            rows.sort_by_key(|r| r.get::<_, i32>(0));
            for (r, (schema, name)) in rows.iter().zip(batch) {
                values.push(ManifestSequence {
                    schema: schema.clone(),
                    name: name.clone(),
                    last_value: r.get(1),
                    is_called: r.get(2),
                });
            }
        }
        Ok(values)
    }

    /// Every materialized view (but an extension's) and whether it holds rows.
    pub fn materialized_views(&mut self) -> Result<Vec<ManifestView>> {
        let rows = self
            .session
            .client
            .query(
                "SELECT n.nspname::text, c.relname::text, c.relispopulated \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'm' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                                   AND d.objid = c.oid AND d.deptype = 'e') \
                 ORDER BY 1, 2",
                &[],
            )
            .map_err(|e| Error::query("listing the materialized views", &e))?;
        Ok(rows
            .iter()
            .map(|r| ManifestView {
                schema: r.get(0),
                name: r.get(1),
                populated: r.get(2),
            })
            .collect())
    }

    /// The database's comment and its settings (`ALTER DATABASE ... SET`, `ALTER ROLE ...
    /// IN DATABASE ... SET`).
    pub fn database_properties(&mut self) -> Result<ManifestDatabase> {
        let client = &mut self.session.client;
        let comment = client
            .query_one(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database \
                 WHERE datname = current_database()",
                &[],
            )
            .map_err(|e| Error::query("reading the database's comment", &e))?
            .get(0);
        let settings = client
            .query(
                "SELECT r.rolname::text, split_part(c.setting, '=', 1), \
                        substr(c.setting, strpos(c.setting, '=') + 1) \
                 FROM pg_db_role_setting s \
                 CROSS JOIN LATERAL unnest(s.setconfig) WITH ORDINALITY AS c(setting, n) \
                 LEFT JOIN pg_roles r ON r.oid = s.setrole \
                 WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 ORDER BY r.rolname NULLS FIRST, c.n",
                &[],
            )
            .map_err(|e| Error::query("reading the database's settings", &e))?
            .iter()
            .map(|r| ManifestSetting {
                role: r.get(0),
                name: r.get(1),
                value: r.get(2),
            })
            .collect();
        // The owner's own privileges are left out: the restoring role owns the new
        // database and has them.
        let acl = client
            .query(
                "SELECT d.datacl IS NOT NULL, a.privilege_type, \
                        CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee)::text END, \
                        a.is_grantable \
                 FROM pg_database d LEFT JOIN LATERAL aclexplode(d.datacl) a ON a.grantee <> d.datdba \
                 WHERE d.datname = current_database() ORDER BY 3 NULLS FIRST, 2",
                &[],
            )
            .map_err(|e| Error::query("reading the database's privileges", &e))?;
        let grants = acl.first().is_some_and(|r| r.get::<_, bool>(0)).then(|| {
            acl.iter()
                .filter_map(|r| {
                    Some(ManifestGrant {
                        privilege: r.get::<_, Option<String>>(1)?,
                        grantee: r.get(2),
                        grantable: r.get::<_, Option<bool>>(3).unwrap_or(false),
                    })
                })
                .collect()
        });
        Ok(ManifestDatabase {
            comment,
            settings,
            grants,
        })
    }

    /// Ends the snapshot transaction.
    pub fn close(mut self) {
        let _ = self.session.client.batch_execute("COMMIT");
    }
}

/// After a lock timeout inside savepoint `savepoint`: rolls back to it and names the
/// session holding an exclusive lock in this database.
fn lock_timeout_error(
    client: &mut postgres::Client,
    savepoint: &str,
    timeout: Duration,
    fallback: &str,
) -> Error {
    if client
        .batch_execute(&format!("ROLLBACK TO SAVEPOINT {savepoint}"))
        .is_err()
    {
        return Error::TableLocked {
            table: fallback.to_string(),
            timeout_ms: timeout.as_millis() as u64,
            holder: None,
        };
    }
    let holder = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), a.pid, coalesce(a.application_name, ''), \
                    coalesce(a.query, ''), coalesce(a.state, '') \
             FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.granted AND l.mode = 'AccessExclusiveLock' AND l.pid <> pg_backend_pid() \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             LIMIT 1",
            &[],
        )
        .ok();
    let (table, holder) = match holder.as_ref().and_then(|rows| rows.first()) {
        Some(r) => (
            r.get::<_, String>(0),
            Some(LockHolder {
                pid: r.get(1),
                application_name: r.get(2),
                query: crate::redact::scrub(r.get::<_, &str>(3)),
                state: r.get(4),
            }),
        ),
        None => (fallback.to_string(), None),
    };
    Error::TableLocked {
        table,
        timeout_ms: timeout.as_millis() as u64,
        holder,
    }
}

/// Opens a worker session that sees exactly the coordinator's snapshot.
///
/// Its reads wait at most `lock_timeout` too: a migration queued for an exclusive lock
/// behind the coordinator would otherwise block the worker's own ACCESS SHARE request
/// forever (PostgreSQL queues it behind the waiter), as pg_dump's workers avoid with NOWAIT.
pub fn worker(
    settings: &ConnectionSettings,
    snapshot_id: &str,
    lock_timeout: Duration,
) -> Result<CopySession> {
    let mut session = CopySession::connect(settings, APP)?;
    session
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}; SET LOCAL lock_timeout = {}; {READ_EVERY_ROW}; {EXACT_COPY_SETTINGS}",
            quote_literal(snapshot_id),
            lock_timeout.as_millis().max(1)
        ))
        .map_err(|e| Error::query("adopting the backup snapshot", &e))?;
    Ok(session)
}
