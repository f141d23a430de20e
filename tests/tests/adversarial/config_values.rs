//! Crafted pgward.toml values (issue 15.14): a `database_url_env` that is not a variable
//! name must never reach a shell expansion. `scripts/maintenance.sh` expanded it with
//! `${!var}`, and bash evaluates the subscript of `x[$(cmd)]` there: cmd ran.

use std::process::Command;

use pgward_tests::{bin_dir, path_str, run_in, run_script, workspace_root};

/// A project folder whose pgward.toml gives `[env.dev]` the `database_url_env` `value`.
fn project_with_url_env(value: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("adversarial_config_")
        .tempdir()
        .expect("a temp project dir");
    std::fs::write(
        dir.path().join("pgward.toml"),
        format!("[env.dev]\ndatabase_url_env = {value:?}\n"),
    )
    .expect("pgward.toml is writable");
    dir
}

#[test]
fn a_database_url_env_that_is_not_a_variable_name_runs_nothing_and_is_refused() {
    for crafted in [
        "x[$(touch PWNED)]",
        "PATH[`touch PWNED`]",
        "a b; touch PWNED",
        "$(touch PWNED)",
    ] {
        let project = project_with_url_env(crafted);
        let out = run_script(project.path(), "maintenance.sh", &["dev", "--dry-run"], &[]);
        assert!(
            !project.path().join("PWNED").exists(),
            "{crafted:?} ran a command\n{out}"
        );
        out.assert_code(2);
        let json = out.json();
        assert_eq!(
            json["error"]["code"], "CONFIG_INVALID",
            "{crafted:?}\n{out}"
        );

        // The binaries refuse the file as well, whichever reads it first.
        let out = run_in(project.path(), "migrate", &["status", "--env", "dev"], &[]);
        let json = out.assert_error(2, "CONFIG_INVALID");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("database_url_env"),
            "{crafted:?}\n{out}"
        );
    }
}

/// What the scripts read for `key` of `[env.ENV]` from a pgward.toml holding `toml`: they
/// ask `pgward-report settings` (scripts/lib/common.sh, pgw_setting), the binaries' own
/// reader of the file, rather than parsing it a second way.
fn script_reads(toml: &str, env: &str, key: &str) -> String {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("pgward.toml"), toml).expect("pgward.toml is writable");
    let common = workspace_root().join("scripts/lib/common.sh");
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#". "$1" && pgw_start test run >/dev/null && PGW_GLOBAL=(--env "$2") && pgw_load_settings && pgw_setting "$3"; PGW_NO_DOCUMENT=1"#)
        .args(["bash", path_str(&common), env, key])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PGWARD_BIN", bin_dir())
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn auto_restore_is_read_only_from_its_own_environment_and_only_as_written() {
    // Another environment's opt-in, a comment, a longer key (refused as unknown, so it is
    // not here) and a quoted section name.
    let toml = "[env.dev]\n\
                # auto_restore = true\n\
                database_url_env = \"DEV_URL\" # auto_restore = true\n\
                [env.\"prod\"] # the protected one\n\
                auto_restore=true\n";
    assert_eq!(script_reads(toml, "dev", "auto_restore"), "false");
    assert_eq!(script_reads(toml, "prod", "auto_restore"), "true");
    assert_eq!(script_reads(toml, "dev", "database_url_env"), "DEV_URL");
    // Every form TOML allows reads as the binaries read it: an inline table too.
    let toml = "[env]\ndev = { auto_restore = true }\n";
    assert_eq!(script_reads(toml, "dev", "auto_restore"), "true");
}
