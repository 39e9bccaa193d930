//! Flotilla's verdict on every corpus file must match its category (see
//! corpus/README.md), and its output must match the golden file:
//! the normalised stack as pretty JSON when accepted, the rendered
//! diagnostics when rejected. `UPDATE_GOLDEN=1` rewrites the goldens.

#[allow(dead_code)]
mod support;

use std::path::Path;

use flotilla_compose::{load, load_str, Diagnostics, Loaded, Severity};
use support::cases::{multi_cases, single_options, yml_files, Category};
use support::golden;

/// Checks one outcome against the expectation and its golden file; returns
/// a failure line for the summary, or None.
fn check_outcome(
    label: &str,
    outcome: &Result<Loaded, Diagnostics>,
    expect_accept: bool,
    golden_path: &Path,
) -> Option<String> {
    match (outcome, expect_accept) {
        (Ok(loaded), true) => {
            let json = serde_json::to_string_pretty(&loaded.stack).expect("Stack serialises");
            golden::check(golden_path, &(json + "\n")).err()
        }
        (Err(diags), false) => {
            if !diags.0.iter().any(|d| d.severity == Severity::Error) {
                return Some(format!(
                    "{label}: rejected without any error diagnostic: {diags:?}"
                ));
            }
            golden::check(golden_path, &(diags.render(false) + "\n")).err()
        }
        (Ok(loaded), false) => Some(format!(
            "{label}: expected rejection, but it loaded (warnings: {:?}); services: {:?}",
            loaded
                .warnings
                .iter()
                .map(|w| &w.message)
                .collect::<Vec<_>>(),
            loaded.stack.services.keys().collect::<Vec<_>>()
        )),
        (Err(diags), true) => Some(format!(
            "{label}: expected to load, but got:\n{}",
            golden::portable(&diags.render(false))
        )),
    }
}

fn run_category(category: Category) {
    let mut failures = Vec::new();
    let cases = yml_files(&category.dir());
    assert!(
        !cases.is_empty(),
        "no cases in {}",
        category.dir().display()
    );
    for case in &cases {
        let label = format!(
            "{}/{}",
            category.dir_name(),
            case.file_name().unwrap().to_string_lossy()
        );
        let outcome = load(&single_options(case));
        if let Some(failure) = check_outcome(
            &label,
            &outcome,
            category.flotilla_accepts(),
            &category.golden_path(case),
        ) {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn valid_cases_load_and_match_golden() {
    run_category(Category::Valid);
}

#[test]
fn invalid_cases_are_rejected_with_golden_diagnostics() {
    run_category(Category::Invalid);
}

#[test]
fn semantic_invalid_cases_are_rejected_with_golden_diagnostics() {
    run_category(Category::SemanticInvalid);
}

#[test]
fn multi_file_cases_match_expectation_and_golden() {
    let cases = multi_cases();
    assert!(
        cases.len() >= 10,
        "multi-file corpus shrank to {}",
        cases.len()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            check_outcome(
                &format!("multi/{}", case.name),
                &load(&case.options),
                case.expect_accept,
                &case.golden_path(),
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `load_str` on the file's text must give exactly what `load` gives on the
/// file (BOM and CRLF included): the fuzz target and the CLI take different doors.
#[test]
fn load_str_agrees_with_load_on_valid_cases() {
    let mut failures = Vec::new();
    for case in yml_files(&Category::Valid.dir()) {
        let opts = single_options(&case);
        let from_file = load(&opts);
        let source = std::fs::read_to_string(&case).expect("corpus files are UTF-8");
        let from_str = load_str(&case.display().to_string(), &source, &opts);
        match (from_file, from_str) {
            (Ok(a), Ok(b)) if a.stack == b.stack => {}
            (Ok(a), Ok(b)) => failures.push(format!(
                "{}: stacks differ\nload:     {:?}\nload_str: {:?}",
                case.display(),
                a.stack,
                b.stack
            )),
            (a, b) => failures.push(format!(
                "{}: load ok={} but load_str ok={}",
                case.display(),
                a.is_ok(),
                b.is_ok()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The normalised model survives a JSON round trip unchanged, so the golden
/// JSON is a faithful picture of the Stack.
#[test]
fn valid_stacks_round_trip_through_json() {
    for case in yml_files(&Category::Valid.dir()) {
        let Ok(loaded) = load(&single_options(&case)) else {
            continue;
        };
        let json = serde_json::to_string(&loaded.stack).expect("Stack serialises");
        let back: flotilla_spec::Stack = serde_json::from_str(&json).unwrap_or_else(|e| {
            panic!(
                "{}: Stack does not deserialise its own JSON: {e}",
                case.display()
            )
        });
        assert_eq!(
            back,
            loaded.stack,
            "{}: round trip changed the stack",
            case.display()
        );
    }
}

fn load_case(category: Category, name: &str) -> Result<Loaded, Diagnostics> {
    load(&single_options(&category.dir().join(name)))
}

/// Diagnostics for structural errors point at the offending key: the right
/// file, a real line and column.
#[test]
fn structural_errors_are_located_in_the_case_file() {
    let mut failures = Vec::new();
    for case in yml_files(&Category::Invalid.dir()) {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if name == "empty-file.yml" {
            continue; // nothing to point at
        }
        let Err(diags) = load(&single_options(&case)) else {
            continue;
        };
        for d in diags.0.iter().filter(|d| d.is_error()) {
            if !d.file.ends_with(&name) || d.line == 0 || d.column == 0 {
                failures.push(format!(
                    "{name}: diagnostic not located: {}:{}:{} {}",
                    d.file, d.line, d.column, d.message
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_key_suggests_the_known_one() {
    let diags = load_case(Category::Invalid, "unknown-key-service.yml")
        .expect_err("unknown key is an error");
    let d = diags
        .0
        .iter()
        .find(|d| d.message.contains("imag"))
        .expect("a diagnostic names the unknown key");
    assert_eq!((d.line, d.column), (3, 5), "points at `imag`");
    let help = d.help.as_deref().unwrap_or_default();
    assert!(
        help.contains("image"),
        "help should suggest `image`, got {help:?}"
    );

    let diags = load_case(Category::Invalid, "unknown-key-top-level.yml")
        .expect_err("unknown key is an error");
    assert!(
        diags.render(false).contains("services"),
        "should suggest `services`:\n{diags}"
    );
}

#[test]
fn required_variable_error_carries_the_message_from_the_file() {
    let diags = load_case(Category::SemanticInvalid, "missing-required-variable.yml")
        .expect_err("unset :? variable");
    let text = diags.render(false);
    assert!(text.contains("set DB_PASSWORD in .env"), "{text}");
    assert!(text.contains("DB_PASSWORD"), "{text}");
}

#[test]
fn undefined_reference_suggests_the_defined_name() {
    let diags = load_case(Category::SemanticInvalid, "undefined-network.yml")
        .expect_err("undefined network");
    let text = diags.render(false);
    assert!(text.contains("bakc") && text.contains("back"), "{text}");
}

#[test]
fn cycle_error_names_every_service_in_the_cycle() {
    let diags = load_case(Category::SemanticInvalid, "depends-on-cycle.yml").expect_err("cycle");
    let text = diags.render(false);
    for service in ["a", "b", "c"] {
        assert!(
            text.contains(&format!("`{service}`")) || text.contains(&format!("{service} ")),
            "{text}"
        );
    }
}

#[test]
fn obsolete_version_is_a_warning_not_an_error() {
    let loaded =
        load_case(Category::Valid, "version-obsolete.yml").expect("version is only obsolete");
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.severity == Severity::Warning && w.message.contains("version")),
        "warnings: {:?}",
        loaded.warnings
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let source = "services:\n  a:\n    imag: x\n  b:\n    image: 5\n  c:\n    image: c\n    ports: [\"99999:80\"]\n";
    let opts = single_options(&Category::Valid.dir().join("inline.yml"));
    let diags = load_str("inline.yml", source, &opts).expect_err("three errors");
    let errors = diags.0.iter().filter(|d| d.is_error()).count();
    assert!(
        errors >= 2,
        "expected every independent error, got {errors}:\n{diags}"
    );
}

#[test]
fn loading_is_deterministic() {
    let case = Category::Valid.dir().join("deploy-full.yml");
    let first = serde_json::to_string(&load(&single_options(&case)).expect("loads").stack).unwrap();
    for _ in 0..3 {
        let again =
            serde_json::to_string(&load(&single_options(&case)).expect("loads").stack).unwrap();
        assert_eq!(first, again);
    }
}

/// Compose keeps an interpolation that yields nothing as the empty string;
/// null would mean "take the value from the host environment" instead.
#[test]
fn value_interpolated_to_empty_stays_an_empty_string() {
    let source = "services:\n  web:\n    image: web\n    environment:\n      A: ${EMPTY}\n      B: ${NOT_SET:+x}\n      C: ${EMPTY-default}\n";
    let opts = single_options(&Category::Valid.dir().join("inline.yml"));
    let loaded = load_str("inline.yml", source, &opts).expect("loads");
    let env = serde_json::to_value(&loaded.stack.services["web"].environment).unwrap();
    assert_eq!(env, serde_json::json!({"A": "", "B": "", "C": ""}));
}
