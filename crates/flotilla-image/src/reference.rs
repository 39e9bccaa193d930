//! Image names, normalised like Docker: `busybox` → `busybox:latest`,
//! `docker.io/library/busybox` → `busybox:latest`. Pure string logic.

use crate::error::{ImageError, Result};

/// Normalise a user-supplied image name to `repository:tag`.
///
/// Accepts an optional registry host (`localhost:5000/app`, `ghcr.io/x/y`),
/// lowercase path components made of `[a-z0-9]` joined by `.`, `_` or `-`,
/// and an optional tag `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (default `latest`).
pub fn normalize_name(input: &str) -> Result<String> {
    let invalid = |reason: &str| ImageError::InvalidName {
        name: input.to_string(),
        reason: reason.to_string(),
    };
    let name = input.trim();
    if name.is_empty() {
        return Err(invalid(
            "the name is empty; expected something like busybox:latest",
        ));
    }
    if name.contains('@') {
        return Err(invalid(
            "digest references (name@sha256:…) are not names; refer to the image by its ID instead",
        ));
    }
    let last_slash = name.rfind('/');
    let (repo, tag) = match name.rfind(':') {
        Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
            (&name[..colon], &name[colon + 1..])
        }
        _ => (name, "latest"),
    };
    if !valid_tag(tag) {
        return Err(invalid(
            "the tag must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
        ));
    }
    let repo = strip_default_registry(repo);
    if repo.is_empty() || repo.len() > 255 {
        return Err(invalid("the repository must be 1-255 characters"));
    }
    let components: Vec<&str> = repo.split('/').collect();
    for (i, component) in components.iter().enumerate() {
        let is_host = i == 0 && components.len() > 1 && looks_like_host(component);
        let ok = if is_host {
            valid_host(component)
        } else {
            valid_path_component(component)
        };
        if !ok {
            return Err(invalid(&format!(
                "path component {component:?} must be lowercase letters and digits, optionally joined by '.', '_' or '-'"
            )));
        }
    }
    Ok(format!("{repo}:{tag}"))
}

/// Docker Hub's implicit prefixes add nothing: `docker.io/library/x` is `x`.
fn strip_default_registry(repo: &str) -> &str {
    for prefix in [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ] {
        if let Some(rest) = repo.strip_prefix(prefix) {
            return rest;
        }
    }
    repo
}

fn looks_like_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && alnum(&bytes[0])
        && alnum(&bytes[bytes.len() - 1])
        && bytes
            .iter()
            .all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_latest_and_strips_docker_hub() {
        assert_eq!(normalize_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalize_name("busybox:local").unwrap(), "busybox:local");
        assert_eq!(
            normalize_name("docker.io/library/busybox").unwrap(),
            "busybox:latest"
        );
        assert_eq!(normalize_name("docker.io/me/app:v1").unwrap(), "me/app:v1");
        assert_eq!(
            normalize_name("localhost:5000/app").unwrap(),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalize_name("ghcr.io/o/p:1.2-rc").unwrap(),
            "ghcr.io/o/p:1.2-rc"
        );
    }

    #[test]
    fn rejects_bad_names_with_reason() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "x:",
            "x:-tag",
            "app@sha256:abc",
            "-x",
            "a b",
        ] {
            let err = normalize_name(bad).unwrap_err().to_string();
            assert!(err.contains("invalid image name"), "{bad:?}: {err}");
        }
    }
}
