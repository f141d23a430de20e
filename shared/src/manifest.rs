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
/// Bumped when a reader of an older pgward could misread a newer manifest.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

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
}

impl BackupManifest {
    /// Total bytes of the backup's files.
    pub fn size_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
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

/// `<database>-<env>-<UTC yyyymmddTHHMMSSZ>` (SPEC §3); `default` without an environment.
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
}
