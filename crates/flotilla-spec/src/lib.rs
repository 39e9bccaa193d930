//! flotilla-spec: see ARCHITECTURE.md.
