//! A private certificate authority for TLS test clusters.
//!
//! pgward must honour libpq's sslmode values (verify-full included), which can only be
//! tested against a server whose certificate chains to a CA the test controls. Each TLS
//! cluster gets a fresh CA made with the `openssl` CLI, a server certificate for the
//! host name `localhost` only, signed by it, and a second, unrelated CA whose
//! certificate a test can offer to prove that verification really rejects strangers.
//! The certificate deliberately does not name `127.0.0.1`, although the server listens
//! there: connecting to `localhost` passes verify-full, connecting to `127.0.0.1` fails
//! it on the host name (and passes verify-ca), so tests can tell the two checks apart.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How long the test certificates are valid; far beyond any test run.
const VALID_DAYS: &str = "30";

/// Extensions for the CAs and the server certificate. Kept in our own file so the
/// result does not depend on the machine's openssl.cnf.
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = req_dn
[req_dn]
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// The files of one TLS cluster, all inside its temp dir.
#[derive(Debug)]
pub(crate) struct TlsFiles {
    pub(crate) ca_cert: PathBuf,
    pub(crate) other_ca_cert: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
}

/// Creates the CA, the server certificate and the unrelated CA in `dir` (created here).
/// The server key is left 0600; the caller hands it to the server user.
pub(crate) fn make_certificates(dir: &Path) -> TlsFiles {
    check_openssl();
    std::fs::create_dir(dir).unwrap_or_else(|e| panic!("could not create {}: {e}", dir.display()));
    let config = dir.join("openssl.cnf");
    std::fs::write(&config, OPENSSL_CONFIG)
        .unwrap_or_else(|e| panic!("could not write {}: {e}", config.display()));

    let files = TlsFiles {
        ca_cert: dir.join("ca.crt"),
        other_ca_cert: dir.join("other-ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
    };
    let ca_key = dir.join("ca.key");
    make_ca(&config, &ca_key, &files.ca_cert, "pgward test CA");
    make_ca(
        &config,
        &dir.join("other-ca.key"),
        &files.other_ca_cert,
        "pgward unrelated test CA",
    );

    let csr = dir.join("server.csr");
    openssl(
        Command::new("openssl")
            .args(["req", "-new", "-nodes", "-subj", "/CN=localhost"])
            .args(P256_KEY)
            .arg("-config")
            .arg(&config)
            .arg("-keyout")
            .arg(&files.server_key)
            .arg("-out")
            .arg(&csr),
    );
    openssl(
        Command::new("openssl")
            .args(["x509", "-req", "-set_serial", "1000", "-days", VALID_DAYS])
            .args(["-extensions", "server_ext"])
            .arg("-extfile")
            .arg(&config)
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&files.ca_cert)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-out")
            .arg(&files.server_cert),
    );
    // PostgreSQL refuses a key file that others can read.
    std::fs::set_permissions(&files.server_key, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("could not chmod {}: {e}", files.server_key.display()));
    files
}

/// P-256 keys: generated in milliseconds, unlike RSA, and accepted by libpq and rustls.
const P256_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

fn make_ca(config: &Path, key: &Path, cert: &Path, common_name: &str) {
    openssl(
        Command::new("openssl")
            .args(["req", "-x509", "-new", "-nodes", "-days", VALID_DAYS])
            .args(["-subj", &format!("/CN={common_name}")])
            .args(["-extensions", "ca_ext"])
            .args(P256_KEY)
            .arg("-config")
            .arg(config)
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(cert),
    );
}

fn check_openssl() {
    let found = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "TLS test clusters need the `openssl` command-line tool to make their \
         certificates, and it is not on PATH; install it (Debian: apt-get install openssl)"
    );
}

fn openssl(command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
