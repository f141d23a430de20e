//! Sessions that stream COPY data fast: tokio-postgres driven on a runtime of their own
//! (backup's workers read every table through one). Behind the `storage` feature, with the
//! code that writes backups.

use std::time::{Duration, Instant};

use crate::connect::dburl::ConnectionSettings;
use crate::connect::{classify_connect_error, client_config, no_answer, set_search_path};
use crate::error::{Error, Result};
use crate::interrupt::{self, CancelRegistration};

/// A session that reads large COPY streams: tokio-postgres driven on a runtime of its
/// own, so that a whole buffer of rows is gathered per `block_on`. The `postgres` crate's
/// `CopyOutReader` enters its runtime and polls the socket once per row, which cost about
/// 4% of a backup's CPU. Cancelled on Ctrl-C like [`crate::connect::Session`].
pub struct CopySession {
    runtime: tokio::runtime::Runtime,
    /// Taken only when the session is dropped.
    client: Option<tokio_postgres::Client>,
    connection: Option<tokio::task::JoinHandle<std::result::Result<(), postgres::Error>>>,
    _cancel: CancelRegistration,
}

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

impl CopySession {
    /// Opens a session as [`crate::connect::connect`] does (the same TLS, timeout, search_path and
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
pub struct CopyOut<'a> {
    runtime: &'a tokio::runtime::Runtime,
    stream: std::pin::Pin<Box<tokio_postgres::CopyOutStream>>,
    /// A piece that did not fit the last buffer.
    pending: Option<bytes::Bytes>,
}

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
