//! Encryption at rest that does not depend on the bucket: every file of a backup encrypted
//! client-side to an age recipient (`--encrypt-to`, or the environment's `encrypt_to`),
//! the manifest naming the recipients and never a key. Against the S3 server: the stored
//! objects do not decompress without the key; restore with the identity round-trips the
//! rich fixture; with a wrong identity, or none, it stops (exit 5, exit 2) before the
//! target is touched; verify checks what is stored and needs the identity to decompress.
//! And the S3 storage class per environment (or `--s3-storage-class`), recorded in the
//! manifest.

use age::secrecy::ExposeSecret;
use pgward_tests::{
    assert_same_state, cluster, env_refs, load_rich_fixture, path_str,
    restore_into_new_database_with, run, s3, state, temp_dir, Output,
};

/// A fresh age key pair: the identity file's text and the recipient.
fn key_pair() -> (String, String) {
    let identity = age::x25519::Identity::generate();
    let secret = identity.to_string().expose_secret().to_string();
    (
        format!("# a test key\n{secret}\n"),
        identity.to_public().to_string(),
    )
}

fn write_identity(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("the identity file is writable");
    path_str(&path).to_string()
}

fn envs(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = cluster()
        .pg_tools_env()
        .map(|(k, v)| (k, v.to_string()))
        .to_vec();
    env.extend(extra.iter().cloned());
    env
}

fn run_with(tool: &str, args: &[&str], env: &[(&'static str, String)]) -> Output {
    run(tool, args, &env_refs(env))
}

#[test]
fn an_encrypted_s3_backup_is_ciphertext_at_rest_and_restores_only_with_its_identity() {
    let server = s3();
    let env = envs(&server.env());
    let bucket = server.new_bucket();
    let location = format!("s3://{bucket}/enc");
    let keys = temp_dir("age_keys_");
    let (identity_text, recipient) = key_pair();
    let identity = write_identity(keys.path(), "key.txt", &identity_text);
    let (wrong_text, _) = key_pair();
    let wrong = write_identity(keys.path(), "wrong.txt", &wrong_text);

    let source = cluster().create_database();
    load_rich_fixture(&source);
    let before = state(&source);
    let url = source.url();
    let out = run_with(
        "backup",
        &[
            "--to",
            &location,
            "--database-url",
            &url,
            "--encrypt-to",
            &recipient,
        ],
        &env,
    );
    out.assert_code(0);
    let id = out.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();

    // The manifest (in clear) names the recipient, never a key; format 3.
    let manifest_bytes = server.get(&bucket, &format!("enc/{id}/manifest.json"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest_bytes).expect("the manifest is JSON in clear");
    assert_eq!(manifest["format_version"], 3);
    assert_eq!(manifest["encryption"]["scheme"], "age");
    assert_eq!(
        manifest["encryption"]["recipients"],
        serde_json::json!([recipient])
    );
    let manifest_text = String::from_utf8_lossy(&manifest_bytes);
    assert!(!manifest_text.contains("AGE-SECRET-KEY"), "{manifest_text}");

    // Every other object is an age file: neither zstd nor pg_dump can read it.
    let keys_stored = server.keys(&bucket, &format!("enc/{id}/"));
    let data: Vec<&String> = keys_stored
        .iter()
        .filter(|k| !k.ends_with("/manifest.json"))
        .collect();
    assert!(
        data.len() >= 3,
        "schema, migrations and data files: {keys_stored:?}"
    );
    for key in &data {
        let bytes = server.get(&bucket, key);
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n"),
            "{key} is stored encrypted"
        );
        assert!(
            zstd::decode_all(bytes.as_slice()).is_err(),
            "{key} does not decompress without the key"
        );
        assert!(
            !String::from_utf8_lossy(&bytes).contains("CREATE TABLE"),
            "{key} shows no schema in clear"
        );
    }

    // verify: needs the identity to decompress (exit 2 without), passes with it.
    let from = format!("{location}/{id}");
    let out = run_with("backup", &["verify", &id, "--from", &location], &env);
    out.assert_error(2, "BACKUP_NEEDS_KEY");
    let out = run_with(
        "backup",
        &["verify", &id, "--from", &location, "--identity", &identity],
        &env,
    );
    out.assert_code(0);

    // A wrong identity: exit 5 before the existing target is touched.
    let target = cluster().create_database();
    target.psql("CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (1), (2);");
    let target_before = state(&target);
    let target_url = target.url();
    let out = run_with(
        "restore",
        &[
            "--from",
            &from,
            "--database-url",
            &target_url,
            "--clean",
            "--identity",
            &wrong,
        ],
        &env,
    );
    let json = out.assert_error(5, "BACKUP_KEY_MISMATCH");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&recipient),
        "the error names the recipient the backup is for\n{out}"
    );
    assert_same_state(
        &target_before,
        &state(&target),
        "the target after a wrong key",
    );
    // No identity at all: exit 2, also before anything is touched.
    let out = run_with(
        "restore",
        &["--from", &from, "--database-url", &target_url, "--clean"],
        &env,
    );
    out.assert_error(2, "BACKUP_NEEDS_KEY");
    assert_same_state(&target_before, &state(&target), "the target without a key");

    // With its identity (from the environment variable), a new database gets the rich
    // fixture exactly.
    let into = cluster().vacant_database();
    let s3_env = server.env();
    let mut with_key = env_refs(&s3_env);
    with_key.push(("PGWARD_AGE_IDENTITY", identity.as_str()));
    let out = restore_into_new_database_with(&source, &from, &into, &[], &with_key);
    out.assert_code(0);
    assert_same_state(&before, &state(&into), "the restored copy");
}

#[test]
fn an_environments_keys_encrypt_every_backup_it_writes_and_decrypt_its_restores() {
    let project = temp_dir("age_env_");
    let (identity_text, recipient) = key_pair();
    write_identity(project.path(), "key.txt", &identity_text);
    let backups = project.path().join("backups");
    std::fs::write(
        project.path().join("pgward.toml"),
        format!(
            "[env.dev]\ndatabase_url_env = \"DEV_URL\"\nbackups = \"{}\"\nbackup_format = \"sql\"\n\
             encrypt_to = [\"{recipient}\"]\nage_identity = \"key.txt\"\n",
            path_str(&backups)
        ),
    )
    .expect("pgward.toml is writable");
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g;");
    let before = state(&db);
    let url = db.url();
    let env = envs(&[("DEV_URL", url.clone())]);
    let run_here = |tool: &str, args: &[&str]| {
        pgward_tests::run_in(project.path(), tool, args, &env_refs(&env))
    };

    let out = run_here("backup", &["--env", "dev"]);
    out.assert_code(0);
    let id = out.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let sql = std::fs::read(backups.join(&id).join("backup.sql.zst")).expect("the sql file");
    assert!(
        sql.starts_with(b"age-encryption.org/v1\n"),
        "the sql backup is encrypted"
    );
    run_here("backup", &["verify", &id, "--env", "dev"]).assert_code(0);

    // A bad recipient is refused before anything is written.
    let out = run_here("backup", &["--env", "dev", "--encrypt-to", "age1notakey"]);
    out.assert_error(2, "USAGE");
    assert_eq!(
        std::fs::read_dir(&backups).expect("the folder").count(),
        1,
        "{out}"
    );

    // The restore decrypts with the environment's identity; its safety backup of what it
    // replaces is encrypted to the environment's recipient too.
    db.psql("DELETE FROM t WHERE id > 100;");
    let from = format!("{}/{id}", path_str(&backups));
    let out = run_here("restore", &["--env", "dev", "--from", &from, "--clean"]);
    out.assert_code(0);
    assert_same_state(
        &before,
        &state(&db),
        "restored from the encrypted sql backup",
    );
    let safety = out.json()["result"]["safety_backup"]
        .as_str()
        .expect("a safety backup")
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(backups.join(&safety).join("manifest.json")).expect("its manifest"),
    )
    .expect("JSON");
    assert_eq!(
        manifest["encryption"]["recipients"],
        serde_json::json!([recipient]),
        "{out}"
    );
}

#[test]
fn the_environments_s3_storage_class_is_used_for_every_object_and_recorded() {
    let server = s3();
    let bucket = server.new_bucket();
    let project = temp_dir("storage_class_");
    std::fs::write(
        project.path().join("pgward.toml"),
        format!(
            "[env.dev]\ndatabase_url_env = \"DEV_URL\"\nbackups = \"s3://{bucket}/sc\"\ns3_storage_class = \"STANDARD_IA\"\n"
        ),
    )
    .expect("pgward.toml is writable");
    let db = cluster().create_database();
    db.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);");
    let url = db.url();
    let mut env = envs(&server.env());
    env.push(("DEV_URL", url));
    let run_here =
        |args: &[&str]| pgward_tests::run_in(project.path(), "backup", args, &env_refs(&env));

    let out = run_here(&["--env", "dev"]);
    out.assert_code(0);
    let id = out.json()["result"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&server.get(&bucket, &format!("sc/{id}/manifest.json")))
            .expect("the manifest is JSON");
    assert_eq!(manifest["storage_class"], "STANDARD_IA");
    for key in server.keys(&bucket, &format!("sc/{id}/")) {
        assert_eq!(
            server.object_storage_class(&bucket, &key).as_deref(),
            Some("STANDARD_IA"),
            "{key}"
        );
    }

    // A class S3 does not have is refused before anything is written.
    let out = run_here(&["--env", "dev", "--s3-storage-class", "CHEAP"]);
    let json = out.assert_error(2, "USAGE");
    assert!(
        json["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("GLACIER_IR"),
        "the hint lists the classes\n{out}"
    );
    assert_eq!(
        server
            .keys(&bucket, "sc/")
            .iter()
            .filter(|k| k.ends_with("manifest.json"))
            .count(),
        1
    );
}
