//! A REAL `docker save` archive of the busybox rootfs, made by a private
//! dockerd (own data root, exec root, pidfile, socket, containerd; no bridge,
//! no iptables) that is stopped by PID afterwards. The archive is cached in
//! [`CACHE_DIR`] keyed by busybox's sha256, so a test suite starts dockerd once.

use crate::busybox::{busybox_rootfs_tar, BUSYBOX};
use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Where built archives are cached between test processes.
pub const CACHE_DIR: &str = "/tmp/flotilla-testkit-cache";
/// The name the docker-saved image carries.
pub const DOCKER_SAVE_NAME: &str = "flotilla-test/busybox:docker";
/// The command the image gets via `docker import --change`.
pub const DOCKER_SAVE_CMD: [&str; 2] = ["/bin/busybox", "sh"];

/// How long to wait for a daemon to come up or go down before giving up.
const DAEMON_PATIENCE: Duration = Duration::from_secs(90);

/// Copy a real `docker save` archive of busybox (named [`DOCKER_SAVE_NAME`],
/// CMD [`DOCKER_SAVE_CMD`]) to `dir/busybox-docker-save.tar` and return it.
pub fn docker_save_archive(dir: &Path) -> Result<PathBuf> {
    let cached = cached_archive()?;
    let dest = dir.join("busybox-docker-save.tar");
    fs::copy(&cached, &dest)
        .with_context(|| format!("copying {} to {}", cached.display(), dest.display()))?;
    Ok(dest)
}

fn cached_archive() -> Result<PathBuf> {
    fs::create_dir_all(CACHE_DIR).with_context(|| format!("creating {CACHE_DIR}"))?;
    let busybox =
        fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX} (install busybox-static)"))?;
    let key = format!("{:x}", Sha256::digest(&busybox));
    let cached = Path::new(CACHE_DIR).join(format!("busybox-docker-save-{}.tar", &key[..16]));
    // One builder at a time across test processes; the others wait and reuse.
    let lock_path = Path::new(CACHE_DIR).join("docker-save.lock");
    let lock_file = fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context("locking the cache")?;
    if cached.exists() {
        return Ok(cached);
    }
    let work = tempfile::Builder::new()
        .prefix("ftk-docker-")
        .tempdir_in("/tmp")
        .context("creating a temp dir")?;
    let partial = work.path().join("save.tar");
    build_with_private_dockerd(work.path(), &partial)?;
    fs::rename(&partial, &cached)
        .or_else(|_| fs::copy(&partial, &cached).map(|_| ()))
        .with_context(|| format!("storing {}", cached.display()))?;
    Ok(cached)
}

fn build_with_private_dockerd(work: &Path, out: &Path) -> Result<()> {
    let rootfs_tar = busybox_rootfs_tar(work);
    let containerd = Daemon::start_containerd(work)?;
    let dockerd = Daemon::start_dockerd(work, &containerd.socket)?;
    let host = format!("unix://{}", dockerd.socket.display());
    docker(work, &host, &["version"]).context("talking to the private dockerd")?;
    let cmd_change = format!("CMD {}", serde_json::to_string(&DOCKER_SAVE_CMD)?);
    docker(
        work,
        &host,
        &[
            "import",
            "--change",
            &cmd_change,
            &rootfs_tar.to_string_lossy(),
            DOCKER_SAVE_NAME,
        ],
    )?;
    docker(
        work,
        &host,
        &["save", "-o", &out.to_string_lossy(), DOCKER_SAVE_NAME],
    )?;
    drop(dockerd);
    drop(containerd);
    Ok(())
}

fn docker(work: &Path, host: &str, args: &[&str]) -> Result<String> {
    let output = Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .env("DOCKER_CONFIG", work.join("docker-cli"))
        .output()
        .context("running the docker CLI (install docker.io)")?;
    if !output.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A daemon this module started; stopped by PID (SIGTERM, then SIGKILL) on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
    name: &'static str,
}

impl Daemon {
    fn start_containerd(work: &Path) -> Result<Daemon> {
        let dir = work.join("containerd");
        fs::create_dir_all(&dir)?;
        let socket = dir.join("c.sock");
        // Only what `docker import/save` needs: no CRI plugin, own paths everywhere.
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n[debug]\n  address = \"\"\n\
             [metrics]\n  address = \"\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display(),
        );
        let config_path = dir.join("config.toml");
        fs::write(&config_path, config)?;
        let log = fs::File::create(dir.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting containerd (install docker.io)")?;
        let daemon = Daemon {
            child,
            socket,
            name: "containerd",
        };
        daemon.wait_for_socket(&dir.join("containerd.log"))?;
        Ok(daemon)
    }

    fn start_dockerd(work: &Path, containerd: &Path) -> Result<Daemon> {
        let dir = work.join("d");
        fs::create_dir_all(&dir)?;
        let socket = dir.join("d.sock");
        let config = dir.join("daemon.json");
        fs::write(&config, "{}")?;
        let log = fs::File::create(dir.join("dockerd.log"))?;
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--containerd")
            .arg(containerd)
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--storage-driver=vfs",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd (install docker.io)")?;
        let daemon = Daemon {
            child,
            socket,
            name: "dockerd",
        };
        daemon.wait_for_socket(&dir.join("dockerd.log"))?;
        Ok(daemon)
    }

    fn wait_for_socket(&self, log: &Path) -> Result<()> {
        let start = Instant::now();
        while !self.socket.exists() {
            if start.elapsed() > DAEMON_PATIENCE {
                bail!(
                    "{} did not create {}: {}",
                    self.name,
                    self.socket.display(),
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
            sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if start.elapsed() < DAEMON_PATIENCE => sleep(Duration::from_millis(50)),
                _ => break,
            }
        }
        let _ = kill(pid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
