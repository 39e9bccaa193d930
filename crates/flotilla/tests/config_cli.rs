//! `flotilla config` through the real binary: output formats, merge of
//! several `-f` files, env files, profiles, and compiler-style errors with a
//! non-zero exit code.

use std::path::Path;
use std::process::{Command, Output};

fn flotilla(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .current_dir(dir)
        .env_remove("FLOTILLA_TEST_TAG")
        .output()
        .expect("run flotilla")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).expect("write test file");
}

#[test]
fn prints_yaml_by_default_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "stack.yml",
        "name: demo\nservices:\n  web:\n    image: nginx\n    ports: ['8080:80/udp']\n",
    );
    let out = flotilla(dir.path(), &["config", "-f", "stack.yml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("name: demo"), "{yaml}");
    assert!(yaml.contains("protocol: udp"), "{yaml}");

    let out = flotilla(
        dir.path(),
        &["config", "-f", "stack.yml", "--output", "json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["services"]["web"]["ports"][0]["published"], 8080);
    assert_eq!(v["services"]["web"]["deploy"]["replicas"], 1);
    assert_eq!(v["networks"]["default"]["name"], "demo_default");

    // Output is deterministic.
    let again = flotilla(dir.path(), &["config", "-f", "stack.yml", "-o", "json"]);
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn merges_files_with_env_file_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "stack.yml",
        "services:\n  web:\n    image: nginx:${FLOTILLA_TEST_TAG:-latest}\n    command: [a]\n  debug:\n    image: busybox\n    profiles: [debug]\n",
    );
    write(
        dir.path(),
        "override.yml",
        "services:\n  web:\n    command: [b, c]\n",
    );
    write(dir.path(), "vars.env", "FLOTILLA_TEST_TAG=1.25\n");
    let out = flotilla(
        dir.path(),
        &[
            "config",
            "-f",
            "stack.yml",
            "-f",
            "override.yml",
            "--env-file",
            "vars.env",
            "--profile",
            "debug",
            "-p",
            "My Proj",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "myproj");
    assert_eq!(v["services"]["web"]["image"], "nginx:1.25");
    assert_eq!(
        v["services"]["web"]["command"],
        serde_json::json!(["b", "c"])
    );
    assert!(v["services"]["debug"].is_object());

    let out = flotilla(dir.path(), &["config", "-f", "stack.yml", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["services"]["debug"].is_null(), "profile not enabled");
    assert_eq!(v["services"]["web"]["image"], "nginx:latest");
}

#[test]
fn bad_file_exits_non_zero_with_compiler_style_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "stack.yml",
        "services:\n  web:\n    imgae: nginx\n    ports: ['8000-8005:80-82']\n",
    );
    let out = flotilla(dir.path(), &["config", "-f", "stack.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("error: unknown key `imgae` in service `web`"),
        "{err}"
    );
    assert!(err.contains("stack.yml:3:5"), "{err}");
    assert!(err.contains("3 |     imgae: nginx"), "{err}");
    assert!(err.contains("did you mean `image`?"), "{err}");
    // All errors at once, not just the first.
    assert!(
        err.contains("has 6 ports but container range 80-82 has 3"),
        "{err}"
    );
}

#[test]
fn warnings_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    runtime: runc\n",
    );
    // No -f: discovers compose.yaml in the working directory.
    let out = flotilla(dir.path(), &["config"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("warning: `runtime`"), "{err}");
    assert!(err.contains("not acted on"), "{err}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = flotilla(dir.path(), &["config", "-f", "nope.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
    let out = flotilla(dir.path(), &["config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no Compose file found"));
}
