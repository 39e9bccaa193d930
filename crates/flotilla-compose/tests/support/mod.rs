//! Helpers shared by the corpus test binaries. Each binary uses a subset,
//! so the `mod support;` declarations carry `#[allow(dead_code)]`.

pub mod cases;
pub mod gen;
pub mod golden;
pub mod schema;
pub mod yaml_json;
