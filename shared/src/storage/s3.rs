//! Backups on S3 or an S3-compatible store: `s3://bucket/prefix/<id>/...`.
//!
//! Files stream up as multipart uploads of [`PART_SIZE`] parts (nothing is staged whole on
//! local disk; a file smaller than one part is one PUT); every request carries an S3
//! checksum the server verifies. `manifest.json` is uploaded only after every other object
//! is complete, so a prefix without one is a leftover. The S3 client runs on its own tokio
//! runtime: the synchronous postgres client must never run inside it.
//!
//! A writer claims its prefix by creating `<id>/writer.json` with a conditional write
//! (`If-None-Match: *`) and then a claim object of its own, `<id>/claim-<token>`, and
//! listing the claims: it has the id only when its claim is the only one. Of two backups
//! of one database in the same second, exactly one gets the id, and the other takes the
//! next — also on stores that check `If-None-Match` apart from the write (SeaweedFS),
//! without relying on timing (see [`S3Storage::begin`]). The object is its heartbeat, rewritten every
//! [`super::HEARTBEAT_SECS`] while the backup runs and removed once the manifest is up;
//! `prune` leaves a leftover with a fresh heartbeat, or one naming a live process on this
//! machine, alone.

use std::io::{Read, Write};
use std::sync::Arc;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
    ServerSideEncryption, StorageClass,
};
use tokio::runtime::Runtime;

use super::{check_address, BackupWriter, FileWriter, S3Options, Sink, Storage, WriterMark};
use crate::archive::manifest::{ManifestFile, MANIFEST_FILE};
use crate::error::{Error, Result};

/// The heartbeat object of a backup being written (see the module doc).
const WRITER_FILE: &str = "writer.json";
/// The name prefix of the claim objects writers racing for an id put beside `writer.json`.
const CLAIM_PREFIX: &str = "claim-";

/// Multipart part size: S3's minimum is 5 MiB; 16 MiB keeps requests few and memory
/// bounded (one buffer per worker).
const PART_SIZE: usize = 16 << 20;
/// Region used when none is configured: S3-compatible stores accept any.
const FALLBACK_REGION: &str = "us-east-1";

struct S3Shared {
    client: aws_sdk_s3::Client,
    rt: Runtime,
    bucket: String,
    prefix: String,
    sse: Option<ServerSideEncryption>,
    storage_class: Option<StorageClass>,
}

/// A bucket and prefix of backups.
pub struct S3Storage {
    shared: Arc<S3Shared>,
}

/// Turns an SDK error into pgward's storage error with the S3 error code.
fn s3_error<E>(location: &str, action: &str, err: aws_sdk_s3::error::SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // HEAD requests carry no error body: fall back to the status code.
    let code = err.code().map(str::to_string).or_else(|| {
        match err.raw_response().map(|r| r.status().as_u16()) {
            Some(404) => Some("NotFound".to_string()),
            Some(403) => Some("AccessDenied".to_string()),
            _ => None,
        }
    });
    // Without a message (HEAD, network failures) the error's causes say what happened;
    // `DisplayErrorContext` would append the whole raw response as Rust debug output.
    let status = err.raw_response().map(|r| r.status().as_u16());
    let reason = match (err.message(), status) {
        (Some(m), _) => m.to_string(),
        (None, Some(403)) => {
            "the store refused the request (HTTP 403: credentials or bucket policy)".to_string()
        }
        (None, Some(404)) => "not found (HTTP 404)".to_string(),
        (None, Some(status)) => format!("{} (HTTP {status})", crate::error::error_chain(&err)),
        (None, None) => crate::error::error_chain(&err),
    };
    Error::Storage {
        location: location.to_string(),
        action: action.to_string(),
        s3_code: code,
        reason: crate::redact::scrub(&reason),
    }
}

impl S3Storage {
    /// Connects (credentials from the standard AWS chain) and checks the bucket exists.
    pub fn connect(bucket: String, prefix: String, options: &S3Options) -> Result<S3Storage> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("start", "the S3 client runtime", e))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let endpoint = options.endpoint.clone().or_else(|| {
            std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty())
        });
        // The loader's own region chain (env, profile, IMDS) uses the HTTP client above;
        // a standalone `RegionProviderChain::default_provider()` would not, and panics for
        // want of a default HTTP client (the SDK is built without one).
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
        if let Some(url) = &endpoint {
            loader = loader.endpoint_url(url);
        }
        let sdk_config = rt.block_on(loader.load());
        let mut s3_config = aws_sdk_s3::config::Builder::from(&sdk_config)
            // S3-compatible stores (MinIO, SeaweedFS, Ceph) want path-style addressing.
            .force_path_style(endpoint.is_some());
        if sdk_config.region().is_none() {
            s3_config = s3_config.region(aws_config::Region::new(FALLBACK_REGION));
        }
        let s3_config = s3_config.build();
        let sse = match options.sse.as_deref() {
            None => None,
            Some("AES256") => Some(ServerSideEncryption::Aes256),
            Some("aws:kms") => Some(ServerSideEncryption::AwsKms),
            Some(other) => {
                return Err(Error::usage(
                    format!("--sse {other} is not AES256 or aws:kms"),
                    "pass --sse AES256 or --sse aws:kms",
                ))
            }
        };
        let storage_class = match options.storage_class.as_deref() {
            None => None,
            Some(class) if StorageClass::values().contains(&class) => {
                Some(StorageClass::from(class))
            }
            Some(other) => {
                return Err(Error::usage(
                    format!("{other} is not an S3 storage class"),
                    format!(
                    "pass one of {} with --s3-storage-class (or s3_storage_class in pgward.toml)",
                    StorageClass::values().join(", ")
                ),
                ))
            }
        };
        let shared = S3Shared {
            client: aws_sdk_s3::Client::from_conf(s3_config),
            rt,
            bucket,
            // `db/prod/` and `db/prod` are one location: keys never hold a doubled `/`.
            prefix: prefix.trim_matches('/').to_string(),
            sse,
            storage_class,
        };
        let location = shared.location();
        shared
            .rt
            .block_on(shared.client.head_bucket().bucket(&shared.bucket).send())
            .map_err(|e| match s3_error(&location, "open the bucket", e) {
                Error::Storage {
                    location,
                    action,
                    s3_code: Some(c),
                    reason,
                } if c == "NotFound" => Error::Storage {
                    location,
                    action,
                    s3_code: Some("NoSuchBucket".into()),
                    reason: if reason.is_empty() {
                        "the bucket does not exist".into()
                    } else {
                        reason
                    },
                },
                other => other,
            })?;
        Ok(S3Storage {
            shared: Arc::new(shared),
        })
    }
}

impl S3Shared {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn key(&self, id: &str, path: &str) -> String {
        format!("{}{id}/{path}", self.base())
    }

    /// `prefix/` or nothing.
    fn base(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// Every object under `prefix`: key, age in seconds, size.
    fn objects(&self, prefix: &str) -> Result<Vec<(String, Option<u64>, u64)>> {
        let mut objects = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .rt
                .block_on(
                    self.client
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(prefix)
                        .set_continuation_token(token.take())
                        .send(),
                )
                .map_err(|e| s3_error(&self.location(), "list", e))?;
            let now = chrono::Utc::now().timestamp();
            for obj in page.contents() {
                if let Some(k) = obj.key() {
                    let age = obj.last_modified().map(|t| (now - t.secs()).max(0) as u64);
                    let size = obj.size().unwrap_or(0).max(0) as u64;
                    objects.push((k.to_string(), age, size));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(objects)
    }

    /// Every key under `prefix`, with its age in seconds.
    fn list_keys(&self, prefix: &str) -> Result<Vec<(String, Option<u64>)>> {
        Ok(self
            .objects(prefix)?
            .into_iter()
            .map(|(key, age, _)| (key, age))
            .collect())
    }

    /// Every object under `prefix` (the path after it) with its size.
    fn sizes(&self, prefix: &str) -> Result<std::collections::HashMap<String, u64>> {
        Ok(self
            .objects(prefix)?
            .into_iter()
            .filter_map(|(key, _, size)| Some((key.strip_prefix(prefix)?.to_string(), size)))
            .collect())
    }

    /// Creates `key` only if no object has that key (`If-None-Match: *`): `Ok(false)` when
    /// one does (or another writer's create is in flight).
    fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool> {
        let sent = self.rt.block_on(
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .if_none_match("*")
                .set_server_side_encryption(self.sse.clone())
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .body(ByteStream::from(bytes))
                .send(),
        );
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.raw_response().map(|r| r.status().as_u16()),
                    Some(412 | 409)
                ) || matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(s3_error(&self.location(), &format!("upload {key}"), e)),
        }
    }

    /// The heartbeat of backup `id`, and its age in seconds, if there is one.
    fn writer_mark(&self, id: &str) -> Result<Option<(Option<WriterMark>, Option<u64>)>> {
        let key = self.key(id, WRITER_FILE);
        let got = self.rt.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await?;
            let modified = out.last_modified().map(|t| t.secs());
            Ok::<_, aws_sdk_s3::error::SdkError<_, _>>((
                out.body.collect().await.map(|b| b.to_vec()),
                modified,
            ))
        });
        match got {
            Ok((bytes, modified)) => {
                let now = chrono::Utc::now().timestamp();
                let age = modified.map(|t| (now - t).max(0) as u64);
                let mark = bytes
                    .ok()
                    .and_then(|b| serde_json::from_slice::<WriterMark>(&b).ok());
                Ok(Some((mark, age)))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(s3_error(&self.location(), &format!("download {key}"), e)),
        }
    }

    /// Every multipart upload still open under `prefix`: key, upload id and age in
    /// seconds. A killed run leaves these behind, possibly with no object beside them.
    fn list_uploads(&self, prefix: &str) -> Result<Vec<(String, String, Option<u64>)>> {
        let mut uploads = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .rt
                .block_on(
                    self.client
                        .list_multipart_uploads()
                        .bucket(&self.bucket)
                        .prefix(prefix)
                        .set_key_marker(markers.0.clone())
                        .set_upload_id_marker(markers.1.clone())
                        .send(),
                )
                .map_err(|e| s3_error(&self.location(), "list multipart uploads", e))?;
            let now = chrono::Utc::now().timestamp();
            for upload in page.uploads() {
                if let (Some(key), Some(upload_id)) = (upload.key(), upload.upload_id()) {
                    let age = upload.initiated().map(|t| (now - t.secs()).max(0) as u64);
                    uploads.push((key.to_string(), upload_id.to_string(), age));
                }
            }
            let next = (
                page.next_key_marker().map(str::to_string),
                page.next_upload_id_marker().map(str::to_string),
            );
            // A store that repeats its markers would otherwise loop for ever.
            if page.is_truncated() != Some(true) || next.0.is_none() || next == markers {
                break;
            }
            markers = next;
        }
        Ok(uploads)
    }

    /// [`Self::list_uploads`], or none when the credentials may not list uploads
    /// (`s3:ListBucketMultipartUploads` is a permission of its own, which a role that
    /// lists and writes backups need not have; only prune requires it).
    fn list_uploads_if_allowed(&self, prefix: &str) -> Result<Vec<(String, String, Option<u64>)>> {
        match self.list_uploads(prefix) {
            Err(Error::Storage {
                s3_code: Some(code),
                ..
            }) if code == "AccessDenied" => Ok(Vec::new()),
            other => other,
        }
    }

    /// Whether anything (an object or an open multipart upload) is under `prefix`.
    fn anything_under(&self, prefix: &str) -> Result<bool> {
        Ok(
            !self.list_keys(prefix)?.is_empty()
                || !self.list_uploads_if_allowed(prefix)?.is_empty(),
        )
    }

    /// Ids (first path segment under the base) of every object and open multipart
    /// upload, with the manifest flag and the age of the newest of them.
    fn ids(&self) -> Result<Vec<(String, bool, Option<u64>)>> {
        let base = self.base();
        let mut ids: Vec<(String, bool, Option<u64>)> = Vec::new();
        let uploads = self
            .list_uploads_if_allowed(&base)?
            .into_iter()
            .map(|(key, _, age)| (key, age));
        for (key, age) in self.list_keys(&base)?.into_iter().chain(uploads) {
            let Some((id, rest)) = key[base.len()..].split_once('/') else {
                continue;
            };
            let is_manifest = rest == MANIFEST_FILE;
            match ids.iter_mut().find(|(i, _, _)| i == id) {
                Some(entry) => {
                    entry.1 |= is_manifest;
                    entry.2 = match (entry.2, age) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None => ids.push((id.to_string(), is_manifest, age)),
            }
        }
        Ok(ids)
    }

    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.rt
            .block_on(
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .set_server_side_encryption(self.sse.clone())
                    .set_storage_class(self.storage_class.clone())
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .body(ByteStream::from(bytes))
                    .send(),
            )
            .map_err(|e| s3_error(&self.location(), &format!("upload {key}"), e))?;
        Ok(())
    }
}

impl Storage for S3Storage {
    fn location(&self) -> String {
        self.shared.location()
    }

    fn holders(&self, _id: &str) -> Vec<&dyn Storage> {
        vec![self]
    }

    fn begin(&self, id: &str) -> Result<Box<dyn BackupWriter>> {
        check_address(id, None)?;
        let mark = WriterMark::of_this_process();
        let body = serde_json::to_vec(&mark).unwrap_or_default();
        for candidate in crate::archive::manifest::id_candidates(id) {
            // Anything under the id, complete or a leftover, even a killed run's open
            // upload with no object beside it, keeps it taken; of two writers that find
            // it free at once, the conditional create of the heartbeat lets one through.
            if self
                .shared
                .anything_under(&self.shared.key(&candidate, ""))?
            {
                continue;
            }
            if !self
                .shared
                .put_new(&self.shared.key(&candidate, WRITER_FILE), body.clone())?
            {
                continue;
            }
            // Some S3-compatible stores (SeaweedFS) check `If-None-Match` apart from the
            // write, so two writers racing for one id can both get here. Each then puts a
            // claim of its own and lists the claims, and has the id only when its claim
            // is the only one. Listings are read-after-write consistent, so of two
            // writers the one that lists later sees the other's claim: at most one wins
            // (both may lose, and take the next id), whatever the timing. The winner's
            // claim stays until the manifest is up, so a later writer sees it.
            let claim = format!("{CLAIM_PREFIX}{}", mark.token);
            self.shared
                .put(&self.shared.key(&candidate, &claim), body.clone())?;
            let claims = self
                .shared
                .list_keys(&self.shared.key(&candidate, CLAIM_PREFIX))?;
            if claims.len() != 1 {
                let _ = self.delete_small(&candidate, &claim);
                continue;
            }
            // The winner's mark, whichever racing write the store kept.
            self.shared
                .put(&self.shared.key(&candidate, WRITER_FILE), body.clone())?;
            let heartbeat = Heartbeat::start(
                self.shared.clone(),
                self.shared.key(&candidate, WRITER_FILE),
                body,
            );
            return Ok(Box::new(S3Writer {
                shared: self.shared.clone(),
                id: candidate,
                claim,
                mark,
                heartbeat: std::sync::Mutex::new(Some(heartbeat)),
            }));
        }
        Err(super::ids_exhausted(id, &self.location()))
    }

    fn storage_class(&self) -> Option<String> {
        self.shared
            .storage_class
            .as_ref()
            .map(|c| c.as_str().to_string())
    }

    fn is_being_written(&self, id: &str) -> Result<bool> {
        check_address(id, None)?;
        Ok(match self.shared.writer_mark(id)? {
            None => false,
            Some((mark, age)) => match mark.as_ref().and_then(WriterMark::alive_here) {
                Some(alive) => alive,
                None => age.is_none_or(|a| a < super::HEARTBEAT_STALE_SECS),
            },
        })
    }

    fn list(&self) -> Result<Vec<String>> {
        Ok(self
            .shared
            .ids()?
            .into_iter()
            .filter(|(_, complete, _)| *complete)
            .map(|(id, _, _)| id)
            .collect())
    }

    fn list_incomplete(&self) -> Result<Vec<(String, Option<u64>)>> {
        Ok(self
            .shared
            .ids()?
            .into_iter()
            .filter(|(id, complete, _)| {
                !complete && crate::archive::manifest::time_of_id(id).is_some()
            })
            .map(|(id, _, age)| (id, age))
            .collect())
    }

    fn open(&self, id: &str, path: &str) -> Result<Box<dyn Read + Send>> {
        check_address(id, Some(path))?;
        let key = self.shared.key(id, path);
        let out = self
            .shared
            .rt
            .block_on(
                self.shared
                    .client
                    .get_object()
                    .bucket(&self.shared.bucket)
                    .key(&key)
                    .send(),
            )
            .map_err(|e| s3_error(&self.location(), &format!("download {key}"), e))?;
        Ok(Box::new(S3Reader {
            shared: self.shared.clone(),
            body: out.body,
            chunk: Default::default(),
            pos: 0,
        }))
    }

    fn read_small(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
        check_address(id, Some(path))?;
        let key = self.shared.key(id, path);
        let result = self.shared.rt.block_on(async {
            let out = self
                .shared
                .client
                .get_object()
                .bucket(&self.shared.bucket)
                .key(&key)
                .send()
                .await?;
            Ok::<_, aws_sdk_s3::error::SdkError<_, _>>(out.body.collect().await.map(|b| b.to_vec()))
        });
        match result {
            Ok(Ok(bytes)) => Ok(Some(bytes)),
            Ok(Err(e)) => Err(Error::Storage {
                location: self.location(),
                action: format!("download {key}"),
                s3_code: None,
                reason: e.to_string(),
            }),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(s3_error(&self.location(), &format!("download {key}"), e)),
        }
    }

    fn write_small(&self, id: &str, path: &str, bytes: &[u8]) -> Result<()> {
        check_address(id, Some(path))?;
        self.shared.put(&self.shared.key(id, path), bytes.to_vec())
    }

    fn delete_small(&self, id: &str, path: &str) -> Result<()> {
        check_address(id, Some(path))?;
        let key = self.shared.key(id, path);
        // Deleting a key that is not there succeeds in S3.
        self.shared
            .rt
            .block_on(
                self.shared
                    .client
                    .delete_object()
                    .bucket(&self.shared.bucket)
                    .key(&key)
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| s3_error(&self.location(), &format!("delete {key}"), e))
    }

    fn delete(&self, id: &str) -> Result<()> {
        check_address(id, None)?;
        let shared = &self.shared;
        let prefix = shared.key(id, "");
        let keys = shared.list_keys(&prefix)?;
        for batch in keys.chunks(1000) {
            let objects: Vec<ObjectIdentifier> = batch
                .iter()
                .filter_map(|(k, _)| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Error::Storage {
                    location: self.location(),
                    action: "delete".into(),
                    s3_code: None,
                    reason: e.to_string(),
                })?;
            let out = shared
                .rt
                .block_on(
                    shared
                        .client
                        .delete_objects()
                        .bucket(&shared.bucket)
                        .delete(delete)
                        .checksum_algorithm(ChecksumAlgorithm::Sha256)
                        .send(),
                )
                .map_err(|e| s3_error(&self.location(), &format!("delete {prefix}"), e))?;
            // A 200 answer can still list keys it failed to delete.
            if let Some(failed) = out.errors().first() {
                return Err(Error::Storage {
                    location: self.location(),
                    action: format!("delete {}", failed.key().unwrap_or(&prefix)),
                    s3_code: failed.code().map(str::to_string),
                    reason: failed.message().unwrap_or("not deleted").to_string(),
                });
            }
        }
        // Multipart uploads a killed run left open cost storage until aborted.
        // One that is already gone (another prune, the store's own expiry) is fine.
        for (key, upload_id, _) in shared.list_uploads(&prefix)? {
            let aborted = shared.rt.block_on(
                shared
                    .client
                    .abort_multipart_upload()
                    .bucket(&shared.bucket)
                    .key(&key)
                    .upload_id(upload_id)
                    .send(),
            );
            match aborted {
                Err(e) if e.code() != Some("NoSuchUpload") => {
                    return Err(s3_error(
                        &self.location(),
                        &format!("abort the open upload of {key}"),
                        e,
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

struct S3Writer {
    shared: Arc<S3Shared>,
    id: String,
    /// Its claim object's name under the id (see [`S3Storage::begin`]).
    claim: String,
    mark: WriterMark,
    heartbeat: std::sync::Mutex<Option<Heartbeat>>,
}

impl S3Writer {
    fn stop_heartbeat(&self) {
        if let Some(h) = self.heartbeat.lock().ok().and_then(|mut h| h.take()) {
            h.stop();
        }
    }

    /// Fails unless the prefix still holds this writer's heartbeat and every one of
    /// `files` at its size: a prefix deleted under a running backup is never published.
    fn check_intact(&self, files: &[ManifestFile]) -> Result<()> {
        let gone = |reason: String| Error::BackupRemovedWhileWriting {
            id: self.id.clone(),
            location: self.shared.location(),
            reason,
        };
        match self.shared.writer_mark(&self.id)? {
            Some((Some(mark), _)) if mark.token == self.mark.token => {}
            Some(_) => return Err(gone(format!("{WRITER_FILE} belongs to another writer"))),
            None => return Err(gone(format!("its {WRITER_FILE} was deleted"))),
        }
        let found = self.shared.sizes(&self.shared.key(&self.id, ""))?;
        match super::missing_files(files, &found) {
            Some(reason) => Err(gone(reason)),
            None => Ok(()),
        }
    }
}

/// Rewrites a writer's heartbeat object every [`super::HEARTBEAT_SECS`] until stopped.
struct Heartbeat {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Heartbeat {
    fn start(shared: Arc<S3Shared>, key: String, body: Vec<u8>) -> Heartbeat {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let every = std::time::Duration::from_secs(super::HEARTBEAT_SECS);
            // Ends when told to or when the writer is dropped (the sender with it).
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                // A missed beat is retried at the next; the commit checks the object.
                let _ = shared.put(&key, body.clone());
            }
        });
        Heartbeat { stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

impl BackupWriter for S3Writer {
    fn id(&self) -> &str {
        &self.id
    }

    fn create(&self, path: &str) -> Result<FileWriter> {
        check_address(&self.id, Some(path))?;
        Ok(FileWriter::new(
            path,
            Box::new(S3Sink {
                shared: self.shared.clone(),
                key: self.shared.key(&self.id, path),
                buf: Vec::new(),
                upload_id: None,
                parts: Vec::new(),
            }),
        ))
    }

    fn commit(self: Box<Self>, files: &[ManifestFile], manifest: &[u8]) -> Result<()> {
        // The heartbeat stops first, so that it cannot write the object again after the
        // check found it, or after it is removed.
        self.stop_heartbeat();
        self.check_intact(files)?;
        self.shared
            .put(&self.shared.key(&self.id, MANIFEST_FILE), manifest.to_vec())?;
        // Published: the heartbeat and the claim have done their work. One left behind is
        // harmless (the manifest does not list it, so verify never reads it).
        let storage = S3Storage {
            shared: self.shared.clone(),
        };
        let _ = storage.delete_small(&self.id, WRITER_FILE);
        let _ = storage.delete_small(&self.id, &self.claim);
        Ok(())
    }

    fn abort(self: Box<Self>) {
        self.stop_heartbeat();
        // Best effort; prune removes what remains.
        let storage = S3Storage {
            shared: self.shared.clone(),
        };
        let _ = storage.delete(&self.id);
    }
}

struct S3Sink {
    shared: Arc<S3Shared>,
    key: String,
    buf: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl S3Sink {
    fn upload_part(&mut self) -> Result<()> {
        let shared = self.shared.clone();
        let location = shared.location();
        if self.upload_id.is_none() {
            let created = shared
                .rt
                .block_on(
                    shared
                        .client
                        .create_multipart_upload()
                        .bucket(&shared.bucket)
                        .key(&self.key)
                        .set_server_side_encryption(shared.sse.clone())
                        .set_storage_class(shared.storage_class.clone())
                        .checksum_algorithm(ChecksumAlgorithm::Sha256)
                        .send(),
                )
                .map_err(|e| {
                    s3_error(&location, &format!("start the upload of {}", self.key), e)
                })?;
            self.upload_id = created.upload_id().map(str::to_string);
        }
        let upload_id = self.upload_id.clone().unwrap_or_default();
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::take(&mut self.buf);
        let part = shared
            .rt
            .block_on(
                shared
                    .client
                    .upload_part()
                    .bucket(&shared.bucket)
                    .key(&self.key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .body(ByteStream::from(body))
                    .send(),
            )
            .map_err(|e| {
                s3_error(
                    &location,
                    &format!("upload part {number} of {}", self.key),
                    e,
                )
            })?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_string))
                .set_checksum_sha256(part.checksum_sha256().map(str::to_string))
                .build(),
        );
        Ok(())
    }
}

impl Write for S3Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PART_SIZE {
            self.upload_part().map_err(std::io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink for S3Sink {
    fn close(mut self: Box<Self>) -> Result<()> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = std::mem::take(&mut self.buf);
            return self.shared.put(&self.key, body);
        };
        if !self.buf.is_empty() {
            self.upload_part()?;
        }
        let shared = self.shared.clone();
        let parts = std::mem::take(&mut self.parts);
        shared
            .rt
            .block_on(
                shared
                    .client
                    .complete_multipart_upload()
                    .bucket(&shared.bucket)
                    .key(&self.key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send(),
            )
            .map_err(|e| {
                s3_error(
                    &shared.location(),
                    &format!("complete the upload of {}", self.key),
                    e,
                )
            })?;
        self.upload_id = None;
        Ok(())
    }
}

impl Drop for S3Sink {
    fn drop(&mut self) {
        // An upload that was never completed is aborted, so it leaves no hidden parts.
        if let Some(upload_id) = self.upload_id.take() {
            let _ = self.shared.rt.block_on(
                self.shared
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.shared.bucket)
                    .key(&self.key)
                    .upload_id(upload_id)
                    .send(),
            );
        }
    }
}

struct S3Reader {
    shared: Arc<S3Shared>,
    body: ByteStream,
    chunk: bytes::Bytes,
    pos: usize,
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let data = self.chunk.as_ref();
            if self.pos < data.len() {
                let n = out.len().min(data.len() - self.pos);
                out[..n].copy_from_slice(&data[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match self.shared.rt.block_on(self.body.next()) {
                Some(Ok(bytes)) => {
                    self.chunk = bytes;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
    }
}
