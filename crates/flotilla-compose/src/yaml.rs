//! A YAML tree that remembers where every node came from.
//!
//! Built from `saphyr-parser` events (which carry line/column markers) so we
//! control the parts Compose files depend on: anchors and aliases (with a cap
//! on expanded size against "billion laughs"), merge keys (`<<`, including a
//! list of maps), the `!reset` / `!override` tags, duplicate keys, and nesting
//! depth.

use crate::diag::Diagnostic;
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Hard limits on input, against hostile or broken files.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    /// Total nodes after alias expansion.
    pub max_nodes: usize,
    /// Nodes that aliases may add, as a multiple of the nodes written in
    /// the file so far (but always at least `alias_floor`). A real file
    /// reuses a few anchors a few times; an alias bomb is a tiny file whose
    /// aliases multiply, so it is refused after a small amount of copying
    /// instead of at `max_nodes`.
    pub alias_ratio: usize,
    pub alias_floor: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 256,
            max_nodes: 1_000_000,
            alias_ratio: 100,
            alias_floor: 10_000,
        }
    }
}

/// One source file: its name for messages and its text for snippets.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Arc::new(Source {
            name: name.into(),
            text,
            line_starts,
        })
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        let end = self
            .line_starts
            .get(line)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        Some(self.text[start..end].trim_end_matches('\r'))
    }
}

/// Where a node starts in its file.
#[derive(Clone, Debug)]
pub struct Pos {
    pub source: Arc<Source>,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Width in characters on the first line (for the caret underline).
    pub width: usize,
}

impl Pos {
    /// A diagnostic located at this position.
    pub fn diag(&self, mut d: Diagnostic) -> Diagnostic {
        d.file = self.source.name.clone();
        d.line = self.line;
        d.column = self.column;
        d.width = self.width.max(1);
        d.source_line = self.source.line(self.line).map(str::to_string);
        d
    }

    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        self.diag(Diagnostic::error(message))
    }

    pub fn warning(&self, message: impl Into<String>) -> Diagnostic {
        self.diag(Diagnostic::warning(message))
    }

    /// A position for a whole file (no line), e.g. for missing files.
    pub fn file_only(source: Arc<Source>) -> Pos {
        Pos {
            source,
            line: 1,
            column: 1,
            width: 1,
        }
    }
}

/// The Compose merge tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeTag {
    /// `!reset`: drop the inherited value.
    Reset,
    /// `!override`: replace the inherited value instead of merging.
    Override,
}

#[derive(Clone, Debug)]
pub enum Value {
    /// A scalar's text and whether it was a plain (unquoted) scalar; only
    /// plain scalars are resolved to null/bool/number.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Key/value pairs in file order (keys unique).
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
    pub tag: Option<MergeTag>,
}

impl Node {
    pub fn scalar(text: impl Into<String>, pos: Pos) -> Node {
        Node {
            value: Value::Scalar {
                text: text.into(),
                plain: false,
            },
            pos,
            tag: None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if is_null_text(text))
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// Value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Count of nodes in this subtree (for the expansion budget).
    fn size(&self) -> usize {
        match &self.value {
            Value::Scalar { .. } => 1,
            Value::Seq(s) => 1 + s.iter().map(Node::size).sum::<usize>(),
            Value::Map(m) => 1 + m.iter().map(|(k, v)| k.size() + v.size()).sum::<usize>(),
        }
    }

    /// Convert to JSON for values carried through verbatim (extensions),
    /// resolving plain scalars with the YAML 1.2 core schema.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Scalar { text, plain } => {
                if !*plain {
                    return J::String(text.clone());
                }
                if is_null_text(text) {
                    J::Null
                } else if let Some(b) = parse_bool(text) {
                    J::Bool(b)
                } else if let Ok(i) = text.parse::<i64>() {
                    J::from(i)
                } else if let Some(f) = parse_float(text) {
                    serde_json::Number::from_f64(f)
                        .map(J::Number)
                        .unwrap_or_else(|| J::String(text.clone()))
                } else {
                    J::String(text.clone())
                }
            }
            Value::Seq(s) => J::Array(s.iter().map(Node::to_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

pub fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// YAML 1.2 core-schema floats (only text that looks numeric).
pub fn parse_float(text: &str) -> Option<f64> {
    let t = text.trim_start_matches(['+', '-']);
    if t.is_empty() {
        return None;
    }
    if matches!(t, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
        return None; // not representable in JSON; keep as string
    }
    if !t.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    text.parse::<f64>().ok()
}

/// Parse one YAML document into a spanned tree. An empty document is an
/// empty mapping. All problems found are returned together.
pub fn parse(source: &Arc<Source>, limits: Limits) -> Result<Node, Vec<Diagnostic>> {
    parse_document(source, limits).map(|d| d.root)
}

/// A parsed document and what the loader wants to know about it without
/// walking the tree again.
pub struct Document {
    pub root: Node,
    /// Whether any node carries `!reset` or `!override`.
    pub merge_tags: bool,
}

/// [`parse`], also telling whether the document uses merge tags.
pub fn parse_document(source: &Arc<Source>, limits: Limits) -> Result<Document, Vec<Diagnostic>> {
    let file_pos = Pos::file_only(source.clone());
    if source.text.len() > limits.max_bytes {
        return Err(vec![file_pos.error(format!(
            "file is {} bytes; the limit is {} bytes",
            source.text.len(),
            limits.max_bytes
        ))]);
    }
    let mut b = Builder {
        source: source.clone(),
        limits,
        anchors: HashMap::new(),
        frames: Vec::new(),
        items: Vec::new(),
        nodes: 0,
        aliased: 0,
        errors: Vec::new(),
        root: None,
        documents: 0,
        merge_tags: false,
    };
    let mut parser = Parser::new_from_str(&source.text);
    loop {
        match parser.next_event() {
            None => break,
            Some(Err(e)) => {
                let m = e.marker();
                let pos = b.pos_at(m.line(), m.col() + 1, 1);
                let d = if e.info().contains("recursion limit") {
                    pos.error(format!("nesting deeper than {} levels", limits.max_depth))
                } else {
                    pos.error(format!("invalid YAML: {}", e.info()))
                };
                b.errors.push(d.with_label("here"));
                return Err(b.errors);
            }
            Some(Ok((event, span))) => {
                if b.event(event, span).is_err() {
                    return Err(b.errors);
                }
            }
        }
    }
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    Ok(Document {
        root: b.root.unwrap_or(Node {
            value: Value::Map(Vec::new()),
            pos: file_pos,
            tag: None,
        }),
        merge_tags: b.merge_tags,
    })
}

/// Above this many keys a mapping checks for duplicates through a hash set;
/// below it a scan of the keys so far is cheaper than hashing (and
/// allocates nothing), and most mappings in a stack file are this small.
const LINEAR_KEY_SCAN: usize = 16;

/// An open sequence or mapping. Its children so far are `items[start..]`
/// of the builder (for a mapping: key, value, key, value...), so building
/// needs no vector per open collection and each finished collection gets a
/// vector of exactly its size.
struct Frame {
    node: Node,
    anchor: usize,
    start: usize,
    map: bool,
    /// Keys seen, for mappings past `LINEAR_KEY_SCAN` keys.
    seen: Option<HashSet<String>>,
}

struct Builder {
    source: Arc<Source>,
    limits: Limits,
    /// Anchored nodes with their expanded size in nodes, computed once when
    /// the anchor is defined: an alias is charged to the budget in O(1) and
    /// refused before anything is copied.
    anchors: HashMap<usize, (Node, usize)>,
    frames: Vec<Frame>,
    items: Vec<Node>,
    /// Nodes so far, including alias expansions.
    nodes: usize,
    /// Of those, nodes copied by aliases.
    aliased: usize,
    errors: Vec<Diagnostic>,
    root: Option<Node>,
    documents: usize,
    merge_tags: bool,
}

const ALIAS_BOMB_HELP: &str =
    "this looks like an alias bomb (\"billion laughs\"); Flotilla refuses it";

/// Fatal: stop building (the reason is in `errors`).
struct Stop;

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.value, Value::Scalar { text, plain: true } if text == "<<")
}

impl Builder {
    fn pos_at(&self, line: usize, column: usize, width: usize) -> Pos {
        Pos {
            source: self.source.clone(),
            line,
            column,
            width,
        }
    }

    fn pos(&self, span: &Span) -> Pos {
        let width = if span.start.line() == span.end.line() {
            span.end.col().saturating_sub(span.start.col())
        } else {
            1
        };
        self.pos_at(span.start.line(), span.start.col() + 1, width)
    }

    fn count(&mut self, n: usize, pos: &Pos) -> Result<(), Stop> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            self.errors.push(
                pos.error(format!(
                    "document expands to more than {} nodes (aliases expanding too much?)",
                    self.limits.max_nodes
                ))
                .with_help(ALIAS_BOMB_HELP),
            );
            return Err(Stop);
        }
        Ok(())
    }

    /// Charge an alias of `size` nodes, before it is copied.
    fn count_alias(&mut self, size: usize, pos: &Pos) -> Result<(), Stop> {
        let written = self.nodes - self.aliased;
        let budget = written
            .saturating_mul(self.limits.alias_ratio)
            .max(self.limits.alias_floor);
        self.aliased = self.aliased.saturating_add(size);
        if self.aliased > budget {
            self.errors.push(
                pos.error(format!(
                    "aliases expand to more than {budget} nodes, from only {written} nodes written in the file up to here"
                ))
                .with_label("this alias goes over the limit")
                .with_help(format!(
                    "this looks like an alias bomb (\"billion laughs\"); Flotilla refuses aliases that add more than {} times the nodes written (and more than {})",
                    self.limits.alias_ratio, self.limits.alias_floor
                )),
            );
            return Err(Stop);
        }
        self.count(size, pos)
    }

    fn tag_of(&mut self, tag: Option<&saphyr_parser::Tag>, pos: &Pos) -> (Option<MergeTag>, bool) {
        let Some(tag) = tag else { return (None, false) };
        match (tag.handle.as_str(), tag.suffix.as_str()) {
            ("!", "reset") => {
                self.merge_tags = true;
                (Some(MergeTag::Reset), false)
            }
            ("!", "override") => {
                self.merge_tags = true;
                (Some(MergeTag::Override), false)
            }
            ("!!", "str") | ("tag:yaml.org,2002:", "str") => (None, true),
            ("!!", _) | ("tag:yaml.org,2002:", _) => (None, false),
            (h, s) => {
                self.errors.push(
                    pos.error(format!("unsupported YAML tag `{h}{s}`"))
                        .with_help("Compose files may only use the `!reset` and `!override` tags"),
                );
                (None, false)
            }
        }
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Stop> {
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    let pos = self.pos(&span);
                    self.errors.push(
                        pos.error("a Compose file must hold exactly one YAML document")
                            .with_help(
                                "remove the second `---` document or put it in its own file",
                            ),
                    );
                    return Err(Stop);
                }
            }
            Event::Alias(id) => {
                let pos = self.pos(&span);
                let Some(&(_, size)) = self.anchors.get(&id) else {
                    self.errors
                        .push(pos.error("alias refers to an unknown anchor"));
                    return Err(Stop);
                };
                // Charge the whole expansion before copying any of it.
                self.count_alias(size, &pos)?;
                let mut node = self.anchors[&id].0.clone();
                // Keep the anchor's content but point at the alias for messages
                // about the node as a whole.
                node.pos = pos;
                self.push_node(node, 0)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let pos = self.pos(&span);
                self.count(1, &pos)?;
                let (tag, force_str) = self.tag_of(tag.as_deref(), &pos);
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain && !force_str,
                    },
                    pos,
                    tag,
                };
                self.push_node(node, anchor)?;
            }
            Event::SequenceStart(anchor, tag) => self.open(&span, anchor, tag, false)?,
            Event::MappingStart(anchor, tag) => self.open(&span, anchor, tag, true)?,
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.frames.pop() {
                    let mut node = frame.node;
                    if frame.map {
                        let mut entries = Vec::with_capacity((self.items.len() - frame.start) / 2);
                        let mut children = self.items.drain(frame.start..);
                        while let (Some(k), Some(v)) = (children.next(), children.next()) {
                            entries.push((k, v));
                        }
                        drop(children);
                        node.value = Value::Map(self.apply_merge_keys(entries));
                    } else {
                        node.value = Value::Seq(self.items.drain(frame.start..).collect());
                    }
                    self.push_node(node, frame.anchor)?;
                }
            }
        }
        Ok(())
    }

    fn open(
        &mut self,
        span: &Span,
        anchor: usize,
        tag: Option<std::borrow::Cow<'_, saphyr_parser::Tag>>,
        map: bool,
    ) -> Result<(), Stop> {
        let pos = self.pos(span);
        self.count(1, &pos)?;
        if self.frames.len() >= self.limits.max_depth {
            self.errors.push(pos.error(format!(
                "nesting deeper than {} levels",
                self.limits.max_depth
            )));
            return Err(Stop);
        }
        let (tag, _) = self.tag_of(tag.as_deref(), &pos);
        let value = if map {
            Value::Map(Vec::new())
        } else {
            Value::Seq(Vec::new())
        };
        self.frames.push(Frame {
            node: Node { value, pos, tag },
            anchor,
            start: self.items.len(),
            map,
            seen: None,
        });
        Ok(())
    }

    fn push_node(&mut self, node: Node, anchor: usize) -> Result<(), Stop> {
        if anchor != 0 {
            let size = node.size();
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let Some(frame) = self.frames.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        let filled = self.items.len() - frame.start;
        if !frame.map {
            self.items.push(node);
        } else if filled % 2 == 0 {
            // A key.
            if !matches!(node.value, Value::Scalar { .. }) {
                let d = node
                    .pos
                    .error("mapping keys must be plain strings, not a list or mapping");
                self.errors.push(d);
            }
            self.items.push(node);
        } else {
            // The value of the key just before it.
            let key = &self.items[self.items.len() - 1];
            let dup = !is_merge_key(key) && {
                let name = key.as_str().unwrap_or_default();
                let earlier = &self.items[frame.start..self.items.len() - 1];
                if let Some(seen) = &mut frame.seen {
                    !seen.insert(name.to_string())
                } else if filled / 2 < LINEAR_KEY_SCAN {
                    earlier
                        .iter()
                        .step_by(2)
                        .any(|k| !is_merge_key(k) && k.as_str().unwrap_or_default() == name)
                } else {
                    let mut seen: HashSet<String> = earlier
                        .iter()
                        .step_by(2)
                        .filter(|k| !is_merge_key(k))
                        .map(|k| k.as_str().unwrap_or_default().to_string())
                        .collect();
                    let dup = !seen.insert(name.to_string());
                    frame.seen = Some(seen);
                    dup
                }
            };
            if dup {
                let key = self.items.pop().expect("the key is on the stack");
                let name = key.as_str().unwrap_or_default().to_string();
                self.errors.push(
                    key.pos
                        .error(format!("duplicate key `{name}`"))
                        .with_label("defined again here")
                        .with_help("each key may appear only once in a mapping; remove one"),
                );
            } else {
                self.items.push(node);
            }
        }
        Ok(())
    }

    /// Resolve `<<` merge keys: explicit keys win over merged ones; among
    /// merged maps the earlier one wins (YAML merge-key semantics).
    fn apply_merge_keys(&mut self, entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
        if !entries
            .iter()
            .any(|(k, _)| matches!(&k.value, Value::Scalar { text, plain: true } if text == "<<"))
        {
            return entries;
        }
        let mut explicit = Vec::with_capacity(entries.len());
        let mut merged_sources = Vec::new();
        for (k, v) in entries {
            if matches!(&k.value, Value::Scalar { text, plain: true } if text == "<<") {
                match v.value {
                    Value::Map(m) => merged_sources.push(m),
                    Value::Seq(items) => {
                        for item in items {
                            match item.value {
                                Value::Map(m) => merged_sources.push(m),
                                _ => self.errors.push(
                                    item.pos
                                        .error("a `<<` merge list may only contain mappings")
                                        .with_help(
                                            "write `<<: [*a, *b]` where each alias is a mapping",
                                        ),
                                ),
                            }
                        }
                    }
                    _ => self.errors.push(v.pos.error(
                        "the value of a `<<` merge key must be a mapping or a list of mappings",
                    )),
                }
            } else {
                explicit.push((k, v));
            }
        }
        let mut seen: std::collections::HashSet<String> = explicit
            .iter()
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .collect();
        let mut out = Vec::new();
        for source in merged_sources {
            for (k, v) in source {
                if let Some(name) = k.as_str() {
                    if seen.insert(name.to_string()) {
                        out.push((k, v));
                    }
                }
            }
        }
        out.extend(explicit);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Node, Vec<Diagnostic>> {
        parse(&Source::new("t.yml", text), Limits::default())
    }

    #[test]
    fn keeps_positions() {
        let n = load("services:\n  web:\n    image: nginx\n").unwrap();
        let image = n
            .get("services")
            .unwrap()
            .get("web")
            .unwrap()
            .get("image")
            .unwrap();
        assert_eq!(image.as_str(), Some("nginx"));
        assert_eq!(
            (image.pos.line, image.pos.column, image.pos.width),
            (3, 12, 5)
        );
    }

    #[test]
    fn merge_keys_single_and_list() {
        let n =
            load("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 9\n").unwrap();
        let c = n.get("c").unwrap();
        assert_eq!(c.get("x").unwrap().as_str(), Some("9"));
        assert_eq!(c.get("y").unwrap().as_str(), Some("1"));
        assert_eq!(c.get("z").unwrap().as_str(), Some("2"));
        let n = load("a: &a {x: 1}\nc:\n  <<: *a\n").unwrap();
        assert_eq!(n.get("c").unwrap().get("x").unwrap().as_str(), Some("1"));
    }

    #[test]
    fn refuses_alias_bomb() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = load(&text).unwrap_err();
        assert!(
            err[0]
                .message
                .starts_with("aliases expand to more than 10000 nodes"),
            "{:?}",
            err[0]
        );
        // Refused while building `a3` (11,111 nodes), after copying about
        // 10,000 nodes: far from the million of the total node cap.
        assert_eq!(err[0].line, 4, "{:?}", err[0]);
        // Without the ratio the total cap still holds.
        let limits = Limits {
            alias_ratio: usize::MAX,
            ..Limits::default()
        };
        let err = parse(&Source::new("t.yml", text), limits).unwrap_err();
        assert!(
            err[0].message.contains("more than 1000000 nodes"),
            "{:?}",
            err[0]
        );
    }

    #[test]
    fn anchors_reused_by_every_service_are_fine() {
        let mut text = String::from("x-defaults: &d\n  restart: always\n  deploy:\n");
        text.push_str("    resources: {limits: {cpus: '1', memory: 1G}}\n");
        text.push_str("    labels: [a=1, b=2, c=3, d=4, e=5, f=6, g=7, h=8]\n");
        text.push_str("services:\n");
        for i in 0..2_000 {
            text.push_str(&format!("  s{i}:\n    <<: *d\n    image: x\n"));
        }
        let n = load(&text).unwrap();
        let s = n.get("services").unwrap().get("s1999").unwrap();
        assert_eq!(s.get("restart").unwrap().as_str(), Some("always"));
    }

    #[test]
    fn refuses_deep_nesting() {
        let flow = "[".repeat(300) + &"]".repeat(300);
        let block: String = (0..300).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        for text in [flow, block] {
            let err = load(&text).unwrap_err();
            assert!(
                err[0].message.contains("nesting deeper than"),
                "{:?}",
                err[0]
            );
        }
    }

    #[test]
    fn refuses_big_files() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let err = parse(&Source::new("t", "a: 123456789012"), limits).unwrap_err();
        assert!(err[0].message.contains("limit is 10 bytes"));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = load("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err[0].line, 3);
        assert!(err[0].message.contains("duplicate key `a`"));
    }

    #[test]
    fn tags_are_kept() {
        let n = load("a: !reset []\nb: !override {x: 1}\nc: !!str 5\n").unwrap();
        assert_eq!(n.get("a").unwrap().tag, Some(MergeTag::Reset));
        assert_eq!(n.get("b").unwrap().tag, Some(MergeTag::Override));
        assert_eq!(n.get("c").unwrap().to_json(), serde_json::json!("5"));
    }

    #[test]
    fn bom_crlf_and_one_space_indent() {
        let n = load("\u{feff}services:\r\n web:\r\n  image: x\r\n").unwrap();
        let image = n
            .get("services")
            .unwrap()
            .get("web")
            .unwrap()
            .get("image")
            .unwrap();
        assert_eq!(image.as_str(), Some("x"));
        assert_eq!(image.pos.line, 3);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = load("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err[0].message.starts_with("invalid YAML"));
        assert!(err[0].line >= 1);
    }
}
