//! The fuzz targets' properties on the stable toolchain: every committed corpus input
//! (`fuzz/corpus/<target>/`, seeds and what libFuzzer kept from its runs) replayed, and
//! random inputs from proptest. CI runs these; the libFuzzer runs themselves are
//! manual (`docs/reliability.md`).

use std::path::PathBuf;

use fullup_fuzz::TARGETS;
use proptest::prelude::*;

/// `fuzz/corpus/<target>/` at the workspace root.
fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_committed_corpus_input_keeps_its_target_properties() {
    for (target, check) in TARGETS {
        let dir = corpus(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .collect::<Vec<_>>();
        assert!(!entries.is_empty(), "{target}: the corpus is empty");
        for path in entries {
            let input = std::fs::read(&path).expect("read a corpus input");
            let outcome = std::panic::catch_unwind(|| check(&input));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
        }
    }
}

#[test]
fn every_target_has_a_libfuzzer_entry_point() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (target, _) in TARGETS {
        let source = std::fs::read_to_string(dir.join(format!("{target}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{target}.rs: {e}"));
        assert!(
            source.contains(&format!("fullup_fuzz::{target}(")),
            "fuzz/fuzz_targets/{target}.rs does not call fullup_fuzz::{target}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_keep_every_target_property(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        for (_, check) in TARGETS {
            check(&data);
        }
    }

    #[test]
    fn random_json_keeps_the_canonical_json_properties(text in json_text()) {
        fullup_fuzz::canonical_json(text.as_bytes());
        let body = format!(r#"{{"type":"form.submitted","data":{text}}}"#);
        fullup_fuzz::ingest_body(body.as_bytes());
    }

    #[test]
    fn random_urls_keep_the_classifier_property(
        host in prop_oneof![
            "[a-zA-Z0-9.-]{1,20}",
            "[a-zA-Z0-9-]{0,8}\\.?[lL][oO][cC][aA][lL][hH][oO][sS][tT]\\.?",
            (any::<[u8; 4]>()).prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
            (any::<[u8; 16]>()).prop_map(|b| format!("[{}]", std::net::Ipv6Addr::from(b))),
        ],
    ) {
        fullup_fuzz::webhook_url(format!("http://{host}:8080/hook").as_bytes());
    }
}

/// JSON texts with the values that matter to canonicalization: numbers in every
/// spelling, escapes, nesting, duplicate keys.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i32>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        "-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        "\"([a-z ]|\\\\[nrt\"\\\\/]|\\\\u00[0-9a-f]{2}|é|😀)*\"",
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec(("[a-c]{1,2}", inner), 0..6).prop_map(|v| {
                let members: Vec<String> =
                    v.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}
