//! The workspace's shape, as `cargo` itself reports it: the five binaries are independent
//! (each depends on the common crate and external crates only, never on another binary's
//! crate), and the two that never touch a backup location (migrate, validate) build
//! without the S3 client.

use std::collections::BTreeSet;
use std::process::Command;

use pgward_tests::workspace_root;
use serde_json::Value;

const BINARIES: [&str; 5] = [
    "pgward-migrate",
    "pgward-backup",
    "pgward-restore",
    "pgward-validate",
    "pgward-report",
];

/// The common crate, the only workspace member a binary may depend on.
const COMMON: &str = "pgward-shared";

/// The test harness: a binary may use it in its own tests (dev-dependency), never in its
/// code.
const HARNESS: &str = "pgward-tests";

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("could not run {cargo} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{cargo} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo prints UTF-8")
}

#[test]
fn no_binary_crate_depends_on_another() {
    let metadata: Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]))
    .expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    for binary in BINARIES {
        assert!(members.contains(binary), "{binary} is a workspace member");
    }
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        if !BINARIES.contains(&name) {
            continue;
        }
        for dep in package["dependencies"].as_array().expect("dependencies") {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let dev_only = dep["kind"].as_str() == Some("dev");
            let allowed = dep_name == COMMON || (dev_only && dep_name == HARNESS);
            assert!(
                !members.contains(dep_name) || allowed,
                "{name} depends on the workspace crate {dep_name}: what two binaries need \
                 belongs in {COMMON}, and binaries compose through JSON and exit codes"
            );
        }
    }
}

/// `cargo tree -p BINARY -e normal`: one crate per line, as the binary alone builds it.
fn tree(binary: &str) -> String {
    cargo(&[
        "tree",
        "--offline",
        "-p",
        binary,
        "-e",
        "normal",
        "--prefix",
        "none",
    ])
}

/// Asserts that `tree` (of `binary`) shows no other binary crate.
fn assert_no_other_binary(binary: &str, tree: &str) {
    for other in BINARIES.iter().filter(|b| **b != binary) {
        assert!(
            !tree.lines().any(|l| l.starts_with(&format!("{other} "))),
            "cargo tree -p {binary} shows {other}"
        );
    }
}

#[test]
fn migrate_and_validate_build_without_the_s3_client() {
    for binary in BINARIES {
        let tree = tree(binary);
        assert!(
            tree.lines().any(|l| l.starts_with(COMMON)),
            "cargo tree -p {binary} lists {COMMON}:\n{tree}"
        );
        assert_no_other_binary(binary, &tree);
        if binary == "pgward-migrate" || binary == "pgward-validate" {
            assert!(
                !tree.lines().any(|l| l.starts_with("aws-sdk-s3 ")),
                "{binary} pulls in aws-sdk-s3; keep storage behind the `storage` feature:\n{tree}"
            );
        }
    }
}
