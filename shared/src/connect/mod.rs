//! Opening sessions: TLS as libpq means `sslmode`, errors classified into the exit codes
//! a user can act on (4: network, authentication, TLS), and every session registered for
//! cancellation on Ctrl-C.
//!
//! The `postgres` crate itself knows only disable/prefer/require and no root certificates,
//! so verification lives in the rustls configuration built here: verify-full checks chain
//! and host name, verify-ca the chain only, require and prefer encrypt without checking
//! (unless a root certificate is given, in which case require verifies the chain, as libpq
//! does).

pub mod dburl;

use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::connect::dburl::{ConnectionSettings, Host, SslMode};
use crate::error::{error_chain, Error, Result};
use crate::interrupt::{self, CancelRegistration};
use crate::sql::quote_ident;

/// The database a command works on, as the JSON envelope's `target` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Target {
    /// Host name, IP or socket directory.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// Role.
    pub user: String,
}

impl From<&ConnectionSettings> for Target {
    fn from(s: &ConnectionSettings) -> Target {
        Target {
            host: s.host.to_string(),
            port: s.port,
            database: s.dbname.clone(),
            user: s.user.clone(),
        }
    }
}

/// An open session, cancelled on Ctrl-C.
pub struct Session {
    /// The client; run queries on it.
    pub client: postgres::Client,
    /// How it was opened.
    pub settings: ConnectionSettings,
    /// `server_version_num`, e.g. 150018.
    pub server_version_num: i32,
    _cancel: CancelRegistration,
}

impl Session {
    /// The schema the session works in (`?schema=` or `public`).
    pub fn schema(&self) -> &str {
        self.settings.schema_or_default()
    }
}

/// Opens a session with `application_name` set to `app` (e.g. `pgward-migrate`) and, when
/// the URL names a schema, the search_path set to it.
pub fn connect(settings: &ConnectionSettings, app: &str) -> Result<Session> {
    interrupt::check()?;
    let (config, tls) = client_config(settings, app)?;
    let mut client = connect_within_timeout(config.into(), tls.clone(), settings)?;
    let token = client.cancel_token();
    let cancel = interrupt::on_interrupt(move || {
        let _ = token.cancel_query(tls.clone());
    });
    if let Some(schema) = &settings.schema {
        client
            .batch_execute(&set_search_path(schema))
            .map_err(|e| Error::query("setting the search_path to the URL's schema", &e))?;
    }
    let server_version_num = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .map_err(|e| Error::query("reading the server version", &e))?
        .get(0);
    Ok(Session {
        client,
        settings: settings.clone(),
        server_version_num,
        _cancel: cancel,
    })
}

/// Makes a session that reads table data see every row or fail: with `row_security = off`
/// (as pg_dump sets it), a query on a table whose row-level security policies apply to the
/// role fails with SQLSTATE 42501 instead of returning only the rows the policies show
/// ([`crate::error::row_security_table`] names the table). Backup's coordinator and
/// workers, the loader of restore and `verify --deep`, and `validate data` run it.
pub const READ_EVERY_ROW: &str = "SET row_security = off";

/// The settings of every session that writes or reads COPY data of a backup, as pg_dump
/// and pg_restore set them: COPY's text output follows DateStyle, IntervalStyle and
/// extra_float_digits, which a database or role may set (`ALTER DATABASE app SET DateStyle
/// = 'SQL, DMY'`); read back under other settings, `01/02/2024` is another day and a float
/// printed with fewer digits another number, with no error. ISO dates, `postgres`
/// intervals and `extra_float_digits = 3` read back exactly under any setting. And no
/// statement or idle-transaction timeout of the database cuts a long COPY or the
/// snapshot's idle transaction short.
pub const EXACT_COPY_SETTINGS: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; \
     SET extra_float_digits = 3; SET statement_timeout = 0; \
     SET idle_in_transaction_session_timeout = 0";

fn set_search_path(schema: &str) -> String {
    format!("SET search_path TO {}", quote_ident(schema))
}

/// The connection parameters and the TLS connector `settings` ask for.
fn client_config(
    settings: &ConnectionSettings,
    app: &str,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect)> {
    let target = settings.display_target();
    let mut config = tokio_postgres::Config::new();
    match &settings.host {
        Host::Tcp(h) => config.host(h),
        Host::Socket(p) => config.host_path(p),
    };
    config
        .port(settings.port)
        .user(&settings.user)
        .dbname(&settings.dbname)
        .application_name(app)
        .connect_timeout(settings.connect_timeout);
    if let Some(pw) = &settings.password {
        config.password(pw);
    }
    let is_socket = matches!(settings.host, Host::Socket(_));
    config.ssl_mode(match settings.sslmode {
        _ if is_socket => postgres::config::SslMode::Disable,
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            postgres::config::SslMode::Require
        }
    });
    let tls = MakeRustlsConnect::new(
        tls_config(settings).map_err(|reason| Error::Tls { target, reason })?,
    );
    Ok((config, tls))
}

/// The error of a connection attempt that got no complete answer in time.
fn no_answer(settings: &ConnectionSettings) -> Error {
    Error::Connect {
        target: settings.display_target(),
        reason: format!(
            "no answer within {} s (connect_timeout): the server did not complete the connection startup",
            settings.connect_timeout.as_secs()
        ),
    }
}

/// A session that reads large COPY streams: tokio-postgres driven on a runtime of its
/// own, so that a whole buffer of rows is gathered per `block_on`. The `postgres` crate's
/// `CopyOutReader` enters its runtime and polls the socket once per row, which cost about
/// 4% of a backup's CPU. Cancelled on Ctrl-C like [`Session`].
#[cfg(feature = "storage")]
pub struct CopySession {
    runtime: tokio::runtime::Runtime,
    /// Taken only when the session is dropped.
    client: Option<tokio_postgres::Client>,
    connection: Option<tokio::task::JoinHandle<std::result::Result<(), postgres::Error>>>,
    _cancel: CancelRegistration,
}

#[cfg(feature = "storage")]
impl Drop for CopySession {
    /// Says goodbye as a blocking client does: dropping the client queues a Terminate
    /// message, which only the connection task sends, so it runs to its end (for at most
    /// a second). Without it the server logs "unexpected EOF on client connection".
    fn drop(&mut self) {
        drop(self.client.take());
        if let Some(connection) = self.connection.take() {
            // The timer is made inside the runtime, which it needs.
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(1), connection).await });
        }
    }
}

#[cfg(feature = "storage")]
impl CopySession {
    /// Opens a session as [`connect`] does (the same TLS, timeout, search_path and
    /// Ctrl-C handling).
    pub fn connect(settings: &ConnectionSettings, app: &str) -> Result<CopySession> {
        interrupt::check()?;
        let (config, tls) = client_config(settings, app)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("start", "the connection's runtime", e))?;
        let deadline = Instant::now() + settings.connect_timeout;
        let connected = runtime.block_on(async {
            let mut connecting = std::pin::pin!(config.connect(tls.clone()));
            loop {
                // Checked every 100 ms: Ctrl-C and the whole attempt's deadline.
                let tick = tokio::time::timeout(Duration::from_millis(100), connecting.as_mut());
                if let Ok(result) = tick.await {
                    return result.map_err(|e| classify_connect_error(settings, &e));
                }
                interrupt::check()?;
                if Instant::now() >= deadline {
                    return Err(no_answer(settings));
                }
            }
        });
        let (client, connection) = connected?;
        let connection = runtime.spawn(connection);
        let token = client.cancel_token();
        let cancel = interrupt::on_interrupt(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = runtime.block_on(token.cancel_query(tls.clone()));
            }
        });
        let mut session = CopySession {
            runtime,
            client: Some(client),
            connection: Some(connection),
            _cancel: cancel,
        };
        if let Some(schema) = &settings.schema {
            session
                .batch_execute(&set_search_path(schema))
                .map_err(|e| Error::query("setting the search_path to the URL's schema", &e))?;
        }
        Ok(session)
    }

    /// Runs `sql`, one or more statements without parameters.
    pub fn batch_execute(&mut self, sql: &str) -> std::result::Result<(), postgres::Error> {
        self.runtime.block_on(self.client().batch_execute(sql))
    }

    fn client(&self) -> &tokio_postgres::Client {
        // Some from connect until drop.
        self.client
            .as_ref()
            .expect("a CopySession has its client until dropped")
    }

    /// Starts `COPY ... TO STDOUT`.
    pub fn copy_out(&mut self, sql: &str) -> std::result::Result<CopyOut<'_>, postgres::Error> {
        let stream = self.runtime.block_on(self.client().copy_out(sql))?;
        Ok(CopyOut {
            runtime: &self.runtime,
            stream: Box::pin(stream),
            pending: None,
        })
    }
}

/// A COPY stream being read, from [`CopySession::copy_out`].
#[cfg(feature = "storage")]
pub struct CopyOut<'a> {
    runtime: &'a tokio::runtime::Runtime,
    stream: std::pin::Pin<Box<tokio_postgres::CopyOutStream>>,
    /// A piece that did not fit the last buffer.
    pending: Option<bytes::Bytes>,
}

#[cfg(feature = "storage")]
impl CopyOut<'_> {
    /// Appends the stream's next pieces (a piece is a row, as the server sends them) to
    /// `buffer` while they fit in `limit` bytes (an empty buffer takes one piece of any
    /// size), showing each to `each` first. Returns whether more may follow: false once
    /// the stream has ended. An error of `each` stops the read and is returned.
    pub fn fill(
        &mut self,
        buffer: &mut Vec<u8>,
        limit: usize,
        mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<bool> {
        use futures_util::StreamExt;
        let Self {
            runtime,
            stream,
            pending,
        } = self;
        if let Some(piece) = pending.take() {
            each(&piece)?;
            buffer.extend_from_slice(&piece);
        }
        runtime.block_on(async {
            loop {
                let piece = match stream.next().await {
                    Some(piece) => piece.map_err(std::io::Error::other)?,
                    None => return Ok(false),
                };
                if !buffer.is_empty() && buffer.len() + piece.len() > limit {
                    *pending = Some(piece);
                    return Ok(true);
                }
                each(&piece)?;
                buffer.extend_from_slice(&piece);
            }
        })
    }
}

/// `config.connect(tls)`, given up after `connect_timeout` in all. The postgres crate
/// applies its connect_timeout to the TCP connect only, so a server or proxy that accepts
/// the connection but never answers the startup would hang pgward for ever; libpq and
/// Prisma count the whole attempt. The attempt runs on a helper thread that is abandoned
/// on timeout (the command ends soon after); Ctrl-C ends the wait as well.
fn connect_within_timeout(
    config: postgres::Config,
    tls: MakeRustlsConnect,
    settings: &ConnectionSettings,
) -> Result<postgres::Client> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(config.connect(tls));
    });
    let deadline = Instant::now() + settings.connect_timeout;
    loop {
        interrupt::check()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(no_answer(settings));
        }
        match receiver.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(result) => return result.map_err(|e| classify_connect_error(settings, &e)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Connect {
                    target: settings.display_target(),
                    reason: "the connection attempt ended without a result".into(),
                })
            }
        }
    }
}

/// The libpq environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`,
/// `PGSSLMODE`, ...) that makes pg_dump, pg_restore and psql connect as `settings` says:
/// the password travels in the environment, never on a command line.
pub fn libpq_env(settings: &ConnectionSettings) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "PGHOST",
            match &settings.host {
                Host::Tcp(h) => h.clone(),
                Host::Socket(p) => p.display().to_string(),
            },
        ),
        ("PGPORT", settings.port.to_string()),
        ("PGUSER", settings.user.clone()),
        ("PGDATABASE", settings.dbname.clone()),
        ("PGSSLMODE", sslmode_name(settings.sslmode).to_string()),
        (
            "PGCONNECT_TIMEOUT",
            settings.connect_timeout.as_secs().max(1).to_string(),
        ),
    ];
    if let Some(pw) = &settings.password {
        env.push(("PGPASSWORD", pw.clone()));
    }
    for (name, path) in [
        ("PGSSLROOTCERT", &settings.sslrootcert),
        ("PGSSLCERT", &settings.sslcert),
        ("PGSSLKEY", &settings.sslkey),
    ] {
        if let Some(p) = path {
            env.push((name, p.display().to_string()));
        }
    }
    env
}

/// The `--dbname` value that makes a libpq tool (pg_restore, psql) connect to the
/// database named `dbname` and nothing else. libpq reads a dbname holding `=`, or starting
/// with `postgresql://` or `postgres://`, as a whole connection string (a database named
/// `x host=evil.example` would send the tool, and the password, to another server), so
/// the name always goes as a quoted `dbname='...'` connection string, `\` and `'`
/// escaped as libpq wants. The rest of the connection comes from [`libpq_env`].
pub fn libpq_dbname_arg(dbname: &str) -> String {
    format!(
        "--dbname=dbname='{}'",
        dbname.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// libpq variables a command must not inherit when pgward sets the connection itself.
pub const LIBPQ_VARS_TO_CLEAR: &[&str] = &[
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGHOSTADDR",
    "PGPASSFILE",
    "PGTARGETSESSIONATTRS",
];

/// Turns a failed connection attempt into the error a user can act on.
fn classify_connect_error(settings: &ConnectionSettings, err: &postgres::Error) -> Error {
    let target = settings.display_target();
    if let Some(db) = err.as_db_error() {
        let reason = crate::redact::scrub(db.message());
        return match db.code().code() {
            // invalid_password, invalid_authorization_specification
            "28P01" | "28000" => {
                if reason.contains("no encryption") && settings.sslmode == SslMode::Disable {
                    Error::Tls {
                        target,
                        reason: format!("the server accepts only TLS connections but sslmode=disable ({reason})"),
                    }
                } else {
                    Error::Auth { target, reason }
                }
            }
            _ => Error::Connect { target, reason },
        };
    }
    let chain = crate::redact::scrub(&error_chain(err));
    let is_tls = chain.contains("TLS") || chain.contains("certificate");
    if is_tls {
        // rustls names the variant (`NotValidForName`) or, with the names it compared,
        // says "certificate not valid for name".
        let reason = if chain.contains("NotValidForName") || chain.contains("not valid for name") {
            format!(
                "the server certificate does not name the host `{}` ({chain})",
                settings.host
            )
        } else if chain.contains("UnknownIssuer") {
            format!("the server certificate is not signed by a CA in sslrootcert ({chain})")
        } else if chain.contains("does not support TLS") {
            format!(
                "the server does not offer TLS but sslmode={} requires it",
                sslmode_name(settings.sslmode)
            )
        } else {
            chain
        };
        return Error::Tls { target, reason };
    }
    let reason = if chain.contains("timeout") || chain.contains("timed out") {
        format!(
            "no answer within {} s (connect_timeout): {chain}",
            settings.connect_timeout.as_secs()
        )
    } else {
        chain
    };
    Error::Connect { target, reason }
}

fn sslmode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// The rustls client configuration for `sslmode`, `sslrootcert`, `sslcert` and `sslkey`.
fn tls_config(settings: &ConnectionSettings) -> std::result::Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verifying = matches!(settings.sslmode, SslMode::VerifyCa | SslMode::VerifyFull)
        || (settings.sslmode == SslMode::Require && settings.sslrootcert.is_some());
    let verifier: Arc<dyn ServerCertVerifier> = if verifying {
        let root_path = root_cert_path(settings)?;
        let mut roots = RootCertStore::empty();
        for cert in load_certs(&root_path)? {
            roots
                .add(cert)
                .map_err(|e| format!("sslrootcert {}: {e}", root_path.display()))?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("sslrootcert {}: {e}", root_path.display()))?;
        if settings.sslmode == SslMode::VerifyFull {
            webpki
        } else {
            Arc::new(ChainOnly(webpki))
        }
    } else {
        Arc::new(EncryptOnly(provider))
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&settings.sslcert, &settings.sslkey) {
        (Some(cert), Some(key)) => {
            let certs = load_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("sslkey {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("sslcert/sslkey: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// libpq's rule: `sslrootcert`, else `~/.postgresql/root.crt`.
fn root_cert_path(settings: &ConnectionSettings) -> std::result::Result<PathBuf, String> {
    if let Some(p) = &settings.sslrootcert {
        return Ok(p.clone());
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let default = home.join(".postgresql/root.crt");
    if default.is_file() {
        Ok(default)
    } else {
        Err(format!(
            "sslmode={} needs the CA certificate: add sslrootcert=/path/to/ca.pem to the URL (or place it at {})",
            sslmode_name(settings.sslmode),
            default.display()
        ))
    }
}

fn load_certs(path: &Path) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read certificate file {}: {e}", path.display()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("certificate file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate file {} holds no certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// verify-ca: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// require / prefer: encrypt, accept any certificate (libpq's meaning of these modes), but
/// still check the handshake signatures so the session key is the server's.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::libpq_dbname_arg;

    #[test]
    fn a_database_name_goes_to_libpq_tools_as_a_quoted_dbname() {
        assert_eq!(libpq_dbname_arg("app"), "--dbname=dbname='app'");
        assert_eq!(
            libpq_dbname_arg("x host=evil"),
            "--dbname=dbname='x host=evil'"
        );
        assert_eq!(libpq_dbname_arg(r"it's\x"), r"--dbname=dbname='it\'s\\x'");
    }
}
