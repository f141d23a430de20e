//! A fresh database per test.
//!
//! Tests share one cluster but must not see each other's tables, migration history or
//! locks, so each works in a database of its own, created empty from `template0` and
//! dropped again when the test ends (also when it panics).

use std::sync::atomic::{AtomicU64, Ordering};

use postgres::{Client, SimpleQueryMessage};

use crate::cluster::{error_chain, Cluster};

/// An empty database on a test cluster, dropped (`WITH (FORCE)`) when this is dropped.
#[derive(Debug)]
pub struct TestDb<'c> {
    /// The database's name, `t_<counter>_<pid>`: unique within the cluster.
    pub name: String,
    cluster: &'c Cluster,
}

impl<'c> TestDb<'c> {
    pub(crate) fn create(cluster: &'c Cluster) -> TestDb<'c> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t_{}_{}",
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        cluster
            .client("postgres")
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE template0",
                quote_ident(&name)
            ))
            .unwrap_or_else(|e| {
                panic!("could not create test database {name}: {}", error_chain(&e))
            });
        TestDb { name, cluster }
    }

    /// The cluster this database lives on.
    pub fn cluster(&self) -> &'c Cluster {
        self.cluster
    }

    /// A URL over TCP with the superuser's password, the way users pass it:
    /// `postgresql://pgward:pgward-test-secret-pw@127.0.0.1:PORT/NAME`.
    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }

    /// A URL over the unix socket, the socket dir percent-encoded as the host:
    /// `postgresql://pgward@%2Ftmp%2Fpgward-test-x%2Fsocket:PORT/NAME`.
    pub fn socket_url(&self) -> String {
        self.cluster.socket_url(&self.name)
    }

    /// A new connection over the unix socket as the superuser, without TLS.
    pub fn client(&self) -> Client {
        self.cluster.client(&self.name)
    }

    /// Runs `sql` (any number of statements) with psql over the unix socket and returns
    /// its unaligned, tuples-only output without the final newline. Panics with psql's
    /// stderr if any statement fails.
    pub fn psql(&self, sql: &str) -> String {
        match self
            .cluster
            .try_psql(&self.cluster.socket_conninfo(&self.name), sql)
        {
            Ok(stdout) => stdout.trim_end_matches('\n').to_string(),
            Err(stderr) => panic!("psql on {} failed for:\n{sql}\n{stderr}", self.name),
        }
    }

    /// Loads a `--backup-format sql` backup file into this database the way a user without
    /// pgward would: `zstd -dc FILE | psql -v ON_ERROR_STOP=1`. Panics with psql's stderr
    /// when either fails.
    pub fn load_zstd_sql(&self, file: &std::path::Path) {
        use std::process::{Command, Stdio};
        let mut zstd = Command::new("zstd")
            .arg("-dc")
            .arg(file)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the zstd CLI runs (apt-get install zstd)");
        let psql = Command::new(self.cluster.pg_bin("psql"))
            .env_clear()
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.cluster.socket_conninfo(&self.name))
            .stdin(zstd.stdout.take().expect("zstd's stdout is piped"))
            .stdout(Stdio::null())
            .output()
            .expect("psql runs");
        let zstd = zstd.wait().expect("zstd can be waited for");
        assert!(
            zstd.success(),
            "zstd -dc {} failed ({zstd})",
            file.display()
        );
        assert!(
            psql.status.success(),
            "zstd -dc {} | psql failed ({}):\n{}",
            file.display(),
            psql.status,
            String::from_utf8_lossy(&psql.stderr)
        );
    }

    /// Runs a query that returns exactly one row of one column and returns that value in
    /// PostgreSQL's text form (`select count(*) from t` gives `"3"`). Panics otherwise,
    /// and on NULL.
    pub fn query_one_string(&self, sql: &str) -> String {
        let messages = self.client().simple_query(sql).unwrap_or_else(|e| {
            panic!("query on {} failed: {sql}\n{}", self.name, error_chain(&e))
        });
        let rows: Vec<_> = messages
            .iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .collect();
        let [row] = rows.as_slice() else {
            panic!("expected exactly one row, got {}: {sql}", rows.len());
        };
        assert_eq!(row.len(), 1, "expected exactly one column: {sql}");
        row.get(0)
            .unwrap_or_else(|| panic!("the value is NULL: {sql}"))
            .to_string()
    }

    /// Whether the relation `name` (schema-qualified or on the search path) exists.
    pub fn relation_exists(&self, name: &str) -> bool {
        self.query_one_string(&format!("SELECT to_regclass('{name}') IS NOT NULL")) == "t"
    }

    /// Whether table `table` in `public` has a column `column`.
    pub fn column_exists(&self, table: &str, column: &str) -> bool {
        self.query_one_string(&format!(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = '{table}' AND column_name = '{column}'"
        )) == "1"
    }

    /// `pgward-migrate deploy --dir DIR` into this database, which must succeed.
    pub fn deploy(&self, dir: &std::path::Path) {
        crate::run(
            "migrate",
            &[
                "deploy",
                "--dir",
                crate::path_str(dir),
                "--database-url",
                &self.url(),
            ],
            &[],
        )
        .assert_code(0);
    }

    /// The database's schema as `pg_dump -s --no-owner --no-privileges` prints it, minus
    /// the `\restrict`/`\unrestrict` lines whose random key changes on every dump (newer
    /// pg_dump releases print them), so two dumps of the same schema compare equal.
    pub fn pg_dump_schema(&self) -> String {
        self.pg_dump(&["-s", "--no-owner", "--no-privileges"])
    }

    /// [`TestDb::pg_dump_schema`] with owners and privileges (`pg_dump -s`): for
    /// comparing databases of one cluster, whose roles are the same.
    pub fn pg_dump_schema_with_owners(&self) -> String {
        self.pg_dump(&["-s"])
    }

    /// pg_dump's output with `args` (the cluster's own pg_dump, over the unix socket),
    /// through [`without_restrict_lines`].
    pub fn pg_dump(&self, args: &[&str]) -> String {
        let mut pg_dump = self.cluster.client_tool("pg_dump");
        pg_dump
            .args(args)
            .arg("-d")
            .arg(self.cluster.socket_conninfo(&self.name));
        let output = pg_dump
            .output()
            .unwrap_or_else(|e| panic!("could not run {pg_dump:?}: {e}"));
        assert!(
            output.status.success(),
            "pg_dump of {} failed ({}):\n{}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        without_restrict_lines(
            &String::from_utf8(output.stdout).expect("pg_dump prints UTF-8 for a UTF-8 database"),
        )
    }
}

/// `dump` without the `\restrict`/`\unrestrict` lines whose random key changes on every
/// dump (newer pg_dump releases print them), so two dumps of the same thing compare equal.
pub fn without_restrict_lines(dump: &str) -> String {
    dump.lines()
        .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
        .map(|line| format!("{line}\n"))
        .collect()
}

impl Drop for TestDb<'_> {
    fn drop(&mut self) {
        // Errors are ignored: the cluster may already be gone, and a failing drop must
        // not turn a test's real panic into an abort.
        if let Ok(mut client) = self.cluster.connect(crate::SUPERUSER, "postgres") {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&self.name)
            ));
        }
    }
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
