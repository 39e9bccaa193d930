//! Which resolvers unknown names go to: the configured ones, or the host's /etc/resolv.conf.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Nameservers of a resolv.conf text on port 53, minus any address we listen on ourselves
/// (forwarding to ourselves would loop until the budget runs out). Loopback resolvers such as
/// systemd-resolved's 127.0.0.53 are kept: this server runs on the host, where they work.
/// Lines the parser does not understand are skipped (libc does the same), never fatal.
pub fn from_resolv_conf(text: &[u8], own: &HashSet<SocketAddr>) -> Vec<SocketAddr> {
    let (config, errors) = resolv_conf::Config::parse_with_errors(text);
    for error in errors {
        tracing::debug!(%error, "ignoring unparsable resolv.conf line");
    }
    config
        .nameservers
        .into_iter()
        .map(|ip| SocketAddr::new(IpAddr::from(ip), 53))
        .filter(|addr| !own.contains(addr))
        .collect()
}

/// `configured` when not empty, else the host's resolv.conf nameservers (read on every apply,
/// so a changed host resolver is picked up by the next apply).
pub fn resolve(configured: &[SocketAddr], own: &HashSet<SocketAddr>) -> Vec<SocketAddr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    match std::fs::read(RESOLV_CONF) {
        Ok(text) => from_resolv_conf(&text, own),
        Err(error) => {
            tracing::warn!(%error, path = RESOLV_CONF, "cannot read host resolvers; unknown names will get SERVFAIL");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameservers_keeps_loopback_and_skips_ourselves() {
        let text = b"# comment\nsearch example.com\nnameserver 127.0.0.53\nnameserver 10.1.0.1\nnameserver 2001:db8::1\noptions edns0 trust-ad\n";
        let own: HashSet<SocketAddr> = ["10.1.0.1:53".parse().unwrap()].into();
        let got = from_resolv_conf(text, &own);
        assert_eq!(
            got,
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let text = b"nameserver not-an-ip\nnameserver 192.0.2.7\nwhatever\n";
        let got = from_resolv_conf(text, &HashSet::new());
        assert_eq!(got, vec!["192.0.2.7:53".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn configured_upstreams_win() {
        let configured: Vec<SocketAddr> = vec!["192.0.2.1:5353".parse().unwrap()];
        assert_eq!(resolve(&configured, &HashSet::new()), configured);
    }
}
