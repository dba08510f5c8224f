//! chat-benches' shared pieces: starting a pinned chatd for the
//! benchmark binaries in `src/bin/`.

pub mod server;
