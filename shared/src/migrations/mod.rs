//! The Prisma migrations folder: `<name>/migration.sql` (+ optional `down.sql`) and
//! `migration_lock.toml`, read, checked and ordered exactly as Prisma Migrate does.
//!
//! Order is JavaScript's `localeCompare` of the folder names (ICU root collation), which is
//! what Prisma sorts with; it differs from byte order for mixed case, `-` against `_`,
//! digits against punctuation and non-ASCII names. Checksums are the lowercase hex SHA-256
//! of the file's raw bytes; CRLF and LF variants of one file are taken as the same file.

pub mod batch;
pub mod engine;
pub mod history;
pub mod lock;
pub mod report;
pub mod results;
pub mod state;
pub mod trace;
pub mod warnings;

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use icu_collator::options::CollatorOptions;
use icu_collator::{Collator, CollatorBorrowed};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The file Prisma writes beside the migrations to pin the provider.
pub const LOCK_FILE: &str = "migration_lock.toml";
/// The forward script of a migration.
pub const MIGRATION_FILE: &str = "migration.sql";
/// pgward's reverse script of a migration.
pub const DOWN_FILE: &str = "down.sql";

/// One migration folder.
#[derive(Debug, Clone)]
pub struct LocalMigration {
    /// The folder name, which is the migration's name in `_prisma_migrations`.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// migration.sql as stored (raw bytes, checksummed).
    pub raw: Vec<u8>,
    /// Lowercase hex SHA-256 of `raw`.
    pub checksum: String,
    /// down.sql, when present.
    pub down: Option<PathBuf>,
}

impl LocalMigration {
    /// The script as text for the server: UTF-8 checked, a leading byte-order mark removed.
    pub fn script(&self) -> Result<&str> {
        script_text(&self.raw, &self.dir.join(MIGRATION_FILE))
    }

    /// Whether a checksum recorded in the history belongs to this file, allowing for the
    /// CRLF/LF conversion version control may have applied since.
    pub fn matches_checksum(&self, recorded: &str) -> bool {
        checksum_matches(&self.raw, recorded)
    }

    /// Reads down.sql, if any.
    pub fn read_down(&self) -> Result<Option<String>> {
        let Some(path) = &self.down else {
            return Ok(None);
        };
        let raw = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        Ok(Some(script_text(&raw, path)?.to_string()))
    }
}

/// The migrations folder, read and ordered.
#[derive(Debug, Clone)]
pub struct MigrationsFolder {
    /// The folder.
    pub path: PathBuf,
    /// The migrations, in Prisma's order.
    pub migrations: Vec<LocalMigration>,
    /// Whether migration_lock.toml exists (a warning when it does not).
    pub has_lock_file: bool,
}

impl MigrationsFolder {
    /// Reads `path`: every sub-folder is a migration and must hold migration.sql.
    pub fn read(path: &Path) -> Result<MigrationsFolder> {
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MigrationsDirMissing { path: path.into() })
            }
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let lock_path = path.join(LOCK_FILE);
        let has_lock_file = lock_path.is_file();
        if has_lock_file {
            check_lock_file(&lock_path)?;
        }
        let mut migrations = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read", path, e))?;
            let dir = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with('.') || !dir.is_dir() {
                continue;
            }
            let sql_path = dir.join(MIGRATION_FILE);
            let raw = match std::fs::read(&sql_path) {
                Ok(raw) => raw,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::MigrationSqlMissing { path: sql_path })
                }
                Err(e) => return Err(Error::io("read", &sql_path, e)),
            };
            script_text(&raw, &sql_path)?;
            let down_path = dir.join(DOWN_FILE);
            migrations.push(LocalMigration {
                checksum: checksum(&raw),
                raw,
                down: down_path.is_file().then_some(down_path),
                name,
                dir,
            });
        }
        let collator = prisma_collator();
        migrations.sort_by(|a, b| prisma_order(&collator, &a.name, &b.name));
        Ok(MigrationsFolder {
            path: path.to_path_buf(),
            migrations,
            has_lock_file,
        })
    }

    /// Like [`MigrationsFolder::read`], but an empty folder is an error.
    pub fn read_non_empty(path: &Path) -> Result<MigrationsFolder> {
        let folder = MigrationsFolder::read(path)?;
        if folder.migrations.is_empty() {
            return Err(Error::MigrationsDirEmpty { path: path.into() });
        }
        Ok(folder)
    }

    /// The migration with this name.
    pub fn get(&self, name: &str) -> Option<&LocalMigration> {
        self.migrations.iter().find(|m| m.name == name)
    }
}

fn check_lock_file(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let value: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Config {
        path: path.into(),
        reason: e.message().to_string(),
    })?;
    match value.get("provider").and_then(|p| p.as_str()) {
        Some("postgresql") | Some("postgres") | None => Ok(()),
        Some(other) => Err(Error::ProviderMismatch {
            path: path.into(),
            provider: other.to_string(),
        }),
    }
}

fn script_text<'a>(raw: &'a [u8], path: &Path) -> Result<&'a str> {
    let text = std::str::from_utf8(raw).map_err(|e| Error::NotUtf8 {
        path: path.into(),
        offset: e.valid_up_to(),
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Lowercase hex SHA-256, Prisma's migration checksum.
pub fn checksum(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// Whether `recorded` is the checksum of `raw`, or of its CRLF-to-LF or LF-to-CRLF variant.
pub fn checksum_matches(raw: &[u8], recorded: &str) -> bool {
    if checksum(raw) == recorded {
        return true;
    }
    let text = String::from_utf8_lossy(raw);
    let lf = text.replace("\r\n", "\n");
    if checksum(lf.as_bytes()) == recorded {
        return true;
    }
    checksum(lf.replace('\n', "\r\n").as_bytes()) == recorded
}

/// ICU root collation, as Node's `String.prototype.localeCompare` uses by default.
pub fn prisma_collator() -> CollatorBorrowed<'static> {
    Collator::try_new(Default::default(), CollatorOptions::default())
        .expect("the root collation is compiled into icu_collator")
}

/// Prisma's order of two migration names: `localeCompare`, byte order to break ties.
pub fn prisma_order(collator: &CollatorBorrowed<'_>, a: &str, b: &str) -> Ordering {
    collator.compare(a, b).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let c = prisma_collator();
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort_by(|a, b| prisma_order(&c, a, b));
        v
    }

    /// Expected orders were produced with Node's `[...].sort((a, b) => a.localeCompare(b))`.
    #[test]
    fn order_is_locale_compare_not_bytes() {
        assert_eq!(sorted(&["b", "B", "a", "A"]), ["a", "A", "b", "B"]);
        assert_eq!(sorted(&["1_x", "1-x", "1x"]), ["1_x", "1-x", "1x"]);
        assert_eq!(
            sorted(&[
                "202310122339_NewColumn",
                "20230912150657_initialize",
                "20231013165123_create"
            ]),
            [
                "20230912150657_initialize",
                "202310122339_NewColumn",
                "20231013165123_create"
            ]
        );
        assert_eq!(sorted(&["é", "f", "e"]), ["e", "é", "f"]);
    }

    #[test]
    fn crlf_and_lf_variants_share_a_checksum() {
        let lf = b"CREATE TABLE a (id int);\nSELECT 1;\n";
        let crlf = b"CREATE TABLE a (id int);\r\nSELECT 1;\r\n";
        assert!(checksum_matches(crlf, &checksum(lf)));
        assert!(checksum_matches(lf, &checksum(crlf)));
        assert!(!checksum_matches(
            b"CREATE TABLE b (id int);\n",
            &checksum(lf)
        ));
        assert_eq!(
            checksum(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
