//! Docker's rules for combining an image's config with the caller's
//! overrides: argv (Entrypoint + Cmd), environment, working directory, user
//! and stop signal. Pure functions over plain data.

use crate::spec::{parse_signal, ContainerSpec};
use anyhow::{bail, Result};

/// The parts of an image's config the runtime uses, independent of the
/// image store's types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    pub id: String,
    /// Unpacked layer directories, bottom first.
    pub layers: Vec<std::path::PathBuf>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
}

/// PATH used when neither the image nor the caller sets one (Docker's).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Entrypoint + Cmd. An overridden entrypoint drops the image's Cmd.
pub fn resolve_args(spec: &ContainerSpec, image: &ImageFacts) -> Result<Vec<String>> {
    let (entrypoint, image_cmd) = match &spec.entrypoint {
        Some(ep) => (ep.clone(), Vec::new()),
        None => (image.entrypoint.clone(), image.cmd.clone()),
    };
    let cmd = if spec.cmd.is_empty() {
        image_cmd
    } else {
        spec.cmd.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        bail!("no command to run: the image has no Entrypoint or Cmd and none was given (pass one after `--`)");
    }
    Ok(args)
}

/// Image env, then PATH and HOSTNAME defaults, then the caller's, later
/// entries replacing earlier ones with the same key.
pub fn resolve_env(
    spec: &ContainerSpec,
    image: &ImageFacts,
    hostname: &str,
) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut set = |entry: String| {
        let key = entry.split('=').next().unwrap_or("").to_string();
        out.retain(|e| e.split('=').next() != Some(key.as_str()));
        out.push(entry);
    };
    set(DEFAULT_PATH.to_string());
    set(format!("HOSTNAME={hostname}"));
    for e in &image.env {
        set(e.clone());
    }
    for e in &spec.env {
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() => set(e.clone()),
            _ => bail!("invalid environment entry {e:?}: expected KEY=VALUE"),
        }
    }
    Ok(out)
}

pub fn resolve_workdir(spec: &ContainerSpec, image: &ImageFacts) -> Result<String> {
    let wd = spec
        .workdir
        .clone()
        .or_else(|| image.workdir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());
    if !wd.starts_with('/') {
        bail!("invalid working directory {wd:?}: must be an absolute path");
    }
    Ok(wd)
}

pub fn resolve_stop_signal(spec: &ContainerSpec, image: &ImageFacts) -> Result<i32> {
    match spec.stop_signal.as_deref().or(image.stop_signal.as_deref()) {
        Some(s) => parse_signal(s),
        None => Ok(libc::SIGTERM),
    }
}

/// uid, gid, supplementary groups and home directory of a user spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The user's home directory from /etc/passwd, if it has an entry.
    pub home: Option<String>,
}

/// The container's environment with `HOME` set, as runc does: the user's
/// home from the image's /etc/passwd, or `/` when it has no entry. An
/// explicit non-empty `HOME` wins. Resolved here, from the image, so the
/// container's init does not look it up through the C library's NSS.
pub fn env_with_home(env: &[String], user: &ResolvedUser) -> Vec<String> {
    let mut env: Vec<String> = env
        .iter()
        .filter(|e| e.as_str() != "HOME=")
        .cloned()
        .collect();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home.as_deref().unwrap_or("/")));
    }
    env
}

/// Resolves `name|uid[:group|gid]` against the contents of the image's
/// /etc/passwd and /etc/group (empty strings when the files do not exist).
pub fn resolve_user(user: Option<&str>, passwd: &str, group: &str) -> Result<ResolvedUser> {
    let user = user.filter(|u| !u.is_empty()).unwrap_or("0");
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd_entry = |pred: &dyn Fn(&[&str]) -> bool| -> Option<(u32, u32)> {
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 4 && pred(f))
            .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
    };
    let (uid, default_gid) = match u.parse::<u32>() {
        Ok(uid) => (
            uid,
            passwd_entry(&|f| f[2] == u).map(|(_, g)| g).unwrap_or(0),
        ),
        Err(_) => passwd_entry(&|f| f[0] == u).ok_or_else(|| {
            anyhow::anyhow!("unknown user {u:?}: not found in the image's /etc/passwd")
        })?,
    };
    let gid = match g {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("unknown group {g:?}: not found in the image's /etc/group")
                })?,
        },
    };
    // Supplementary groups: every group that lists the user by name.
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[2] == uid.to_string());
    let user_name = entry.as_ref().map(|f| f[0].to_string());
    let home = entry
        .as_ref()
        .and_then(|f| f.get(5))
        .filter(|h| !h.is_empty())
        .map(|h| h.to_string());
    let mut additional_gids = Vec::new();
    if let Some(name) = user_name {
        for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(gid) = f[2].parse::<u32>() {
                    if !additional_gids.contains(&gid) && gid != 0 {
                        additional_gids.push(gid);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageFacts {
        ImageFacts {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["a".into()],
            env: vec!["PATH=/img".into(), "A=1".into()],
            ..Default::default()
        }
    }

    #[test]
    fn args_follow_docker_rules() {
        let mut s = ContainerSpec::new("i");
        assert_eq!(resolve_args(&s, &image()).unwrap(), ["/ep", "a"]);
        s.cmd = vec!["b".into()];
        assert_eq!(resolve_args(&s, &image()).unwrap(), ["/ep", "b"]);
        s.entrypoint = Some(vec!["/x".into()]);
        s.cmd = vec![];
        assert_eq!(resolve_args(&s, &image()).unwrap(), ["/x"]);
        assert!(resolve_args(&ContainerSpec::new("i"), &ImageFacts::default()).is_err());
    }

    #[test]
    fn env_overrides_by_key() {
        let mut s = ContainerSpec::new("i");
        s.env = vec!["A=2".into()];
        let env = resolve_env(&s, &image(), "h").unwrap();
        assert!(env.contains(&"PATH=/img".to_string()));
        assert!(env.contains(&"A=2".to_string()));
        assert!(!env.contains(&"A=1".to_string()));
        s.env = vec!["=x".into()];
        assert!(resolve_env(&s, &image(), "h").is_err());
    }

    #[test]
    fn users() {
        let passwd = "root:x:0:0::/root:/bin/sh\nweb:x:100:101::/:/bin/sh\n";
        let group = "root:x:0:\nweb:x:101:\nextra:x:200:web\n";
        assert_eq!(
            resolve_user(None, passwd, group).unwrap(),
            ResolvedUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                home: Some("/root".into()),
            }
        );
        assert_eq!(
            resolve_user(Some("web"), passwd, group).unwrap(),
            ResolvedUser {
                uid: 100,
                gid: 101,
                additional_gids: vec![200],
                home: Some("/".into()),
            }
        );
        assert_eq!(resolve_user(Some("1000:5"), passwd, group).unwrap().gid, 5);
        assert!(resolve_user(Some("nobody"), passwd, group)
            .unwrap_err()
            .to_string()
            .contains("passwd"));
        assert!(resolve_user(Some("web:nogroup"), passwd, group).is_err());
        assert_eq!(
            resolve_user(Some("1000"), passwd, group).unwrap().home,
            None
        );
    }

    #[test]
    fn home_comes_from_passwd_then_slash_and_an_explicit_one_wins() {
        let passwd = "root:x:0:0::/root:/bin/sh\n";
        let root = resolve_user(None, passwd, "").unwrap();
        let nobody = resolve_user(Some("1000"), passwd, "").unwrap();
        let base = vec!["PATH=/bin".to_string()];
        assert_eq!(env_with_home(&base, &root), ["PATH=/bin", "HOME=/root"]);
        assert_eq!(env_with_home(&base, &nobody), ["PATH=/bin", "HOME=/"]);
        let set = vec!["HOME=/data".to_string()];
        assert_eq!(env_with_home(&set, &root), ["HOME=/data"]);
        let empty = vec!["HOME=".to_string()];
        assert_eq!(env_with_home(&empty, &root), ["HOME=/root"]);
    }
}
