//! flotilla-compose: see ARCHITECTURE.md.
