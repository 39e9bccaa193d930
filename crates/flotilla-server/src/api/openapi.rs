//! The OpenAPI description of the API, written by hand: the request and
//! response bodies are the serde types of `flotilla-core` and `flotilla-spec`,
//! described here by their fields' names rather than generated, which keeps
//! those crates free of OpenAPI derives.

use axum::Json;
use serde_json::{json, Value};

fn op(summary: &str, tag: &str) -> Value {
    json!({ "summary": summary, "tags": [tag], "responses": {
        "200": { "description": "OK" },
        "400": { "$ref": "#/components/responses/Error" },
        "401": { "$ref": "#/components/responses/Error" },
        "404": { "$ref": "#/components/responses/Error" },
        "409": { "$ref": "#/components/responses/Error" },
        "422": { "$ref": "#/components/responses/Error" } } })
}

fn id_param(name: &str) -> Value {
    json!([{ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }])
}

pub async fn document() -> Json<Value> {
    let with_params = |mut v: Value, p: Value| {
        v["parameters"] = p;
        v
    };
    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "Flotilla API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Users and agents use the same API. Every /v1 call needs `Authorization: Bearer <token>`. Errors are JSON `{error, hint?}`." },
        "security": [{ "bearer": [] }],
        "paths": {
            "/healthz": { "get": op("Liveness of the server (no auth)", "server") },
            "/v1/stacks": { "get": op("List stacks with their service counts", "stacks") },
            "/v1/stacks/{name}": {
                "put": with_params(json!({ "summary": "Deploy or update a stack. Body: the normalised stack model (`flotilla config --output json`)", "tags": ["stacks"],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Stack" } } } },
                    "responses": op("", "stacks")["responses"].clone() }), id_param("name")),
                "delete": with_params(op("Remove a stack's services (their tasks are stopped)", "stacks"), id_param("name")) },
            "/v1/services": { "get": op("List services with desired/running/healthy counts; ?stack=NAME filters", "services") },
            "/v1/services/{id}": { "get": with_params(op("One service with its counts", "services"), id_param("id")) },
            "/v1/services/{id}/scale": { "post": with_params(json!({ "summary": "Set the replica count", "tags": ["services"],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["replicas"], "properties": { "replicas": { "type": "integer", "minimum": 0, "maximum": 10000 } }, "additionalProperties": false } } } },
                "responses": op("", "services")["responses"].clone() }), id_param("id")) },
            "/v1/services/{id}/restart": { "post": with_params(op("Replace every task with a fresh one", "services"), id_param("id")) },
            "/v1/tasks": { "get": op("List tasks; ?service=ID&node=ID&all=true", "tasks") },
            "/v1/tasks/{id}": { "get": with_params(op("One task (id or unique prefix)", "tasks"), id_param("id")) },
            "/v1/tasks/{id}/status": { "put": with_params(json!({ "summary": "Agent reports a task's state (one-way: an illegal transition is 409)", "tags": ["agents"],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["state"], "properties": {
                    "state": { "$ref": "#/components/schemas/TaskState" }, "message": { "type": "string" }, "exit_code": { "type": "integer" },
                    "container_id": { "type": "string" }, "ip": { "type": "string" }, "health": { "enum": ["none", "starting", "healthy", "unhealthy"] } }, "additionalProperties": false } } } },
                "responses": op("", "agents")["responses"].clone() }), id_param("id")) },
            "/v1/nodes": { "get": op("List nodes", "nodes"), "post": op("Agent registration: returns the node record and heartbeat interval", "agents") },
            "/v1/nodes/{id}/heartbeat": { "post": with_params(op("Agent heartbeat (404: register again)", "agents"), id_param("id")) },
            "/v1/nodes/{id}/assignments": { "get": with_params(op("NDJSON stream: the node's full task list now and after every change", "agents"), id_param("id")) },
            "/v1/events": { "get": op("Events; ?since=MS&follow=true streams NDJSON", "events") }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": { "description": "A JSON error", "content": { "application/json": { "schema": {
                "type": "object", "required": ["error"], "properties": { "error": { "type": "string" }, "hint": { "type": "string" } } } } } } },
            "schemas": {
                "TaskState": { "enum": ["new", "pending", "assigned", "preparing", "starting", "running", "complete", "failed", "shutdown", "rejected", "orphaned"] },
                "Stack": { "type": "object", "required": ["name", "services"], "description": "flotilla_spec::Stack, as printed by `flotilla config --output json`",
                           "properties": { "name": { "type": "string" }, "services": { "type": "object" }, "networks": { "type": "object" }, "volumes": { "type": "object" } } }
            }
        }
    }))
}
