//! How a CLI command finds and talks to the server: URL from `--server` /
//! `FLOTILLA_SERVER`, token from `--token` / `FLOTILLA_TOKEN` or the data
//! dir's admin token file, and friendly errors when nobody answers.

use anyhow::{bail, Context as _};
use flotilla_client::{Client, ClientError};
use std::net::SocketAddr;
use std::path::Path;

/// Where the CLI looks for a server when told nothing.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7443";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";

#[derive(clap::Args, Clone, Debug, Default)]
pub struct ApiArgs {
    /// The server's URL. Default: http://127.0.0.1:7443.
    #[arg(long, env = "FLOTILLA_SERVER")]
    pub server: Option<String>,
    /// Bearer token. Default: the admin token in <data-dir>/admin.token.
    #[arg(long, env = "FLOTILLA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// A checked server URL (no trailing slash).
pub fn server_url(flag: Option<&str>) -> anyhow::Result<String> {
    let url = flag.unwrap_or(DEFAULT_SERVER).trim().trim_end_matches('/');
    if url.starts_with("https://") {
        bail!(
            "--server {url}: https is not supported yet (mutual TLS comes with the cluster \
             security work); use http:// on loopback, e.g. {DEFAULT_SERVER}"
        );
    }
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--server {url:?}: expected a URL like {DEFAULT_SERVER}");
    };
    if rest.is_empty() || rest.contains('/') {
        bail!("--server {url:?}: expected scheme://host:port with no path, like {DEFAULT_SERVER}");
    }
    Ok(url.to_string())
}

/// The address an embedded or background server listens on: `--listen`, else
/// the host:port of the server URL when it is a literal address, else the default.
pub fn listen_addr(listen: Option<&str>, url: &str) -> anyhow::Result<SocketAddr> {
    if let Some(l) = listen {
        return l
            .parse()
            .with_context(|| format!("--listen {l:?}: expected an address like {DEFAULT_LISTEN}"));
    }
    let hostport = url.trim_start_matches("http://");
    Ok(hostport
        .parse()
        .unwrap_or_else(|_| DEFAULT_LISTEN.parse().expect("valid default")))
}

/// The token: flag/env, else `<data-dir>/admin.token` (empty if there is none:
/// the server then answers 401 with a hint, which is the clearest message).
pub fn token(flag: Option<&str>, data_dir: &Path) -> String {
    if let Some(t) = flag {
        return t.trim().to_string();
    }
    std::fs::read_to_string(data_dir.join(flotilla_server::TOKEN_FILE))
        .map(|t| t.trim().to_string())
        .unwrap_or_default()
}

pub fn client(api: &ApiArgs, data_dir: &Path) -> anyhow::Result<Client> {
    let url = server_url(api.server.as_deref())?;
    Ok(Client::new(&url, &token(api.token.as_deref(), data_dir)))
}

/// Turn a client error into what the user should read.
pub fn explain(err: ClientError, url: &str) -> anyhow::Error {
    match err {
        ClientError::Unreachable { source, .. } if source.is_connect() => anyhow::anyhow!(
            "no Flotilla server at {url}: start one with `flotilla up` or `flotilla server`"
        ),
        other => anyhow::Error::new(other),
    }
}

/// Whether a server answers at the client's URL (any HTTP answer counts,
/// even 401: someone is listening).
pub async fn answers(client: &Client) -> bool {
    !matches!(client.nodes().await, Err(ClientError::Unreachable { .. }))
}

/// Extension so every call site reads `client.x().await.or_explain(&client)?`.
pub trait OrExplain<T> {
    fn or_explain(self, client: &Client) -> anyhow::Result<T>;
}

impl<T> OrExplain<T> for Result<T, ClientError> {
    fn or_explain(self, client: &Client) -> anyhow::Result<T> {
        self.map_err(|e| explain(e, client.base()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert_eq!(server_url(None).unwrap(), DEFAULT_SERVER);
        assert_eq!(
            server_url(Some("http://127.0.0.1:9000/")).unwrap(),
            "http://127.0.0.1:9000"
        );
        let e = server_url(Some("https://x:1")).unwrap_err().to_string();
        assert!(e.contains("not supported yet"), "{e}");
        assert!(server_url(Some("127.0.0.1:1")).is_err());
        assert!(server_url(Some("http://h:1/api")).is_err());
    }

    #[test]
    fn listen_follows_the_url_unless_given() {
        let a = listen_addr(None, "http://127.0.0.1:9123").unwrap();
        assert_eq!(a.port(), 9123);
        let b = listen_addr(None, "http://localhost:9123").unwrap();
        assert_eq!(b.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            listen_addr(Some("127.0.0.1:7000"), DEFAULT_SERVER)
                .unwrap()
                .port(),
            7000
        );
        assert!(listen_addr(Some("nope"), DEFAULT_SERVER).is_err());
    }
}
