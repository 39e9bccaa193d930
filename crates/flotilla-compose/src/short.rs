//! Parsers for Compose's short forms (strings that pack several fields).
//! Pure functions: text in, typed value or an explanation out. Callers add
//! the file position.

use flotilla_spec::{
    BindOptions, Duration, HealthTest, Mount, MountType, Port, PortMode, Protocol, VolumeOptions,
};

/// Parse a Go-style duration (`1m30s`, `500ms`, `1h2m3.5s`, `10us`).
pub fn duration(text: &str) -> Result<Duration, String> {
    text.parse::<Duration>().map_err(|e| e.0)
}

/// Parse a byte size like Docker's `RAMInBytes`: an integer or decimal
/// number with an optional binary unit `b`, `k`, `m`, `g`, `t`, `p`
/// (case-insensitive, optionally followed by `b` or `ib`): `512M`, `1gb`,
/// `1.5G`, `100k`, `1024`.
pub fn byte_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid size {text:?}: expected a number of bytes with an optional unit (e.g. 512M, 1.5G, 100k, 1gb)")
    };
    let t = text.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad());
    }
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    let value: f64 = num.parse().map_err(|_| bad())?;
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(bytes as u64)
}

/// Parse a CPU count (`0.5`, `"1.5"`, `2`). Must be positive.
pub fn cpus(text: &str) -> Result<f64, String> {
    let v: f64 = text.trim().parse().map_err(|_| {
        format!("invalid cpus {text:?}: expected a number of CPUs such as 0.5 or 2")
    })?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("invalid cpus {text:?}: must be a positive number"));
    }
    Ok(v)
}

/// Split the string form of `command`/`entrypoint` like a POSIX shell would
/// split words (quotes, backslashes), without running a shell.
pub fn split_command(text: &str) -> Result<Vec<String>, String> {
    shlex::split(text).ok_or_else(|| {
        format!("cannot split command {text:?}: unbalanced quotes or trailing backslash")
    })
}

/// Healthcheck `test` in list form.
pub fn health_test_list(items: &[String]) -> Result<HealthTest, String> {
    match items.first().map(String::as_str) {
        Some("NONE") => Ok(HealthTest::None),
        Some("CMD") => {
            if items.len() < 2 {
                return Err("`[CMD, ...]` needs a command after CMD".into());
            }
            Ok(HealthTest::Cmd(items[1..].to_vec()))
        }
        Some("CMD-SHELL") => {
            if items.len() < 2 {
                return Err("`[CMD-SHELL, \"...\"]` needs a shell command".into());
            }
            Ok(HealthTest::Shell(items[1..].join(" ")))
        }
        Some(other) => Err(format!(
            "healthcheck test list must start with CMD, CMD-SHELL or NONE, not {other:?}"
        )),
        None => Err("healthcheck test list is empty; use [NONE] to disable".into()),
    }
}

fn protocol(text: &str) -> Result<Protocol, String> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        _ => Err(format!(
            "unknown protocol {text:?}: expected tcp, udp or sctp"
        )),
    }
}

pub fn port_protocol(text: &str) -> Result<Protocol, String> {
    protocol(text)
}

/// A port number or inclusive range (`80`, `8000-8005`).
fn port_range(text: &str, what: &str) -> Result<(u16, u16), String> {
    let one = |t: &str| -> Result<u16, String> {
        let n: u64 = t
            .trim()
            .parse()
            .map_err(|_| format!("invalid {what} port {t:?}: expected a number from 1 to 65535"))?;
        if n == 0 || n > 65535 {
            return Err(format!("invalid {what} port {n}: ports go from 1 to 65535"));
        }
        Ok(n as u16)
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(format!(
                    "invalid {what} port range {text:?}: start is greater than end"
                ));
            }
            Ok((a, b))
        }
        None => {
            let p = one(text)?;
            Ok((p, p))
        }
    }
}

/// Parse a short port spec, expanding ranges, e.g. `8080:80/udp`,
/// `8000-8005:80-85`, `127.0.0.1:8080:80`, `[::1]:80:80`, `3000`.
pub fn ports(text: &str) -> Result<Vec<Port>, String> {
    let (spec, proto) = match text.rsplit_once('/') {
        Some((s, p)) => (s, protocol(p)?),
        None => (text, Protocol::Tcp),
    };
    let (host_ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after
            .split_once(']')
            .ok_or_else(|| format!("invalid port {text:?}: `[` without a closing `]`"))?;
        let rest = rest.strip_prefix(':').ok_or_else(|| {
            format!("invalid port {text:?}: expected `:` after the bracketed address")
        })?;
        (Some(ip.to_string()), rest)
    } else {
        let colons = spec.matches(':').count();
        if colons > 2 {
            return Err(format!(
                "invalid port {text:?}: too many `:`; write IPv6 addresses in brackets, e.g. \"[::1]:8080:80\""
            ));
        }
        if colons == 2 {
            let (ip, rest) = spec.split_once(':').unwrap_or(("", spec));
            (Some(ip.to_string()), rest)
        } else {
            (None, spec)
        }
    };
    let (published, target) = match rest.rsplit_once(':') {
        Some((p, t)) => (if p.is_empty() { None } else { Some(p) }, t),
        None => (None, rest),
    };
    let (t0, t1) = port_range(target, "container")?;
    let published = published.map(|p| port_range(p, "published")).transpose()?;
    if let Some((p0, p1)) = published {
        if p1 - p0 != t1 - t0 {
            return Err(format!(
                "invalid port {text:?}: published range {p0}-{p1} has {} ports but container range {t0}-{t1} has {}",
                p1 - p0 + 1,
                t1 - t0 + 1
            ));
        }
    }
    let host_ip = host_ip.filter(|ip| !ip.is_empty());
    Ok((t0..=t1)
        .enumerate()
        .map(|(i, target)| Port {
            target,
            published: published.map(|(p0, _)| p0 + i as u16),
            host_ip: host_ip.clone(),
            protocol: proto,
            mode: PortMode::Ingress,
            name: None,
            app_protocol: None,
            http: false,
        })
        .collect())
}

/// Parse an `expose` entry (`80`, `8000-8010`, `53/udp`).
pub fn expose(text: &str) -> Result<Vec<(u16, Protocol)>, String> {
    let (spec, proto) = match text.rsplit_once('/') {
        Some((s, p)) => (s, protocol(p)?),
        None => (text, Protocol::Tcp),
    };
    let (a, b) = port_range(spec, "exposed")?;
    Ok((a..=b).map(|p| (p, proto)).collect())
}

/// Is a volume source a host path (bind) rather than a volume name?
pub fn is_host_path(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

/// Parse a short volume spec `[SOURCE:]TARGET[:MODE,...]`. Bind sources are
/// returned as written; the caller resolves them.
pub fn volume(text: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, modes) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => {
            // `/data:ro` is not a thing; `target:mode` only with a source.
            (Some(*s), *t, None)
        }
        [s, t, m] => (Some(*s), *t, Some(*m)),
        _ => {
            return Err(format!(
                "invalid volume {text:?}: expected [SOURCE:]TARGET[:MODE] (too many `:`)"
            ))
        }
    };
    if target.is_empty() || !target.starts_with('/') {
        return Err(format!(
            "invalid volume {text:?}: the container path {target:?} must be absolute"
        ));
    }
    let source = source.filter(|s| !s.is_empty());
    let kind = match source {
        Some(s) if is_host_path(s) => MountType::Bind,
        _ => MountType::Volume,
    };
    let mut mount = Mount {
        kind,
        source: source.map(str::to_string),
        target: target.to_string(),
        read_only: false,
        consistency: None,
        bind: None,
        volume: None,
        tmpfs: None,
    };
    if kind == MountType::Bind {
        mount.bind = Some(BindOptions {
            create_host_path: true,
            ..BindOptions::default()
        });
    }
    for mode in modes.into_iter().flat_map(|m| m.split(',')) {
        match mode {
            "ro" => mount.read_only = true,
            "rw" => mount.read_only = false,
            "z" | "Z" if kind == MountType::Bind => {
                if let Some(b) = mount.bind.as_mut() {
                    b.selinux = Some(mode.to_string());
                }
            }
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate"
                if kind == MountType::Bind =>
            {
                if let Some(b) = mount.bind.as_mut() {
                    b.propagation = Some(mode.to_string());
                }
            }
            "nocopy" if kind == MountType::Volume => {
                mount.volume = Some(VolumeOptions {
                    nocopy: true,
                    subpath: None,
                });
            }
            "consistent" | "cached" | "delegated" => mount.consistency = Some(mode.to_string()),
            other => {
                return Err(format!(
                    "invalid volume {text:?}: unknown mode {other:?} (expected ro, rw, z, Z, nocopy, a propagation such as rshared, or cached/delegated/consistent)"
                ))
            }
        }
    }
    Ok(mount)
}

/// Parse an `extra_hosts` list entry `host:ip` or `host=ip`.
pub fn extra_host(text: &str) -> Result<(String, String), String> {
    let (host, ip) = text
        .split_once('=')
        .or_else(|| text.split_once(':'))
        .ok_or_else(|| {
            format!("invalid extra host {text:?}: expected \"host:ip\" or \"host=ip\"")
        })?;
    let ip = ip.trim();
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    if host.trim().is_empty() || ip.is_empty() {
        return Err(format!(
            "invalid extra host {text:?}: expected \"host:ip\" or \"host=ip\""
        ));
    }
    Ok((host.trim().to_string(), ip.to_string()))
}

/// Split a `KEY=VALUE` list entry. `KEY` alone gives `None`.
pub fn key_value(text: &str) -> (String, Option<String>) {
    match text.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (text.to_string(), None),
    }
}

/// Normalise a project name like Compose: lower-case, keep `[a-z0-9_-]`,
/// must start with a letter or digit.
pub fn project_name(raw: &str) -> String {
    let lowered: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lowered.trim_start_matches(['_', '-']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, u64)] = &[
            ("1024", 1024),
            ("100k", 100 * 1024),
            ("512M", 512 << 20),
            ("512m", 512 << 20),
            ("1gb", 1 << 30),
            ("1GiB", 1 << 30),
            ("1.5G", 3 << 29),
            ("2 g", 2 << 30),
            ("10b", 10),
        ];
        for (text, want) in cases {
            assert_eq!(byte_size(text), Ok(*want), "{text}");
        }
        for bad in ["", "x", "1x", "-1", "1.2.3k", ".5g", "1kk"] {
            assert!(byte_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_delegate_to_spec() {
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(duration("30").unwrap_err().contains("missing unit"));
    }

    #[test]
    fn cpus_parse() {
        assert_eq!(cpus("0.5"), Ok(0.5));
        assert_eq!(cpus("2"), Ok(2.0));
        assert!(cpus("lots").is_err());
        assert!(cpus("-1").is_err());
    }

    fn short(p: &Port) -> (Option<&str>, Option<u16>, u16, Protocol) {
        (p.host_ip.as_deref(), p.published, p.target, p.protocol)
    }

    #[test]
    fn port_table() {
        use Protocol::*;
        type Want<'a> = Vec<(Option<&'a str>, Option<u16>, u16, Protocol)>;
        let cases: Vec<(&str, Want)> = vec![
            ("80", vec![(None, None, 80, Tcp)]),
            ("8080:80", vec![(None, Some(8080), 80, Tcp)]),
            ("8080:80/udp", vec![(None, Some(8080), 80, Udp)]),
            (
                "127.0.0.1:8080:80",
                vec![(Some("127.0.0.1"), Some(8080), 80, Tcp)],
            ),
            ("127.0.0.1::80", vec![(Some("127.0.0.1"), None, 80, Tcp)]),
            ("[::1]:80:80", vec![(Some("::1"), Some(80), 80, Tcp)]),
            ("[::1]:53:53/UDP", vec![(Some("::1"), Some(53), 53, Udp)]),
            (
                "8000-8002:80-82",
                vec![
                    (None, Some(8000), 80, Tcp),
                    (None, Some(8001), 81, Tcp),
                    (None, Some(8002), 82, Tcp),
                ],
            ),
            (
                "3000-3001",
                vec![(None, None, 3000, Tcp), (None, None, 3001, Tcp)],
            ),
        ];
        for (text, want) in cases {
            let got = ports(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let got: Want = got.iter().map(short).collect();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn bad_ports() {
        let cases = [
            (
                "8000-8005:80-82",
                "has 6 ports but container range 80-82 has 3",
            ),
            ("70000:80", "ports go from 1 to 65535"),
            ("0:80", "ports go from 1 to 65535"),
            ("80/xtp", "unknown protocol"),
            ("::1:80:80", "brackets"),
            ("90-80", "start is greater"),
            ("http", "expected a number"),
        ];
        for (text, want) in cases {
            let err = ports(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn volume_table() {
        let m = volume("./data:/data:ro").unwrap();
        assert_eq!(
            (m.kind, m.source.as_deref(), m.target.as_str(), m.read_only),
            (MountType::Bind, Some("./data"), "/data", true)
        );
        let m = volume("/host:/c:rw,z").unwrap();
        assert_eq!(m.bind.unwrap().selinux.as_deref(), Some("z"));
        assert!(!m.read_only);
        let m = volume("dbdata:/var/lib/db").unwrap();
        assert_eq!(
            (m.kind, m.source.as_deref()),
            (MountType::Volume, Some("dbdata"))
        );
        let m = volume("/anon").unwrap();
        assert_eq!((m.kind, m.source), (MountType::Volume, None));
        let m = volume("vol:/x:nocopy").unwrap();
        assert!(m.volume.unwrap().nocopy);
        let m = volume("~/x:/x:rshared").unwrap();
        assert_eq!(m.bind.unwrap().propagation.as_deref(), Some("rshared"));
        assert!(volume("a:relative")
            .unwrap_err()
            .contains("must be absolute"));
        assert!(volume("a:/b:bogus").unwrap_err().contains("unknown mode"));
        assert!(volume("a:/b:ro:x").unwrap_err().contains("too many"));
    }

    #[test]
    fn command_splitting() {
        assert_eq!(
            split_command("echo 'a b' c").unwrap(),
            vec!["echo", "a b", "c"]
        );
        assert_eq!(
            split_command(r#"sh -c "echo \"hi\"""#).unwrap(),
            vec!["sh", "-c", "echo \"hi\""]
        );
        assert!(split_command("echo 'open").is_err());
    }

    #[test]
    fn health_tests() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(health_test_list(&s(&["NONE"])), Ok(HealthTest::None));
        assert_eq!(
            health_test_list(&s(&["CMD", "curl", "-f", "x"])),
            Ok(HealthTest::Cmd(s(&["curl", "-f", "x"])))
        );
        assert_eq!(
            health_test_list(&s(&["CMD-SHELL", "curl -f x || exit 1"])),
            Ok(HealthTest::Shell("curl -f x || exit 1".into()))
        );
        assert!(health_test_list(&s(&["curl"]))
            .unwrap_err()
            .contains("must start with CMD"));
        assert!(health_test_list(&[]).is_err());
    }

    #[test]
    fn extra_hosts() {
        assert_eq!(
            extra_host("db:10.0.0.2").unwrap(),
            ("db".into(), "10.0.0.2".into())
        );
        assert_eq!(extra_host("db=::1").unwrap(), ("db".into(), "::1".into()));
        assert_eq!(extra_host("db:[::1]").unwrap(), ("db".into(), "::1".into()));
        assert!(extra_host("nohost").is_err());
    }

    #[test]
    fn project_names() {
        assert_eq!(project_name("My App.v2"), "myappv2");
        assert_eq!(project_name("_x-y"), "x-y");
    }
}
