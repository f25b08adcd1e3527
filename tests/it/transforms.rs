//! Snapshots of what analysts see: every SQL view's output on the small committed fixture
//! (`tests/fixtures/erp_small`, 40 items from `trainer sample --items 40 --seed 7`), and the
//! `explain` plans. A changed transform shows up as a snapshot diff to review with
//! `cargo insta review`.

use arrow::util::pretty::pretty_format_batches;
use sha2::{Digest, Sha256};

use crate::common::{Project, fixture_dir, redact, snapshots, trainer};

/// Views with more rows than this are snapshotted as their first rows plus a SHA-256 of all rows.
const FULL_ROWS: usize = 200;

#[test]
fn every_view_output_on_the_fixture() {
    let p = Project::new(&fixture_dir());
    p.run_ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (eng, files) = rt
        .block_on(trainer::train::apply_session(&p.config, &p.models()))
        .unwrap();
    for f in &files {
        // ORDER BY every column: views have no inherent order, snapshots need one.
        let schema = rt
            .block_on(eng.ctx.table(f.name.as_str()))
            .unwrap()
            .schema()
            .as_arrow()
            .clone();
        let cols: Vec<String> = (1..=schema.fields().len()).map(|i| i.to_string()).collect();
        let sql = format!("SELECT * FROM {} ORDER BY {}", f.name, cols.join(", "));
        let batches = rt
            .block_on(trainer::engine::collect(&eng.ctx, &sql, &f.name))
            .unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let all = pretty_format_batches(&batches).unwrap().to_string();
        let text = if rows <= FULL_ROWS {
            format!("{} rows\n{all}", rows)
        } else {
            let head: Vec<_> = batches
                .iter()
                .flat_map(|b| (0..b.num_rows()).map(move |r| b.slice(r, 1)))
                .take(60)
                .collect();
            format!(
                "{rows} rows (first 60 shown), sha256 of all rows: {:x}\n{}",
                Sha256::digest(all.as_bytes()),
                pretty_format_batches(&head).unwrap()
            )
        };
        let name = format!("view_{}", f.name);
        snapshots().bind(|| insta::assert_snapshot!(name, text));
    }
}

#[test]
fn explain_plans() {
    let p = Project::new(&fixture_dir());
    let out = trainer(&[
        "explain",
        "clean_routings",
        "--config",
        p.config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = redact(&String::from_utf8_lossy(&out.stdout), &p);
    assert!(text.contains("--- logical plan ---"));
    assert!(text.contains("--- optimised logical plan ---"));
    assert!(text.contains("--- physical plan ---"));
    snapshots().bind(|| insta::assert_snapshot!(text));

    // Every view explains, planned over what training holds: `fit_numeric_stats` once failed
    // DataFusion's plan sanity check when planned over the `enc_numeric_input` view.
    let out = trainer(&["explain", "--config", p.config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = String::from_utf8_lossy(&out.stdout);
    let sql = crate::common::repo().join("sql");
    let mut names = Vec::new();
    for layer in ["01_map", "02_clean", "03_encode"] {
        for e in std::fs::read_dir(sql.join(layer)).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "sql") {
                let stem = path.file_stem().unwrap().to_string_lossy().to_string();
                // `NN_name.sql` defines view `name`.
                names.push(stem.split_once('_').unwrap().1.to_string());
            }
        }
    }
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        assert!(
            all.contains(&format!("=== {name} (")),
            "explain printed no plans for {name}"
        );
    }
    // A held table declares the order training sorted it into.
    assert!(
        all.contains("partition_sizes=[1], output_ordering=item_key@0 ASC"),
        "held tables declare their order"
    );

    let out = trainer(&[
        "explain",
        "no_such_view",
        "--config",
        p.config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("no SQL view named `no_such_view`"), "{err}");
}
