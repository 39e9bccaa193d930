//! Output of the normalised model: pretty JSON (the golden format) and YAML
//! (`flotilla config` default). JSON keeps struct fields in declaration
//! order; YAML goes through `serde_json::Value`, whose maps sort keys, so
//! its order is alphabetical. Both are stable.

use flotilla_spec::Stack;
use saphyr::{Scalar, Yaml, YamlEmitter};
use std::borrow::Cow;

/// The model as pretty-printed JSON.
pub fn to_json(stack: &Stack) -> String {
    // Serialising plain data with string keys cannot fail.
    serde_json::to_string_pretty(stack).unwrap_or_default()
}

/// The model as YAML, emitted by saphyr from the JSON value tree.
pub fn to_yaml(stack: &Stack) -> String {
    let value = serde_json::to_value(stack).unwrap_or_default();
    let yaml = to_saphyr(&value);
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline(true);
    // Emitting into a String cannot fail.
    let _ = emitter.dump(&yaml);
    let body = out.strip_prefix("---\n").unwrap_or(&out);
    format!("{}\n", body.trim_end())
}

fn to_saphyr(v: &serde_json::Value) -> Yaml<'_> {
    use serde_json::Value as J;
    match v {
        J::Null => Yaml::Value(Scalar::Null),
        J::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
        J::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Value(Scalar::Integer(i)),
            None => match n.as_u64() {
                // Above i64::MAX: keep the digits exactly.
                Some(u) => Yaml::Value(Scalar::String(Cow::Owned(u.to_string()))),
                None => Yaml::Value(Scalar::FloatingPoint(n.as_f64().unwrap_or_default().into())),
            },
        },
        J::String(s) => Yaml::Value(Scalar::String(Cow::Borrowed(s))),
        J::Array(items) => Yaml::Sequence(items.iter().map(to_saphyr).collect()),
        J::Object(map) => {
            let mut m = saphyr::Mapping::default();
            for (k, v) in map {
                m.insert(Yaml::Value(Scalar::String(Cow::Borrowed(k))), to_saphyr(v));
            }
            Yaml::Mapping(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_output_is_stable_and_reparseable() {
        let mut st = Stack {
            name: "demo".into(),
            project_dir: "/p".into(),
            ..Stack::default()
        };
        st.extensions
            .insert("x-a".into(), serde_json::json!({"b": "yes", "c": 1}));
        let y = to_yaml(&st);
        assert!(y.contains("\nname: demo\n"), "{y}");
        // Strings that look like other types are quoted.
        assert!(y.contains("b: \"yes\"") || y.contains("b: 'yes'"), "{y}");
        assert_eq!(y, to_yaml(&st));
    }
}
