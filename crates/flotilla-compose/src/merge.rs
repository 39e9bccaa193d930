//! Merging Compose models, following the Compose Specification's merge
//! rules (used for multiple `-f` files and for `extends`):
//! - mappings merge key by key, recursively;
//! - scalars are replaced;
//! - `command`, `entrypoint` and `healthcheck.test` are replaced;
//! - `environment`, `labels`, `annotations`, `sysctls`, `extra_hosts`,
//!   `build.args`, `deploy.labels`, ... (list or dict) are merged as maps;
//! - `ports` are appended without duplicates; `volumes` are unique by
//!   target, `secrets`/`configs` by target (else source);
//!   `depends_on`/`networks` merge as maps; other sequences (`dns`,
//!   `cap_add`, `expose`, ...) are appended without duplicates;
//! - `!reset` on the overriding value removes the inherited one, and
//!   `!override` replaces it instead of merging.
//!
//! Mappings are merged through a hash index so a merge is O(n) in the
//! number of keys.

use crate::yaml::{MergeTag, Node, Value};
use std::collections::HashMap;

/// Merge `over` onto `base`. `path` is the key path of the two nodes
/// (e.g. `["services", "web", "ports"]`), which selects the rule.
pub fn merge(base: Node, over: Node, path: &mut Vec<String>) -> Node {
    if over.tag == Some(MergeTag::Override) {
        return untagged(over);
    }
    let rule = rule_for(path);
    match rule {
        Rule::Replace => return over,
        Rule::Dict => {
            if let (Some(b), Some(o)) = (as_dict(&base), as_dict(&over)) {
                return merge_maps(b, o, path);
            }
        }
        Rule::ByKey(key_of) => {
            if let (Value::Seq(b), Value::Seq(o)) = (&base.value, &over.value) {
                let mut items: Vec<Node> = b.clone();
                let mut index: HashMap<String, usize> = HashMap::new();
                for (i, item) in items.iter().enumerate() {
                    index.insert(key_of(item), i);
                }
                for item in o {
                    let k = key_of(item);
                    match index.get(&k) {
                        Some(&i) => items[i] = item.clone(),
                        None => {
                            index.insert(k, items.len());
                            items.push(item.clone());
                        }
                    }
                }
                return Node {
                    value: Value::Seq(items),
                    ..over
                };
            }
        }
        Rule::Default => {}
    }
    match (base.value, over.value) {
        (Value::Map(b), Value::Map(o)) => merge_maps(b, o, path),
        (Value::Seq(b), Value::Seq(o)) => {
            let mut seen: std::collections::HashSet<String> =
                b.iter().map(|n| n.to_json().to_string()).collect();
            let mut items = b;
            for item in o {
                if seen.insert(item.to_json().to_string()) {
                    items.push(item);
                }
            }
            Node {
                value: Value::Seq(items),
                pos: over.pos,
                tag: None,
            }
        }
        (_, value) => Node {
            value,
            pos: over.pos,
            tag: over.tag,
        },
    }
}

fn untagged(mut n: Node) -> Node {
    n.tag = None;
    n
}

fn merge_maps(base: Vec<(Node, Node)>, over: Vec<(Node, Node)>, path: &mut Vec<String>) -> Node {
    let pos = over.first().or(base.first()).map(|(k, _)| k.pos.clone());
    let mut entries: Vec<Option<(Node, Node)>> = base.into_iter().map(Some).collect();
    let mut index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            e.as_ref()
                .and_then(|(k, _)| k.as_str())
                .map(|k| (k.to_string(), i))
        })
        .collect();
    for (k, v) in over {
        let name = k.as_str().unwrap_or_default().to_string();
        if v.tag == Some(MergeTag::Reset) {
            if let Some(i) = index.remove(&name) {
                entries[i] = None;
            }
            continue;
        }
        match index.get(&name) {
            Some(&i) => {
                if let Some((bk, bv)) = entries[i].take() {
                    path.push(name);
                    let merged = merge(bv, v, path);
                    path.pop();
                    entries[i] = Some((bk, merged));
                }
            }
            None => {
                index.insert(name, entries.len());
                entries.push(Some((k, untagged(v))));
            }
        }
    }
    let entries: Vec<(Node, Node)> = entries.into_iter().flatten().collect();
    let pos = pos
        .unwrap_or_else(|| crate::yaml::Pos::file_only(crate::yaml::Source::new("<merged>", "")));
    Node {
        value: Value::Map(entries),
        pos,
        tag: None,
    }
}

/// Remove `!reset` entries from a tree that is not merged onto anything
/// (the first file): there is nothing to reset, so the key is dropped.
pub fn strip_resets(node: &mut Node) {
    match &mut node.value {
        Value::Map(entries) => {
            entries.retain(|(_, v)| v.tag != Some(MergeTag::Reset));
            for (_, v) in entries.iter_mut() {
                v.tag = None;
                strip_resets(v);
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(strip_resets),
        Value::Scalar { .. } => {}
    }
}

enum Rule {
    Default,
    Replace,
    /// list_or_dict: merge as a mapping.
    Dict,
    /// Sequence of unique items identified by a key.
    ByKey(fn(&Node) -> String),
}

fn rule_for(path: &[String]) -> Rule {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["services", _, "command" | "entrypoint"] => Rule::Replace,
        ["services", _, "healthcheck", "test"] => Rule::Replace,
        ["services", _, "environment" | "labels" | "annotations" | "sysctls" | "extra_hosts" | "depends_on"
        | "networks" | "ulimits"] => Rule::Dict,
        ["services", _, "build", "args" | "labels" | "additional_contexts"] => Rule::Dict,
        ["services", _, "deploy", "labels"] => Rule::Dict,
        ["services", _, "logging", "options"] => Rule::Dict,
        ["services", _, "volumes"] => Rule::ByKey(volume_key),
        ["services", _, "secrets" | "configs"] => Rule::ByKey(grant_key),
        [_, _, "labels" | "driver_opts"] => Rule::Dict,
        _ => Rule::Default,
    }
}

fn volume_key(n: &Node) -> String {
    match &n.value {
        Value::Scalar { text, .. } => {
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [t] => (*t).to_string(),
                [_, t, ..] => (*t).to_string(),
                [] => String::new(),
            }
        }
        _ => n
            .get("target")
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

fn grant_key(n: &Node) -> String {
    match &n.value {
        Value::Scalar { text, .. } => text.clone(),
        _ => n
            .get("target")
            .or_else(|| n.get("source"))
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

/// View a `list_or_dict` node (or `depends_on`/`networks` list) as mapping
/// entries: `["A=1", "B"]` becomes `{A: "1", B: null}`.
fn as_dict(node: &Node) -> Option<Vec<(Node, Node)>> {
    match &node.value {
        Value::Map(m) => Some(m.clone()),
        Value::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let text = item.as_str()?;
                let (k, v) = match text.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (text, None),
                };
                let key = Node::scalar(k, item.pos.clone());
                let value = match v {
                    Some(v) => Node::scalar(v, item.pos.clone()),
                    None => Node {
                        value: Value::Scalar {
                            text: String::new(),
                            plain: true,
                        },
                        pos: item.pos.clone(),
                        tag: None,
                    },
                };
                out.push((key, value));
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{parse, Limits, Source};

    fn yaml(text: &str) -> Node {
        parse(&Source::new("t", text), Limits::default()).unwrap()
    }

    fn merged(a: &str, b: &str) -> serde_json::Value {
        merge(yaml(a), yaml(b), &mut Vec::new()).to_json()
    }

    #[test]
    fn rules_table() {
        use serde_json::json;
        let cases: Vec<(&str, &str, serde_json::Value)> = vec![
            // Scalars are replaced, maps merged.
            (
                "services: {web: {image: a, user: x}}",
                "services: {web: {image: b}}",
                json!({"services": {"web": {"image": "b", "user": "x"}}}),
            ),
            // command replaced, not appended.
            (
                "services: {web: {command: [a, b]}}",
                "services: {web: {command: [c]}}",
                json!({"services": {"web": {"command": ["c"]}}}),
            ),
            (
                "services: {web: {healthcheck: {test: [CMD, a], retries: 2}}}",
                "services: {web: {healthcheck: {test: [CMD, b]}}}",
                json!({"services": {"web": {"healthcheck": {"test": ["CMD", "b"], "retries": 2}}}}),
            ),
            // environment list + map merge as a map.
            (
                "services: {web: {environment: [A=1, B=2]}}",
                "services: {web: {environment: {B: 3, C: 4}}}",
                json!({"services": {"web": {"environment": {"A": "1", "B": 3, "C": 4}}}}),
            ),
            // ports appended without duplicates.
            (
                "services: {web: {ports: ['80:80']}}",
                "services: {web: {ports: ['80:80', '443:443']}}",
                json!({"services": {"web": {"ports": ["80:80", "443:443"]}}}),
            ),
            // volumes unique by target.
            (
                "services: {web: {volumes: ['./a:/data', 'v:/other']}}",
                "services: {web: {volumes: ['./b:/data:ro']}}",
                json!({"services": {"web": {"volumes": ["./b:/data:ro", "v:/other"]}}}),
            ),
            // depends_on list merges with map form.
            (
                "services: {web: {depends_on: [db]}}",
                "services: {web: {depends_on: {cache: {condition: service_started}}}}",
                json!({"services": {"web": {"depends_on": {"db": null, "cache": {"condition": "service_started"}}}}}),
            ),
            // !reset removes, !override replaces.
            (
                "services: {web: {ports: ['80:80'], user: x}}",
                "services: {web: {ports: !reset [], user: !reset null}}",
                json!({"services": {"web": {}}}),
            ),
            (
                "services: {web: {ports: ['80:80']}}",
                "services: {web: {ports: !override ['81:81']}}",
                json!({"services": {"web": {"ports": ["81:81"]}}}),
            ),
            (
                "services: {web: {deploy: {resources: {limits: {cpus: '1'}}}}}",
                "services: {web: {deploy: !override {replicas: 2}}}",
                json!({"services": {"web": {"deploy": {"replicas": 2}}}}),
            ),
            // dns appended without duplicates.
            (
                "services: {web: {dns: [1.1.1.1]}}",
                "services: {web: {dns: [1.1.1.1, 8.8.8.8]}}",
                json!({"services": {"web": {"dns": ["1.1.1.1", "8.8.8.8"]}}}),
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(merged(a, b), want, "{a} + {b}");
        }
    }

    #[test]
    fn strip_resets_in_first_file() {
        let mut n = yaml("a: !reset [1]\nb: 2\n");
        strip_resets(&mut n);
        assert_eq!(n.to_json(), serde_json::json!({"b": 2}));
    }
}
