//! flotilla-image: see ARCHITECTURE.md.
