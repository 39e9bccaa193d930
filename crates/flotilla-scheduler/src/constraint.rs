//! Swarm placement constraints: `node.labels.region==east`, `node.role!=manager`.

use crate::model::{Node, Role};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    Eq,
    NotEq,
}

/// A parsed constraint. Matching of values is case-insensitive for the
/// built-in attributes (as Swarm does) and exact for labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub attribute: Attribute,
    pub operator: Operator,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Attribute {
    NodeId,
    Hostname,
    Role,
    Os,
    Arch,
    NodeLabel(String),
    EngineLabel(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error(
        "constraint {0:?} has no operator: expected `==` or `!=`, e.g. node.labels.zone==east"
    )]
    NoOperator(String),
    #[error("constraint {0:?} names an unknown attribute {1:?}: expected node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>")]
    UnknownAttribute(String, String),
    #[error("constraint {0:?} has an empty value")]
    EmptyValue(String),
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, ConstraintError> {
        let (lhs, operator, rhs) = if let Some((l, r)) = text.split_once("!=") {
            (l, Operator::NotEq, r)
        } else if let Some((l, r)) = text.split_once("==") {
            (l, Operator::Eq, r)
        } else {
            return Err(ConstraintError::NoOperator(text.to_string()));
        };
        let (lhs, value) = (lhs.trim(), rhs.trim());
        if value.is_empty() {
            return Err(ConstraintError::EmptyValue(text.to_string()));
        }
        let attribute = match lhs {
            "node.id" => Attribute::NodeId,
            "node.hostname" => Attribute::Hostname,
            "node.role" => Attribute::Role,
            "node.platform.os" => Attribute::Os,
            "node.platform.arch" => Attribute::Arch,
            other => {
                if let Some(label) = other.strip_prefix("node.labels.").filter(|l| !l.is_empty()) {
                    Attribute::NodeLabel(label.to_string())
                } else if let Some(label) = other
                    .strip_prefix("engine.labels.")
                    .filter(|l| !l.is_empty())
                {
                    Attribute::EngineLabel(label.to_string())
                } else {
                    return Err(ConstraintError::UnknownAttribute(
                        text.to_string(),
                        other.to_string(),
                    ));
                }
            }
        };
        Ok(Constraint {
            attribute,
            operator,
            value: value.to_string(),
        })
    }

    pub fn matches(&self, node: &Node) -> bool {
        let role = match node.role {
            Role::Manager => "manager",
            Role::Worker => "worker",
        };
        let (actual, case_insensitive) = match &self.attribute {
            Attribute::NodeId => (Some(node.id.as_str()), true),
            Attribute::Hostname => (Some(node.hostname.as_str()), true),
            Attribute::Role => (Some(role), true),
            Attribute::Os => (Some(node.platform.os.as_str()), true),
            Attribute::Arch => (Some(node.platform.arch.as_str()), true),
            Attribute::NodeLabel(k) => (node.labels.get(k).map(String::as_str), false),
            Attribute::EngineLabel(k) => (node.engine_labels.get(k).map(String::as_str), false),
        };
        let equal = match actual {
            Some(a) if case_insensitive => a.eq_ignore_ascii_case(&self.value),
            Some(a) => a == self.value,
            // A missing label equals nothing, so `!=` holds (Swarm's rule).
            None => false,
        };
        match self.operator {
            Operator::Eq => equal,
            Operator::NotEq => !equal,
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lhs = match &self.attribute {
            Attribute::NodeId => "node.id".to_string(),
            Attribute::Hostname => "node.hostname".to_string(),
            Attribute::Role => "node.role".to_string(),
            Attribute::Os => "node.platform.os".to_string(),
            Attribute::Arch => "node.platform.arch".to_string(),
            Attribute::NodeLabel(k) => format!("node.labels.{k}"),
            Attribute::EngineLabel(k) => format!("engine.labels.{k}"),
        };
        let op = match self.operator {
            Operator::Eq => "==",
            Operator::NotEq => "!=",
        };
        write!(f, "{lhs}{op}{}", self.value)
    }
}
