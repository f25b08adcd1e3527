//! What users see of the command line: `--help` of every command (snapshots).

use crate::common::{snapshots, trainer};

#[test]
fn help_texts() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["explain", "--help"],
        vec!["sample", "--help"],
        vec!["vectorize", "--help"],
    ] {
        let out = trainer(&args);
        assert!(out.status.success());
        let name = format!("help_{}", args[0].trim_start_matches('-'));
        snapshots().bind(|| insta::assert_snapshot!(name, String::from_utf8_lossy(&out.stdout)));
    }
}

#[test]
fn usage_error_exit_code() {
    let out = trainer(&["run", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}
