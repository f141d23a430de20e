//! Shell completions and man pages come from each binary's clap definition
//! (`--generate SHELL|man`), so they can never drift from the flags.

use pgward_tests::run;

const TOOLS: &[(&str, &[&str])] = &[
    (
        "migrate",
        &["deploy", "status", "resolve", "rollback", "new", "seed"],
    ),
    ("backup", &["backup", "list", "verify", "prune"]),
    ("restore", &["restore"]),
    (
        "validate",
        &["lint", "schema", "data", "drift", "preflight"],
    ),
];

#[test]
fn completions_name_every_subcommand_and_man_pages_render() {
    for (tool, commands) in TOOLS {
        for shell in ["bash", "zsh", "fish"] {
            let out = run(tool, &["--generate", shell], &[]);
            out.assert_code(0);
            for c in *commands {
                assert!(
                    out.stdout.contains(c),
                    "{shell} completion of pgward-{tool} lacks {c}"
                );
            }
        }
        let man = run(tool, &["--generate=man"], &[]);
        man.assert_code(0);
        assert!(
            man.stdout.contains(&format!(".TH pgward-{tool} 1")),
            "{man}"
        );
        assert!(
            man.stdout.contains("Examples"),
            "the man page carries the examples: {man}"
        );
    }
}

#[test]
fn an_unknown_kind_is_a_usage_error() {
    let out = run("migrate", &["--generate", "tcsh"], &[]);
    out.assert_code(2);
    assert!(out.stderr.contains("bash, zsh, fish"), "{out}");
}
