//! Cluster objects and the pure control logic of Flotilla's orchestrator.
//!
//! Nothing here does I/O or reads a clock: the controllers in the server pass
//! `now` and the current objects in, and apply the returned actions to the
//! store. That keeps every rule (one-way task states, restart policy with
//! backoff and windows, `depends_on` gating, job completion, scaling) testable
//! exhaustively, like the scheduler.

pub mod deps;
pub mod keys;
pub mod network;
pub mod objects;
pub mod plan;
pub mod reconcile;
pub mod restart;
pub mod task;

pub use plan::ServicePlan;
pub use reconcile::{reconcile, Action, Reconciled};
pub use task::{DesiredState, Health, Task, TaskState, TransitionError};
