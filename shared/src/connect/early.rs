//! Connecting while the command reads its files: the server forks a backend and
//! authenticates (a few milliseconds) while pgward reads and checksums the migrations
//! folder, instead of one after the other. `pgward-migrate status` and `deploy` use it.
//!
//! The command's order of errors is unchanged: the caller looks at its own result (a
//! missing folder, exit 2) before it collects the session, so a connection error (exit
//! 4) is reported only when there is nothing else to report first. A session opened for a
//! command that then fails on its files is dropped unused when the process exits.

use std::sync::mpsc::{channel, Receiver};

use crate::connect::dburl::ConnectionSettings;
use crate::connect::{connect, Session};
use crate::error::{Error, Result};

/// A session being opened on a helper thread.
pub struct EarlySession {
    receiver: Receiver<Result<Session>>,
    target: String,
}

impl EarlySession {
    /// Starts opening a session to `settings` as `app`, as [`connect`] does.
    pub fn start(settings: ConnectionSettings, app: String) -> EarlySession {
        let (sender, receiver) = channel();
        let target = settings.display_target();
        std::thread::spawn(move || {
            let _ = sender.send(connect(&settings, &app));
        });
        EarlySession { receiver, target }
    }

    /// The session, once open, or why it could not be (connect's own errors, its
    /// connect_timeout and Ctrl-C included).
    pub fn finish(self) -> Result<Session> {
        self.receiver.recv().unwrap_or_else(|_| {
            Err(Error::Connect {
                target: self.target,
                reason: "the connection attempt ended without a result".into(),
            })
        })
    }
}
