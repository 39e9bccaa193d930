//! A typed client for Flotilla's HTTP API: what the CLI and the agent call.
//! Errors carry the server's JSON message and hint, so the CLI can show them as is.

use flotilla_core::objects::{EventRecord, NodeRecord, ServiceRecord};
pub use flotilla_core::objects::{ServiceCounts, ServiceView};
use flotilla_core::Task;
use flotilla_spec::Stack;
use reqwest::Method;
pub use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the Flotilla server at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Api {
        status: StatusCode,
        message: String,
        hint: Option<String>,
    },
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
}

impl ClientError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct DeployReport {
    pub stack: String,
    pub services: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Registration {
    pub id: Option<String>,
    pub hostname: String,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub os: String,
    pub arch: String,
    pub nano_cpus: u64,
    pub memory_bytes: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Registered {
    pub node: NodeRecord,
    pub heartbeat_interval_ms: u64,
}

/// What an agent reports about a task.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatusReport {
    pub state: Option<flotilla_core::TaskState>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub addresses: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<flotilla_core::Health>,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(ClientError::Api {
                status,
                message: v["error"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("HTTP {status}")),
                hint: v["hint"].as_str().map(str::to_string),
            });
        }
        let bytes = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol(format!("{path}: {e}")))
    }

    pub async fn deploy(&self, stack: &Stack) -> Result<DeployReport> {
        self.call(
            Method::PUT,
            &format!("/v1/stacks/{}", stack.name),
            Some(serde_json::to_value(stack).map_err(|e| ClientError::Protocol(e.to_string()))?),
        )
        .await
    }

    pub async fn remove_stack(&self, name: &str) -> Result<DeployReport> {
        self.call(Method::DELETE, &format!("/v1/stacks/{name}"), None)
            .await
    }

    pub async fn services(&self, stack: Option<&str>) -> Result<Vec<ServiceView>> {
        let q = stack.map(|s| format!("?stack={s}")).unwrap_or_default();
        self.call(Method::GET, &format!("/v1/services{q}"), None)
            .await
    }

    pub async fn service(&self, id: &str) -> Result<ServiceView> {
        self.call(Method::GET, &format!("/v1/services/{id}"), None)
            .await
    }

    pub async fn scale(&self, id: &str, replicas: u64) -> Result<ServiceRecord> {
        self.call(
            Method::POST,
            &format!("/v1/services/{id}/scale"),
            Some(json!({ "replicas": replicas })),
        )
        .await
    }

    pub async fn restart(&self, id: &str) -> Result<Value> {
        self.call(Method::POST, &format!("/v1/services/{id}/restart"), None)
            .await
    }

    pub async fn tasks(&self, service: Option<&str>, all: bool) -> Result<Vec<Task>> {
        let mut q = vec![];
        if let Some(s) = service {
            q.push(format!("service={s}"));
        }
        if all {
            q.push("all=true".into());
        }
        let q = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        self.call(Method::GET, &format!("/v1/tasks{q}"), None).await
    }

    pub async fn task(&self, id: &str) -> Result<Task> {
        self.call(Method::GET, &format!("/v1/tasks/{id}"), None)
            .await
    }

    /// Stack networks with their subnets.
    pub async fn networks(&self) -> Result<Vec<flotilla_core::network::NetworkRecord>> {
        self.call(Method::GET, "/v1/networks", None).await
    }

    /// The data-plane view every node builds its DNS and proxy from.
    pub async fn networking(&self) -> Result<flotilla_core::network::Networking> {
        self.call(Method::GET, "/v1/networking", None).await
    }

    pub async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        self.call(Method::GET, "/v1/nodes", None).await
    }

    pub async fn events(&self, since: u64) -> Result<Vec<EventRecord>> {
        self.call(Method::GET, &format!("/v1/events?since={since}"), None)
            .await
    }

    pub async fn register(&self, reg: &Registration) -> Result<Registered> {
        self.call(
            Method::POST,
            "/v1/nodes",
            Some(serde_json::to_value(reg).map_err(|e| ClientError::Protocol(e.to_string()))?),
        )
        .await
    }

    pub async fn heartbeat(&self, node: &str) -> Result<()> {
        self.call::<Value>(Method::POST, &format!("/v1/nodes/{node}/heartbeat"), None)
            .await
            .map(|_| ())
    }

    pub async fn report(&self, task: &str, report: &StatusReport) -> Result<Task> {
        let mut body =
            serde_json::to_value(report).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if report.state.is_none() {
            return Err(ClientError::Protocol(
                "a status report needs a state".into(),
            ));
        }
        body["state"] = serde_json::to_value(report.state).unwrap_or(Value::Null);
        self.call(Method::PUT, &format!("/v1/tasks/{task}/status"), Some(body))
            .await
    }

    /// Open an NDJSON stream (assignments, followed events).
    pub async fn stream(&self, path: &str) -> Result<LineStream> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        if !response.status().is_success() {
            let status = response.status();
            let v: Value = response.json().await.unwrap_or(Value::Null);
            return Err(ClientError::Api {
                status,
                message: v["error"].as_str().unwrap_or("stream refused").to_string(),
                hint: v["hint"].as_str().map(str::to_string),
            });
        }
        Ok(LineStream {
            response,
            buf: Vec::new(),
        })
    }
}

/// Newline-delimited JSON values from a streaming response.
pub struct LineStream {
    response: reqwest::Response,
    buf: Vec<u8>,
}

impl LineStream {
    /// The next JSON line; None when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| ClientError::Protocol(e.to_string()));
            }
            match self
                .response
                .chunk()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }
}
