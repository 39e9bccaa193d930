//! Flotilla's scheduler: a pure function from (pending tasks, nodes, tasks
//! already placed) to a placement or a reason, with no I/O, so it can be tested
//! exhaustively and benchmarked at 10,000 tasks × 1,000 nodes.
//!
//! It follows Swarm's shape: *filters* decide which nodes can take a task
//! (ready, active, resources, constraints, platform, host ports, max replicas
//! per node), then *scoring* picks among them: spread over the values of the
//! service's placement-preference labels first, then over nodes by the
//! service's own task count, then by the node's total task count.
//!
//! When no node fits, the reason says how many nodes each filter rejected and
//! why, e.g. `no suitable node: insufficient memory on 1 node (needs 2.0 GiB,
//! at most 1.0 GiB free)`.

mod constraint;
mod filter;
mod model;
mod schedule;

pub use constraint::{Constraint, ConstraintError, Operator};
pub use filter::Unschedulable;
pub use model::{
    Availability, HostPort, Node, NodeStatus, PlacedTask, Platform, Protocol, Resources, Role,
    TaskRequest,
};
pub use schedule::{schedule, Decision, Scheduler};
