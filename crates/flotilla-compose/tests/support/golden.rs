//! Golden-file comparison; `UPDATE_GOLDEN=1` rewrites the files instead.
//! Hand-rolled (a dozen lines) rather than `insta`: goldens here are plain
//! files named after the corpus files, which is what reviewers diff.

use std::path::Path;

use super::cases::crate_dir;

/// Makes output independent of where the repository is checked out.
pub fn portable(text: &str) -> String {
    text.replace(&crate_dir().display().to_string(), "<crate>")
}

/// Compares `actual` with the golden file, or rewrites it under UPDATE_GOLDEN=1.
pub fn check(golden: &Path, actual: &str) -> Result<(), String> {
    let actual = portable(actual);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(golden.parent().expect("golden has a parent"))
            .map_err(|e| e.to_string())?;
        return std::fs::write(golden, actual)
            .map_err(|e| format!("write {}: {e}", golden.display()));
    }
    let expected = std::fs::read_to_string(golden).map_err(|e| {
        format!(
            "read {}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            golden.display()
        )
    })?;
    if expected == actual {
        return Ok(());
    }
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    Err(format!(
        "{} differs from the output at line {}:\n  golden: {:?}\n  actual: {:?}\n--- full output ---\n{actual}",
        golden.display(),
        line + 1,
        expected.lines().nth(line).unwrap_or("<end>"),
        actual.lines().nth(line).unwrap_or("<end>"),
    ))
}
