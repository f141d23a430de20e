//! Throwaway PostgreSQL clusters made from the machine's server binaries.
//!
//! Every test process gets one shared cluster ([`cluster()`]), started on first use and
//! tuned for speed over durability; tests isolate themselves with a database each
//! ([`Cluster::create_database`]). Tests about TLS start their own cluster
//! ([`Cluster::start_tls`]), since TLS settings are cluster-wide. The cluster listens on
//! a free port of 127.0.0.1 (password auth, like a real deployment) and on its own
//! unix socket (trust, for the harness's own setup queries).
//!
//! Which PostgreSQL major: the machine's (Debian's 15) unless [`TEST_PG_ENV`]
//! (`PGWARD_TEST_PG=14|15|16|17|18`) names another, which then comes from `target/pg/MAJOR`
//! (installed by `pgw_install test`, see `scripts/lib/install.sh`) with the client
//! programs of the oldest major at least as new as the server's among the machine's,
//! `target/pg/client-16` and `target/pg/client` (18's), as pgward itself picks them. A
//! named major that is not installed fails the test, loudly. [`Cluster::start_major`]
//! starts a cluster of a given major whatever the variable says (the upgrade tests).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use postgres::{Client, NoTls};

use crate::cleanup::{self, CleanupGuard};
use crate::database::TestDb;
use crate::server_user::ServerUser;
use crate::tls::{self, TlsFiles};

/// The superuser role the tests and the binaries connect as.
pub const SUPERUSER: &str = "pgward";
/// [`SUPERUSER`]'s password; distinctive, so tests can assert it never leaks.
pub const SUPERUSER_PASSWORD: &str = "pgward-test-secret-pw";

/// initdb's bootstrap superuser; the harness only uses it over the socket to make
/// [`SUPERUSER`].
const BOOTSTRAP_USER: &str = "postgres";
/// The bootstrap superuser's password, so that no role can log in over TCP without one.
const BOOTSTRAP_PASSWORD: &str = "pgward-bootstrap-pw";

/// How many ports to try: another process can take a free port between our probe and
/// the server's bind.
const PORT_ATTEMPTS: u32 = 5;

/// How long `pg_ctl` may wait for the server to accept connections, in seconds.
const START_TIMEOUT_SECS: &str = "60";

/// Longest unix socket path the kernel accepts (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Settings for a throwaway cluster: nothing is durable, everything is deterministic.
const SERVER_SETTINGS: &str = "\
listen_addresses = '127.0.0.1'
fsync = off
full_page_writes = off
synchronous_commit = off
shared_buffers = 16MB
max_connections = 200
# timestamps render the same whatever the machine's zone
timezone = 'UTC'
log_timezone = 'UTC'
";

/// Characters escaped in a URL's host; everything but RFC 3986's unreserved characters.
const URL_HOST: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Names the PostgreSQL major every cluster of the harness runs (`14` to `18`); unset, the
/// machine's own.
pub const TEST_PG_ENV: &str = "PGWARD_TEST_PG";

/// Whether and how a test cluster uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS is offered, but plain TCP connections are accepted too.
    Optional,
    /// TCP connections without TLS are rejected by `pg_hba.conf`.
    Required,
}

/// A running throwaway PostgreSQL cluster, stopped and deleted when dropped (the shared
/// one from [`cluster()`] when the test process ends).
#[derive(Debug)]
pub struct Cluster {
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The unix socket directory (the socket is `.s.PGSQL.<port>` in it).
    pub socket_dir: PathBuf,
    /// The PostgreSQL bin dir of the client programs (psql, pg_dump, pg_restore) for this
    /// cluster: the server's own for the machine's PostgreSQL, else the oldest installed
    /// that is not older than the server (15's for 14, 16's for 16, 18's for 17 and 18).
    pub bin_dir: PathBuf,
    /// The server's major version (`15`).
    pub major: u32,
    log_file: PathBuf,
    tls: Option<(TlsMode, TlsFiles)>,
    // Last, so that the files above are still there while the guard tears down.
    _cleanup: CleanupGuard,
}

/// The cluster shared by every test in this process, started on first use.
pub fn cluster() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(Cluster::start)
}

impl Cluster {
    /// Starts a private cluster without TLS. Most tests want the shared [`cluster()`].
    pub fn start() -> Cluster {
        start_cluster(None)
    }

    /// Starts a private cluster with TLS in `mode`, its server certificate signed by a
    /// CA made for it ([`Cluster::ca_cert_path`]). Needs the `openssl` CLI.
    pub fn start_tls(mode: TlsMode) -> Cluster {
        start_cluster(Some(mode))
    }

    /// Starts a private cluster of PostgreSQL `major`, whatever [`TEST_PG_ENV`] says;
    /// panics when that major is not installed.
    pub fn start_major(major: u32) -> Cluster {
        start_cluster_of(PgInstall::of_major(major), None)
    }

    /// The path of the PostgreSQL program `name` (`psql`, `pg_dump`, ...) in [`Self::bin_dir`].
    pub fn pg_bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Creates an empty database with a unique name from `template0`; it is dropped
    /// again when the returned [`TestDb`] is.
    pub fn create_database(&self) -> TestDb<'_> {
        TestDb::create(self)
    }

    /// A database name that is free now (a created and dropped test database), for runs
    /// that create it (`pgward-restore --create`); the handle drops it again at the end.
    pub fn vacant_database(&self) -> TestDb<'_> {
        let db = self.create_database();
        self.client("postgres")
            .batch_execute(&format!("DROP DATABASE \"{}\"", db.name))
            .expect("the new test database can be dropped");
        db
    }

    /// The environment that makes pgward run this cluster's own pg_dump, pg_restore and
    /// psql (`PGWARD_PG_BINDIR`), so their version always fits the server.
    pub fn pg_tools_env(&self) -> [(&'static str, &str); 1] {
        [(
            "PGWARD_PG_BINDIR",
            self.bin_dir
                .to_str()
                .expect("the PostgreSQL bin dir is a UTF-8 path"),
        )]
    }

    /// A URL to `database` over TCP as [`SUPERUSER`] with its password:
    /// `postgresql://pgward:pgward-test-secret-pw@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}:{SUPERUSER_PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// A URL to `database` over the unix socket as [`SUPERUSER`] (no password; the
    /// socket trusts), the socket dir percent-encoded as the host:
    /// `postgresql://pgward@%2Ftmp%2Fpgward-test-x%2Fsocket:PORT/DATABASE`.
    pub fn socket_url(&self, database: &str) -> String {
        let host = utf8_percent_encode(
            self.socket_dir
                .to_str()
                .expect("the socket dir is a UTF-8 path"),
            URL_HOST,
        );
        format!("postgresql://{SUPERUSER}@{host}:{}/{database}", self.port)
    }

    /// A libpq conninfo string for `database` over the unix socket as [`SUPERUSER`].
    pub fn socket_conninfo(&self, database: &str) -> String {
        format!(
            "host={} port={} user={SUPERUSER} dbname={}",
            conninfo_value(&self.socket_dir.to_string_lossy()),
            self.port,
            conninfo_value(database)
        )
    }

    /// Connects to `database` over the unix socket as [`SUPERUSER`], without TLS.
    pub fn client(&self, database: &str) -> Client {
        self.connect(SUPERUSER, database).unwrap_or_else(|e| {
            panic!(
                "could not connect to database {database} over {}: {}",
                self.socket_dir.display(),
                error_chain(&e)
            )
        })
    }

    /// Whether database `name` exists on this cluster (a restore created it, or did not).
    pub fn database_exists(&self, name: &str) -> bool {
        self.client("postgres")
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                &[&name],
            )
            .expect("pg_database can be read")
            .get(0)
    }

    /// How many sessions are connected to database `name` (a killed run's statements may
    /// run on until the server notices).
    pub fn sessions_on(&self, name: &str) -> i64 {
        self.client("postgres")
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )
            .expect("pg_stat_activity can be read")
            .get(0)
    }

    /// Runs `sql` with `psql -X -q -A -t -v ON_ERROR_STOP=1` against `conninfo` (a
    /// libpq conninfo string or URL) and returns its stdout, or its stderr if it fails.
    /// For tests of connection rules; [`TestDb::psql`] is the everyday form.
    pub fn try_psql(&self, conninfo: &str, sql: &str) -> Result<String, String> {
        let mut child = self
            .client_tool("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
                "-d",
            ])
            .arg(conninfo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", self.pg_bin("psql").display()));
        let mut stdin = child.stdin.take().expect("psql's stdin is piped");
        let sql = sql.to_string();
        // A separate writer, so a large script cannot deadlock against psql's output.
        let writer = std::thread::spawn(move || stdin.write_all(sql.as_bytes()));
        let output = child
            .wait_with_output()
            .expect("psql's output can be collected");
        let written = writer.join().expect("the psql stdin writer does not panic");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(format!("psql exited with {}: {stderr}", output.status));
        }
        written.unwrap_or_else(|e| panic!("could not send the SQL to psql: {e}"));
        Ok(stdout)
    }

    /// The path of the CA certificate that signed the server certificate of this TLS
    /// cluster (for `sslrootcert`). Panics on a cluster without TLS.
    pub fn ca_cert_path(&self) -> &Path {
        &self.tls_files("ca_cert_path").ca_cert
    }

    /// The path of a CA certificate unrelated to this TLS cluster, for tests that
    /// verification rejects it. Panics on a cluster without TLS.
    pub fn other_ca_cert_path(&self) -> &Path {
        &self.tls_files("other_ca_cert_path").other_ca_cert
    }

    /// The TLS mode this cluster was started with, `None` without TLS.
    pub fn tls_mode(&self) -> Option<TlsMode> {
        self.tls.as_ref().map(|(mode, _)| *mode)
    }

    /// The server's log so far, for tests about what the server saw and for debugging.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_else(|e| {
            panic!(
                "could not read the server log {}: {e}",
                self.log_file.display()
            )
        })
    }

    /// A [`Command`] for the client program `name` from [`Self::bin_dir`], with an
    /// environment that holds nothing but PATH and HOME, so no `PG*` variable of the
    /// calling shell changes what it connects to.
    pub(crate) fn client_tool(&self, name: &str) -> Command {
        let mut command = Command::new(self.pg_bin(name));
        command.env_clear().stdin(Stdio::null());
        for key in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
    }

    /// Connects as `user` to `database` over the unix socket.
    pub(crate) fn connect(&self, user: &str, database: &str) -> Result<Client, postgres::Error> {
        postgres::Config::new()
            .host_path(&self.socket_dir)
            .port(self.port)
            .user(user)
            .dbname(database)
            .application_name("pgward-tests")
            .connect(NoTls)
    }

    fn tls_files(&self, accessor: &str) -> &TlsFiles {
        match &self.tls {
            Some((_, files)) => files,
            None => panic!("{accessor}() needs a TLS cluster: start it with Cluster::start_tls"),
        }
    }
}

fn start_cluster(tls_mode: Option<TlsMode>) -> Cluster {
    start_cluster_of(PgInstall::selected().clone(), tls_mode)
}

fn start_cluster_of(install: PgInstall, tls_mode: Option<TlsMode>) -> Cluster {
    let bin_dir = install.server_bin;
    let server_user = ServerUser::for_this_process();
    let root = tempfile::Builder::new()
        .prefix("pgward-test-")
        .tempdir()
        .expect("could not create a temp dir for the test cluster")
        .keep();
    let data_dir = root.join("data");
    let socket_dir = root.join("socket");
    let log_file = root.join("server.log");
    let cleanup = cleanup::register(&root, &data_dir, &bin_dir.join("pg_ctl"), server_user);

    let socket_path_len = socket_dir.join(".s.PGSQL.65535").as_os_str().len();
    assert!(
        socket_path_len <= MAX_SOCKET_PATH,
        "the test cluster's socket path under {} is {socket_path_len} bytes, more than the \
         {MAX_SOCKET_PATH} a unix socket allows; set TMPDIR to a shorter directory",
        root.display()
    );
    std::fs::create_dir(&socket_dir)
        .unwrap_or_else(|e| panic!("could not create {}: {e}", socket_dir.display()));

    init_data_dir(&bin_dir, &root, &data_dir, server_user);
    let tls = tls_mode.map(|mode| (mode, tls::make_certificates(&root.join("tls"))));
    write_config(&data_dir, &socket_dir, tls.as_ref());
    if let Some(user) = server_user {
        user.chown_tree(&root);
    }
    let port = start_server(&bin_dir, &root, &data_dir, &log_file, server_user);

    let cluster = Cluster {
        port,
        socket_dir,
        bin_dir: install.client_bin,
        major: install.major,
        log_file,
        tls,
        _cleanup: cleanup,
    };
    create_superuser(&cluster);
    cluster
}

/// A PostgreSQL install the harness runs: its server programs, the client programs to use
/// with it and its major.
#[derive(Debug, Clone)]
struct PgInstall {
    server_bin: PathBuf,
    client_bin: PathBuf,
    major: u32,
}

impl PgInstall {
    /// The install [`TEST_PG_ENV`] names, else the machine's own.
    fn selected() -> &'static PgInstall {
        static SELECTED: OnceLock<PgInstall> = OnceLock::new();
        SELECTED.get_or_init(|| match std::env::var(TEST_PG_ENV) {
            Ok(value) if !value.trim().is_empty() => {
                let major = value.trim().parse().unwrap_or_else(|_| {
                    panic!("{TEST_PG_ENV}={value} is not a PostgreSQL major; give one of 14 to 18")
                });
                PgInstall::of_major(major)
            }
            _ => PgInstall::system().clone(),
        })
    }

    /// The machine's PostgreSQL, its client programs beside the server's.
    fn system() -> &'static PgInstall {
        static SYSTEM: OnceLock<PgInstall> = OnceLock::new();
        SYSTEM.get_or_init(|| {
            let bin = postgres_bin_dir().to_path_buf();
            PgInstall {
                major: server_major(&bin),
                client_bin: bin.clone(),
                server_bin: bin,
            }
        })
    }

    /// PostgreSQL `major`: the machine's when it is that major, else `target/pg/MAJOR`
    /// with the client programs of [`client_bin_for`]; panics with the fix when they are
    /// not there.
    fn of_major(major: u32) -> PgInstall {
        let system = PgInstall::system();
        if system.major == major {
            return system.clone();
        }
        let root = crate::paths::workspace_root().join("target").join("pg");
        let installed = root.join(major.to_string()).join("bin").join("initdb");
        assert!(
            installed.is_file(),
            "PostgreSQL {major} is wanted ({TEST_PG_ENV} or an upgrade test) but {} is \
             not installed; install the test majors with `bash scripts/test.sh` or \
             `. scripts/lib/install.sh && pgw_install_pg` in the workspace root",
            installed.display()
        );
        let server_bin = runnable_server_bin(&root.join(major.to_string()));
        let client_bin = client_bin_for(major, &root);
        let found = server_major(&server_bin);
        assert_eq!(
            found,
            major,
            "{} is PostgreSQL {found}, not {major}; reinstall with \
             `. scripts/lib/install.sh && pgw_install_pg`",
            server_bin.display()
        );
        PgInstall {
            server_bin,
            client_bin,
            major,
        }
    }
}

/// The server programs of the install in `install` (`target/pg/MAJOR`), where the server
/// user can run them: in place, or, when a folder above the checkout is closed to that
/// user (a checkout under root's home, say), from a copy in the temp folder, made once per
/// installed version and kept for the next test process.
fn runnable_server_bin(install: &Path) -> PathBuf {
    let runs = |bin: &Path| {
        let Some(user) = ServerUser::for_this_process() else {
            return true;
        };
        let mut probe = Command::new(bin.join("postgres"));
        probe.arg("--version").stdin(Stdio::null());
        user.apply(&mut probe);
        probe.output().is_ok_and(|o| o.status.success())
    };
    let bin = install.join("bin");
    if runs(&bin) {
        return bin;
    }
    let version = std::fs::read_to_string(install.join(".pgward-version"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let copy = std::env::temp_dir().join(format!("pgward-pg-{version}"));
    if !copy.join(".pgward-version").is_file() {
        // Copied under a name of this process's, then renamed: a test process running
        // alongside finds the copy whole or not at all.
        let staging =
            std::env::temp_dir().join(format!("pgward-pg-{version}.{}", std::process::id()));
        let status = Command::new("cp")
            .arg("-a")
            .arg(install)
            .arg(&staging)
            .status()
            .unwrap_or_else(|e| panic!("could not run cp: {e}"));
        assert!(
            status.success(),
            "could not copy {} to {}",
            install.display(),
            staging.display()
        );
        if std::fs::rename(&staging, &copy).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    let bin = copy.join("bin");
    assert!(
        runs(&bin),
        "the server's OS user (postgres) cannot run {} nor its copy {}: make the folders \
         above the checkout readable to it",
        install.display(),
        copy.display()
    );
    bin
}

/// The client programs' folder of the major [`TEST_PG_ENV`] names, when that is not the
/// machine's own: the binaries the tests run get it first on PATH, as a user with several
/// PostgreSQL versions would set it up.
pub(crate) fn selected_client_bin() -> Option<&'static Path> {
    let selected = PgInstall::selected();
    (selected.client_bin != PgInstall::system().client_bin).then_some(selected.client_bin.as_path())
}

/// The client programs for a server of `major`: the oldest major not older than it among
/// the machine's, `target/pg/client-16` and `target/pg/client` (pg_dump and pg_restore 17
/// and later write `SET transaction_timeout`, which servers before 17 reject, so the
/// newest is not the one to use); panics with the fix when none fits.
fn client_bin_for(major: u32, root: &Path) -> PathBuf {
    let candidates = [
        PgInstall::system().client_bin.clone(),
        root.join("client-16").join("bin"),
        root.join("client").join("bin"),
    ];
    candidates
        .into_iter()
        .filter(|bin| bin.join("pg_dump").is_file())
        .map(|bin| (program_major(&bin, "pg_dump"), bin))
        .filter(|(found, _)| *found >= major)
        .min_by_key(|(found, _)| *found)
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| {
            panic!(
                "no client programs of PostgreSQL {major} or newer are installed (looked in \
                 the machine's, {root}/client-16 and {root}/client); install them with \
                 `. scripts/lib/install.sh && pgw_install_pg` in the workspace root",
                root = root.display()
            )
        })
}

/// The major of the server programs in `bin` (`initdb --version`).
fn server_major(bin: &Path) -> u32 {
    program_major(bin, "initdb")
}

/// The major of `bin`'s `program` (`PROGRAM --version`).
fn program_major(bin: &Path, program: &str) -> u32 {
    let path = bin.join(program);
    let output = Command::new(&path)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("could not run {} --version: {e}", path.display()));
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .find_map(|word| {
            let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or_else(|| panic!("{} --version printed no version: {text}", path.display()))
}

/// The PostgreSQL server bin dir: `pg_config --bindir` if it holds initdb, else the
/// newest `/usr/lib/postgresql/*/bin` (Debian can install several), else initdb's
/// folder on PATH.
fn postgres_bin_dir() -> &'static Path {
    static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();
    BIN_DIR.get_or_init(|| {
        pg_config_bin_dir()
            .or_else(newest_debian_bin_dir)
            .or_else(initdb_on_path_dir)
            .unwrap_or_else(|| {
                panic!(
                    "no PostgreSQL server binaries found (looked for initdb via \
                     `pg_config --bindir`, in /usr/lib/postgresql/*/bin and on PATH); \
                     install them, e.g. `apt-get install postgresql`"
                )
            })
    })
}

fn pg_config_bin_dir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    (output.status.success() && dir.join("initdb").is_file()).then_some(dir)
}

fn newest_debian_bin_dir() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin)
}

fn initdb_on_path_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("initdb"))
        .find(|initdb| initdb.is_file())
        // Resolved, because Debian's PATH entry is a symlink away from pg_ctl and postgres.
        .and_then(|initdb| std::fs::canonicalize(initdb).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
}

/// A [`Command`] for a server-side program, run as the server user with a clean
/// environment (no `PGDATA` or `PGPORT` of the calling shell).
fn server_command(program: PathBuf, root: &Path, server_user: Option<ServerUser>) -> Command {
    let mut command = Command::new(program);
    command.env_clear().current_dir(root).stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    if let Some(user) = server_user {
        user.apply(&mut command);
    }
    command
}

fn init_data_dir(bin_dir: &Path, root: &Path, data_dir: &Path, server_user: Option<ServerUser>) {
    let password_file = root.join("bootstrap-password");
    std::fs::write(&password_file, BOOTSTRAP_PASSWORD)
        .unwrap_or_else(|e| panic!("could not write {}: {e}", password_file.display()));
    if let Some(user) = server_user {
        user.chown_tree(root);
    }
    let mut initdb = server_command(bin_dir.join("initdb"), root, server_user);
    initdb
        .args([
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            // The C locale keeps sorting and messages the same on every machine.
            "--locale=C",
            // Durability is pointless for a throwaway cluster; this saves seconds.
            "--no-sync",
        ])
        .args(["-U", BOOTSTRAP_USER])
        .arg(format!("--pwfile={}", password_file.display()))
        .arg("-D")
        .arg(data_dir);
    let output = initdb
        .output()
        .unwrap_or_else(|e| panic!("could not run {initdb:?}: {e}"));
    assert!(
        output.status.success(),
        "initdb failed ({}): {initdb:?}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_file(&password_file)
        .unwrap_or_else(|e| panic!("could not remove {}: {e}", password_file.display()));
}

fn write_config(data_dir: &Path, socket_dir: &Path, tls: Option<&(TlsMode, TlsFiles)>) {
    let mut settings = format!(
        "\n# pgward test harness\n{SERVER_SETTINGS}unix_socket_directories = {}\n",
        config_string(socket_dir)
    );
    let mut hba = String::from("local all all trust\n");
    match tls {
        None => hba.push_str("host all all 127.0.0.1/32 scram-sha-256\n"),
        Some((mode, files)) => {
            settings.push_str(&format!(
                "ssl = on\nssl_cert_file = {}\nssl_key_file = {}\n",
                config_string(&files.server_cert),
                config_string(&files.server_key)
            ));
            hba.push_str(match mode {
                TlsMode::Optional => "host all all 127.0.0.1/32 scram-sha-256\n",
                TlsMode::Required => {
                    "hostssl all all 127.0.0.1/32 scram-sha-256\n\
                     hostnossl all all 127.0.0.1/32 reject\n"
                }
            });
        }
    }
    let config_file = data_dir.join("postgresql.conf");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&config_file)
        .and_then(|mut file| file.write_all(settings.as_bytes()))
        .unwrap_or_else(|e| panic!("could not extend {}: {e}", config_file.display()));
    let hba_file = data_dir.join("pg_hba.conf");
    std::fs::write(&hba_file, hba)
        .unwrap_or_else(|e| panic!("could not write {}: {e}", hba_file.display()));
}

/// Starts the server on a free port and returns the port, retrying with another port
/// when the probed one was taken before the server could bind it.
fn start_server(
    bin_dir: &Path,
    root: &Path,
    data_dir: &Path,
    log_file: &Path,
    server_user: Option<ServerUser>,
) -> u16 {
    for attempt in 1..=PORT_ATTEMPTS {
        let port = free_port();
        let log_before = std::fs::read_to_string(log_file).unwrap_or_default().len();
        let mut pg_ctl = server_command(bin_dir.join("pg_ctl"), root, server_user);
        pg_ctl
            .args(["start", "-w", "-t", START_TIMEOUT_SECS])
            .arg("-o")
            .arg(format!("-p {port}"))
            .arg("-D")
            .arg(data_dir)
            .arg("-l")
            .arg(log_file);
        let output = pg_ctl
            .output()
            .unwrap_or_else(|e| panic!("could not run {pg_ctl:?}: {e}"));
        if output.status.success() {
            return port;
        }
        let log = std::fs::read_to_string(log_file).unwrap_or_default();
        let new_log = log.get(log_before..).unwrap_or(&log);
        let port_taken =
            new_log.contains("could not bind") || new_log.contains("Address already in use");
        if !(port_taken && attempt < PORT_ATTEMPTS) {
            panic!(
                "PostgreSQL did not start (attempt {attempt}, port {port}): {pg_ctl:?} \
                 exited with {}\n{}{}\nserver log {}:\n{log}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                log_file.display()
            );
        }
    }
    unreachable!("the last attempt either returns or panics")
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("could not find a free TCP port on 127.0.0.1")
}

fn create_superuser(cluster: &Cluster) {
    let mut client = cluster
        .connect(BOOTSTRAP_USER, "postgres")
        .unwrap_or_else(|e| {
            panic!(
                "could not connect to the new test cluster: {}",
                error_chain(&e)
            )
        });
    // CREATE ROLE takes no parameters; the password is a constant without quotes.
    client
        .batch_execute(&format!(
            "CREATE ROLE {SUPERUSER} LOGIN SUPERUSER PASSWORD '{SUPERUSER_PASSWORD}'"
        ))
        .unwrap_or_else(|e| panic!("could not create the {SUPERUSER} role: {}", error_chain(&e)));
}

/// `error` with its causes, `db error: ERROR: ...`: the postgres crate's Display says
/// only "db error" and leaves the server's message to the source chain.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    text
}

/// `value` as a quoted postgresql.conf string.
fn config_string(value: &Path) -> String {
    format!("'{}'", value.to_string_lossy().replace('\'', "''"))
}

/// `value` quoted for a libpq conninfo string.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}
