//! Where the corpus lives and how each case is loaded (the convention is
//! documented in tests/corpus/README.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flotilla_compose::LoadOptions;
use serde_json::Value;

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn corpus_dir() -> PathBuf {
    crate_dir().join("tests/corpus")
}

/// The three single-file categories: the directory name is the expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// Schema accepts, Flotilla accepts (warnings allowed).
    Valid,
    /// Schema rejects, Flotilla rejects.
    Invalid,
    /// Schema accepts, Flotilla's semantic validation rejects.
    SemanticInvalid,
}

impl Category {
    pub const ALL: [Category; 3] = [
        Category::Valid,
        Category::Invalid,
        Category::SemanticInvalid,
    ];

    pub fn dir_name(self) -> &'static str {
        match self {
            Category::Valid => "valid",
            Category::Invalid => "invalid",
            Category::SemanticInvalid => "semantic-invalid",
        }
    }

    pub fn schema_accepts(self) -> bool {
        matches!(self, Category::Valid | Category::SemanticInvalid)
    }

    pub fn flotilla_accepts(self) -> bool {
        self == Category::Valid
    }

    pub fn dir(self) -> PathBuf {
        corpus_dir().join(self.dir_name())
    }

    /// Golden file for a case: `.json` (normalised stack) when accepted,
    /// `.txt` (rendered diagnostics) when rejected.
    pub fn golden_path(self, case: &Path) -> PathBuf {
        let stem = case.file_stem().expect("case file has a name");
        let ext = if self.flotilla_accepts() {
            "json"
        } else {
            "txt"
        };
        crate_dir()
            .join("tests/golden")
            .join(self.dir_name())
            .join(stem)
            .with_extension(ext)
    }
}

/// The `*.yml` files directly in `dir`, sorted; subdirectories hold files
/// the cases refer to (env files, extends/include targets), not cases.
pub fn yml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

/// The fixed interpolation environment every case sees: tests never read
/// the real process environment.
pub fn fixed_env() -> BTreeMap<String, String> {
    [
        ("TAG", "1.25"),
        ("HTTP_PORT", "8080"),
        ("APP_ENV", "production"),
        ("DB_USER", "app"),
        ("REPLICAS", "3"),
        ("EMPTY", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Options for one single-file case: project name "corpus", working dir = the
/// case's directory, the fixed environment.
pub fn single_options(case: &Path) -> LoadOptions {
    LoadOptions {
        files: vec![case.to_path_buf()],
        project_name: Some("corpus".to_string()),
        environment: fixed_env(),
        working_dir: case.parent().map(Path::to_path_buf),
        ..LoadOptions::default()
    }
}

/// One multi-file case directory under tests/corpus/multi.
pub struct MultiCase {
    pub dir: PathBuf,
    pub name: String,
    pub options: LoadOptions,
    /// Directories named `invalid-*` must be rejected.
    pub expect_accept: bool,
}

impl MultiCase {
    pub fn golden_path(&self) -> PathBuf {
        self.dir.join(if self.expect_accept {
            "expected.json"
        } else {
            "expected.txt"
        })
    }

    /// Every YAML file of the case, in subdirectories too (for the per-file schema check).
    pub fn yaml_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            out.extend(yml_files(dir));
            let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
                .map(|entry| entry.expect("directory entry").path())
                .filter(|p| p.is_dir())
                .collect();
            subdirs.sort();
            for sub in subdirs {
                walk(&sub, out);
            }
        }
        let mut files = Vec::new();
        walk(&self.dir, &mut files);
        files
    }
}

pub fn multi_cases() -> Vec<MultiCase> {
    let root = corpus_dir().join("multi");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("read {}: {e}", root.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter().map(|dir| multi_case(&dir)).collect()
}

fn multi_case(dir: &Path) -> MultiCase {
    let name = dir
        .file_name()
        .expect("case dir name")
        .to_string_lossy()
        .into_owned();
    let spec_path = dir.join("case.json");
    let spec: Value = if spec_path.exists() {
        let text = std::fs::read_to_string(&spec_path).expect("read case.json");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", spec_path.display()))
    } else {
        Value::Object(Default::default())
    };
    let strings = |key: &str| -> Option<Vec<String>> {
        spec.get(key).map(|v| {
            v.as_array()
                .unwrap_or_else(|| panic!("{}: {key} must be a list", spec_path.display()))
                .iter()
                .map(|s| s.as_str().expect("list of strings").to_string())
                .collect()
        })
    };
    let files = strings("files").unwrap_or_else(|| {
        ["compose.yml", "override.yml"]
            .into_iter()
            .filter(|f| dir.join(f).exists())
            .map(String::from)
            .collect()
    });
    let project_name = match spec.get("project_name") {
        None => Some("corpus".to_string()),
        Some(Value::Null) => None,
        Some(v) => Some(v.as_str().expect("project_name is a string").to_string()),
    };
    let mut environment = fixed_env();
    if let Some(extra) = spec.get("environment").and_then(Value::as_object) {
        for (k, v) in extra {
            environment.insert(
                k.clone(),
                v.as_str()
                    .expect("environment values are strings")
                    .to_string(),
            );
        }
    }
    let options = LoadOptions {
        files: files.iter().map(|f| dir.join(f)).collect(),
        env_files: strings("env_files")
            .unwrap_or_default()
            .iter()
            .map(|f| dir.join(f))
            .collect(),
        profiles: strings("profiles").unwrap_or_default(),
        project_name,
        environment,
        working_dir: Some(dir.to_path_buf()),
    };
    MultiCase {
        dir: dir.to_path_buf(),
        expect_accept: !name.starts_with("invalid-"),
        name,
        options,
    }
}
