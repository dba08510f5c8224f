//! Placeholder: the log benchmark lands in the next commit.
fn main() {}
