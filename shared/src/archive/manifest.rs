//! `manifest.json`, the last file of every backup: what a backup holds and the checksum of
//! every file. No manifest, no backup: `list`, `verify`, `restore` and `prune` see a folder
//! or S3 prefix without one as an incomplete leftover, never as a backup.
//!
//! `verified.json` sits beside it once `pgward-backup verify` has checked the backup; the
//! manifest itself is never rewritten.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The verification record's file name.
pub const VERIFIED_FILE: &str = "verified.json";
/// The schema, as `pg_dump --schema-only --format=custom` wrote it.
pub const SCHEMA_FILE: &str = "schema.dump";
/// The `_prisma_migrations` rows at backup time.
pub const MIGRATIONS_FILE: &str = "migrations.json";
/// The one file of a `--format sql` backup.
pub const SQL_FILE: &str = "backup.sql.zst";
/// The large objects of a directory-format backup: their owners, privileges, comments
/// and contents, as `pg_dump --data-only --format=custom` of nothing but them writes it,
/// zstd-compressed as it streams.
pub const LARGE_OBJECTS_FILE: &str = "large_objects.dump.zst";
/// Bumped when a reader of an older pgward could misread a newer manifest. 2: the large
/// objects (`large_objects`, [`LARGE_OBJECTS_FILE`]), which a reader of version 1 would
/// leave out of a restore without a word. 3: encrypted files (`encryption`), which an
/// older reader would take for corrupt ones; only encrypted backups carry 3, so older
/// pgwards keep reading the rest ([`manifest_version`]).
pub const MANIFEST_FORMAT_VERSION: u32 = 3;

/// The format version a manifest is written with: the oldest that reads it whole.
pub fn manifest_version(encrypted: bool) -> u32 {
    if encrypted {
        MANIFEST_FORMAT_VERSION
    } else {
        2
    }
}

/// How the backup is laid out.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackupFormat {
    /// schema.dump + zstd COPY chunks, restored in parallel by pgward-restore.
    Directory,
    /// One `backup.sql.zst`, restorable with `zstd -dc FILE | psql`.
    Sql,
}

/// How a table's chunks encode rows: PostgreSQL's COPY text or binary format.
///
/// Binary is chosen for tables whose every column has a built-in type (an OID below
/// 10000, fixed across PostgreSQL versions; for arrays, the element type too) with binary
/// send/receive functions: the server skips text output and input functions (bytea's
/// hex doubles its size), which makes backup and, even more, restore cheaper. Tables with
/// a user-defined type (an enum, a domain, a composite, an extension's type) stay text,
/// because binary arrays and records carry type OIDs that differ between databases.
/// Manifests written before this field existed read as text.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CopyFormat {
    /// COPY's text format: one line a row.
    #[default]
    Text,
    /// COPY's binary format.
    Binary,
}

impl CopyFormat {
    /// The COPY option list for this format, with `extra` options appended
    /// (`(FORMAT binary, FREEZE)`); empty for plain text without extras.
    pub fn copy_options(self, extra: &[&str]) -> String {
        let mut options: Vec<&str> = Vec::new();
        if self == CopyFormat::Binary {
            options.push("FORMAT binary");
        }
        options.extend_from_slice(extra);
        if options.is_empty() {
            String::new()
        } else {
            format!(" ({})", options.join(", "))
        }
    }
}

/// One file of the backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestFile {
    /// Path inside the backup (`data/public.users.0000.copy.zst`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the stored bytes.
    pub sha256: String,
}

/// One chunk of a table: a ctid range read by one worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestChunk {
    /// The chunk's file.
    pub file: String,
    /// Rows in it.
    pub rows: u64,
    /// First heap page of the range.
    pub first_page: u64,
    /// Page after the range; `None` for the open-ended last chunk.
    pub end_page: Option<u64>,
}

/// One table's data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestTable {
    /// Schema.
    pub schema: String,
    /// Table.
    pub name: String,
    /// The columns COPY reads and writes (generated columns excluded), quoted.
    pub columns: Vec<String>,
    /// The COPY format of its chunks.
    #[serde(default)]
    pub copy_format: CopyFormat,
    /// Rows in the snapshot.
    pub rows: u64,
    /// Its chunks, in page order.
    pub chunks: Vec<ManifestChunk>,
}

impl ManifestTable {
    /// `"schema"."name"`, quoted for SQL.
    pub fn qualified(&self) -> String {
        format!(
            "{}.{}",
            crate::sql::quote_ident(&self.schema),
            crate::sql::quote_ident(&self.name)
        )
    }
}

/// A sequence's value at backup time (sequences are not MVCC: read as late as possible).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestSequence {
    /// Schema.
    pub schema: String,
    /// Sequence.
    pub name: String,
    /// `last_value`.
    pub last_value: i64,
    /// `is_called`.
    pub is_called: bool,
}

/// The database's large objects (`lo_create`, `lo_from_bytea`; `pg_largeobject`) at
/// backup time. They belong to no table, so they are counted apart from the tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ManifestLargeObjects {
    /// How many the database held in the backup's snapshot.
    pub count: u64,
    /// Whether they were left out (`pgward-backup backup --no-large-objects`): then the
    /// backup holds none of them, and a restore says so.
    #[serde(default)]
    pub excluded: bool,
}

impl ManifestLargeObjects {
    /// Whether the backup holds large objects to restore.
    pub fn held(&self) -> bool {
        self.count > 0 && !self.excluded
    }
}

/// A materialized view, and whether it held rows at backup time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestView {
    /// Schema.
    pub schema: String,
    /// View.
    pub name: String,
    /// Whether it was populated (`pg_class.relispopulated`): one created `WITH NO DATA`
    /// and never refreshed stays empty after a restore, as pg_restore leaves it.
    pub populated: bool,
}

/// A setting made with `ALTER DATABASE ... SET` (no role) or `ALTER ROLE ... IN DATABASE
/// ... SET`, as `pg_db_role_setting` stores it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestSetting {
    /// The role it applies to; none for every role.
    pub role: Option<String>,
    /// The parameter (`search_path`, `TimeZone`, ...).
    pub name: String,
    /// Its value as stored (a list parameter as `"$user", public`).
    pub value: String,
}

/// A privilege on the database (`GRANT CONNECT ON DATABASE ... TO ...`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestGrant {
    /// `CONNECT`, `CREATE` or `TEMPORARY`.
    pub privilege: String,
    /// The role it is granted to; none for PUBLIC.
    pub grantee: Option<String>,
    /// WITH GRANT OPTION.
    pub grantable: bool,
}

/// What belongs to the database itself rather than to an object in it, which
/// `pg_dump --schema-only` keeps only for `pg_restore --create`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ManifestDatabase {
    /// `COMMENT ON DATABASE`.
    pub comment: Option<String>,
    /// Its settings, database-wide first.
    pub settings: Vec<ManifestSetting>,
    /// Its privileges, when they differ from PostgreSQL's default (CONNECT and TEMPORARY
    /// for PUBLIC, everything for the owner); none for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<ManifestGrant>>,
}

/// A relation named by schema and name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestRelation {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
}

/// manifest.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupManifest {
    /// [`MANIFEST_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The backup's id (its folder or prefix name).
    pub id: String,
    /// How it is laid out.
    pub format: BackupFormat,
    /// pgward's version.
    pub tool_version: String,
    /// The database backed up.
    pub database: String,
    /// The environment name, if one was selected.
    pub env: Option<String>,
    /// `--label`.
    pub label: Option<String>,
    /// `server_version` of the source.
    pub server_version: String,
    /// `pg_dump --version` used for the schema.
    pub pg_dump_version: String,
    /// Database encoding, collation and ctype (restore recreates the database with them).
    pub encoding: String,
    /// `datcollate`.
    pub lc_collate: String,
    /// `datctype`.
    pub lc_ctype: String,
    /// When the exported snapshot was taken (server clock).
    pub snapshot_time: DateTime<Utc>,
    /// When pgward started and finished writing.
    pub started_at: DateTime<Utc>,
    /// See `started_at`.
    pub finished_at: DateTime<Utc>,
    /// zstd level of the data files.
    pub zstd_level: i32,
    /// The newest finished migration in `_prisma_migrations`, if any.
    pub migration_head: Option<String>,
    /// Every file but the manifest, with size and checksum.
    pub files: Vec<ManifestFile>,
    /// Every table with its row count and chunks (empty for the sql format).
    pub tables: Vec<ManifestTable>,
    /// Sequence values.
    pub sequences: Vec<ManifestSequence>,
    /// The large objects; `None` in a manifest written before pgward counted them (a
    /// directory-format backup of then holds none, whatever the database had; a
    /// sql-format one's plain dump carried them, uncounted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_objects: Option<ManifestLargeObjects>,
    /// Every materialized view and whether it was populated; a restore refreshes only
    /// those that were. Absent in manifests of older versions, whose restore refreshes
    /// every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub materialized_views: Option<Vec<ManifestView>>,
    /// Tables of [`BackupManifest::tables`] that an extension created and marked with
    /// `pg_extension_config_dump`: `CREATE EXTENSION` recreates them with the extension's
    /// own rows, so their backed-up rows (those the extension's filter selects, as pg_dump
    /// takes them) are added by restore without emptying the table first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_config_tables: Vec<ManifestRelation>,
    /// The database's own comment and settings, which a restore that creates the
    /// database gives it (absent in manifests of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_properties: Option<ManifestDatabase>,
    /// Client-side encryption of every file but the manifest (age): the scheme and the
    /// recipients' public keys, never a key. Absent: the files are in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<ManifestEncryption>,
    /// The S3 storage class the files were written with, when one was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// What a manifest says of an encrypted backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestEncryption {
    /// `age`.
    pub scheme: String,
    /// The recipients (public keys) every file was encrypted to.
    pub recipients: Vec<String>,
    /// Every file but the manifest is encrypted (`all`).
    pub files: String,
}

impl BackupManifest {
    /// Total bytes of the backup's files (saturating: a crafted manifest's sizes may add up
    /// past u64).
    pub fn size_bytes(&self) -> u64 {
        self.files
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.size))
    }

    /// Total rows of the backup's tables (saturating, like [`Self::size_bytes`]).
    pub fn total_rows(&self) -> u64 {
        self.tables
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.rows))
    }

    /// The entry for `path`.
    pub fn file(&self, path: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Whether `table` is an extension's configuration table (see
    /// [`BackupManifest::extension_config_tables`]).
    pub fn is_extension_config(&self, table: &ManifestTable) -> bool {
        self.extension_config_tables
            .iter()
            .any(|r| r.schema == table.schema && r.name == table.name)
    }
}

/// verified.json: written by `pgward-backup verify` when every check passed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerificationRecord {
    /// When.
    pub verified_at: DateTime<Utc>,
    /// Whether `--deep` (a restore into a scratch database) was part of it.
    pub deep: bool,
    /// pgward's version.
    pub tool_version: String,
    /// SHA-256 of the manifest.json whose files were checked and decompressed; a restore
    /// of the same manifest then needs only the files' checksums (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
}

/// `<database>-<env>-<UTC yyyymmddTHHMMSSZ>` (docs/contract.md §3); `default` without an environment.
pub fn backup_id(database: &str, env: Option<&str>, at: DateTime<Utc>) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "{}-{}-{}",
        safe(database),
        safe(env.unwrap_or("default")),
        at.format("%Y%m%dT%H%M%SZ")
    )
}

/// How many backups of one database one UTC second can name: the first takes the plain
/// id, the next ones `-2` to `-9` (a cron backup and a pre-migration one can meet).
pub const IDS_PER_SECOND: u32 = 9;

/// The ids a backup first named `base` may take, in the order to try them: `base`,
/// `base-2`, ... `base-9`.
pub fn id_candidates(base: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(base.to_string())
        .chain((2..=IDS_PER_SECOND).map(move |n| format!("{base}-{n}")))
}

/// The time in a backup id, for sorting and retention (`None`: not a backup id). Ids of
/// one second sort in the order they were taken.
pub fn time_of_id(id: &str) -> Option<DateTime<Utc>> {
    let mut parts = id.rsplit('-');
    let last = parts.next()?;
    let stamp = match last.parse::<u32>() {
        Ok(n) if (2..=IDS_PER_SECOND).contains(&n) => parts.next()?,
        _ => last,
    };
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Longest id or file path a manifest may hold (bytes): far above what pgward writes.
const MAX_NAME_BYTES: usize = 255;

/// Checks a backup id, the one name a backup is addressed by (its folder or S3 prefix):
/// ASCII letters, digits, `_`, `-` and `.`, not beginning with `.` or `-`, at most
/// `MAX_NAME_BYTES`. pgward's own ids use only `[A-Za-z0-9_-]`; anything else (`..`,
/// `/`, an absolute path, a space, a NUL) could reach outside the location when joined to
/// it, so every reader and every storage call refuses it. The problem, if any.
pub fn check_id(id: &str) -> std::result::Result<(), String> {
    check_segment(id).map_err(|why| format!("`{}` is not a backup id: {why}", shown(id)))
}

/// Checks a file path inside a backup as a manifest lists it (`data/t00000.00000.copy.zst`):
/// `/`-separated segments, each as [`check_id`] allows (so no empty segment, no `.` or
/// `..`, no leading `/`). The problem, if any.
pub fn check_path(path: &str) -> std::result::Result<(), String> {
    if path.len() > MAX_NAME_BYTES {
        return Err(format!(
            "`{}` is not a backup file path: too long",
            shown(path)
        ));
    }
    path.split('/')
        .try_for_each(check_segment)
        .map_err(|why| format!("`{}` is not a backup file path: {why}", shown(path)))
}

fn check_segment(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty (an absolute path or a doubled `/`)");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("too long");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err("begins with `.` or `-`");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err("only ASCII letters, digits, `_`, `-` and `.` are allowed");
    }
    Ok(())
}

/// A name from a manifest, printable in a message whatever it holds.
fn shown(name: &str) -> String {
    let escaped: String = name.escape_debug().collect();
    match escaped.char_indices().nth(80) {
        Some((end, _)) => format!("{}...", &escaped[..end]),
        None => escaped,
    }
}

/// A column name as the manifest stores it (PostgreSQL's `quote_ident` of the name: bare
/// when lowercase and simple, else double-quoted), back to the plain name. Anything else
/// (`id) ; DROP ...`) is refused: the column list is quoted again from these names before
/// it reaches SQL, never taken from the manifest as it stands.
pub fn column_name(stored: &str) -> std::result::Result<String, String> {
    let bad = || format!("column `{}` is not a quoted identifier", shown(stored));
    if let Some(inner) = stored.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        let mut name = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '"' && chars.next() != Some('"') {
                return Err(bad());
            }
            name.push(c);
        }
        if name.is_empty() || name.contains('\0') {
            return Err(bad());
        }
        return Ok(name);
    }
    let mut bytes = stored.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if first_ok
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'$')
    {
        Ok(stored.to_string())
    } else {
        Err(bad())
    }
}

impl ManifestTable {
    /// The COPY column list, `"a", "b"`, quoted here from the column names (see
    /// [`column_name`]).
    pub fn column_list(&self) -> std::result::Result<String, String> {
        let names = self
            .columns
            .iter()
            .map(|c| column_name(c).map(|n| crate::sql::quote_ident(&n)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(names.join(", "))
    }
}

impl BackupManifest {
    /// Reads manifest.json's `bytes` as found in the folder or prefix `folder`: parsed,
    /// then [`Self::check_addresses`]. The one entry point from bytes to a manifest that
    /// may be used (`pgward-backup`'s reader calls it); the problem, if any.
    pub fn parse(bytes: &[u8], folder: &str) -> std::result::Result<BackupManifest, String> {
        let manifest: BackupManifest = serde_json::from_slice(bytes)
            .map_err(|e| format!("{MANIFEST_FILE} cannot be read: {e}"))?;
        // A newer format may hold what this version would silently leave out of a restore
        // (as version 1 readers would leave out large objects).
        if manifest.format_version > MANIFEST_FORMAT_VERSION {
            return Err(format!(
                "{MANIFEST_FILE} has format version {}, newer than the {MANIFEST_FORMAT_VERSION} this pgward reads: it was written by a newer pgward, whose backups this one could restore incompletely; use that pgward (or a newer one) for it",
                manifest.format_version
            ));
        }
        manifest
            .check_addresses(folder)
            .map_err(|problem| format!("{MANIFEST_FILE} is not to be trusted: {problem}"))?;
        Ok(manifest)
    }

    /// Everything in the manifest that names a place, checked before any of it is used:
    /// the id equals `folder`, the name the backup was found under (a manifest copied or
    /// crafted into another folder would otherwise make verify check one backup and
    /// restore or prune act on another); every file path and chunk file passes
    /// [`check_path`] and every chunk file is a listed file (checked with its SHA-256);
    /// every column passes [`column_name`]. Every problem found, or none.
    pub fn check_addresses(&self, folder: &str) -> std::result::Result<(), String> {
        let mut problems = Vec::new();
        if let Err(e) = check_id(folder) {
            problems.push(e);
        }
        if self.id != folder {
            problems.push(format!(
                "its id `{}` is not the name of the folder it is in ({folder})",
                shown(&self.id)
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.files {
            if let Err(e) = check_path(&f.path) {
                problems.push(e);
            } else if f.path == MANIFEST_FILE || f.path == VERIFIED_FILE {
                problems.push(format!("it lists {} among its files", f.path));
            } else if !seen.insert(f.path.as_str()) {
                problems.push(format!("it lists {} twice", f.path));
            }
        }
        for t in &self.tables {
            if let Err(e) = t.column_list() {
                problems.push(format!(
                    "table {}.{}: {e}",
                    shown(&t.schema),
                    shown(&t.name)
                ));
            }
            for c in &t.chunks {
                if let Err(e) = check_path(&c.file) {
                    problems.push(e);
                } else if !seen.contains(c.file.as_str()) {
                    problems.push(format!("chunk {} is not among its files", c.file));
                }
            }
        }
        problems.truncate(5);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_named_as_the_spec_says_and_carry_their_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T03:13:00Z")
            .expect("valid time")
            .with_timezone(&Utc);
        let id = backup_id("app-db", Some("prod"), at);
        assert_eq!(id, "app_db-prod-20261122T031300Z");
        assert_eq!(time_of_id(&id), Some(at));
        assert_eq!(backup_id("app", None, at), "app-default-20261122T031300Z");
        assert_eq!(time_of_id("not-a-backup"), None);

        let same_second: Vec<String> = id_candidates(&id).collect();
        assert_eq!(same_second.len(), IDS_PER_SECOND as usize);
        assert_eq!(same_second[1], "app_db-prod-20261122T031300Z-2");
        assert!(same_second.iter().all(|c| time_of_id(c) == Some(at)));
        let mut sorted = same_second.clone();
        sorted.sort();
        assert_eq!(
            sorted, same_second,
            "ids of one second sort in the order taken"
        );
        assert_eq!(time_of_id("app-default-20261122T031300Z-10"), None);
    }

    #[test]
    fn ids_and_paths_from_a_manifest_cannot_leave_the_location() {
        for good in [
            "app-prod-20261122T031300Z",
            "app-default-20261122T031300Z-2",
            "a.b_c",
        ] {
            assert_eq!(check_id(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "..",
            ".",
            "../x",
            "/abs/path",
            "a/b",
            ".partial-x",
            "-rf",
            "a b",
            "a\0b",
            "é",
            "a\\b",
        ] {
            assert!(check_id(bad).is_err(), "{bad:?} is refused as an id");
        }
        for good in ["schema.dump", "data/t00000.00000.copy.zst"] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
        for bad in [
            "/etc/passwd",
            "../x",
            "data/../../x",
            "data//x",
            "data/",
            "./x",
            "data/.x",
            "c:\\x",
            "data/x y",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} is refused as a path");
        }
        assert!(check_path(&"a".repeat(300)).is_err());
    }

    #[test]
    fn column_names_are_requoted_never_spliced() {
        assert_eq!(column_name("id"), Ok("id".into()));
        assert_eq!(column_name("\"Weird \"\"x\"\"\""), Ok("Weird \"x\"".into()));
        for bad in [
            "id) ; DROP TABLE t; --",
            "\"a\" , \"b\"",
            "\"a\"\"",
            "\"\"",
            "Id",
            "a b",
            "",
            "\"x\"y\"",
        ] {
            assert!(column_name(bad).is_err(), "{bad:?} is refused");
        }
        let table = ManifestTable {
            schema: "s".into(),
            name: "t".into(),
            columns: vec!["id".into(), "\"Name\"".into()],
            copy_format: CopyFormat::Text,
            rows: 0,
            chunks: vec![],
        };
        assert_eq!(table.column_list(), Ok("\"id\", \"Name\"".into()));
    }
}
