//! Tests that need separate processes: IPAM exclusion between processes
//! sharing one state dir, and the error a non-root caller gets. Each test
//! re-runs its own test binary, filtered to itself, as the child; the
//! `FLOTILLA_NET_TEST_CHILD` variable tells the child which role to play.

mod support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use flotilla_net::{
    BridgeNetwork, NetError, NetManager, NetworkMode, ENV_BRIDGE_NAME, ENV_BRIDGE_SUBNET,
};
use support::TestNet;

const ROLE: &str = "FLOTILLA_NET_TEST_CHILD";
const STATE: &str = "FLOTILLA_NET_TEST_STATE";
const ID: &str = "FLOTILLA_NET_TEST_ID";

fn child_role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// Starts `exe` (this test binary or a copy of it) running only
/// `test_name`, as a child with `role`.
fn spawn_child(
    exe: &Path,
    test_name: &str,
    role: &str,
    envs: &[(&str, String)],
    uid: Option<u32>,
) -> std::process::Child {
    let mut cmd = Command::new(exe);
    cmd.current_dir("/");
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    cmd.spawn().expect("spawning child test process")
}

fn check(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn attaches_from_separate_processes_never_share_an_address() {
    if child_role().as_deref() == Some("attach") {
        // Child: take the network from the environment, as the runtime would.
        let net = BridgeNetwork::try_default_from_env().unwrap();
        let mgr = NetManager::new(Path::new(&std::env::var(STATE).unwrap())).unwrap();
        let att = mgr
            .attach(&std::env::var(ID).unwrap(), &NetworkMode::Bridge(net), "p")
            .unwrap();
        println!("IP={}", att.ipv4.unwrap());
        return;
    }
    let mut t = TestNet::new("proc");
    t.net.name = "bridge".to_string(); // the name try_default_from_env gives
    let children: Vec<_> = (0..4)
        .map(|n| {
            let envs = [
                (STATE, t.state.path().display().to_string()),
                (ID, t.id(n)),
                (ENV_BRIDGE_NAME, t.net.bridge.clone()),
                (ENV_BRIDGE_SUBNET, t.net.subnet.to_string()),
            ];
            spawn_child(
                &std::env::current_exe().unwrap(),
                "attaches_from_separate_processes_never_share_an_address",
                "attach",
                &envs,
                None,
            )
        })
        .collect();
    let ips: Vec<Ipv4Addr> = children
        .into_iter()
        .map(|c| {
            let stdout = check(&c.wait_with_output().unwrap());
            let line = stdout
                .lines()
                .find_map(|l| l.split_once("IP=").map(|(_, ip)| ip))
                .unwrap_or_else(|| panic!("child printed no IP:\n{stdout}"));
            line.parse().unwrap()
        })
        .collect();
    let distinct: BTreeSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), ips.len(), "{ips:?}");
    assert_eq!(t.mgr.leases("bridge").unwrap().len(), ips.len());
}

#[test]
fn non_root_caller_gets_a_clear_error() {
    if child_role().as_deref() == Some("nonroot") {
        let mgr = NetManager::new(Path::new(&std::env::var(STATE).unwrap())).unwrap();
        let err = mgr.attach("c", &NetworkMode::None, "h").unwrap_err();
        assert!(matches!(err, NetError::NeedsRoot { .. }), "{err}");
        println!("ERR={err}");
        // Host mode needs no privilege.
        assert!(mgr.attach("h", &NetworkMode::Host, "h").is_ok());
        return;
    }
    // The unprivileged child must reach its binary and state dir even when
    // the build tree or $TMPDIR is private to root: use copies under /tmp.
    let scratch = tempfile::Builder::new()
        .prefix("flotilla-net-nonroot-")
        .tempdir_in("/tmp")
        .unwrap();
    let open_to_all = |p: &Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open_to_all(scratch.path(), 0o755);
    let exe = scratch.path().join("test-bin");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    open_to_all(&exe, 0o755);
    let state = scratch.path().join("state");
    std::fs::create_dir(&state).unwrap();
    open_to_all(&state, 0o777);
    const NOBODY: u32 = 65534;
    let child = spawn_child(
        &exe,
        "non_root_caller_gets_a_clear_error",
        "nonroot",
        &[(STATE, state.display().to_string())],
        Some(NOBODY),
    );
    let stdout = check(&child.wait_with_output().unwrap());
    let err = stdout
        .lines()
        .find_map(|l| l.split_once("ERR=").map(|(_, e)| e))
        .unwrap_or_else(|| panic!("child printed no error:\n{stdout}"));
    assert!(
        err.contains("needs root") && err.contains("CAP_NET_ADMIN"),
        "{err}"
    );
}
