//! raft-rs logs through slog; this drain hands its records to `tracing`
//! (debug and below stay at trace level: raft-rs is chatty).

use slog::{Drain, Level, OwnedKVList, Record, KV};

struct ToTracing;

struct Fields(String);

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        use std::fmt::Write;
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for ToTracing {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = Fields(String::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let msg = record.msg();
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{msg}{}", fields.0),
            Level::Warning => tracing::warn!(target: "raft", "{msg}{}", fields.0),
            Level::Info => tracing::debug!(target: "raft", "{msg}{}", fields.0),
            Level::Debug | Level::Trace => tracing::trace!(target: "raft", "{msg}{}", fields.0),
        }
        Ok(())
    }
}

/// The logger every group of a driver uses.
pub fn logger() -> slog::Logger {
    slog::Logger::root(ToTracing.fuse(), slog::o!())
}
