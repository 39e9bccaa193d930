//! Links the `flotilla` executable as a position-dependent (non-PIE) binary.
//!
//! Why: every `flotilla container run` is a fresh process of this large
//! binary, and as a PIE its dynamic loader first applies ~52,000 relative
//! relocations, copying ~1 MB of `.data.rel.ro` page by page (~240 page
//! faults). Measured on the benchmark host: `flotilla --version` 2.0 ms as a
//! PIE, 1.2 ms without (a container start is ~13 ms; issue #2's target is
//! relative to crun). `-z pack-relative-relocs` was measured too and changes
//! nothing: the pages are written either way.
//!
//! What it costs: the executable's own code and data sit at a fixed address
//! (the heap, stack, mmaps and shared libraries stay randomised). Debian
//! ships runc, containerd and containerd-shim the same way (Go's default).
//! To go back to a PIE, delete this file.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=flotilla=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
