//! Reads a database's schema from the catalogs into the normalised [`SchemaModel`].
//!
//! One query per object kind for the whole database (never one per table), each returning
//! the same shape: kind, names, parent, and the defining attributes as JSON built by the
//! server. Definitions come from PostgreSQL's own deparsers (`format_type`, `pg_get_expr`,
//! `pg_get_indexdef`, `pg_get_constraintdef`, `pg_get_viewdef`, `pg_get_triggerdef`), so
//! two databases built by the same statements print the same text. They print names
//! schema-qualified unless the schema is on the search_path, and constants by the session's
//! DateStyle, TimeZone and friends; the session is therefore pinned to `pg_catalog` only
//! (every user object comes out qualified) and to fixed output settings before reading,
//! whatever the database's defaults or the migrations' own `SET`s were.
//!
//! Left out: PostgreSQL's own schemas (`pg_*`, `information_schema`), objects that belong
//! to an extension (the extension itself is compared), `_prisma_migrations` and what hangs
//! off it, and what the server derives by itself (partition clones of constraints and
//! triggers, internal triggers, indexes that back a constraint: the constraint's
//! definition covers them).

use pgward_shared::error::{Error, Result};
use pgward_shared::migrations::history::HISTORY_TABLE;
use pgward_shared::sql::quote_literal;

use super::model::{ObjectKey, SchemaModel, SchemaObject};
use pgward_shared::findings::ObjectKind;

/// Output settings every deparsed definition depends on, fixed so that the live session
/// and the shadow session print alike.
const PIN_SESSION: &str = "RESET ALL; \
    SET search_path = pg_catalog; \
    SET TimeZone = 'UTC'; \
    SET DateStyle = 'ISO, MDY'; \
    SET IntervalStyle = 'postgres'; \
    SET extra_float_digits = 1; \
    SET bytea_output = 'hex'; \
    SET quote_all_identifiers = off";

/// Reads every compared object of the database `client` is connected to.
pub fn read_schema(client: &mut postgres::Client) -> Result<SchemaModel> {
    client
        .batch_execute(PIN_SESSION)
        .map_err(|e| Error::query("preparing the session to read the catalogs", &e))?;
    // One snapshot for all the catalog scans, so a concurrent deploy can hardly tear the
    // model (the pg_get_* deparsers read the newest catalog rows, hence "hardly").
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .map_err(|e| Error::query("starting the catalog read", &e))?;
    let model = read_objects(client);
    // A failed (or cancelled) read must not leave the session inside a transaction: the
    // shadow is dropped from this session afterwards, and DROP DATABASE cannot run in one.
    let end = if model.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = client.batch_execute(end);
    let model = model?;
    ended.map_err(|e| Error::query("ending the catalog read", &e))?;
    Ok(model)
}

fn read_objects(client: &mut postgres::Client) -> Result<SchemaModel> {
    let mut model = SchemaModel::default();
    for (what, sql) in queries() {
        let rows = client
            .query(sql.as_str(), &[])
            .map_err(|e| Error::query(format!("reading the {what} from the catalogs"), &e))?;
        for row in rows {
            let (key, object) = decode(&row, what)?;
            model.objects.insert(key, object);
        }
    }
    Ok(model)
}

/// The columns every introspection query returns.
type RawRow = (
    String,
    Vec<String>,
    Option<String>,
    Option<Vec<String>>,
    serde_json::Value,
);

fn raw_columns(row: &postgres::Row) -> std::result::Result<RawRow, postgres::Error> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
    ))
}

/// One row of any introspection query: `kind, path, parent_kind, parent_path, attributes`.
fn decode(row: &postgres::Row, what: &str) -> Result<(ObjectKey, SchemaObject)> {
    let (kind_name, path, parent_kind, parent_path, attributes) =
        raw_columns(row).map_err(|e| Error::query(format!("decoding the {what} read"), &e))?;
    let kind = ObjectKind::from_name(&kind_name).ok_or_else(|| Error::Query {
        context: format!("decoding the {what} read"),
        sqlstate: None,
        message: format!("unknown object kind `{kind_name}`"),
    })?;
    let parent = match (
        parent_kind.as_deref().and_then(ObjectKind::from_name),
        parent_path,
    ) {
        (Some(kind), Some(path)) => Some(ObjectKey { kind, path }),
        _ => None,
    };
    let attributes = match attributes {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    Ok((
        ObjectKey { kind, path },
        SchemaObject { parent, attributes },
    ))
}

/// `alias` is a schema of the application: not PostgreSQL's own, not a temp schema.
fn user_schema(alias: &str) -> String {
    format!("{alias}.nspname <> 'information_schema' AND {alias}.nspname NOT LIKE 'pg\\_%'")
}

/// The object `oid` of catalog `catalog` is not part of an extension.
fn not_in_extension(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = '{catalog}'::regclass \
         AND x.objid = {oid} AND x.deptype = 'e')"
    )
}

/// A `pg_constraint` foreign-key action code as SQL spells it.
fn fk_action(column: &str) -> String {
    format!(
        "CASE {column} WHEN 'a' THEN 'no action' WHEN 'r' THEN 'restrict' WHEN 'c' THEN 'cascade' \
         WHEN 'n' THEN 'set null' WHEN 'd' THEN 'set default' END"
    )
}

/// The introspection queries, one per object kind, with what they read (for errors).
fn queries() -> Vec<(&'static str, String)> {
    let history = quote_literal(HISTORY_TABLE);
    let ns = user_schema("n");
    vec![
        (
            "extensions",
            "SELECT 'extension', ARRAY[e.extname::text], NULL::text, NULL::text[], \
                    jsonb_build_object('version', e.extversion, 'schema', n.nspname) \
             FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                .to_string(),
        ),
        (
            "schemas",
            format!(
                "SELECT 'schema', ARRAY[n.nspname::text], NULL::text, NULL::text[], '{{}}'::jsonb \
                 FROM pg_namespace n WHERE {ns} AND {}",
                not_in_extension("pg_namespace", "n.oid")
            ),
        ),
        (
            "enums",
            format!(
                "SELECT 'enum', ARRAY[n.nspname::text, t.typname::text], 'schema', ARRAY[n.nspname::text], \
                        jsonb_build_object('values', coalesce((SELECT jsonb_agg(e.enumlabel ORDER BY e.enumsortorder) \
                                                               FROM pg_enum e WHERE e.enumtypid = t.oid), '[]'::jsonb)) \
                 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                 WHERE t.typtype = 'e' AND {ns} AND {}",
                not_in_extension("pg_type", "t.oid")
            ),
        ),
        (
            "domains",
            format!(
                "SELECT 'domain', ARRAY[n.nspname::text, t.typname::text], 'schema', ARRAY[n.nspname::text], \
                        jsonb_strip_nulls(jsonb_build_object( \
                          'type', format_type(t.typbasetype, t.typtypmod), \
                          'not_null', t.typnotnull, \
                          'default', pg_get_expr(t.typdefaultbin, 0), \
                          'collation', CASE WHEN t.typcollation <> b.typcollation THEN t.typcollation::regcollation::text END, \
                          'checks', (SELECT jsonb_object_agg(k.conname, pg_get_constraintdef(k.oid)) \
                                     FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c'))) \
                 FROM pg_type t JOIN pg_type b ON b.oid = t.typbasetype JOIN pg_namespace n ON n.oid = t.typnamespace \
                 WHERE t.typtype = 'd' AND {ns} AND {}",
                not_in_extension("pg_type", "t.oid")
            ),
        ),
        (
            "composite types",
            format!(
                "SELECT 'composite_type', ARRAY[n.nspname::text, t.typname::text], 'schema', ARRAY[n.nspname::text], \
                        jsonb_build_object('attributes', coalesce((SELECT jsonb_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) \
                                                                   FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::jsonb)) \
                 FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid JOIN pg_namespace n ON n.oid = t.typnamespace \
                 WHERE t.typtype = 'c' AND c.relkind = 'c' AND {ns} AND {}",
                not_in_extension("pg_type", "t.oid")
            ),
        ),
        (
            "tables",
            format!(
                "SELECT 'table', ARRAY[n.nspname::text, c.relname::text], 'schema', ARRAY[n.nspname::text], \
                        jsonb_strip_nulls(jsonb_build_object( \
                          'type', CASE c.relkind WHEN 'p' THEN 'partitioned' WHEN 'f' THEN 'foreign' ELSE 'ordinary' END, \
                          'unlogged', c.relpersistence = 'u', \
                          'partition_key', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
                          'partition_bound', CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
                          'inherits', (SELECT jsonb_agg(i.inhparent::regclass::text ORDER BY i.inhseqno) FROM pg_inherits i WHERE i.inhrelid = c.oid), \
                          'row_level_security', CASE WHEN c.relrowsecurity THEN CASE WHEN c.relforcerowsecurity THEN 'forced' ELSE 'enabled' END END, \
                          'options', to_jsonb(c.reloptions))) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'f') AND c.relname <> {history} AND {ns} AND {}",
                not_in_extension("pg_class", "c.oid")
            ),
        ),
        (
            "views",
            format!(
                "SELECT CASE c.relkind WHEN 'm' THEN 'materialized_view' ELSE 'view' END, \
                        ARRAY[n.nspname::text, c.relname::text], 'schema', ARRAY[n.nspname::text], \
                        jsonb_strip_nulls(jsonb_build_object('definition', pg_get_viewdef(c.oid), 'options', to_jsonb(c.reloptions))) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('v', 'm') AND {ns} AND {}",
                not_in_extension("pg_class", "c.oid")
            ),
        ),
        (
            "columns",
            format!(
                "SELECT 'column', ARRAY[n.nspname::text, c.relname::text, a.attname::text], 'table', ARRAY[n.nspname::text, c.relname::text], \
                        jsonb_strip_nulls(jsonb_build_object( \
                          'type', format_type(a.atttypid, a.atttypmod), \
                          'not_null', a.attnotnull, \
                          'default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
                          'generated', CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
                          'identity', CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END, \
                          'collation', CASE WHEN a.attcollation <> t.typcollation THEN a.attcollation::regcollation::text END)) \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f') \
                   AND c.relname <> {history} AND {ns} AND {}",
                not_in_extension("pg_class", "c.oid")
            ),
        ),
        (
            "constraints",
            format!(
                "SELECT 'constraint', ARRAY[n.nspname::text, c.relname::text, k.conname::text], 'table', ARRAY[n.nspname::text, c.relname::text], \
                        jsonb_strip_nulls(jsonb_build_object( \
                          'type', CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'f' THEN 'foreign key' WHEN 'u' THEN 'unique' \
                                                 WHEN 'c' THEN 'check' ELSE 'exclusion' END, \
                          'definition', pg_get_constraintdef(k.oid), \
                          'on_update', CASE WHEN k.contype = 'f' THEN {} END, \
                          'on_delete', CASE WHEN k.contype = 'f' THEN {} END)) \
                 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE k.contype IN ('p', 'f', 'u', 'c', 'x') AND k.conparentid = 0 AND c.relkind IN ('r', 'p', 'f') \
                   AND c.relname <> {history} AND {ns} AND {}",
                fk_action("k.confupdtype"),
                fk_action("k.confdeltype"),
                not_in_extension("pg_class", "c.oid")
            ),
        ),
        (
            "indexes",
            format!(
                "SELECT 'index', ARRAY[n.nspname::text, ic.relname::text], \
                        CASE t.relkind WHEN 'm' THEN 'materialized_view' ELSE 'table' END, ARRAY[tn.nspname::text, t.relname::text], \
                        jsonb_strip_nulls(jsonb_build_object( \
                          'table', t.oid::regclass::text, \
                          'definition', pg_get_indexdef(i.indexrelid), \
                          'unique', i.indisunique, \
                          'predicate', pg_get_expr(i.indpred, i.indrelid), \
                          'valid', i.indisvalid)) \
                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace \
                 JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
                 WHERE t.relkind IN ('r', 'p', 'm') AND t.relname <> {history} AND {} AND {} \
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))",
                user_schema("tn"),
                not_in_extension("pg_class", "t.oid")
            ),
        ),
        (
            "sequences",
            format!(
                "SELECT 'sequence', ARRAY[n.nspname::text, c.relname::text], \
                        CASE WHEN t.oid IS NULL THEN 'schema' ELSE 'table' END, \
                        CASE WHEN t.oid IS NULL THEN ARRAY[n.nspname::text] ELSE ARRAY[tn.nspname::text, t.relname::text] END, \
                        jsonb_strip_nulls(jsonb_build_object( \
                          'type', format_type(s.seqtypid, NULL), \
                          'start', s.seqstart, 'increment', s.seqincrement, 'min', s.seqmin, 'max', s.seqmax, \
                          'cache', s.seqcache, 'cycle', s.seqcycle, \
                          'owned_by', CASE WHEN t.oid IS NOT NULL THEN t.oid::regclass::text || '.' || quote_ident(a.attname) END)) \
                 FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_depend o ON o.classid = 'pg_class'::regclass AND o.objid = c.oid \
                                      AND o.refclassid = 'pg_class'::regclass AND o.deptype IN ('a', 'i') \
                 LEFT JOIN pg_class t ON t.oid = o.refobjid LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace \
                 LEFT JOIN pg_attribute a ON a.attrelid = o.refobjid AND a.attnum = o.refobjsubid \
                 WHERE {ns} AND {}",
                not_in_extension("pg_class", "c.oid")
            ),
        ),
        (
            "functions",
            format!(
                "SELECT 'function', ARRAY[n.nspname::text, p.proname::text || '(' || oidvectortypes(p.proargtypes) || ')'], \
                        'schema', ARRAY[n.nspname::text], \
                        jsonb_strip_nulls(jsonb_build_object( \
                          'kind', CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window' ELSE 'function' END, \
                          'arguments', pg_get_function_arguments(p.oid), \
                          'returns', pg_get_function_result(p.oid), \
                          'language', l.lanname, \
                          'volatility', CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END, \
                          'strict', p.proisstrict, \
                          'security_definer', p.prosecdef, \
                          'leakproof', p.proleakproof, \
                          'parallel', CASE p.proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted' ELSE 'unsafe' END, \
                          'cost', p.procost, \
                          'rows', CASE WHEN p.proretset THEN p.prorows END, \
                          'config', to_jsonb(p.proconfig), \
                          'body', CASE WHEN p.prokind = 'a' THEN NULL \
                                       WHEN p.prosrc = '' THEN pg_get_functiondef(p.oid) \
                                       ELSE p.prosrc END, \
                          'aggregate', CASE WHEN p.prokind = 'a' THEN \
                             (SELECT jsonb_strip_nulls(jsonb_build_object( \
                                       'transition', g.aggtransfn::oid::regprocedure::text, \
                                       'state_type', format_type(g.aggtranstype, NULL), \
                                       'final', NULLIF(g.aggfinalfn::oid, 0)::regprocedure::text, \
                                       'combine', NULLIF(g.aggcombinefn::oid, 0)::regprocedure::text, \
                                       'initial', g.agginitval)) \
                              FROM pg_aggregate g WHERE g.aggfnoid = p.oid) END)) \
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang \
                 WHERE {ns} AND {}",
                not_in_extension("pg_proc", "p.oid")
            ),
        ),
        (
            "triggers",
            format!(
                "SELECT 'trigger', ARRAY[n.nspname::text, c.relname::text, g.tgname::text], \
                        CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized_view' ELSE 'table' END, \
                        ARRAY[n.nspname::text, c.relname::text], \
                        jsonb_build_object( \
                          'definition', pg_get_triggerdef(g.oid), \
                          'enabled', CASE g.tgenabled WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'replica only' \
                                                      WHEN 'A' THEN 'always' ELSE 'enabled' END) \
                 FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE NOT g.tgisinternal AND g.tgparentid = 0 AND c.relname <> {history} AND {ns} AND {}",
                not_in_extension("pg_class", "c.oid")
            ),
        ),
    ]
}
