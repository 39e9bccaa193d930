//! `flotilla image import/ls/inspect/rm` through the real binary.

use std::path::Path;
use std::process::{Command, Output};

fn flotilla(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("running flotilla")
}

fn ok_json(data: &Path, args: &[&str]) -> serde_json::Value {
    let out = flotilla(data, args);
    assert!(
        out.status.success(),
        "flotilla {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "flotilla {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn import_ls_inspect_rm_with_json_output() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rootfs = flotilla_testkit::busybox_rootfs_tar(tmp.path());
    let rootfs = rootfs.to_str().unwrap();

    let imported = ok_json(
        &data,
        &[
            "image",
            "import",
            rootfs,
            "--name",
            "busybox:local",
            "--cmd",
            "/bin/sh -c true",
            "-o",
            "json",
        ],
    );
    assert_eq!(imported["names"], serde_json::json!(["busybox:local"]));
    let id = imported["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sha256:"));

    let listed = ok_json(&data, &["image", "ls", "--output", "json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());

    let text = flotilla(&data, &["image", "ls"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("busybox:local") && text.contains(&id[7..19]),
        "{text}"
    );

    let inspected = ok_json(&data, &["image", "inspect", "busybox:local", "-o", "json"]);
    assert_eq!(inspected["id"], id.as_str());
    assert_eq!(
        inspected["config"]["config"]["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "true"])
    );
    let layer = inspected["layers"][0].as_str().unwrap();
    assert!(Path::new(layer).join("bin/busybox").is_file());

    let removed = ok_json(&data, &["image", "rm", "busybox:local", "-o", "json"]);
    assert_eq!(removed[0]["deleted"], id.as_str());
    assert_eq!(
        ok_json(&data, &["image", "ls", "-o", "json"]),
        serde_json::json!([])
    );
}

#[test]
fn missing_image_and_hostile_archive_fail_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = flotilla(&data, &["image", "inspect", "nope"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"nope\" not found") && stderr.contains("flotilla image import"),
        "{stderr}"
    );

    let evil = flotilla_testkit::hostile::parent_dir_entry(tmp.path());
    let out = flotilla(
        &data,
        &["image", "import", evil.to_str().unwrap(), "--name", "evil"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("../escape.txt"), "{stderr}");

    let out = flotilla(
        &data,
        &["image", "import", evil.to_str().unwrap(), "--format", "zip"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected docker-save"));
}

#[test]
fn two_processes_importing_at_once_both_succeed_with_one_image() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let archive = flotilla_testkit::docker_save_archive(tmp.path()).unwrap();
    let children: Vec<_> = ["one", "two"]
        .iter()
        .map(|name| {
            Command::new(env!("CARGO_BIN_EXE_flotilla"))
                .arg("--data-dir")
                .arg(&data)
                .args(["image", "import", archive.to_str().unwrap(), "--name", name])
                .output_in_background()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = ok_json(&data, &["image", "ls", "-o", "json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        listed[0]["names"],
        serde_json::json!(["one:latest", "two:latest"])
    );
}

/// Start a command with captured output without waiting for it.
trait SpawnCaptured {
    fn output_in_background(&mut self) -> std::process::Child;
}

impl SpawnCaptured for Command {
    fn output_in_background(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawning flotilla")
    }
}
