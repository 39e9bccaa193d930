//! Real containers through libcontainer and the monitor process (root only).

mod common;

use common::Fixture;
use flotilla_runtime::{cgroup, ContainerState, LogOptions, MountSpec};
use std::time::Duration;

#[test]
fn runs_with_own_namespaces_as_pid_1_with_hostname() {
    let f = Fixture::new();
    let mut spec = f.spec(&["/bin/sh", "-c", "echo pid=$$; hostname; exec sleep 60"]);
    spec.hostname = Some("boxy".into());
    let id = f.rt.run(&spec).expect("run");
    let info = f.rt.inspect(&id).unwrap();
    assert_eq!(info.state, ContainerState::Running);
    let pid = info.pid.expect("pid");
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        let mine = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_ne!(mine, theirs, "{ns} namespace is shared with the host");
    }
    // Init is in the container's cgroup in every hierarchy that has a
    // controller (the intermediate process joins them through `tasks` under
    // v1, see vendor/README.md; init inherits them).
    let memberships = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in memberships.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (
            fields.next(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        if !controllers.is_empty() && !controllers.starts_with("name=") {
            assert_eq!(
                path, info.cgroup_path,
                "{line}: init is not in the container's cgroup"
            );
        }
    }
    // Output arrives asynchronously; exec gives a synchronisation point.
    let out =
        f.rt.exec(
            &id,
            &["/bin/sh".into(), "-c".into(), "hostname; echo $$".into()],
            &[],
        )
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("boxy\n"));
    let exit = f.rt.stop(&id, Some(Duration::from_secs(0))).unwrap();
    assert_eq!(exit.exit_code, 137);
    assert_eq!(f.stdout(&id), "pid=1\nboxy\n");
}

#[test]
fn exit_codes_and_signals_are_recorded() {
    let f = Fixture::new();
    let id = f.rt.run(&f.spec(&["/bin/sh", "-c", "exit 3"])).unwrap();
    let exit = f.rt.wait(&id).unwrap();
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (3, None, false)
    );
    assert_eq!(f.rt.inspect(&id).unwrap().state, ContainerState::Exited);

    let id = f.rt.run(&f.spec(&["/bin/sleep", "60"])).unwrap();
    f.rt.kill(&id, libc::SIGKILL).unwrap();
    let exit = f.rt.wait(&id).unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
}

#[test]
fn stop_sends_the_stop_signal_then_waits() {
    let f = Fixture::new();
    let spec = f.spec(&[
        "/bin/sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.05; done",
    ]);
    let id = f.rt.run(&spec).unwrap();
    wait_for_log(&f, &id, "ready");
    let exit = f.rt.stop(&id, Some(Duration::from_secs(30))).unwrap();
    assert_eq!(exit.exit_code, 0);
    assert!(f.stdout(&id).contains("bye"));
}

#[test]
fn logs_capture_both_streams_and_follow_until_exit() {
    let f = Fixture::new();
    let id =
        f.rt.run(&f.spec(&[
            "/bin/sh",
            "-c",
            "echo out; echo err >&2; for i in 1 2 3; do sleep 0.1; echo $i; done",
        ]))
        .unwrap();
    let followed: Vec<_> =
        f.rt.logs(
            &id,
            LogOptions {
                follow: true,
                ..Default::default()
            },
        )
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    let lines: Vec<(&str, &str)> = followed
        .iter()
        .map(|e| (e.stream.as_str(), e.log.as_str()))
        .collect();
    assert!(lines.contains(&("stderr", "err\n")));
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|(s, _)| *s == "stdout")
        .map(|(_, l)| *l)
        .collect();
    assert_eq!(stdout, ["out\n", "1\n", "2\n", "3\n"]);
    assert!(followed.iter().all(|e| chrono_like(&e.time)));
    let tail: Vec<_> =
        f.rt.logs(
            &id,
            LogOptions {
                tail: Some(2),
                ..Default::default()
            },
        )
        .unwrap()
        .map(|e| e.unwrap().log)
        .collect();
    assert_eq!(tail, ["2\n", "3\n"]);
}

fn chrono_like(t: &str) -> bool {
    t.len() > 20 && t.ends_with('Z') && t.contains('T')
}

#[test]
fn exec_runs_inside_with_exit_code_and_output() {
    let f = Fixture::new();
    let id = f.rt.run(&f.spec(&["/bin/sleep", "60"])).unwrap();
    let out =
        f.rt.exec(
            &id,
            &[
                "/bin/sh".into(),
                "-c".into(),
                "echo hi $K; echo oops >&2; exit 4".into(),
            ],
            &["K=v".into()],
        )
        .unwrap();
    assert_eq!(out.exit_code, 4);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi v\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    // ps inside sees the container's processes only.
    let ps = f.rt.exec(&id, &["/bin/ps".into()], &[]).unwrap();
    let text = String::from_utf8_lossy(&ps.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("sleep 60") && l.trim_start().starts_with('1')),
        "{text}"
    );
}

#[test]
fn memory_limit_oom_kills_and_reports_it() {
    let f = Fixture::new();
    let mut spec = f.spec(&["/bin/sh", "-c", "x=a; while true; do x=$x$x; done"]);
    spec.memory = Some(32 << 20);
    let id = f.rt.run(&spec).unwrap();
    let exit = f.rt.wait(&id).unwrap();
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.exit_code, 137);
    assert_eq!(f.rt.inspect(&id).unwrap().state, ContainerState::OomKilled);
}

#[test]
fn pids_limit_refuses_fork() {
    let f = Fixture::new();
    let mut spec = f.spec(&[
        "/bin/sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo done",
    ]);
    spec.pids_limit = Some(4);
    let id = f.rt.run(&spec).unwrap();
    f.rt.wait(&id).unwrap();
    let out = f.all_output(&id);
    assert!(
        out.contains("can't fork") || out.contains("Resource temporarily unavailable"),
        "{out}"
    );
}

#[test]
fn cpu_quota_and_stats_come_from_the_cgroup() {
    let f = Fixture::new();
    let mut spec = f.spec(&["/bin/sleep", "60"]);
    spec.cpus = Some(0.5);
    spec.memory = Some(64 << 20);
    let id = f.rt.run(&spec).unwrap();
    let info = f.rt.inspect(&id).unwrap();
    assert_eq!(cgroup::cpu_quota_us(&info.cgroup_path), Some(50_000));
    let stats = f.rt.stats(&id).unwrap();
    assert_eq!(stats.memory_limit_bytes, Some(64 << 20));
    assert!(stats.memory_usage_bytes > 0);
    assert!(stats.pids_current >= 1);
    f.rt.remove(&id, true).unwrap();
    assert!(
        cgroup::stats(&info.cgroup_path).is_none(),
        "cgroup left behind"
    );
}

#[test]
fn named_volumes_persist_across_containers_and_rootfs_can_be_read_only() {
    let f = Fixture::new();
    let vol = MountSpec::Volume {
        name: "data".into(),
        target: "/data".into(),
        read_only: false,
    };
    let mut spec = f.spec(&["/bin/sh", "-c", "echo kept > /data/f"]);
    spec.mounts.push(vol.clone());
    let id = f.rt.run(&spec).unwrap();
    assert_eq!(f.rt.wait(&id).unwrap().exit_code, 0);
    f.rt.remove(&id, false).unwrap();
    let mut spec = f.spec(&["/bin/sh", "-c", "cat /data/f; touch /x || echo ro"]);
    spec.mounts.push(vol);
    spec.read_only = true;
    let id = f.rt.run(&spec).unwrap();
    f.rt.wait(&id).unwrap();
    assert_eq!(f.stdout(&id), "kept\nro\n");
}

#[test]
fn remove_cleans_the_overlay_and_refuses_running_without_force() {
    let f = Fixture::new();
    let id = f.rt.run(&f.spec(&["/bin/sleep", "60"])).unwrap();
    assert!(f.rt.remove(&id, false).is_err());
    let dir = f.rt.data_dir().join("containers").join(&id);
    f.rt.remove(&id, true).unwrap();
    assert!(!dir.exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id), "overlay still mounted");
}

fn wait_for_log(f: &Fixture, id: &str, needle: &str) {
    for e in
        f.rt.logs(
            id,
            LogOptions {
                follow: true,
                ..Default::default()
            },
        )
        .unwrap()
    {
        if e.unwrap().log.contains(needle) {
            return;
        }
    }
    panic!("container exited before printing {needle:?}");
}

#[test]
fn docker_default_hardening_is_applied() {
    let f = Fixture::new();
    // Masked files read as empty (bind-mounted /dev/null); this kernel may
    // lack some of them, so only the existing ones are listed.
    let script = "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; \
                  for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do \
                  [ -f $p ] && echo masked $p $(cat $p 2>/dev/null | wc -c); done; \
                  echo x > /proc/sys/kernel/hostname 2>/dev/null || echo ro-proc-sys";
    let id = f.rt.run(&f.spec(&["/bin/sh", "-c", script])).unwrap();
    f.rt.wait(&id).unwrap();
    let out = f.stdout(&id);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(
        lines.contains(&"Seccomp:\t2")
            || lines
                .iter()
                .any(|l| l.starts_with("Seccomp:") && l.ends_with('2')),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "{out}"
    );
    // Docker's default capability set, exactly.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CapEff:") && l.ends_with("00000000a80425fb")),
        "{out}"
    );
    let masked: Vec<&&str> = lines.iter().filter(|l| l.starts_with("masked ")).collect();
    assert!(
        masked.iter().all(|l| l.ends_with(" 0")),
        "a masked path is readable: {out}"
    );
    assert!(lines.contains(&"ro-proc-sys"), "{out}");
}

#[test]
fn process_driver_runs_on_the_host_with_env_workdir_and_exit_code() {
    let f = Fixture::new();
    let mut spec = flotilla_runtime::ContainerSpec::new("");
    spec.driver = flotilla_runtime::Driver::Process;
    spec.cmd = vec![
        "/bin/sh".into(),
        "-c".into(),
        "echo $K $(pwd); exit 6".into(),
    ];
    spec.env = vec!["K=V".into()];
    spec.workdir = Some(f.tmp.path().display().to_string());
    let id = f.rt.run(&spec).unwrap();
    assert_eq!(f.rt.wait(&id).unwrap().exit_code, 6);
    assert_eq!(f.stdout(&id), format!("V {}\n", f.tmp.path().display()));
}

#[test]
fn seccomp_blocks_the_same_from_the_cached_program_and_home_comes_from_passwd() {
    use flotilla_runtime::ephemeral::SECCOMP_CACHE;
    let f = Fixture::new();
    // Creating a user namespace needs no capability: only the profile
    // refuses it (EPERM). The first start may compile and cache the
    // program, the second loads it from the cache: both must refuse it and
    // still allow the rest (fork, exec, echo).
    let script = "unshare -U true 2>/dev/null; echo unshare=$?; echo HOME=$HOME";
    for (user, home) in [
        (None, "/root"),
        (Some("65534"), "/nonexistent"),
        (Some("4242"), "/"),
    ] {
        let mut spec = f.spec(&["/bin/sh", "-c", script]);
        spec.user = user.map(str::to_string);
        let id = f.rt.run(&spec).unwrap();
        assert_eq!(f.rt.wait(&id).unwrap().exit_code, 0);
        assert_eq!(
            f.stdout(&id),
            format!("unshare=1\nHOME={home}\n"),
            "user {user:?}"
        );
    }
    let cached = std::fs::read_dir(SECCOMP_CACHE)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".bpf"));
    assert!(cached, "no compiled program in {SECCOMP_CACHE}");
    // An explicit HOME wins over the passwd entry.
    let mut spec = f.spec(&["/bin/sh", "-c", "echo $HOME"]);
    spec.env = vec!["HOME=/data".into()];
    let id = f.rt.run(&spec).unwrap();
    f.rt.wait(&id).unwrap();
    assert_eq!(f.stdout(&id), "/data\n");
}

#[test]
fn network_none_has_loopback_up_and_generated_etc_files() {
    let f = Fixture::new();
    let mut spec = f.spec(&[
        "/bin/sh",
        "-c",
        "cat /sys/class/net/lo/operstate; ls /sys/class/net; cat /etc/hostname",
    ]);
    spec.hostname = Some("solo".into());
    let id = f.rt.run(&spec).unwrap();
    assert_eq!(f.rt.wait(&id).unwrap().exit_code, 0);
    let out = f.stdout(&id);
    // lo's operstate is "unknown" when up (it has no carrier), "down" otherwise.
    assert_eq!(out, "unknown\nlo\nsolo\n");
}

#[test]
fn start_state_lives_on_the_runtime_tmpfs_and_goes_with_the_container() {
    use flotilla_runtime::ephemeral::{bundle_dir, EPHEMERAL_ROOT, LIBCONTAINER_ROOT};
    let f = Fixture::new();
    let id = f.rt.run(&f.spec(&["/bin/sleep", "60"])).unwrap();
    let statfs = nix::sys::statfs::statfs(EPHEMERAL_ROOT).unwrap();
    assert_eq!(statfs.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
    let bundle = bundle_dir(&id);
    let state = std::path::Path::new(LIBCONTAINER_ROOT).join(&id);
    assert!(bundle.join("config.json").exists() && bundle.join("hosts").exists());
    assert!(state.join("state.json").exists());
    // Nothing of it in the container's directory on disk.
    let dir = f.rt.data_dir().join("containers").join(&id);
    assert!(!dir.join("config.json").exists() && !dir.join("etc").exists());
    f.rt.stop(&id, Some(Duration::from_secs(0))).unwrap();
    // The monitor deletes both once init is reaped (a container starts
    // once), right after recording the exit that `stop` waits for.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while (bundle.exists() || state.exists()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!bundle.exists(), "bundle left after exit");
    assert!(!state.exists(), "libcontainer state left after exit");
    assert_eq!(f.rt.inspect(&id).unwrap().state, ContainerState::Exited);
}

/// What a reboot leaves: the data dir's records, an empty tmpfs, no
/// processes. Simulated by killing the monitor, then init, and deleting the
/// container's tmpfs state.
#[test]
fn after_a_reboot_running_containers_read_dead_and_created_ones_refuse_to_start() {
    use flotilla_runtime::ephemeral::{bundle_dir, LIBCONTAINER_ROOT};
    let f = Fixture::new();
    let running = f.rt.run(&f.spec(&["/bin/sleep", "60"])).unwrap();
    let created = f.rt.create(&f.spec(&["/bin/true"])).unwrap();
    let info = f.rt.inspect(&running).unwrap();
    let (monitor, init) = (info.monitor_pid.unwrap(), info.pid.unwrap());
    // The monitor first, so it records no exit.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    for _ in 0..200 {
        if f.rt.inspect(&running).unwrap().state == ContainerState::Dead {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init), nix::sys::signal::SIGKILL).unwrap();
    for id in [&running, &created] {
        let _ = std::fs::remove_dir_all(bundle_dir(id));
        let _ = std::fs::remove_dir_all(std::path::Path::new(LIBCONTAINER_ROOT).join(id));
    }
    assert_eq!(f.rt.inspect(&running).unwrap().state, ContainerState::Dead);
    let err = f.rt.start(&created).unwrap_err();
    assert!(format!("{err:#}").contains("start bundle"), "{err:#}");
    for id in [&running, &created] {
        f.rt.remove(id, true).unwrap();
        assert!(f.rt.inspect(id).is_err());
    }
}
