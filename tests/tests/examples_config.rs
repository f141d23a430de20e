//! The pgward.toml each example shows in its comments (`#   [env.NAME]` and the lines
//! under it) is a configuration the binaries accept: every key exists and every value
//! reads, so a team copying an example gets no `CONFIG_INVALID` on its first run.

use pgward_tests::{run_in, temp_dir, workspace_root};

/// The commented pgward.toml block of `text`: from the first `#   [env.` line, every line
/// that starts with `#   `, without that prefix.
fn commented_config(text: &str) -> Option<String> {
    let start = text.find("\n#   [env.")? + 1;
    let block: Vec<&str> = text[start..]
        .lines()
        .map_while(|l| l.strip_prefix("#   "))
        .collect();
    Some(block.join("\n") + "\n")
}

#[test]
fn every_examples_commented_pgward_toml_is_accepted_for_each_environment() {
    let root = workspace_root();
    let mut checked = Vec::new();
    for file in [
        "examples/github-actions.yml",
        "examples/gitlab-ci.yml",
        "examples/crontab",
    ] {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("{file} is readable: {e}"));
        let config = commented_config(&text)
            .unwrap_or_else(|| panic!("{file} shows a pgward.toml in its comments"));
        let value: toml::Table = config
            .parse()
            .unwrap_or_else(|e| panic!("{file}'s pgward.toml is TOML: {e}\n{config}"));
        let dir = temp_dir("examples_config_");
        std::fs::write(dir.path().join("pgward.toml"), &config).expect("pgward.toml is writable");
        let envs = value["env"].as_table().expect("[env.*] tables");
        for (name, env) in envs {
            let var = env["database_url_env"].as_str().expect("database_url_env");
            let url = "postgresql://app@db.example.com/app";
            let out = run_in(
                dir.path(),
                "report",
                &["settings", "--env", name],
                &[(var, url)],
            );
            out.assert_code(0);
            checked.push(format!("{file} [env.{name}]"));
        }
    }
    assert!(checked.len() >= 4, "{checked:?}");
}
