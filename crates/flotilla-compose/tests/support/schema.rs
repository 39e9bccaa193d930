//! The official Compose JSON schema (draft-07), compiled once per test binary.

use std::sync::OnceLock;

use serde_json::Value;

use super::cases::crate_dir;
use super::yaml_json::yaml_to_json;

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = crate_dir().join("tests/schema/compose-spec.json");
        let text = std::fs::read_to_string(&path).expect("read the vendored compose-spec.json");
        let schema: Value = serde_json::from_str(&text).expect("compose-spec.json is JSON");
        jsonschema::draft7::new(&schema).expect("compose-spec.json compiles as a draft-07 schema")
    })
}

/// The schema's verdict on one YAML file: `Ok(())` when it conforms, else
/// every reason it does not (YAML errors included: Compose rejects those too).
pub fn check_yaml(source: &str) -> Result<(), Vec<String>> {
    let json = yaml_to_json(source).map_err(|e| vec![format!("YAML: {e}")])?;
    let errors: Vec<String> = validator()
        .iter_errors(&json)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
