//! Loading a project: find and read files, build the interpolation
//! environment, interpolate, resolve `include` and `extends`, merge the `-f`
//! files, then normalise and validate.

use crate::diag::{Diagnostic, Diagnostics};
use crate::interp::interpolate;
use crate::merge::{merge, strip_resets};
use crate::normalise::{self, resolve_path, Ctx};
use crate::yaml::{self, Limits, Node, Pos, Source, Value};
use crate::{keys, short, validate, LoadOptions, Loaded};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default file names, in the order Compose looks for them.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// How deep `include` / `extends` may nest (against cycles we did not spot).
const MAX_NESTING: usize = 32;

pub fn load_source(name: &str, source: &str, opts: &LoadOptions) -> Result<Loaded, Diagnostics> {
    let project_dir = absolute(opts.working_dir.as_deref().unwrap_or(Path::new(".")));
    let mut l = Loader::new(opts, &project_dir)?;
    let root = l.load_text(name, source.to_string(), &project_dir, 0);
    l.finish(vec![root], opts, project_dir)
}

pub fn load_files(opts: &LoadOptions) -> Result<Loaded, Diagnostics> {
    let working_dir = absolute(opts.working_dir.as_deref().unwrap_or(Path::new(".")));
    let files: Vec<PathBuf> = if opts.files.is_empty() {
        let found = DEFAULT_FILES
            .iter()
            .map(|f| working_dir.join(f))
            .find(|p| p.is_file());
        match found {
            Some(f) => vec![f],
            None => {
                return Err(Diagnostics(vec![Diagnostic::error(format!(
                    "no Compose file found in {}",
                    working_dir.display()
                ))
                .with_help(format!(
                    "create one of {} or pass -f <file>",
                    DEFAULT_FILES.join(", ")
                ))]))
            }
        }
    } else {
        opts.files
            .iter()
            .map(|f| resolve_path(&working_dir, &f.to_string_lossy(), None))
            .collect()
    };
    let project_dir = files[0]
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(working_dir.clone());
    let mut l = Loader::new(opts, &project_dir)?;
    let mut roots = Vec::new();
    for f in &files {
        let display = f.to_string_lossy().into_owned();
        if let Some(text) = l.read(&display, f, None) {
            let dir = f
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or(project_dir.clone());
            let root = l.load_text(&display, text, &dir, 0);
            roots.push(root);
        }
    }
    l.finish(roots, opts, project_dir)
}

fn absolute(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    resolve_path(Path::new("/"), &abs.to_string_lossy(), None)
}

struct Loader {
    env: BTreeMap<String, String>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    warned_unset: HashSet<String>,
    limits: Limits,
    /// Whether any file read uses `!reset`/`!override`: without them there
    /// is nothing to strip from the first file, so the walk is skipped.
    merge_tags: bool,
}

impl Loader {
    fn new(opts: &LoadOptions, project_dir: &Path) -> Result<Loader, Diagnostics> {
        let mut l = Loader {
            env: BTreeMap::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            warned_unset: HashSet::new(),
            limits: Limits::default(),
            merge_tags: false,
        };
        let env_files: Vec<(PathBuf, bool)> = if opts.env_files.is_empty() {
            vec![(project_dir.join(".env"), false)]
        } else {
            let wd = absolute(opts.working_dir.as_deref().unwrap_or(Path::new(".")));
            opts.env_files
                .iter()
                .map(|f| (resolve_path(&wd, &f.to_string_lossy(), None), true))
                .collect()
        };
        let mut from_files = BTreeMap::new();
        for (path, required) in env_files {
            l.env_file(&path, required, &opts.environment, &mut from_files, None);
        }
        // The process environment wins over env files, like Compose.
        l.env = from_files;
        l.env.extend(opts.environment.clone());
        if !l.errors.is_empty() {
            return Err(Diagnostics(std::mem::take(&mut l.errors)));
        }
        Ok(l)
    }

    /// Read a dotenv file into `into`. Missing optional files are skipped.
    fn env_file(
        &mut self,
        path: &Path,
        required: bool,
        env: &BTreeMap<String, String>,
        into: &mut BTreeMap<String, String>,
        at: Option<&Pos>,
    ) {
        let display = path.to_string_lossy().into_owned();
        if !required && !path.exists() {
            return;
        }
        let Some(text) = self.read(&display, path, at) else {
            return;
        };
        let mut lookup = env.clone();
        lookup.extend(into.clone());
        match crate::dotenv::parse(&text, &lookup) {
            Ok(vars) => into.extend(vars),
            Err(e) => {
                let src = Source::new(display, text);
                let pos = Pos {
                    source: src.clone(),
                    line: e.line,
                    column: 1,
                    width: src.line(e.line).map(|l| l.chars().count()).unwrap_or(1),
                };
                self.errors
                    .push(pos.error(format!("invalid env file: {}", e.message)));
            }
        }
    }

    /// Read a file with the size limit, reporting errors at `at` if given.
    fn read(&mut self, display: &str, path: &Path, at: Option<&Pos>) -> Option<String> {
        let report = |msg: String| match at {
            Some(p) => p.error(msg),
            None => Diagnostic::error(msg).in_file(display),
        };
        match std::fs::metadata(path) {
            Ok(m) if m.len() > self.limits.max_bytes as u64 => {
                self.errors.push(report(format!(
                    "{display} is {} bytes; the limit is {} bytes",
                    m.len(),
                    self.limits.max_bytes
                )));
                return None;
            }
            Ok(_) => {}
            Err(e) => {
                self.errors
                    .push(report(format!("cannot read {display}: {e}")));
                return None;
            }
        }
        match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => {
                self.errors
                    .push(report(format!("cannot read {display}: {e}")));
                None
            }
        }
    }

    /// Parse, interpolate and resolve `include`/`extends` for one file.
    /// `dir` is the file's directory: relative paths in it are made
    /// absolute against it, so that merging files from several directories
    /// keeps each path pointing where its author meant.
    fn load_text(&mut self, name: &str, text: String, dir: &Path, depth: usize) -> Node {
        let source = Source::new(name, text);
        let mut root = match yaml::parse_document(&source, self.limits) {
            Ok(doc) => {
                self.merge_tags |= doc.merge_tags;
                doc.root
            }
            Err(errs) => {
                self.errors.extend(errs);
                return empty_map(&source);
            }
        };
        if root.as_map().is_none_or(<[_]>::is_empty) {
            if root.is_null() || root.as_map().is_some() {
                // Like `docker compose`, which refuses a file with no content
                // ("empty compose file"); the parser reads one as `{}`.
                self.errors.push(
                    root.pos
                        .error("empty compose file".to_string())
                        .with_help("a Compose file starts with `services:`"),
                );
                return empty_map(&source);
            }
            self.errors.push(
                root.pos
                    .error(format!(
                        "a Compose file must be a mapping at the top, found {}",
                        root.kind()
                    ))
                    .with_help("start with `services:`"),
            );
            return empty_map(&source);
        }
        // Only a scalar holding `$` can change, and a scalar can only hold
        // one if the text has a `$` or a `\` escape (`"\x24"`): most files
        // have neither, and walking a big tree for nothing costs
        // milliseconds.
        if source.text.contains(['$', '\\']) {
            self.interpolate(&mut root);
        }
        rebase_paths(&mut root, dir, self.env.get("HOME").map(String::as_str));
        if let Some(include) = take_key(&mut root, "include") {
            root = self.include(root, &include, dir, depth);
        }
        self.extends(&mut root, dir, depth);
        root
    }

    fn interpolate(&mut self, node: &mut Node) {
        match &mut node.value {
            Value::Scalar { text, plain } => {
                if !text.contains('$') {
                    return;
                }
                let env = &self.env;
                let look = |n: &str| env.get(n).map(String::as_str);
                match interpolate(text, &look) {
                    Ok(r) => {
                        for var in r.unset {
                            if self.warned_unset.insert(var.clone()) {
                                self.warnings.push(
                                    node.pos
                                        .warning(format!("variable {var} is not set; using an empty string"))
                                        .with_help(format!("set {var} in the environment or .env, or write ${{{var}:-default}}")),
                                );
                            }
                        }
                        // Interpolated values are strings, like in Compose;
                        // fields that want numbers or booleans parse them.
                        if r.text != *text {
                            *text = r.text;
                            *plain = false;
                        }
                    }
                    Err(e) => {
                        let quoted = !*plain;
                        let mut pos = node.pos.clone();
                        let first_line = text.lines().next().unwrap_or("").chars().count();
                        if e.offset < first_line {
                            pos.column += e.offset + usize::from(quoted);
                            pos.width = 1;
                        }
                        let mut d = pos.error(e.message).with_label("in this value");
                        if let Some(h) = e.help {
                            d = d.with_help(h);
                        }
                        self.errors.push(d);
                    }
                }
            }
            Value::Seq(items) => items.iter_mut().for_each(|i| self.interpolate(i)),
            // Values only: keys are never interpolated.
            Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| self.interpolate(v)),
        }
    }

    /// Load included files and add their resources to `root`; a resource
    /// defined both here and in an included file is an error.
    fn include(&mut self, root: Node, include: &Node, dir: &Path, depth: usize) -> Node {
        if depth >= MAX_NESTING {
            self.errors
                .push(include.pos.error("`include` nests too deeply (a cycle?)"));
            return root;
        }
        let Some(items) = include.as_seq() else {
            self.errors.push(include.pos.error(format!(
                "invalid `include`: expected a list, found {}",
                include.kind()
            )));
            return root;
        };
        let mut included: Vec<Node> = Vec::new();
        for item in items {
            let (paths, env_files, project_dir) = match &item.value {
                Value::Scalar { text, .. } => {
                    (vec![(text.clone(), item.pos.clone())], Vec::new(), None)
                }
                Value::Map(entries) => {
                    let mut paths = Vec::new();
                    let mut env_files = Vec::new();
                    let mut pdir = None;
                    for (k, v) in entries {
                        let key = k.as_str().unwrap_or_default();
                        match key {
                            "path" => paths = strings(v),
                            "env_file" => env_files = strings(v),
                            "project_directory" => pdir = v.as_str().map(str::to_string),
                            _ => {
                                let mut cx = self.ctx_for_keys();
                                cx.unknown_key(k, key, keys::INCLUDE, "include");
                                self.errors.extend(cx.errors);
                            }
                        }
                    }
                    if paths.is_empty() {
                        self.errors
                            .push(item.pos.error("`include` entry has no `path`"));
                    }
                    (paths, env_files, pdir)
                }
                Value::Seq(_) => {
                    self.errors.push(
                        item.pos
                            .error("invalid `include` entry: expected a path or a mapping"),
                    );
                    continue;
                }
            };
            let mut merged: Option<Node> = None;
            for (p, pos) in paths {
                let path = resolve_path(dir, &p, None);
                let display = path.to_string_lossy().into_owned();
                let Some(text) = self.read(&display, &path, Some(&pos)) else {
                    continue;
                };
                let file_dir = path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or(dir.to_path_buf());
                let inc_dir = project_dir
                    .as_deref()
                    .map(|d| resolve_path(dir, d, None))
                    .unwrap_or(file_dir);
                // Included files interpolate with their own env files on
                // top of ours.
                let saved = self.env.clone();
                for (f, fpos) in &env_files {
                    let fpath = resolve_path(dir, f, None);
                    let base = self.env.clone();
                    let mut extra = BTreeMap::new();
                    self.env_file(&fpath, true, &base, &mut extra, Some(fpos));
                    for (k, v) in extra {
                        self.env.entry(k).or_insert(v);
                    }
                }
                let node = self.load_text(&display, text, &inc_dir, depth + 1);
                self.env = saved;
                merged = Some(match merged {
                    None => node,
                    Some(b) => merge(b, node, &mut Vec::new()),
                });
            }
            included.extend(merged);
        }
        let mut root = root;
        for inc in included {
            add_without_conflict(&mut root, inc, &mut self.errors);
        }
        root
    }

    fn ctx_for_keys(&self) -> Ctx<'_> {
        Ctx {
            project_dir: PathBuf::new(),
            project_name: String::new(),
            env: &self.env,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Resolve `extends` for every service of this file.
    fn extends(&mut self, root: &mut Node, dir: &Path, depth: usize) {
        let Some(services) = root.get("services").and_then(Node::as_map) else {
            return;
        };
        let names: Vec<String> = services
            .iter()
            .filter(|(_, v)| v.get("extends").is_some())
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .collect();
        if names.is_empty() {
            return;
        }
        let snapshot = root.clone();
        for name in names {
            let mut chain = vec![name.clone()];
            if let Some(resolved) = self.resolve_service(&snapshot, &name, dir, depth, &mut chain) {
                set_service(root, &name, resolved);
            }
        }
    }

    /// The service `name` of `file_root` with its `extends` chain applied.
    fn resolve_service(
        &mut self,
        file_root: &Node,
        name: &str,
        dir: &Path,
        depth: usize,
        chain: &mut Vec<String>,
    ) -> Option<Node> {
        let svc = file_root.get("services")?.get(name)?.clone();
        let Some(ext) = svc.get("extends").cloned() else {
            return Some(svc);
        };
        if depth + chain.len() > MAX_NESTING {
            self.errors
                .push(ext.pos.error("`extends` nests too deeply"));
            return None;
        }
        let (base_name, file) = match &ext.value {
            Value::Scalar { text, .. } => (text.clone(), None),
            Value::Map(entries) => {
                let mut service = None;
                let mut file = None;
                for (k, v) in entries {
                    match k.as_str().unwrap_or_default() {
                        "service" => service = v.as_str().map(str::to_string),
                        "file" => file = v.as_str().map(|f| (f.to_string(), v.pos.clone())),
                        other => {
                            let mut cx = self.ctx_for_keys();
                            cx.unknown_key(k, other, keys::EXTENDS, "extends");
                            self.errors.extend(cx.errors);
                        }
                    }
                }
                let Some(service) = service else {
                    self.errors
                        .push(ext.pos.error("`extends` needs a `service`"));
                    return None;
                };
                (service, file)
            }
            Value::Seq(_) => {
                self.errors.push(
                    ext.pos
                        .error("invalid `extends`: expected a service name or {service, file}"),
                );
                return None;
            }
        };
        let base = match file {
            None => {
                let key = base_name.clone();
                if chain.contains(&key) {
                    self.errors.push(
                        ext.pos
                            .error(format!("`extends` cycle: {} -> {key}", chain.join(" -> ")))
                            .with_help("a service cannot extend itself, directly or indirectly"),
                    );
                    return None;
                }
                if file_root
                    .get("services")
                    .and_then(|s| s.get(&key))
                    .is_none()
                {
                    self.errors.push(ext.pos.error(format!(
                        "`extends` refers to service `{key}`, which is not defined in this file"
                    )));
                    return None;
                }
                chain.push(key.clone());
                let b = self.resolve_service(file_root, &key, dir, depth, chain);
                chain.pop();
                b?
            }
            Some((f, pos)) => {
                let path = resolve_path(dir, &f, None);
                let display = path.to_string_lossy().into_owned();
                let text = self.read(&display, &path, Some(&pos))?;
                let fdir = path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or(dir.to_path_buf());
                let other = self.load_text(&display, text, &fdir, depth + 1);
                match other.get("services").and_then(|s| s.get(&base_name)) {
                    Some(b) => b.clone(),
                    None => {
                        self.errors.push(pos.error(format!(
                            "`extends` refers to service `{base_name}`, which {display} does not define"
                        )));
                        return None;
                    }
                }
            }
        };
        let mut svc = svc;
        take_key(&mut svc, "extends");
        let mut base = base;
        take_key(&mut base, "extends");
        let mut path = vec!["services".to_string(), name.to_string()];
        Some(merge(base, svc, &mut path))
    }

    fn finish(
        mut self,
        roots: Vec<Node>,
        opts: &LoadOptions,
        project_dir: PathBuf,
    ) -> Result<Loaded, Diagnostics> {
        let mut iter = roots.into_iter();
        let mut merged = match iter.next() {
            Some(mut first) => {
                if self.merge_tags {
                    strip_resets(&mut first);
                }
                first
            }
            None => return Err(Diagnostics(self.errors)),
        };
        for next in iter {
            merged = merge(merged, next, &mut Vec::new());
        }
        let name_in_file = merged
            .get("name")
            .and_then(Node::as_str)
            .map(str::to_string);
        let raw_name = opts
            .project_name
            .clone()
            .or(name_in_file)
            .unwrap_or_else(|| {
                project_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "default".into())
            });
        let project_name = short::project_name(&raw_name);
        if project_name.is_empty() {
            self.errors.push(
                Diagnostic::error(format!(
                    "project name {raw_name:?} has no usable characters"
                ))
                .with_help("pass -p <name> or set `name:` using letters, digits, `_` or `-`"),
            );
        }
        let mut cx = Ctx {
            project_dir: project_dir.clone(),
            project_name,
            env: &self.env,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let normalised = normalise::stack(&mut cx, &merged, &opts.profiles);
        validate::validate(&mut cx, &merged, &normalised);
        self.errors.extend(cx.errors);
        self.warnings.extend(cx.warnings);
        if self.errors.is_empty() {
            Ok(Loaded {
                stack: normalised.stack,
                warnings: self.warnings,
            })
        } else {
            let mut all = self.errors;
            all.extend(self.warnings);
            Err(Diagnostics(all))
        }
    }
}

fn empty_map(source: &Arc<Source>) -> Node {
    Node {
        value: Value::Map(Vec::new()),
        pos: Pos::file_only(source.clone()),
        tag: None,
    }
}

fn strings(v: &Node) -> Vec<(String, Pos)> {
    match &v.value {
        Value::Scalar { text, .. } => vec![(text.clone(), v.pos.clone())],
        Value::Seq(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(|s| (s.to_string(), i.pos.clone())))
            .collect(),
        Value::Map(_) => Vec::new(),
    }
}

fn take_key(node: &mut Node, key: &str) -> Option<Node> {
    let Value::Map(entries) = &mut node.value else {
        return None;
    };
    let i = entries.iter().position(|(k, _)| k.as_str() == Some(key))?;
    Some(entries.remove(i).1)
}

fn set_service(root: &mut Node, name: &str, svc: Node) {
    let Value::Map(entries) = &mut root.value else {
        return;
    };
    for (k, v) in entries.iter_mut() {
        if k.as_str() == Some("services") {
            if let Value::Map(services) = &mut v.value {
                for (sk, sv) in services.iter_mut() {
                    if sk.as_str() == Some(name) {
                        *sv = svc;
                        return;
                    }
                }
            }
        }
    }
}

/// Add every service/network/volume/secret/config of `inc` to `root`.
fn add_without_conflict(root: &mut Node, inc: Node, errors: &mut Vec<Diagnostic>) {
    let Value::Map(inc_entries) = inc.value else {
        return;
    };
    for (ik, iv) in inc_entries {
        let section = ik.as_str().unwrap_or_default().to_string();
        if !matches!(
            section.as_str(),
            "services" | "networks" | "volumes" | "secrets" | "configs"
        ) {
            continue;
        }
        let Value::Map(items) = iv.value else {
            continue;
        };
        let Value::Map(entries) = &mut root.value else {
            return;
        };
        let idx = match entries
            .iter()
            .position(|(k, _)| k.as_str() == Some(&section))
        {
            Some(i) => i,
            None => {
                entries.push((
                    ik.clone(),
                    Node {
                        value: Value::Map(Vec::new()),
                        pos: ik.pos.clone(),
                        tag: None,
                    },
                ));
                entries.len() - 1
            }
        };
        let target = &mut entries[idx].1;
        if target.is_null() {
            target.value = Value::Map(Vec::new());
        }
        let Value::Map(existing) = &mut target.value else {
            continue;
        };
        let names: HashSet<String> = existing
            .iter()
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .collect();
        for (k, v) in items {
            let name = k.as_str().unwrap_or_default();
            if names.contains(name) {
                errors.push(
                    k.pos
                        .error(format!("{section} `{name}` is defined both here (an included file) and in the including file"))
                        .with_help("`include` does not merge: rename one, or use extends / -f overrides"),
                );
            } else {
                existing.push((k, v));
            }
        }
    }
}

/// Make relative host paths in a file absolute against its directory, so a
/// later merge with files from other directories keeps their meaning.
fn rebase_paths(root: &mut Node, dir: &Path, home: Option<&str>) {
    let abs = |p: &str| resolve_path(dir, p, home).to_string_lossy().into_owned();
    let Value::Map(top) = &mut root.value else {
        return;
    };
    for (k, v) in top.iter_mut() {
        match k.as_str() {
            Some("services") => {
                let Value::Map(services) = &mut v.value else {
                    continue;
                };
                for (_, svc) in services.iter_mut() {
                    let Value::Map(fields) = &mut svc.value else {
                        continue;
                    };
                    for (fk, fv) in fields.iter_mut() {
                        match fk.as_str() {
                            Some("volumes") => rebase_volumes(fv, &abs),
                            Some("build") => rebase_build(fv, &abs),
                            Some("env_file" | "label_file") => rebase_env_files(fv, &abs),
                            Some("extends") => {
                                if let Some(f) = field_mut(fv, "file") {
                                    rebase_scalar(f, &abs);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            Some("secrets" | "configs") => {
                let Value::Map(items) = &mut v.value else {
                    continue;
                };
                for (_, item) in items.iter_mut() {
                    if let Some(f) = field_mut(item, "file") {
                        rebase_scalar(f, &abs);
                    }
                }
            }
            _ => {}
        }
    }
}

fn field_mut<'n>(node: &'n mut Node, key: &str) -> Option<&'n mut Node> {
    let Value::Map(entries) = &mut node.value else {
        return None;
    };
    entries
        .iter_mut()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn rebase_scalar(node: &mut Node, abs: &dyn Fn(&str) -> String) {
    if let Value::Scalar { text, plain } = &mut node.value {
        // An unquoted number, boolean or null is not a path: leave it for
        // normalisation to refuse as the wrong type (as the schema does),
        // instead of turning `build: 5` into the directory `<dir>/5`.
        let typed = *plain
            && (yaml::is_null_text(text)
                || yaml::parse_bool(text).is_some()
                || text.parse::<i64>().is_ok()
                || yaml::parse_float(text).is_some());
        if !text.is_empty() && !typed && !node_is_url(text) {
            *text = abs(text);
        }
    }
}

fn node_is_url(text: &str) -> bool {
    text.contains("://") || text.starts_with("git@") || text.starts_with("github.com/")
}

fn rebase_volumes(node: &mut Node, abs: &dyn Fn(&str) -> String) {
    let Value::Seq(items) = &mut node.value else {
        return;
    };
    for item in items {
        match &mut item.value {
            Value::Scalar { text, .. } => {
                if let Some((src, rest)) = text.split_once(':') {
                    if short::is_host_path(src) {
                        *text = format!("{}:{rest}", abs(src));
                    }
                }
            }
            Value::Map(_) => {
                let is_bind = item.get("type").and_then(Node::as_str) == Some("bind");
                if is_bind {
                    if let Some(s) = field_mut(item, "source") {
                        rebase_scalar(s, abs);
                    }
                }
            }
            Value::Seq(_) => {}
        }
    }
}

fn rebase_build(node: &mut Node, abs: &dyn Fn(&str) -> String) {
    match &mut node.value {
        Value::Scalar { .. } => rebase_scalar(node, abs),
        Value::Map(_) => {
            if let Some(c) = field_mut(node, "context") {
                rebase_scalar(c, abs);
            }
        }
        Value::Seq(_) => {}
    }
}

fn rebase_env_files(node: &mut Node, abs: &dyn Fn(&str) -> String) {
    match &mut node.value {
        Value::Scalar { .. } => rebase_scalar(node, abs),
        Value::Seq(items) => {
            for item in items {
                match &item.value {
                    Value::Scalar { .. } => rebase_scalar(item, abs),
                    Value::Map(_) => {
                        if let Some(p) = field_mut(item, "path") {
                            rebase_scalar(p, abs);
                        }
                    }
                    Value::Seq(_) => {}
                }
            }
        }
        Value::Map(_) => {}
    }
}
