//! Ctrl-C and SIGTERM: cancel the running server query, let the command clean up, exit 130.
//!
//! The handler only sets a flag and sends PostgreSQL cancel requests for every registered
//! session; the command's own code then sees its query fail, notices [`requested`], undoes
//! what it must (drop guards, ROLLBACK) and returns [`crate::Error::Interrupted`]. A second
//! signal exits at once. Child processes a command tracks ([`track_child`]: a fleet's runs)
//! get each signal passed on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

type Canceller = Box<dyn Fn() + Send>;

fn cancellers() -> &'static Mutex<Vec<(u64, Canceller)>> {
    static LIST: OnceLock<Mutex<Vec<(u64, Canceller)>>> = OnceLock::new();
    LIST.get_or_init(|| Mutex::new(Vec::new()))
}

/// Installs the SIGINT/SIGTERM handler. Call once, at the start of `main`.
pub fn install() {
    let result = ctrlc::set_handler(|| {
        // Child processes of ours (a fleet's runs, each in its own process group, so a
        // terminal's Ctrl-C reaches them only through us) get each signal we get.
        for pid in children().lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is a child of
            // ours, untracked as soon as it is reaped.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGINT);
            }
        }
        if REQUESTED.swap(true, Ordering::SeqCst) {
            // Second signal: the user wants out now.
            std::process::exit(crate::Exit::Interrupted.code());
        }
        crate::log::warn("interrupt received: cancelling the running query and cleaning up (press Ctrl-C again to exit at once)");
        let list = cancellers().lock().unwrap_or_else(|e| e.into_inner());
        for (_, cancel) in list.iter() {
            cancel();
        }
    });
    if let Err(e) = result {
        crate::log::warn(&format!("cannot install the Ctrl-C handler: {e}"));
    }
}

fn children() -> &'static Mutex<Vec<u32>> {
    static LIST: OnceLock<Mutex<Vec<u32>>> = OnceLock::new();
    LIST.get_or_init(|| Mutex::new(Vec::new()))
}

/// Passes every SIGINT/SIGTERM this process gets on to the child `pid` (as SIGINT), the
/// second one too, until [`untrack_child`]; one that arrived already is passed on now.
pub fn track_child(pid: u32) {
    children()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(pid);
    if requested() {
        // SAFETY: as in the handler.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGINT);
        }
    }
}

/// Stops passing signals on to `pid`; call it as soon as the child is reaped.
pub fn untrack_child(pid: u32) {
    children()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
}

/// Whether an interrupt has arrived.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Returns [`crate::Error::Interrupted`] once an interrupt has arrived.
pub fn check() -> crate::Result<()> {
    if requested() {
        Err(crate::Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Registration of a session's cancel action; unregisters itself when dropped.
pub struct CancelRegistration(u64);

impl Drop for CancelRegistration {
    fn drop(&mut self) {
        let mut list = cancellers().lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(id, _)| *id != self.0);
    }
}

/// Registers an action that cancels a session's running query on interrupt.
pub fn on_interrupt(cancel: impl Fn() + Send + 'static) -> CancelRegistration {
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    let mut list = cancellers().lock().unwrap_or_else(|e| e.into_inner());
    list.push((id, Box::new(cancel)));
    CancelRegistration(id)
}
