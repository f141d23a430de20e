//! Client-side encryption of backup files, in the age format (<https://age-encryption.org>)
//! with x25519 recipients: what the bucket's owner, its replicas and anyone who copies its
//! objects see is ciphertext, whatever the bucket's own encryption (SSE stays available).
//!
//! - A backup is encrypted when recipients are configured: `--encrypt-to age1…`
//!   (repeatable) or the environment's `encrypt_to`. Every file of it is one age stream,
//!   written as it is produced (nothing is staged in clear). The manifest stays in clear —
//!   it is what lists, verifies and chooses backups — and says which files are encrypted
//!   and for whom (`encryption`, the recipients' public keys, never a key).
//! - The manifest's sizes and SHA-256 are those of the stored (encrypted) bytes: a
//!   checksum-only `verify` checks them without the key. Decompressing, `verify --deep` and
//!   restore need an identity (`--identity FILE`, `PGWARD_AGE_IDENTITY`, or the
//!   environment's `age_identity`), checked against the manifest's recipients before
//!   anything is read or touched.
//!
//! The keys of one run are set once, when the command starts ([`configure`]), and read
//! wherever a backup file is written ([`seal`]) or read ([`plain`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use crate::archive::manifest::{BackupManifest, ManifestEncryption};
use crate::error::{Error, Result};
use crate::output::Context;
use crate::storage::{BackupWriter, FileWriter};
use age::x25519::{Identity, Recipient};

/// The one encryption scheme: age, x25519 recipients.
pub const SCHEME: &str = "age";

/// The flags of every command that writes or reads backups.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct KeyArgs {
    /// Encrypt the backup's files to this age recipient (age1…); repeatable [default: the environment's encrypt_to]
    #[arg(long = "encrypt-to", value_name = "RECIPIENT", global = true)]
    pub encrypt_to: Vec<String>,
    /// The age identity file that decrypts encrypted backups (also PGWARD_AGE_IDENTITY) [default: the environment's age_identity]
    #[arg(long = "identity", value_name = "FILE", global = true)]
    pub identity: Option<PathBuf>,
}

/// The variable naming the identity file when `--identity` is not given.
pub const ENV_VAR_IDENTITY: &str = "PGWARD_AGE_IDENTITY";

/// The keys of this run.
struct Keys {
    recipients: Vec<Recipient>,
    identities: Vec<Identity>,
}

static KEYS: OnceLock<Keys> = OnceLock::new();

/// Reads this run's keys from `args`, the environment variable and the selected
/// environment of pgward.toml. Called once when a command that writes or reads backups
/// starts; a recipient that is not one, or an identity file that cannot be read or holds
/// no identity, is a usage error before anything is done.
pub fn configure(ctx: &Context, args: &KeyArgs) -> Result<()> {
    let env = ctx.settings.env.as_ref();
    let recipients = if args.encrypt_to.is_empty() {
        env.map(|e| e.encrypt_to.clone()).unwrap_or_default()
    } else {
        args.encrypt_to.clone()
    };
    let recipients = recipients
        .iter()
        .map(|r| {
            Recipient::from_str(r.trim()).map_err(|e| {
                Error::usage(
                    format!("`{r}` is not an age recipient: {e}"),
                    "give the public key of an age identity (age1…, from `age-keygen -y KEYFILE`) with --encrypt-to or encrypt_to",
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let identity_file = args
        .identity
        .clone()
        .or_else(|| {
            std::env::var_os(ENV_VAR_IDENTITY)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| {
            env.and_then(|e| e.age_identity.as_ref())
                .map(|p| ctx.settings.path_from_config(p))
        });
    let identities = match identity_file {
        Some(path) => read_identities(&path)?,
        None => Vec::new(),
    };
    let _ = KEYS.set(Keys {
        recipients,
        identities,
    });
    Ok(())
}

/// The identities of an age identity file (`AGE-SECRET-KEY-1…` lines; `#` comments).
fn read_identities(path: &Path) -> Result<Vec<Identity>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::usage(
        format!("cannot read the age identity file {}: {e}", path.display()),
        "name a readable identity file (`age-keygen -o key.txt` makes one) with --identity, PGWARD_AGE_IDENTITY or age_identity",
    ))?;
    let identities = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            Identity::from_str(l).map_err(|e| Error::usage(
                format!("{} holds a line that is not an age identity: {e}", path.display()),
                "an identity file holds AGE-SECRET-KEY-1… lines (and # comments), as `age-keygen` writes it",
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    if identities.is_empty() {
        return Err(Error::usage(
            format!("{} holds no age identity", path.display()),
            "an identity file holds AGE-SECRET-KEY-1… lines, as `age-keygen` writes it",
        ));
    }
    Ok(identities)
}

fn keys() -> Option<&'static Keys> {
    KEYS.get()
}

/// What the manifest of a backup written in this run says of its encryption.
pub fn manifest_entry() -> Option<ManifestEncryption> {
    let keys = keys().filter(|k| !k.recipients.is_empty())?;
    Some(ManifestEncryption {
        scheme: SCHEME.into(),
        recipients: keys.recipients.iter().map(ToString::to_string).collect(),
        files: "all".into(),
    })
}

/// `writer`, encrypting every file it creates when this run has recipients.
pub fn seal(writer: Box<dyn BackupWriter>) -> Box<dyn BackupWriter> {
    match keys().filter(|k| !k.recipients.is_empty()) {
        Some(keys) => Box::new(Sealing {
            inner: writer,
            keys,
        }),
        None => writer,
    }
}

struct Sealing {
    inner: Box<dyn BackupWriter>,
    keys: &'static Keys,
}

impl BackupWriter for Sealing {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn create(&self, path: &str) -> Result<FileWriter> {
        let recipients: Vec<&dyn age::Recipient> = self
            .keys
            .recipients
            .iter()
            .map(|r| r as &dyn age::Recipient)
            .collect();
        self.inner.create(path)?.encrypted(&recipients)
    }

    fn commit(
        self: Box<Self>,
        files: &[crate::archive::manifest::ManifestFile],
        manifest: &[u8],
    ) -> Result<()> {
        self.inner.commit(files, manifest)
    }

    fn abort(self: Box<Self>) {
        self.inner.abort();
    }
}

/// Fails unless this run can decrypt `manifest`'s backup: it is not encrypted, or one of
/// the identities given is one of its recipients. Checked before a restore or a deep
/// verify reads or touches anything.
pub fn check_can_decrypt(manifest: &BackupManifest) -> Result<()> {
    let Some(encryption) = &manifest.encryption else {
        return Ok(());
    };
    let identities = keys().map(|k| k.identities.as_slice()).unwrap_or_default();
    if identities.is_empty() {
        return Err(Error::BackupNeedsKey {
            id: manifest.id.clone(),
            recipients: encryption.recipients.join(", "),
        });
    }
    if encryption.scheme != SCHEME {
        return Err(Error::BackupKeyMismatch {
            id: manifest.id.clone(),
            reason: format!(
                "its files are encrypted with `{}`, which this pgward does not read",
                encryption.scheme
            ),
        });
    }
    let ours: Vec<String> = identities
        .iter()
        .map(|i| i.to_public().to_string())
        .collect();
    if !encryption.recipients.iter().any(|r| ours.contains(r)) {
        return Err(Error::BackupKeyMismatch {
            id: manifest.id.clone(),
            reason: format!(
                "it was encrypted to {}, and the identity given is {}",
                encryption.recipients.join(", "),
                ours.join(", ")
            ),
        });
    }
    Ok(())
}

/// The clear bytes of file `path` of `manifest`'s backup, from `stored` (its stored bytes,
/// already being hashed by the caller): `stored` itself for a backup that is not encrypted.
pub fn plain<'a>(
    manifest: &BackupManifest,
    path: &str,
    stored: impl Read + 'a,
) -> Result<Box<dyn Read + 'a>> {
    if manifest.encryption.is_none() {
        return Ok(Box::new(stored));
    }
    check_can_decrypt(manifest)?;
    let identities = keys().map(|k| k.identities.as_slice()).unwrap_or_default();
    let mismatch = |e: age::DecryptError| Error::BackupKeyMismatch {
        id: manifest.id.clone(),
        reason: format!("{path} does not decrypt: {e}"),
    };
    let decryptor = age::Decryptor::new(stored).map_err(mismatch)?;
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(mismatch)?;
    Ok(Box::new(reader))
}
