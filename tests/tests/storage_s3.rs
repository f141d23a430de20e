//! The backup storage layer (`pgward_shared::storage`) against a real S3-compatible server
//! (SeaweedFS, from the harness) and a real local folder: what is written streams back
//! byte for byte, nothing without a manifest is ever listed as a backup, and every S3
//! failure is a clean `Error::Storage` (exit 7) with the right code.
//!
//! These tests call the library in-process, so the AWS SDK reads its credentials from this
//! process's environment. [`S3_ENV`] guards it: every S3 test holds it for reading with the
//! harness's credentials set; a test that needs other credentials holds it for writing.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Once, RwLock, RwLockReadGuard, RwLockWriteGuard};

use pgward_shared::archive::manifest::{ManifestFile, MANIFEST_FILE, VERIFIED_FILE};
use pgward_shared::storage::{self, Location, S3Options, Storage};
use pgward_shared::{Error, Exit};
use pgward_tests::{s3, S3Server};
use sha2::{Digest, Sha256};

/// The storage layer's multipart part size (16 MiB); a file larger than this takes the
/// multipart path.
const PART_SIZE: usize = 16 << 20;

/// Backup ids carry their UTC time, which `list_incomplete` relies on.
const ID: &str = "app-default-20260101T000000Z";
const ID2: &str = "app-default-20260102T000000Z";

/// The process environment the AWS SDK reads (see the module docs).
static S3_ENV: RwLock<()> = RwLock::new(());

/// Sets the harness's credentials (the endpoint goes through [`S3Options`], so it can
/// differ per server) and no AWS config files, so nothing of the machine's is used and
/// the SDK never looks for credentials or a region on the network.
fn set_harness_env(server: &S3Server) {
    for (key, value) in server.env() {
        if key != "AWS_ENDPOINT_URL" {
            std::env::set_var(key, value);
        }
    }
    std::env::remove_var("AWS_ENDPOINT_URL");
    std::env::remove_var("AWS_SESSION_TOKEN");
    std::env::remove_var("AWS_PROFILE");
    let nowhere = std::env::temp_dir().join("pgward-tests-no-aws-config");
    std::env::set_var("AWS_CONFIG_FILE", &nowhere);
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &nowhere);
}

/// The environment for S3 tests with the harness's credentials, held for reading.
fn s3_env() -> RwLockReadGuard<'static, ()> {
    static SET: Once = Once::new();
    SET.call_once(|| {
        let _write = S3_ENV.write().unwrap_or_else(|p| p.into_inner());
        set_harness_env(s3());
    });
    S3_ENV.read().unwrap_or_else(|p| p.into_inner())
}

/// The environment held for writing, to change it; restore it with [`set_harness_env`]
/// before releasing it.
fn s3_env_exclusive() -> RwLockWriteGuard<'static, ()> {
    drop(s3_env());
    S3_ENV.write().unwrap_or_else(|p| p.into_inner())
}

fn options(server: &S3Server) -> S3Options {
    S3Options {
        endpoint: Some(server.endpoint()),
        ..S3Options::default()
    }
}

fn open_s3(server: &S3Server, bucket: &str, prefix: &str) -> Box<dyn Storage> {
    let location = Location::S3 {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    };
    storage::open(&location, &options(server))
        .unwrap_or_else(|e| panic!("could not open {location}: {e}"))
}

/// `len` bytes that do not repeat in any way a store could shortcut, the same every run.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// Writes `data` into `path` of the backup in uneven pieces and closes it.
fn write_file(writer: &dyn storage::BackupWriter, path: &str, data: &[u8]) -> ManifestFile {
    let mut file = writer
        .create(path)
        .unwrap_or_else(|e| panic!("could not create {path}: {e}"));
    for piece in data.chunks(1_000_003) {
        file.write_all(piece).unwrap_or_else(|e| {
            panic!("could not write {path}: {}", storage::write_error(path, e))
        });
    }
    file.finish()
        .unwrap_or_else(|e| panic!("could not finish {path}: {e}"))
}

fn read_all(storage: &dyn Storage, id: &str, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    storage
        .open(id, path)
        .unwrap_or_else(|e| panic!("could not open {id}/{path}: {e}"))
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("could not read {id}/{path}: {e}"));
    out
}

fn manifest_json(id: &str, files: &[ManifestFile]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "id": id, "files": files }))
        .expect("a manifest serializes")
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn incomplete_ids(storage: &dyn Storage) -> Vec<String> {
    sorted(
        storage
            .list_incomplete()
            .expect("list_incomplete works")
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    )
}

/// Asserts `err` is a storage error with `code` and exit 7.
fn assert_storage_error(err: &Error, code: &str) {
    assert!(
        matches!(err, Error::Storage { .. }),
        "expected Error::Storage ({code}), got {err:?}"
    );
    assert_eq!(err.code(), code, "{err:?}");
    assert_eq!(err.exit(), Exit::Storage, "{err:?}");
    assert_eq!(err.exit().code(), 7, "{err:?}");
    // The message is for people: no Rust debug dump of the SDK's raw response.
    let text = err.to_string();
    assert!(
        !text.contains("SdkBody") && !text.contains("ServiceError {"),
        "{text}"
    );
}

#[test]
fn s3_backup_round_trip_with_a_multipart_file() {
    let _env = s3_env();
    let server = s3();
    let bucket = server.new_bucket();
    let storage = open_s3(server, &bucket, "db/prod");
    assert_eq!(storage.location(), format!("s3://{bucket}/db/prod"));

    let big = bytes(2 * PART_SIZE + 12_345, 1);
    let small = bytes(4_321, 2);
    let writer = storage.begin(ID).expect("begin");
    assert_eq!(writer.id(), ID);
    let big_entry = write_file(writer.as_ref(), "data/public.big.0000.copy.zst", &big);
    let small_entry = write_file(writer.as_ref(), "schema.dump", &small);
    assert_eq!(big_entry.path, "data/public.big.0000.copy.zst");
    assert_eq!(big_entry.size, big.len() as u64);
    assert_eq!(big_entry.sha256, sha256_hex(&big));
    assert_eq!(small_entry.size, small.len() as u64);
    assert_eq!(small_entry.sha256, sha256_hex(&small));
    // Every file is complete, but without a manifest it is no backup yet.
    assert_eq!(storage.list().expect("list"), Vec::<String>::new());
    assert_eq!(incomplete_ids(storage.as_ref()), vec![ID.to_string()]);

    let files = [big_entry, small_entry];
    let manifest = manifest_json(ID, &files);
    writer.commit(&files, &manifest).expect("commit");

    assert_eq!(storage.list().expect("list"), vec![ID.to_string()]);
    assert_eq!(incomplete_ids(storage.as_ref()), Vec::<String>::new());
    assert_eq!(
        server.keys(&bucket, ""),
        vec![
            format!("db/prod/{ID}/data/public.big.0000.copy.zst"),
            format!("db/prod/{ID}/{MANIFEST_FILE}"),
            format!("db/prod/{ID}/schema.dump"),
        ]
    );
    assert_eq!(server.open_uploads(&bucket, ""), Vec::<String>::new());

    let big_back = read_all(storage.as_ref(), ID, "data/public.big.0000.copy.zst");
    assert_eq!(big_back.len(), big.len());
    assert!(big_back == big, "the multipart file came back different");
    assert_eq!(read_all(storage.as_ref(), ID, "schema.dump"), small);
    assert_eq!(
        storage.read_small(ID, MANIFEST_FILE).expect("read_small"),
        Some(manifest)
    );
    let (size, sha) = storage::HashingReader::new(storage.open(ID, "schema.dump").expect("open"))
        .finish()
        .expect("hash while reading");
    assert_eq!((size, sha), (small.len() as u64, sha256_hex(&small)));

    // A second backup of the same second takes the next id; one of another id lists
    // beside it.
    let again = storage.begin(ID).expect("begin of an existing id");
    assert_eq!(again.id(), format!("{ID}-2"));
    again.abort();
    let other = open_s3(server, &bucket, "db/prod/");
    let writer = other.begin(ID2).expect("begin");
    let entry = write_file(writer.as_ref(), "schema.dump", b"second");
    writer
        .commit(
            std::slice::from_ref(&entry),
            &manifest_json(ID2, std::slice::from_ref(&entry)),
        )
        .expect("commit");
    assert_eq!(
        sorted(storage.list().expect("list")),
        vec![ID.to_string(), ID2.to_string()]
    );
    // Another prefix of the same bucket sees none of them.
    assert_eq!(
        open_s3(server, &bucket, "db/staging").list().expect("list"),
        Vec::<String>::new()
    );

    storage.delete(ID).expect("delete");
    assert_eq!(storage.list().expect("list"), vec![ID2.to_string()]);
    assert_eq!(
        server.keys(&bucket, ""),
        vec![
            format!("db/prod/{ID2}/{MANIFEST_FILE}"),
            format!("db/prod/{ID2}/schema.dump"),
        ]
    );
}

#[test]
fn s3_small_files_round_trip_and_a_missing_one_is_none() {
    let _env = s3_env();
    let server = s3();
    let bucket = server.new_bucket();
    // No prefix: backups sit at the top of the bucket.
    let storage = open_s3(server, &bucket, "");
    assert_eq!(storage.location(), format!("s3://{bucket}"));
    let writer = storage.begin(ID).expect("begin");
    let empty = write_file(writer.as_ref(), "empty.bin", b"");
    assert_eq!(
        (empty.size, empty.sha256.as_str()),
        (0, sha256_hex(b"").as_str())
    );
    writer
        .commit(
            std::slice::from_ref(&empty),
            &manifest_json(ID, std::slice::from_ref(&empty)),
        )
        .expect("commit");
    assert_eq!(storage.list().expect("list"), vec![ID.to_string()]);
    assert_eq!(
        read_all(storage.as_ref(), ID, "empty.bin"),
        Vec::<u8>::new()
    );

    assert_eq!(
        storage.read_small(ID, VERIFIED_FILE).expect("read_small"),
        None
    );
    assert_eq!(
        storage
            .read_small("no-such-backup", MANIFEST_FILE)
            .expect("read_small"),
        None
    );
    let record = br#"{"verified_at":"2026-01-01T00:00:00Z","deep":false}"#;
    storage
        .write_small(ID, VERIFIED_FILE, record)
        .expect("write_small");
    assert_eq!(
        storage.read_small(ID, VERIFIED_FILE).expect("read_small"),
        Some(record.to_vec())
    );
    // Overwriting is how a later verify updates it.
    storage
        .write_small(ID, VERIFIED_FILE, b"{}")
        .expect("write_small");
    assert_eq!(
        storage.read_small(ID, VERIFIED_FILE).expect("read_small"),
        Some(b"{}".to_vec())
    );
    let missing = storage
        .open(ID, "no-such-file")
        .err()
        .expect("opening a missing file fails");
    assert_storage_error(&missing, "STORAGE_ERROR");
    assert_eq!(
        server.keys(&bucket, ""),
        vec![
            format!("{ID}/empty.bin"),
            format!("{ID}/{MANIFEST_FILE}"),
            format!("{ID}/{VERIFIED_FILE}"),
        ]
    );
}

#[test]
fn s3_aborted_and_uncommitted_backups_are_never_listed() {
    let _env = s3_env();
    let server = s3();
    let bucket = server.new_bucket();
    let storage = open_s3(server, &bucket, "p");

    // Aborted after a complete multipart file and in the middle of another one.
    let writer = storage.begin(ID).expect("begin");
    write_file(writer.as_ref(), "data/a.bin", &bytes(PART_SIZE + 1, 3));
    let mut open_file = writer.create("data/b.bin").expect("create");
    open_file
        .write_all(&bytes(PART_SIZE + 10, 4))
        .expect("write");
    assert_eq!(
        server.open_uploads(&bucket, ""),
        vec![format!("p/{ID}/data/b.bin")]
    );
    drop(open_file);
    assert_eq!(
        server.open_uploads(&bucket, ""),
        Vec::<String>::new(),
        "a file dropped before finish aborts its multipart upload"
    );
    writer.abort();
    assert_eq!(storage.list().expect("list"), Vec::<String>::new());
    assert_eq!(incomplete_ids(storage.as_ref()), Vec::<String>::new());
    assert_eq!(server.keys(&bucket, ""), Vec::<String>::new());

    // Never committed (the run died): a leftover, never a backup.
    let writer = storage.begin(ID2).expect("begin");
    write_file(writer.as_ref(), "schema.dump", b"schema");
    write_file(writer.as_ref(), "data/c.bin", &bytes(PART_SIZE + 5, 5));
    drop(writer);
    assert_eq!(storage.list().expect("list"), Vec::<String>::new());
    let incomplete = storage.list_incomplete().expect("list_incomplete");
    assert_eq!(incomplete.len(), 1, "{incomplete:?}");
    assert_eq!(incomplete[0].0, ID2);
    assert!(
        incomplete[0].1.is_some_and(|age| age < 600),
        "the leftover's age is known and recent: {incomplete:?}"
    );
    // Objects that are no backup folders (no id in their name) are no leftovers either.
    storage
        .write_small("notes", "readme.txt", b"hi")
        .expect("write_small");
    assert_eq!(incomplete_ids(storage.as_ref()), vec![ID2.to_string()]);

    // Deleting a leftover removes everything, including a multipart upload left open.
    // (A new backup in the leftover's second takes the next id, not the leftover's.)
    let writer = storage.begin(ID2).expect("begin beside a leftover");
    let next = writer.id().to_string();
    assert_eq!(next, format!("{ID2}-2"));
    let mut open_file = writer.create("data/d.bin").expect("create");
    open_file.write_all(&bytes(PART_SIZE, 6)).expect("write");
    std::mem::forget(open_file); // a killed run never aborts its upload
    assert_eq!(
        server.open_uploads(&bucket, ""),
        vec![format!("p/{next}/data/d.bin")]
    );
    storage.delete(&next).expect("delete");
    storage.delete(ID2).expect("delete");
    assert_eq!(incomplete_ids(storage.as_ref()), Vec::<String>::new());
    assert_eq!(
        server.keys(&bucket, &format!("p/{ID2}/")),
        Vec::<String>::new()
    );
    assert_eq!(server.open_uploads(&bucket, ""), Vec::<String>::new());
    assert_eq!(
        server.keys(&bucket, ""),
        vec!["p/notes/readme.txt".to_string()]
    );
}

#[test]
fn s3_a_run_killed_in_its_first_upload_is_a_leftover_that_keeps_its_id() {
    let _env = s3_env();
    let server = s3();
    let bucket = server.new_bucket();
    let storage = open_s3(server, &bucket, "p");

    // Killed while its first file was going up: no object at all, one open upload.
    let writer = storage.begin(ID).expect("begin");
    let mut open_file = writer.create("data/a.bin").expect("create");
    open_file.write_all(&bytes(PART_SIZE, 8)).expect("write");
    std::mem::forget(open_file);
    std::mem::forget(writer);
    // Its heartbeat and claim objects gone too (as a run of an older pgward left it, or a
    // cleanup).
    server.delete(&bucket, &format!("p/{ID}/writer.json"));
    let claims = server.keys(&bucket, &format!("p/{ID}/claim-"));
    assert_eq!(claims.len(), 1, "one claim, the writer's: {claims:?}");
    server.delete(&bucket, &claims[0]);
    assert_eq!(server.keys(&bucket, ""), Vec::<String>::new());
    assert_eq!(
        server.open_uploads(&bucket, ""),
        vec![format!("p/{ID}/data/a.bin")]
    );

    // It is listed as a leftover with an age, never as a backup, and prune can see it.
    assert_eq!(storage.list().expect("list"), Vec::<String>::new());
    let incomplete = storage.list_incomplete().expect("list_incomplete");
    assert_eq!(incomplete.len(), 1, "{incomplete:?}");
    assert_eq!(incomplete[0].0, ID);
    assert!(
        incomplete[0].1.is_some_and(|age| age < 600),
        "the open upload's age is known and recent: {incomplete:?}"
    );
    // A new backup in the same second does not write into the dead run's id.
    let writer = storage.begin(ID).expect("begin beside the open upload");
    assert_eq!(writer.id(), format!("{ID}-2"));
    writer.abort();

    // Deleting the leftover aborts the upload; nothing is left to pay for.
    storage.delete(ID).expect("delete");
    assert_eq!(server.open_uploads(&bucket, ""), Vec::<String>::new());
    assert_eq!(incomplete_ids(storage.as_ref()), Vec::<String>::new());
    // Deleting it again (another prune got there first) is no error.
    storage.delete(ID).expect("delete twice");
}

#[test]
fn s3_server_side_encryption_aes256() {
    let _env = s3_env();
    let server = s3();
    let bucket = server.new_bucket();
    let location = Location::S3 {
        bucket: bucket.clone(),
        prefix: "enc".into(),
    };
    let sse = S3Options {
        endpoint: Some(server.endpoint()),
        sse: Some("AES256".into()),
        ..S3Options::default()
    };
    let storage = storage::open(&location, &sse).expect("open with --sse AES256");
    let big = bytes(PART_SIZE + 777, 7);
    let writer = storage.begin(ID).expect("begin");
    let big_entry = write_file(writer.as_ref(), "data/big.bin", &big);
    let small_entry = write_file(writer.as_ref(), "schema.dump", b"encrypted schema");
    writer
        .commit(
            &[big_entry.clone(), small_entry.clone()],
            &manifest_json(ID, &[big_entry, small_entry]),
        )
        .expect("commit");
    assert_eq!(storage.list().expect("list"), vec![ID.to_string()]);
    // Every object, the multipart one and the manifest included, is stored encrypted.
    for key in ["data/big.bin", "schema.dump", MANIFEST_FILE] {
        assert_eq!(
            server
                .object_encryption(&bucket, &format!("enc/{ID}/{key}"))
                .as_deref(),
            Some("AES256"),
            "{key}"
        );
    }
    let plain = server.new_bucket();
    let storage_plain = open_s3(server, &plain, "");
    storage_plain
        .write_small(ID, "plain.txt", b"plain")
        .expect("write_small");
    assert_eq!(
        server.object_encryption(&plain, &format!("{ID}/plain.txt")),
        None
    );
    assert!(read_all(storage.as_ref(), ID, "data/big.bin") == big);
    assert_eq!(
        read_all(storage.as_ref(), ID, "schema.dump"),
        b"encrypted schema"
    );

    // An unknown mode is refused before anything is sent.
    let bad = S3Options {
        endpoint: Some(server.endpoint()),
        sse: Some("rot13".into()),
        ..S3Options::default()
    };
    let err = storage::open(&location, &bad)
        .err()
        .expect("--sse rot13 fails");
    assert_eq!(err.code(), "USAGE", "{err:?}");
}

#[test]
fn s3_missing_bucket_is_bucket_not_found() {
    let _env = s3_env();
    let server = s3();
    let location = Location::S3 {
        bucket: "pgward-no-such-bucket".into(),
        prefix: "x".into(),
    };
    let err = storage::open(&location, &options(server))
        .err()
        .expect("opening a missing bucket fails");
    assert_storage_error(&err, "BUCKET_NOT_FOUND");
    assert!(err.to_string().contains("pgward-no-such-bucket"), "{err}");
}

#[test]
fn s3_wrong_secret_is_access_denied() {
    let server = s3();
    let bucket = server.new_bucket();
    let _env = s3_env_exclusive();
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let wrong_secret = storage::open(
        &Location::S3 {
            bucket: bucket.clone(),
            prefix: String::new(),
        },
        &options(server),
    )
    .err();
    std::env::set_var("AWS_ACCESS_KEY_ID", "pgwardunknownkey");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", server.secret_key());
    let unknown_key = storage::open(
        &Location::S3 {
            bucket: bucket.clone(),
            prefix: String::new(),
        },
        &options(server),
    )
    .err();
    set_harness_env(server);

    let err = wrong_secret.expect("a wrong secret is refused");
    assert_storage_error(&err, "S3_ACCESS_DENIED");
    assert!(!err.to_string().contains(server.secret_key()), "{err}");
    let err = unknown_key.expect("an unknown access key is refused");
    assert_storage_error(&err, "S3_ACCESS_DENIED");
}

#[test]
fn s3_endpoint_and_credentials_from_the_environment() {
    let server = s3();
    let bucket = server.new_bucket();
    let _env = s3_env_exclusive();
    std::env::set_var("AWS_ENDPOINT_URL", server.endpoint());
    let result = (|| {
        let storage = storage::open(
            &Location::parse(&format!("s3://{bucket}/from-env"))?,
            &S3Options::default(),
        )?;
        let writer = storage.begin(ID)?;
        let entry = write_file(writer.as_ref(), "schema.dump", b"via AWS_ENDPOINT_URL");
        writer.commit(
            std::slice::from_ref(&entry),
            &manifest_json(ID, std::slice::from_ref(&entry)),
        )?;
        storage.list()
    })();
    set_harness_env(server);
    assert_eq!(
        result.expect("works with AWS_ENDPOINT_URL"),
        vec![ID.to_string()]
    );
    assert_eq!(
        server.keys(&bucket, ""),
        vec![
            format!("from-env/{ID}/{MANIFEST_FILE}"),
            format!("from-env/{ID}/schema.dump"),
        ]
    );
}

#[test]
fn s3_server_dying_mid_upload_is_a_storage_error() {
    let _env = s3_env();
    let mut server = S3Server::start();
    let bucket = server.new_bucket();
    let storage = open_s3(&server, &bucket, "crash");
    let writer = storage.begin(ID).expect("begin");
    let done = write_file(writer.as_ref(), "schema.dump", b"before the crash");
    let mut file = writer.create("data/big.bin").expect("create");
    // The first part goes up; then the server dies.
    file.write_all(&bytes(PART_SIZE + 1024, 8))
        .expect("write the first part");
    assert_eq!(
        server.open_uploads(&bucket, ""),
        vec![format!("crash/{ID}/data/big.bin")]
    );
    server.stop();
    assert!(!server.is_running());

    let mut write_err = None;
    for piece in bytes(PART_SIZE, 9).chunks(1 << 20) {
        if let Err(e) = file.write_all(piece) {
            write_err = Some(storage::write_error("data/big.bin", e));
            break;
        }
    }
    let write_err = write_err.expect("writing the next part to a dead server fails");
    assert_storage_error(&write_err, "STORAGE_ERROR");
    assert!(
        write_err.to_string().contains("upload part 2"),
        "{write_err}"
    );
    let finish_err = file.finish().expect_err("finishing on a dead server fails");
    assert_storage_error(&finish_err, "STORAGE_ERROR");
    let commit_err = writer
        .commit(
            std::slice::from_ref(&done),
            &manifest_json(ID, std::slice::from_ref(&done)),
        )
        .expect_err("committing on a dead server fails");
    assert_storage_error(&commit_err, "STORAGE_ERROR");
    let list_err = storage.list().expect_err("listing a dead server fails");
    assert_storage_error(&list_err, "STORAGE_ERROR");

    server.restart();
    assert_eq!(
        storage.list().expect("list after the restart"),
        Vec::<String>::new()
    );
    assert_eq!(incomplete_ids(storage.as_ref()), vec![ID.to_string()]);
    // The dead run's file, and the claim and heartbeat that keep its id taken.
    let keys = server.keys(&bucket, "");
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys[0].starts_with(&format!("crash/{ID}/claim-")),
        "{keys:?}"
    );
    assert_eq!(
        keys[1..],
        [
            format!("crash/{ID}/schema.dump"),
            format!("crash/{ID}/writer.json")
        ]
    );
    storage.delete(ID).expect("delete the leftover");
    assert_eq!(server.keys(&bucket, ""), Vec::<String>::new());
    assert_eq!(server.open_uploads(&bucket, ""), Vec::<String>::new());
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("could not stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn local_backup_round_trip_with_private_modes() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("backups");
    let storage = storage::open(&Location::Local(root.clone()), &S3Options::default())
        .expect("open a local folder");
    assert_eq!(storage.location(), root.display().to_string());

    let big = bytes(3 << 20, 10);
    let writer = storage.begin(ID).expect("begin");
    let big_entry = write_file(writer.as_ref(), "data/public.t.0000.copy.zst", &big);
    let small_entry = write_file(writer.as_ref(), "schema.dump", b"schema");
    assert_eq!(big_entry.sha256, sha256_hex(&big));
    assert_eq!(small_entry.size, 6);
    assert_eq!(storage.list().expect("list"), Vec::<String>::new());
    assert_eq!(incomplete_ids(storage.as_ref()), vec![ID.to_string()]);
    assert!(root.join(format!(".partial-{ID}")).is_dir());
    let files = [big_entry, small_entry];
    let manifest = manifest_json(ID, &files);
    writer.commit(&files, &manifest).expect("commit");

    assert_eq!(storage.list().expect("list"), vec![ID.to_string()]);
    assert_eq!(incomplete_ids(storage.as_ref()), Vec::<String>::new());
    assert!(!root.join(format!(".partial-{ID}")).exists());
    let backup = root.join(ID);
    for dir in [root.clone(), backup.clone(), backup.join("data")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in ["data/public.t.0000.copy.zst", "schema.dump", MANIFEST_FILE] {
        assert_eq!(mode(&backup.join(file)), 0o600, "{file}");
    }
    assert!(read_all(storage.as_ref(), ID, "data/public.t.0000.copy.zst") == big);
    assert_eq!(
        storage.read_small(ID, MANIFEST_FILE).expect("read_small"),
        Some(manifest)
    );

    assert_eq!(
        storage.read_small(ID, VERIFIED_FILE).expect("read_small"),
        None
    );
    storage
        .write_small(ID, VERIFIED_FILE, b"{}")
        .expect("write_small");
    assert_eq!(
        storage.read_small(ID, VERIFIED_FILE).expect("read_small"),
        Some(b"{}".to_vec())
    );
    assert_eq!(mode(&backup.join(VERIFIED_FILE)), 0o600);
    let mut names: Vec<String> = std::fs::read_dir(&backup)
        .expect("read the backup folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["data", MANIFEST_FILE, "schema.dump", VERIFIED_FILE]);

    let again = storage.begin(ID).expect("begin of an existing id");
    assert_eq!(again.id(), format!("{ID}-2"));
    again.abort();
    storage.delete(ID).expect("delete");
    assert!(!backup.exists());
    assert_eq!(storage.list().expect("list"), Vec::<String>::new());
}

#[test]
fn local_partial_leftover_is_listed_as_incomplete() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().to_path_buf();
    let storage = storage::open(&Location::Local(root.clone()), &S3Options::default())
        .expect("open a local folder");

    // A run that died mid-write (nothing aborts it) leaves a `.partial-` folder.
    let writer = storage.begin(ID).expect("begin");
    write_file(writer.as_ref(), "schema.dump", b"schema");
    drop(writer);
    // An aborted one leaves nothing.
    let aborted = storage.begin(ID2).expect("begin");
    write_file(aborted.as_ref(), "schema.dump", b"schema");
    aborted.abort();
    // A folder named like a backup but without a manifest is a leftover too; other
    // folders and files are ignored.
    let bare = "app-default-20260103T000000Z";
    std::fs::create_dir(root.join(bare)).expect("mkdir");
    std::fs::create_dir(root.join("not-a-backup")).expect("mkdir");
    std::fs::write(root.join("README"), "hi").expect("write");

    assert_eq!(storage.list().expect("list"), Vec::<String>::new());
    let incomplete = storage.list_incomplete().expect("list_incomplete");
    assert_eq!(
        sorted(incomplete.iter().map(|(id, _)| id.clone()).collect()),
        vec![ID.to_string(), bare.to_string()]
    );
    assert!(
        incomplete
            .iter()
            .all(|(_, age)| age.is_some_and(|a| a < 600)),
        "{incomplete:?}"
    );
    assert!(!root.join(format!(".partial-{ID2}")).exists());

    // Starting the same id again takes the next one: the folder may be a concurrent
    // run's (ids carry only the second), and it is left alone.
    let next = storage
        .begin(ID)
        .expect("begin beside a leftover of the same id");
    assert_eq!(next.id(), format!("{ID}-2"));
    next.abort();
    assert!(root
        .join(format!(".partial-{ID}"))
        .join("schema.dump")
        .exists());
    storage.delete(ID).expect("delete the leftover");
    let writer = storage.begin(ID).expect("begin once the leftover is gone");
    let entry = write_file(writer.as_ref(), "other.bin", b"x");
    writer
        .commit(
            std::slice::from_ref(&entry),
            &manifest_json(ID, std::slice::from_ref(&entry)),
        )
        .expect("commit");
    assert_eq!(storage.list().expect("list"), vec![ID.to_string()]);
    assert!(!root.join(ID).join("schema.dump").exists());

    storage.delete(bare).expect("delete");
    assert_eq!(incomplete_ids(storage.as_ref()), Vec::<String>::new());
    assert_eq!(
        storage
            .read_small("no-such-backup", MANIFEST_FILE)
            .expect("read_small"),
        None
    );
}

/// Backups of one database in one UTC second (a cron backup meeting a pre-migration one)
/// take `-2`, `-3`, ... instead of failing; a tenth in one second is refused with a clear
/// message. Both stores do the same.
#[test]
fn backups_of_one_second_take_the_next_ids() {
    let _env = s3_env();
    let server = s3();
    let bucket = server.new_bucket();
    let tmp = tempfile::tempdir().expect("temp dir");
    let local = storage::open(
        &Location::Local(tmp.path().to_path_buf()),
        &S3Options::default(),
    )
    .expect("open a local folder");
    let remote = open_s3(server, &bucket, "ids");
    for store in [local.as_ref(), remote.as_ref()] {
        let first = store.begin(ID).expect("begin");
        let entry = write_file(first.as_ref(), "schema.dump", b"schema");
        first
            .commit(
                std::slice::from_ref(&entry),
                &manifest_json(ID, std::slice::from_ref(&entry)),
            )
            .expect("commit");
        let second = store.begin(ID).expect("a second backup in the same second");
        assert_eq!(second.id(), format!("{ID}-2"), "{}", store.location());
        let entry = write_file(second.as_ref(), "schema.dump", b"schema");
        second
            .commit(
                std::slice::from_ref(&entry),
                &manifest_json(&format!("{ID}-2"), std::slice::from_ref(&entry)),
            )
            .expect("commit");
        let listed = sorted(store.list().expect("list"));
        assert_eq!(listed, vec![ID.to_string(), format!("{ID}-2")]);
    }

    // A local folder refuses the tenth backup of one second.
    let mut open = Vec::new();
    for n in 3..=9 {
        let w = local.begin(ID).expect("ids up to -9");
        assert_eq!(w.id(), format!("{ID}-{n}"));
        open.push(w);
    }
    let refused = local.begin(ID).err().expect("a tenth id in one second");
    assert_eq!(refused.code(), "USAGE", "{refused}");
    assert!(refused.to_string().contains("already exist"), "{refused}");
    for w in open {
        w.abort();
    }
}
