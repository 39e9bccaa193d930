//! flotilla-net: see ARCHITECTURE.md.
