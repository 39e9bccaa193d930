//! YAML → JSON conversion for the schema check, independent of the code
//! under test: it uses `serde_yaml_ng` (libyaml) rather than the
//! saphyr-parser the implementation is built on.
//!
//! It mirrors what Compose does before validating against the schema:
//! merge keys (`<<`) are applied, custom tags (`!reset`, `!override`) are
//! dropped keeping the tagged value, and non-string mapping keys become
//! strings. libyaml's depth limit (128) and alias-repetition limit make
//! nesting and alias bombs fail here, which is what Compose's go-yaml does too.

use serde_json::{Map, Number, Value as Json};
use serde_yaml_ng::Value as Yaml;

/// Parses one YAML document and returns it as JSON, or the parser's error text.
pub fn yaml_to_json(source: &str) -> Result<Json, String> {
    let mut doc: Yaml = serde_yaml_ng::from_str(source).map_err(|e| e.to_string())?;
    doc.apply_merge().map_err(|e| e.to_string())?;
    convert(doc)
}

fn convert(value: Yaml) -> Result<Json, String> {
    Ok(match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(b),
        Yaml::Number(n) => number(&n)?,
        Yaml::String(s) => Json::String(s),
        Yaml::Sequence(items) => {
            Json::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                // A merge inside a merged mapping is applied by apply_merge's
                // own traversal; here every key is already final.
                map.insert(key_string(key)?, convert(value)?);
            }
            Json::Object(map)
        }
        Yaml::Tagged(tagged) => convert(tagged.value)?,
    })
}

fn number(n: &serde_yaml_ng::Number) -> Result<Json, String> {
    if let Some(i) = n.as_i64() {
        return Ok(Json::Number(i.into()));
    }
    if let Some(u) = n.as_u64() {
        return Ok(Json::Number(u.into()));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or_else(|| format!("number {n} has no JSON representation"))
}

fn key_string(key: Yaml) -> Result<String, String> {
    Ok(match key {
        Yaml::String(s) => s,
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Null => "null".to_string(),
        Yaml::Tagged(tagged) => key_string(tagged.value)?,
        Yaml::Sequence(_) | Yaml::Mapping(_) => {
            return Err("a mapping key is a sequence or mapping; Compose needs scalar keys".into())
        }
    })
}
