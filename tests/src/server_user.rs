//! Running the PostgreSQL server as a non-root OS user.
//!
//! `initdb`, `pg_ctl` and `postgres` refuse to run as root, yet CI and the development
//! machines run the tests as root. In that case the server side runs as the `postgres`
//! OS user (Debian's packages create it) and the cluster's files are handed to it.
//! As anyone else, the server runs as the test process's own user.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The OS user the server runs as when the tests run as root.
const SERVER_OS_USER: &str = "postgres";

/// The uid and gid that the server-side commands switch to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerUser {
    uid: u32,
    gid: u32,
}

impl ServerUser {
    /// `Some` when this process is root and the server must run as [`SERVER_OS_USER`],
    /// `None` when the server can run as the current user.
    pub(crate) fn for_this_process() -> Option<ServerUser> {
        static USER: OnceLock<Option<ServerUser>> = OnceLock::new();
        *USER.get_or_init(|| {
            // SAFETY: geteuid has no preconditions and cannot fail.
            if unsafe { libc::geteuid() } != 0 {
                return None;
            }
            Some(lookup(SERVER_OS_USER).unwrap_or_else(|| {
                panic!(
                    "the tests run as root, and initdb refuses root, but there is no \
                     `{SERVER_OS_USER}` OS user to run PostgreSQL as; install the \
                     PostgreSQL server package (it creates that user) or run the tests \
                     as a normal user"
                )
            }))
        })
    }

    /// Gives `path` (not following symlinks into other places) to this user.
    pub(crate) fn chown(self, path: &Path) {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid)).unwrap_or_else(|e| {
            panic!(
                "could not hand {} to the {SERVER_OS_USER} OS user: {e}",
                path.display()
            )
        });
    }

    /// Gives `dir` and everything below it to this user.
    pub(crate) fn chown_tree(self, dir: &Path) {
        self.chown(dir);
        if dir.is_symlink() || !dir.is_dir() {
            return;
        }
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("could not list {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("could not list {}: {e}", dir.display()));
            self.chown_tree(&entry.path());
        }
    }

    /// Makes `command` run as this user.
    pub(crate) fn apply(self, command: &mut Command) {
        command.uid(self.uid).gid(self.gid);
    }
}

/// Looks an OS user up by name, thread-safely (`getpwnam` shares a static buffer).
fn lookup(name: &str) -> Option<ServerUser> {
    let name = CString::new(name).expect("an OS user name has no NUL byte");
    // SAFETY: passwd is plain old data; all-zero is a valid (empty) value.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, and the buffer length is its real size.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some(ServerUser {
        uid: entry.pw_uid,
        gid: entry.pw_gid,
    })
}
