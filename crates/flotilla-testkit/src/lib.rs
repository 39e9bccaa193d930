//! flotilla-testkit: see ARCHITECTURE.md.
