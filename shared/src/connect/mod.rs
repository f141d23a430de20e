//! Opening sessions: TLS as libpq means `sslmode` (the rustls configuration is in
//! `tls.rs`), errors classified into the exit codes a user can act on (4: network,
//! authentication, TLS), and every session registered for cancellation on Ctrl-C.
//!
//! Beside it: `copy.rs`, sessions that stream COPY data fast (backup's workers, behind the
//! `storage` feature); `libpq.rs`, the environment that makes pg_dump, pg_restore and psql
//! connect as a session would; `dburl.rs`, database URLs as Prisma writes them.

#[cfg(feature = "storage")]
pub mod copy;
pub mod dburl;
pub mod early;
pub mod libpq;
mod tls;

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

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
        // Typed: one round trip (no separate prepare), on every session of every command.
        .query_typed_one("SELECT current_setting('server_version_num')::int", &[])
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
        tls::tls_config(settings).map_err(|reason| Error::Tls { target, reason })?,
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
                settings.sslmode.name()
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
