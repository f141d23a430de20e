//! Database URLs exactly as Prisma users write them, and the libpq `PG*` variables.
//!
//! A `DATABASE_URL` that works with `prisma migrate deploy` must work unchanged here:
//! `postgres://` and `postgresql://`, percent-encoded user names and passwords, a socket
//! directory as host (percent-encoded in the authority, or `?host=/path`), IPv6 hosts, and
//! Prisma's query parameters. `schema` sets the search_path and the schema the history
//! table lives in; the TLS parameters are honoured; Prisma's pool parameters are accepted
//! and ignored; an unknown parameter is reported as a warning, never rejected.

use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// PostgreSQL's default port.
pub const DEFAULT_PORT: u16 = 5432;

/// Prisma's default `connect_timeout`, in seconds.
const PRISMA_DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;

/// Query parameters Prisma accepts that only tune its own connection pool or driver;
/// pgward accepts and ignores them.
const IGNORED_PRISMA_PARAMS: &[&str] = &[
    "connection_limit",
    "pool_timeout",
    "pgbouncer",
    "socket_timeout",
    "statement_cache_size",
    "sslidentity",
    "sslpassword",
    "max_connection_lifetime",
    "max_idle_connection_lifetime",
    "single_use_connections",
];

/// How hard to insist on TLS, as libpq's `sslmode` means it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Try TLS, fall back to plain text if the server does not offer it.
    Prefer,
    /// Insist on TLS, do not verify the certificate (unless a root certificate is given).
    Require,
    /// Insist on TLS and verify the certificate chain, not the host name.
    VerifyCa,
    /// Insist on TLS, verify the chain and that the certificate names the host.
    VerifyFull,
}

impl SslMode {
    /// The name libpq gives it (`PGSSLMODE`, `sslmode=`).
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<SslMode> {
        match value {
            "disable" => Ok(SslMode::Disable),
            // libpq's "allow" tries plain text first; pgward treats it as "prefer".
            "allow" | "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(Error::InvalidUrl {
                reason: format!("sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"),
            }),
        }
    }
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or IP address.
    Tcp(String),
    /// A unix socket directory.
    Socket(PathBuf),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Tcp(h) => f.write_str(h),
            Host::Socket(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Everything needed to open a session, parsed from a URL or the `PG*` variables.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Server host or socket directory.
    pub host: Host,
    /// Server port (also names the socket file).
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// Password, never printed.
    pub password: Option<String>,
    /// Database name.
    pub dbname: String,
    /// Prisma's `schema` parameter: search_path and the history table's schema.
    pub schema: Option<String>,
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA certificate file for verify-ca / verify-full.
    pub sslrootcert: Option<PathBuf>,
    /// Client certificate file.
    pub sslcert: Option<PathBuf>,
    /// Client key file.
    pub sslkey: Option<PathBuf>,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Parameters pgward did not recognise (reported as warnings).
    pub unknown_params: Vec<String>,
}

impl std::fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("schema", &self.schema)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

impl ConnectionSettings {
    /// Parses a `postgres://` or `postgresql://` URL as Prisma and libpq read it.
    pub fn from_url(raw: &str) -> Result<ConnectionSettings> {
        let invalid = |reason: String| Error::InvalidUrl { reason };
        let scheme_ok = raw.starts_with("postgresql://") || raw.starts_with("postgres://");
        if !scheme_ok {
            return Err(invalid(not_a_url(raw)));
        }
        let parsed = url::Url::parse(raw).map_err(|e| invalid(e.to_string()))?;
        let decode = |s: &str, what: &str| -> Result<String> {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid(format!("the {what} is not valid percent-encoded UTF-8")))
        };
        let password = match parsed.password() {
            Some(p) => {
                let p = decode(p, "password")?;
                crate::redact::register_secret(&p);
                Some(p)
            }
            None => None,
        };
        let mut user = decode(parsed.username(), "user name")?;
        let host_text = match parsed.host() {
            Some(url::Host::Domain(d)) => decode(d, "host")?,
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => String::new(),
        };
        let mut host = host_from_text(&host_text);
        let mut port = parsed.port().unwrap_or(DEFAULT_PORT);
        let path = parsed.path().trim_start_matches('/');
        let mut dbname = decode(path, "database name")?;
        let mut settings_password = password;

        let mut schema = None;
        let mut sslmode = SslMode::Prefer;
        let mut sslrootcert = None;
        let mut sslcert = None;
        let mut sslkey = None;
        let mut connect_timeout = Duration::from_secs(PRISMA_DEFAULT_CONNECT_TIMEOUT_SECS);
        let mut sslaccept_invalid = false;
        let mut unknown_params = Vec::new();
        for (key, value) in parsed.query_pairs() {
            let value = value.into_owned();
            match key.as_ref() {
                "schema" => schema = Some(value).filter(|s| !s.is_empty()),
                "sslmode" => sslmode = SslMode::parse(&value)?,
                "sslrootcert" => sslrootcert = Some(PathBuf::from(value)),
                "sslcert" => sslcert = Some(PathBuf::from(value)),
                "sslkey" => sslkey = Some(PathBuf::from(value)),
                "sslaccept" => sslaccept_invalid = value == "accept_invalid_certs",
                "connect_timeout" => {
                    let secs: u64 = value.parse().map_err(|_| {
                        invalid(format!(
                            "connect_timeout `{value}` is not a whole number of seconds"
                        ))
                    })?;
                    // Prisma and libpq read 0 as "wait forever"; a day is forever enough.
                    connect_timeout = Duration::from_secs(if secs == 0 { 86_400 } else { secs });
                }
                "host" => host = host_from_text(&value),
                "port" => {
                    port = value
                        .parse()
                        .map_err(|_| invalid(format!("port `{value}` is not a number")))?
                }
                "user" => user = value,
                "password" => {
                    crate::redact::register_secret(&value);
                    settings_password = Some(value);
                }
                "dbname" => dbname = value,
                "application_name" | "options" => {}
                k if IGNORED_PRISMA_PARAMS.contains(&k) => {}
                k => unknown_params.push(k.to_string()),
            }
        }
        if sslaccept_invalid && matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
            sslmode = SslMode::Require;
        }
        let env_default = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if user.is_empty() {
            user = env_default("PGUSER")
                .or_else(|| env_default("USER"))
                .unwrap_or_else(|| "postgres".into());
        }
        if dbname.is_empty() {
            dbname = user.clone();
        }
        if let Host::Tcp(h) = &host {
            if h.is_empty() {
                host = default_socket_host();
            }
        }
        Ok(ConnectionSettings {
            host,
            port,
            user,
            password: settings_password,
            dbname,
            schema,
            sslmode,
            sslrootcert,
            sslcert,
            sslkey,
            connect_timeout,
            unknown_params,
        })
    }

    /// Builds settings from the libpq variables (`PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT`), or
    /// `None` when neither PGHOST nor PGDATABASE is set.
    pub fn from_pg_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<ConnectionSettings>> {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        if get("PGHOST").is_none() && get("PGDATABASE").is_none() {
            return Ok(None);
        }
        let user = get("PGUSER")
            .or_else(|| get("USER"))
            .unwrap_or_else(|| "postgres".into());
        let port = match get("PGPORT") {
            Some(p) => p.parse().map_err(|_| Error::InvalidUrl {
                reason: format!("PGPORT `{p}` is not a number"),
            })?,
            None => DEFAULT_PORT,
        };
        let password = get("PGPASSWORD");
        if let Some(p) = &password {
            crate::redact::register_secret(p);
        }
        let connect_timeout = match get("PGCONNECT_TIMEOUT") {
            Some(t) => Duration::from_secs(t.parse().map_err(|_| Error::InvalidUrl {
                reason: format!("PGCONNECT_TIMEOUT `{t}` is not a whole number of seconds"),
            })?),
            None => Duration::from_secs(PRISMA_DEFAULT_CONNECT_TIMEOUT_SECS),
        };
        Ok(Some(ConnectionSettings {
            host: get("PGHOST")
                .map(|h| host_from_text(&h))
                .unwrap_or_else(default_socket_host),
            port,
            dbname: get("PGDATABASE").unwrap_or_else(|| user.clone()),
            user,
            password,
            schema: None,
            sslmode: match get("PGSSLMODE") {
                Some(m) => SslMode::parse(&m)?,
                None => SslMode::Prefer,
            },
            sslrootcert: get("PGSSLROOTCERT").map(PathBuf::from),
            sslcert: get("PGSSLCERT").map(PathBuf::from),
            sslkey: get("PGSSLKEY").map(PathBuf::from),
            connect_timeout,
            unknown_params: Vec::new(),
        }))
    }

    /// The schema pgward works in: `?schema=` or Prisma's default, `public`.
    pub fn schema_or_default(&self) -> &str {
        self.schema.as_deref().unwrap_or("public")
    }

    /// The same server and credentials, another database (for scratch and shadow databases).
    pub fn with_database(&self, dbname: &str) -> ConnectionSettings {
        ConnectionSettings {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    /// `host:port/database` for messages; never contains secrets.
    pub fn display_target(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.dbname)
    }

    /// A URL for this connection with the password redacted, for logs and audit lines.
    pub fn redacted_url(&self) -> String {
        let host = match &self.host {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]"),
            Host::Tcp(h) => h.clone(),
            Host::Socket(p) => percent_encoding::utf8_percent_encode(
                &p.to_string_lossy(),
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string(),
        };
        let password = if self.password.is_some() { ":***" } else { "" };
        let mut url = format!(
            "postgresql://{}{password}@{host}:{}/{}",
            self.user, self.port, self.dbname
        );
        if let Some(schema) = &self.schema {
            url.push_str(&format!("?schema={schema}"));
        }
        url
    }
}

/// Why `raw` is not a database URL, without echoing any of it but a scheme: a value that
/// is not a URL may be anything, a libpq key=value string with its password or a bare
/// password pasted into the wrong variable.
fn not_a_url(raw: &str) -> String {
    let looks_like_conninfo = raw
        .split_whitespace()
        .next()
        .and_then(|word| word.split_once('='))
        .is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if looks_like_conninfo {
        let keys: Vec<&str> = raw
            .split_whitespace()
            .filter_map(|w| w.split_once('=').map(|(k, _)| k))
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        return format!(
            "a libpq key=value connection string (keys: {}) is not accepted; pgward reads \
             postgresql:// URLs as Prisma does: write it as \
             postgresql://USER:PASSWORD@HOST:PORT/DBNAME (password percent-encoded), or use \
             the PGHOST/PGUSER/PGPASSWORD/PGDATABASE variables",
            keys.join(", ")
        );
    }
    let trimmed = raw.trim_start();
    if trimmed.starts_with(['"', '\'']) && trimmed[1..].starts_with("postgres") {
        return "the value is wrapped in quotes (not shown: it may hold a password); remove \
                the quotes, they are not part of the URL"
            .into();
    }
    match raw.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme.len() <= 20
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            format!("the URL's scheme is `{scheme}://`, not postgresql:// or postgres://")
        }
        _ => format!(
            "the value ({} characters, not shown: it may hold a password) does not start \
             with postgresql:// or postgres://",
            raw.chars().count()
        ),
    }
}

/// A host text starting with `/` is a socket directory (libpq's rule).
fn host_from_text(text: &str) -> Host {
    if text.starts_with('/') {
        Host::Socket(PathBuf::from(text))
    } else {
        Host::Tcp(text.to_string())
    }
}

/// libpq's default when no host is given: the Debian socket directory if it exists, else
/// localhost over TCP.
fn default_socket_host() -> Host {
    let debian = PathBuf::from("/var/run/postgresql");
    if debian.is_dir() {
        Host::Socket(debian)
    } else {
        Host::Tcp("localhost".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prisma_url_with_encoded_password_and_schema() {
        let s = ConnectionSettings::from_url(
            "postgresql://app%40corp:p%40ss%2Fw%3Ard@db.internal:6543/app?schema=tenant_1&connection_limit=5&pgbouncer=true&pool_timeout=10",
        )
        .expect("valid URL");
        assert_eq!(s.user, "app@corp");
        assert_eq!(s.password.as_deref(), Some("p@ss/w:rd"));
        assert_eq!(s.host, Host::Tcp("db.internal".into()));
        assert_eq!(s.port, 6543);
        assert_eq!(s.dbname, "app");
        assert_eq!(s.schema.as_deref(), Some("tenant_1"));
        assert!(s.unknown_params.is_empty());
        assert_eq!(
            s.redacted_url(),
            "postgresql://app@corp:***@db.internal:6543/app?schema=tenant_1"
        );
    }

    #[test]
    fn socket_directory_as_host_in_authority_or_query() {
        let a = ConnectionSettings::from_url("postgres://me@%2Fvar%2Frun%2Fpostgresql:5433/db")
            .expect("valid URL");
        assert_eq!(a.host, Host::Socket("/var/run/postgresql".into()));
        assert_eq!(a.port, 5433);
        let b = ConnectionSettings::from_url("postgresql://me@localhost/db?host=/tmp/sock")
            .expect("valid URL");
        assert_eq!(b.host, Host::Socket("/tmp/sock".into()));
    }

    #[test]
    fn ipv6_host_tls_params_and_unknown_params() {
        let s = ConnectionSettings::from_url(
            "postgresql://u:pw@[::1]:5432/d?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=3&frobnicate=1",
        )
        .expect("valid URL");
        assert_eq!(s.host, Host::Tcp("::1".into()));
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(s.sslrootcert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.unknown_params, vec!["frobnicate".to_string()]);
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for bad in [
            "mysql://u:secretpw@h/d",
            "postgresql://u:secretpw@h:notaport/d",
            "postgresql://u:secretpw@h/d?sslmode=sometimes",
        ] {
            let err = ConnectionSettings::from_url(bad).expect_err(bad);
            assert_eq!(err.code(), "INVALID_DATABASE_URL", "{bad}");
            assert!(!err.to_string().contains("secretpw"), "{err}");
        }
        for (bad, says) in [
            (
                "host=db password=s3 dbname=app",
                "keys: host, password, dbname",
            ),
            ("password='x y' host=db", "keys: password, host"),
            ("hunter2", "7 characters"),
            ("mysql://u:s3@h/d", "`mysql://`"),
            ("\"postgresql://u:s3@h/d\"", "wrapped in quotes"),
        ] {
            let err = ConnectionSettings::from_url(bad).expect_err(bad);
            let text = err.to_string();
            assert!(text.contains(says), "{bad}: {text}");
            for secret in ["s3", "x y", "hunter2"] {
                assert!(
                    !text.contains(&format!("={secret}"))
                        && !text.contains(&format!(" {secret}"))
                        && !text.contains(&format!(":{secret}")),
                    "{bad}: {text}"
                );
            }
        }
    }

    #[test]
    fn libpq_variables() {
        let vars = [
            ("PGHOST", "/run/pg"),
            ("PGPORT", "5499"),
            ("PGUSER", "ops"),
            ("PGDATABASE", "inventory"),
            ("PGSSLMODE", "require"),
        ];
        let s = ConnectionSettings::from_pg_env(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .expect("valid variables")
        .expect("PGHOST is set");
        assert_eq!(s.host, Host::Socket("/run/pg".into()));
        assert_eq!(s.port, 5499);
        assert_eq!(s.user, "ops");
        assert_eq!(s.dbname, "inventory");
        assert_eq!(s.sslmode, SslMode::Require);
        assert!(ConnectionSettings::from_pg_env(|_| None)
            .expect("no variables is fine")
            .is_none());
    }
}
