//! flotilla-runtime: see ARCHITECTURE.md.
