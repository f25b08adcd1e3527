//! What users see of the command line: `--help` of every command (snapshots).

use crate::common::{snapshots, trainer};

#[test]
fn help_texts() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["eval", "--help"],
        vec!["explain", "--help"],
        vec!["sample", "--help"],
        vec!["vectorize", "--help"],
        vec!["update", "--help"],
        vec!["recommend", "--help"],
        vec!["extract", "--help"],
        vec!["sources", "check", "--help"],
        vec!["sources", "profile", "--help"],
    ] {
        let out = trainer(&args);
        assert!(out.status.success());
        // `help_help` for the top level, `help_sources_check` for `sources check --help`.
        let name = match &args[..args.len() - 1] {
            [] => "help_help".to_string(),
            words => format!("help_{}", words.join("_")),
        };
        snapshots().bind(|| insta::assert_snapshot!(name, String::from_utf8_lossy(&out.stdout)));
    }
}

#[test]
fn usage_error_exit_code() {
    let out = trainer(&["run", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_examples_are_valid() {
    // Each example `sources:` block, put into config/trainer.yml, passes validation.
    let repo = crate::common::repo();
    let base = std::fs::read_to_string(repo.join("config/trainer.yml")).unwrap();
    for ex in ["sources_access.yml", "sources_sqlserver.yml"] {
        let block = std::fs::read_to_string(repo.join("config/examples").join(ex)).unwrap();
        let block: String = block
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let start = base.find("sources:\n").unwrap();
        let end = base[start..].find("\nmapping:").unwrap() + start;
        let text = format!("{}{}\n{}", &base[..start], block.trim(), &base[end..]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yml");
        std::fs::write(&path, text).unwrap();
        trainer::config::Config::load(&path).unwrap_or_else(|e| panic!("{ex}: {e}"));
    }
}
