//! The shard's search index kept up to date: every applied message or
//! edit with a text body goes in (`index_record`), and at startup the
//! whole log does (`index_log`), so a replica and a restarted node search
//! what the leader does.
//!
//! Lives on: the shard's core.

use tracing::warn;

use super::runner::Shard;
use crate::machine::records::{self, BodyKind, Rec, KIND_CHAT};
use crate::search::index::DocKind;

impl Shard {
    /// Indexes `rec` if it holds text a search may find.
    pub fn index_record(&self, rec: &Rec) {
        let (conv, seq, kind, body) = match rec {
            Rec::Message(m) if m.body_kind == BodyKind::Text => {
                (m.conv, m.seq, DocKind::Sent, &m.body)
            }
            Rec::MessageEdited {
                conv,
                seq,
                body_kind: BodyKind::Text,
                body,
                ..
            } => (*conv, *seq, DocKind::Edit, body),
            _ => return,
        };
        if !self.search.borrow_mut().add(conv.0, seq.0, kind, body) {
            warn!(
                shard = self.id.0,
                conv = conv.0,
                seq = seq.0,
                "message not indexed: its seq is past what search holds"
            );
        }
    }

    /// Indexes every record of the log (at startup, before serving);
    /// answers how many documents the index holds.
    pub async fn index_log(&self) -> Result<u64, String> {
        let mut reader = self.log.reader_from(self.log.first_offset());
        while let Some(record) = reader.next().await {
            let record = record.map_err(|e| format!("indexing for search: {e}"))?;
            if record.kind != KIND_CHAT {
                continue;
            }
            let rec = records::decode(&record.payload)
                .map_err(|e| format!("indexing for search: record {}: {e}", record.offset.0))?;
            self.index_record(&rec);
        }
        Ok(self.search.borrow().docs())
    }
}
