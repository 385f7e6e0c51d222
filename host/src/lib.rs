//! placeholder
pub fn x() {}
