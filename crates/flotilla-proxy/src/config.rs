//! The desired listener set, as the agent (or `flotilla internal proxy
//! --config FILE.json`) describes it. Pure data: serde both ways.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// Every listener the proxy should have; `Proxy::apply` makes it so.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    pub listeners: Vec<ListenerConfig>,
}

/// One listening socket and the replicas behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique key, e.g. `vip:shop_api:8080/tcp` or `published:0.0.0.0:8080/tcp`.
    pub name: String,
    /// The service this listener balances, used as the metrics label.
    pub service: String,
    pub bind: SocketAddr,
    pub protocol: Protocol,
    /// Healthy, ready replicas only; may be empty.
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// How many other endpoints to try after a failed attempt.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_retries() -> u32 {
    2
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// L4: bytes spliced both ways, one endpoint per connection.
    Tcp,
    /// L4: one endpoint per client address, forgotten after `idle_ms`.
    Udp,
    /// L7: HTTP/1.1 and h2 (prior knowledge), balanced per request.
    Http,
}

/// One replica: the task id (the draining key) and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub id: String,
    pub addr: SocketAddr,
}

/// Timeouts in milliseconds (JSON-friendly; see the accessors for Durations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// Opening a connection to an endpoint; a miss counts as a connect failure.
    pub connect_ms: u64,
    /// HTTP: from sending a request upstream to its response headers.
    pub request_ms: u64,
    /// HTTP: a client or pooled upstream connection with no request in
    /// progress is closed after this; UDP: a session with no datagram either way.
    pub idle_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 2_000,
            request_ms: 60_000,
            idle_ms: 60_000,
        }
    }
}

impl Timeouts {
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn request(&self) -> Duration {
        Duration::from_millis(self.request_ms)
    }
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }

    /// Zero would mean "fail at once" for every field: reject it with the
    /// field's name rather than guess.
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("connect_ms", self.connect_ms),
            ("request_ms", self.request_ms),
            ("idle_ms", self.idle_ms),
        ] {
            if v == 0 {
                return Err(format!(
                    "timeouts.{name} is 0, expected a positive number of milliseconds"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_and_protocol_is_lowercase() {
        let c: ProxyConfig = serde_json::from_str(
            r#"{"listeners":[{"name":"a","service":"s","bind":"127.0.0.1:80","protocol":"http",
                "endpoints":[{"id":"t1","addr":"127.0.0.2:80"}]}]}"#,
        )
        .unwrap();
        let l = &c.listeners[0];
        assert_eq!(l.protocol, Protocol::Http);
        assert_eq!(l.retries, 2);
        assert_eq!(l.timeouts, Timeouts::default());
        assert_eq!(l.timeouts.connect(), Duration::from_secs(2));
        let back: ProxyConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_fields_and_zero_timeouts_are_rejected() {
        let e = serde_json::from_str::<ProxyConfig>(r#"{"listeners":[],"listner":1}"#).unwrap_err();
        assert!(e.to_string().contains("listner"), "{e}");
        let t = Timeouts {
            connect_ms: 0,
            ..Timeouts::default()
        };
        assert!(t.validate().unwrap_err().contains("connect_ms"));
    }
}
