//! Hostile and large inputs: each must end in an error (or, for the
//! generated stack, a successful load), never a panic; nextest's timeout
//! turns a hang into a failure.

#[allow(dead_code)]
mod support;

use flotilla_compose::{load, load_str, LoadOptions};
use support::cases::fixed_env;
use support::gen::stack_yaml;

fn options() -> LoadOptions {
    LoadOptions {
        project_name: Some("hostile".to_string()),
        environment: fixed_env(),
        working_dir: Some(std::env::temp_dir()),
        ..LoadOptions::default()
    }
}

fn assert_rejected(what: &str, source: &str) {
    match load_str(what, source, &options()) {
        Ok(loaded) => panic!(
            "{what}: loaded {} services instead of an error",
            loaded.stack.services.len()
        ),
        Err(diags) => assert!(
            diags.0.iter().any(|d| d.is_error()),
            "{what}: no error diagnostic"
        ),
    }
}

#[test]
fn ten_thousand_nested_flow_sequences_are_rejected() {
    let source = format!(
        "services:\n  web:\n    image: nginx\nx-deep: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_rejected("nested-sequences.yml", &source);
}

#[test]
fn ten_thousand_unclosed_flow_sequences_are_rejected() {
    assert_rejected("unclosed.yml", &"[".repeat(10_000));
}

#[test]
fn ten_thousand_nested_flow_mappings_are_rejected() {
    let source = format!("x-deep: {}1{}\n", "{a: ".repeat(10_000), "}".repeat(10_000));
    assert_rejected("nested-mappings.yml", &source);
}

#[test]
fn deeply_nested_block_mappings_are_rejected() {
    // 2,000 levels, one space of indentation more per level.
    let mut source = String::from("services:\n  web:\n    image: nginx\nx-deep:\n");
    for depth in 1..=2_000 {
        source.push_str(&" ".repeat(depth));
        source.push_str("k:\n");
    }
    assert_rejected("nested-block.yml", &source);
}

#[test]
fn billion_laughs_alias_bomb_is_rejected() {
    let mut source = String::from("x-0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..=9 {
        let prev = format!("*l{}", level - 1);
        source.push_str(&format!(
            "x-{level}: &l{level} [{}]\n",
            vec![prev; 10].join(", ")
        ));
    }
    source.push_str("services:\n  web:\n    image: nginx\n    labels:\n      bomb: *l9\n");
    assert_rejected("alias-bomb.yml", &source);
}

#[test]
fn alias_bomb_through_merge_keys_is_rejected() {
    let mut source = String::from("x-0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}\n");
    for level in 1..=9 {
        let prev = level - 1;
        let keys: Vec<String> = (0..8).map(|k| format!("k{k}: *m{prev}")).collect();
        source.push_str(&format!("x-{level}: &m{level} {{{}}}\n", keys.join(", ")));
    }
    source.push_str("services:\n  web:\n    image: nginx\n    environment:\n      <<: *m9\n");
    assert_rejected("merge-bomb.yml", &source);
}

/// 20 MiB of otherwise valid YAML (a long comment block): over any sane
/// stack-file size limit.
fn twenty_mib_stack() -> String {
    let mut source = String::from("services:\n  web:\n    image: nginx\n");
    let line = format!("# {}\n", "x".repeat(1022));
    while source.len() < 20 * 1024 * 1024 {
        source.push_str(&line);
    }
    source
}

#[test]
fn twenty_mib_string_is_rejected() {
    assert_rejected("huge.yml", &twenty_mib_stack());
}

#[test]
fn twenty_mib_file_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("huge.yml");
    std::fs::write(&path, twenty_mib_stack()).expect("write the big file");
    let opts = LoadOptions {
        files: vec![path],
        ..options()
    };
    assert!(
        load(&opts).is_err(),
        "a 20 MiB stack file should be refused"
    );
}

#[test]
fn invalid_utf8_file_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("latin1.yml");
    std::fs::write(&path, b"services:\n  web:\n    image: caf\xe9\n").expect("write");
    let opts = LoadOptions {
        files: vec![path],
        ..options()
    };
    assert!(load(&opts).is_err(), "invalid UTF-8 must be an error");
}

#[test]
fn control_characters_and_nul_do_not_panic() {
    let _ = load_str(
        "nul.yml",
        "services:\n  web:\n    image: \"a\u{0}b\"\n",
        &options(),
    );
    let _ = load_str(
        "ctrl.yml",
        "services:\n  \u{1}web:\n    image: x\n",
        &options(),
    );
    assert_rejected("only-nul.yml", "\u{0}\u{0}\u{0}");
}

#[test]
fn many_interpolations_and_long_default_chains_do_not_blow_up() {
    let nested = format!("{}x{}", "${U:-".repeat(500), "}".repeat(500));
    let _ = load_str(
        "nested-defaults.yml",
        &format!("services:\n  web:\n    image: \"{nested}\"\n"),
        &options(),
    );
    let many = "${TAG}".repeat(100_000);
    let _ = load_str(
        "many.yml",
        &format!("services:\n  web:\n    image: \"{many}\"\n"),
        &options(),
    );
}

#[test]
fn generated_thousand_service_stack_loads() {
    let source = stack_yaml(1_000);
    let loaded = load_str("generated.yml", &source, &options())
        .unwrap_or_else(|diags| panic!("generated stack rejected:\n{diags}"));
    assert_eq!(loaded.stack.services.len(), 1_000);
    assert_eq!(
        loaded
            .stack
            .networks
            .keys()
            .filter(|n| n.starts_with("tier"))
            .count(),
        4
    );
    assert_eq!(loaded.stack.volumes.len(), 100);
}
