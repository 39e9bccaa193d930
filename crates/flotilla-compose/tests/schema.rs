//! The official Compose JSON schema's verdict on every corpus file must
//! match the file's category (see corpus/README.md). Together with
//! tests/corpus.rs, which checks Flotilla's verdict, this makes the schema
//! and Flotilla agree on accept/reject for the whole corpus.

#[allow(dead_code)]
mod support;

use serde_json::json;
use support::cases::{multi_cases, yml_files, Category};
use support::schema::check_yaml;
use support::yaml_json::yaml_to_json;

#[test]
fn schema_verdicts_match_single_file_categories() {
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for category in Category::ALL {
        for case in yml_files(&category.dir()) {
            checked += 1;
            let source = std::fs::read_to_string(&case).expect("corpus files are UTF-8");
            let verdict = check_yaml(&source);
            if verdict.is_ok() != category.schema_accepts() {
                disagreements.push(format!(
                    "{}/{}: expected the schema to {}, got {:?}",
                    category.dir_name(),
                    case.file_name().unwrap().to_string_lossy(),
                    if category.schema_accepts() {
                        "accept"
                    } else {
                        "reject"
                    },
                    verdict
                ));
            }
        }
    }
    assert!(checked >= 60, "the corpus shrank to {checked} files");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn every_multi_file_case_file_conforms_to_the_schema() {
    let mut failures = Vec::new();
    for case in multi_cases() {
        for file in case.yaml_files() {
            let source = std::fs::read_to_string(&file).expect("corpus files are UTF-8");
            if let Err(errors) = check_yaml(&source) {
                failures.push(format!("{}: {errors:?}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Guards against a validator that accepts everything (e.g. a schema that
/// failed to resolve its $refs).
#[test]
fn schema_rejects_known_bad_documents_and_accepts_a_good_one() {
    assert!(check_yaml("services:\n  web:\n    image: nginx\n").is_ok());
    for bad in [
        "services:\n  web:\n    imag: nginx\n",
        "services:\n  web:\n    image: 5\n",
        "services:\n  web:\n    image: x\n    depends_on:\n      db:\n        condition: nope\n",
        "services: [web]\n",
    ] {
        assert!(check_yaml(bad).is_err(), "schema accepted {bad:?}");
    }
}

#[test]
fn conversion_applies_merge_keys_and_drops_tags() {
    let doc = yaml_to_json(
        "x-a: &a {A: 1, B: 1}\nx-b: &b {B: 2, C: 2}\nm:\n  <<: [*a, *b]\n  C: 3\nt: !reset []\n8080: port\n",
    )
    .expect("valid YAML");
    assert_eq!(doc["m"], json!({"A": 1, "B": 1, "C": 3}));
    assert_eq!(doc["t"], json!([]));
    assert_eq!(doc["8080"], json!("port"));
}

#[test]
fn conversion_refuses_alias_bombs_and_deep_nesting() {
    let bomb = std::fs::read_to_string(Category::Invalid.dir().join("alias-bomb.yml")).unwrap();
    assert!(yaml_to_json(&bomb).is_err());
    let deep = format!("x: {}{}\n", "[".repeat(1000), "]".repeat(1000));
    assert!(yaml_to_json(&deep).is_err());
}

/// The scale-test generator must produce stacks Compose itself would accept.
#[test]
fn generated_stack_conforms_to_the_schema() {
    let source = support::gen::stack_yaml(50);
    check_yaml(&source).unwrap_or_else(|errors| panic!("{errors:#?}"));
}
