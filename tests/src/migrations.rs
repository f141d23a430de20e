//! Prisma migrations folders written by tests: `NAME/migration.sql` (and `down.sql`) per
//! migration beside Prisma's `migration_lock.toml`, as `prisma migrate dev` leaves them.

use std::path::Path;

use tempfile::TempDir;

/// The `migration_lock.toml` Prisma writes for PostgreSQL.
pub const MIGRATION_LOCK: &str = "provider = \"postgresql\"\n";

/// Makes `root` a migrations folder (created when missing, with `migration_lock.toml`)
/// holding `migrations` as `(NAME, migration.sql)`.
pub fn write_migrations(root: &Path, migrations: &[(&str, &str)]) {
    std::fs::create_dir_all(root).expect("the migrations folder can be created");
    std::fs::write(root.join("migration_lock.toml"), MIGRATION_LOCK)
        .expect("migration_lock.toml is writable");
    for (name, sql) in migrations {
        write_migration(root, name, sql, None);
    }
}

/// Writes `root/NAME/migration.sql` (and `down.sql` when given).
pub fn write_migration(root: &Path, name: &str, sql: &str, down: Option<&str>) {
    let folder = root.join(name);
    std::fs::create_dir_all(&folder).expect("the migration folder can be created");
    std::fs::write(folder.join("migration.sql"), sql).expect("migration.sql is writable");
    if let Some(down) = down {
        std::fs::write(folder.join("down.sql"), down).expect("down.sql is writable");
    }
}

/// A migrations folder in a temp dir of its own, removed when dropped.
pub struct Migrations {
    dir: TempDir,
}

impl Migrations {
    /// A new folder holding `migrations` as `(NAME, migration.sql)`.
    pub fn new(migrations: &[(&str, &str)]) -> Migrations {
        let dir = crate::temp_dir("pgward_migrations_");
        write_migrations(dir.path(), migrations);
        Migrations { dir }
    }

    /// Adds `NAME/migration.sql`.
    pub fn add(&self, name: &str, sql: &str) {
        write_migration(self.path(), name, sql, None);
    }

    /// Adds `NAME/migration.sql` and its `down.sql`.
    pub fn add_with_down(&self, name: &str, sql: &str, down: &str) {
        write_migration(self.path(), name, sql, Some(down));
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The folder as the `--dir` argument.
    pub fn arg(&self) -> &str {
        crate::path_str(self.path())
    }
}
