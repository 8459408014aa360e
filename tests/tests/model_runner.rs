//! The model runner detects divergences, and its generator reaches the
//! outcomes worth comparing (successes and every file error code).

use std::collections::{BTreeSet, HashSet};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use sandbay_core::{Backend, ErrorCode, VPath};
use sandbay_state::StateBackend;
use sandbay_testkit::model::{self, Op, Outcome};
use sandbay_testkit::{Fixture, block_on};

fn p(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

#[test]
fn a_different_result_is_reported_with_its_step() {
    block_on(async {
        let left = Fixture::new(StateBackend::default());
        let right = Fixture::new(StateBackend::default());
        right.put("/extra", "x").await;
        let ops = [
            Op::Write {
                path: p("/a"),
                content: "same".into(),
            },
            Op::Ls {
                path: VPath::root(),
            },
        ];
        let d = model::run_pair(&left, &right, &ops).await.unwrap_err();
        assert_eq!(d.step, Some(1));
        assert_eq!(d.op, Some(ops[1].clone()));
        assert!(
            d.right.contains("/extra") && !d.left.contains("/extra"),
            "{d}"
        );
        assert!(d.to_string().contains("step 1"), "{d}");
    });
}

#[test]
fn a_different_final_tree_is_reported() {
    block_on(async {
        let left = Fixture::new(StateBackend::default());
        let right = Fixture::new(StateBackend::default());
        left.put("/only/left", "x").await;
        let ops = [Op::Stat {
            path: VPath::root(),
        }];
        let d = model::run_pair(&left, &right, &ops).await.unwrap_err();
        assert_eq!(d.step, None);
        assert!(d.to_string().contains("final tree"), "{d}");
    });
}

#[test]
fn check_panics_with_a_minimal_sequence() {
    let caught = std::panic::catch_unwind(|| {
        model::check(16, || async {
            let left = Fixture::new(StateBackend::default());
            let right = Fixture::new(StateBackend::default());
            right.put("/planted", "x").await;
            (left, right)
        });
    });
    let payload = caught.expect_err("a planted difference must fail the check");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("minimal sequence"), "{message}");
}

#[test]
fn generator_reaches_successes_and_every_file_error() {
    let mut runner = TestRunner::deterministic();
    let strategy = model::ops(24);
    let mut ok_kinds = BTreeSet::new();
    let mut codes = HashSet::new();
    let mut nonempty_grep = 0;
    let mut nonempty_glob = 0;
    block_on(async {
        for _ in 0..300 {
            let ops = strategy.new_tree(&mut runner).unwrap().current();
            let backend = StateBackend::default();
            for op in &ops {
                let kind = format!("{op:?}")
                    .split([' ', '('])
                    .next()
                    .unwrap()
                    .to_owned();
                match model::apply(&backend as &dyn Backend, op).await {
                    Ok(outcome) => {
                        match &outcome {
                            Outcome::Grep(g) if !g.files.is_empty() => nonempty_grep += 1,
                            Outcome::Glob(g) if !g.paths.is_empty() => nonempty_glob += 1,
                            Outcome::Uploaded(items) => codes.extend(
                                items
                                    .iter()
                                    .filter_map(|r| r.as_ref().err())
                                    .map(|f| f.code),
                            ),
                            Outcome::Downloaded(items) => codes.extend(
                                items
                                    .iter()
                                    .filter_map(|r| r.as_ref().err())
                                    .map(|f| f.code),
                            ),
                            _ => {}
                        }
                        ok_kinds.insert(kind);
                    }
                    Err(failure) => {
                        codes.insert(failure.code);
                    }
                }
            }
        }
    });
    for kind in [
        "Write", "Upload", "Edit", "Delete", "Read", "Ls", "Stat", "Glob", "Grep", "Download",
    ] {
        assert!(
            ok_kinds.contains(kind),
            "{kind} never succeeded: {ok_kinds:?}"
        );
    }
    for code in [
        ErrorCode::NotFound,
        ErrorCode::IsDirectory,
        ErrorCode::NotADirectory,
        ErrorCode::PermissionDenied,
        ErrorCode::InvalidArgument,
        ErrorCode::NoMatch,
        ErrorCode::AmbiguousMatch,
        ErrorCode::BinaryFile,
    ] {
        assert!(codes.contains(&code), "{code} never produced: {codes:?}");
    }
    eprintln!("non-empty results: grep {nonempty_grep}, glob {nonempty_glob}");
    assert!(
        nonempty_grep > 60 && nonempty_glob > 60,
        "{nonempty_grep} {nonempty_glob}"
    );
}
