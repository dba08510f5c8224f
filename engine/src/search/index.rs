//! The inverted index of one shard's messages: term → the documents that
//! hold it. Standard library only (the search bench includes this file by
//! path, next to `words.rs`).
//!
//! Lives on: the shard's core (in `Shard.search`).
//!
//! A document is one text version of a message: the message as sent, or
//! the body of one of its edits. Documents are numbered in the order they
//! are added (log order, so a higher number is a later record) and each
//! costs 12 bytes: its conversation slot, seq and whether it is an edit
//! (8), and its place in its conversation's list of documents (4).
//! A term's postings are its ascending document numbers in blocks of
//! `BLOCK_POSTINGS`: each block's first number in a head (8 bytes per
//! block), the rest as varints of the gap to the previous (1 to 3 bytes).
//! A block can be decoded alone, so postings are walked newest block
//! first and probed (`contains`) without decoding the rest.
//!
//! A search walks the cheapest of: the documents of the conversations in
//! scope, the postings of its rarest whole word, or the union of the
//! terms its last word starts; and probes the others for each document.
//!
//! The index only proposes candidates, newest first: a superset of what
//! matches. The caller reads each candidate as it reads now and keeps it
//! only if its current text matches, so an edited, deleted, expired or
//! erased message, or one added twice (a record applied again after a
//! rebuild), never shows, and nothing here is ever removed.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::words::{term, words, Query};

/// Postings per block (one head each).
pub const BLOCK_POSTINGS: u32 = 128;
/// A prefix that names more terms than this does not narrow a search
/// (the candidates' text is checked instead).
pub const PREFIX_TERMS_MAX: usize = 4096;
/// Nor one whose terms hold more postings than this in all.
pub const PREFIX_POSTINGS_MAX: usize = 1 << 22;
/// A prefix of up to this many terms is probed term by term; one of more
/// is first gathered into a bitmap of documents.
pub const PREFIX_PROBE_TERMS_MAX: usize = 16;
/// Seqs at or past this are not indexed (the top bit marks an edit).
pub const SEQ_INDEXED_MAX: u64 = 1 << 31;
const EDIT_BIT: u32 = 1 << 31;

/// Which text of a message a document holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    Sent,
    Edit,
}

/// A candidate: a message that may match, from a document of `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub conv: u64,
    pub seq: u64,
    pub kind: DocKind,
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[derive(Clone, Debug, Default)]
struct Postings {
    /// (first document of the block, where its other gaps start in `gaps`).
    heads: Vec<(u32, u32)>,
    gaps: Vec<u8>,
    last: u32,
    len: u32,
}

impl Postings {
    fn push(&mut self, doc: u32) {
        if self.len.is_multiple_of(BLOCK_POSTINGS) {
            assert!(self.len == 0 || doc > self.last, "postings ascend");
            assert!(self.gaps.len() < u32::MAX as usize);
            self.heads.push((doc, self.gaps.len() as u32));
        } else {
            assert!(doc > self.last, "postings ascend");
            put_varint(&mut self.gaps, doc - self.last);
        }
        self.last = doc;
        self.len += 1;
    }

    /// Block `b`'s documents, ascending, into `out` (cleared first).
    fn block(&self, b: usize, out: &mut Vec<u32>) {
        out.clear();
        let (mut doc, start) = self.heads[b];
        let end = self
            .heads
            .get(b + 1)
            .map_or(self.gaps.len(), |h| h.1 as usize);
        out.push(doc);
        let (mut gap, mut shift) = (0u32, 0u32);
        for &byte in &self.gaps[start as usize..end] {
            gap |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 != 0 {
                shift += 7;
                continue;
            }
            doc += gap;
            out.push(doc);
            (gap, shift) = (0, 0);
        }
    }

    fn contains(&self, doc: u32) -> bool {
        if self.len == 0 || doc > self.last {
            return false;
        }
        let b = self.heads.partition_point(|h| h.0 <= doc);
        if b == 0 {
            return false;
        }
        let (mut at, start) = self.heads[b - 1];
        let end = self.heads.get(b).map_or(self.gaps.len(), |h| h.1 as usize);
        let (mut gap, mut shift) = (0u32, 0u32);
        for &byte in &self.gaps[start as usize..end] {
            if at >= doc {
                break;
            }
            gap |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 != 0 {
                shift += 7;
                continue;
            }
            at += gap;
            (gap, shift) = (0, 0);
        }
        at == doc
    }

    /// Every document, newest first, while `f` answers true.
    fn each_newest_first(&self, mut f: impl FnMut(u32) -> bool) {
        let mut docs = Vec::with_capacity(BLOCK_POSTINGS as usize);
        for b in (0..self.heads.len()).rev() {
            self.block(b, &mut docs);
            for &d in docs.iter().rev() {
                if !f(d) {
                    return;
                }
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.heads.capacity() * 8 + self.gaps.capacity()
    }
}

/// Documents as a bitmap (a prefix's many terms gathered once).
struct Bitmap(Vec<u64>);

impl Bitmap {
    fn of(lists: &[&Postings], docs: usize) -> Bitmap {
        let mut bits = vec![0u64; docs.div_ceil(64)];
        let mut block = Vec::with_capacity(BLOCK_POSTINGS as usize);
        for p in lists {
            for b in 0..p.heads.len() {
                p.block(b, &mut block);
                for &d in &block {
                    bits[d as usize / 64] |= 1 << (d % 64);
                }
            }
        }
        Bitmap(bits)
    }

    fn contains(&self, doc: u32) -> bool {
        self.0[doc as usize / 64] & (1 << (doc % 64)) != 0
    }

    fn each_newest_first(&self, mut f: impl FnMut(u32) -> bool) {
        for (i, &word) in self.0.iter().enumerate().rev() {
            let mut w = word;
            while w != 0 {
                let bit = 63 - w.leading_zeros();
                if !f(i as u32 * 64 + bit) {
                    return;
                }
                w &= !(1u64 << bit);
            }
        }
    }
}

/// Where a search may look: per conversation, the seqs above `after` and
/// below `before`.
pub type Scope = HashMap<u64, (u64, u64)>;

/// How the last word constrains documents.
enum Prefix<'a> {
    /// Too many terms: only the text check applies it.
    Broad,
    Probe(Vec<&'a Postings>),
    Gathered(Bitmap),
}

impl Prefix<'_> {
    fn admits(&self, doc: u32) -> bool {
        match self {
            Prefix::Broad => true,
            Prefix::Probe(lists) => lists.iter().any(|p| p.contains(doc)),
            Prefix::Gathered(bits) => bits.contains(doc),
        }
    }
}

#[derive(Debug, Default)]
pub struct SearchIndex {
    terms: BTreeMap<Box<str>, Postings>,
    /// (conversation slot, seq | EDIT_BIT for an edit), by document number.
    docs: Vec<(u32, u32)>,
    /// Per conversation slot, its documents ascending.
    conv_docs: Vec<Vec<u32>>,
    slots: HashMap<u64, u32>,
    convs: Vec<u64>,
}

impl SearchIndex {
    /// Adds a text version of message `seq` of `conv` (false: not indexed,
    /// its seq is too high).
    pub fn add(&mut self, conv: u64, seq: u64, kind: DocKind, text: &str) -> bool {
        if seq >= SEQ_INDEXED_MAX || self.docs.len() >= u32::MAX as usize {
            return false;
        }
        let doc = self.docs.len() as u32;
        let slot = self.slot(conv);
        let flag = if kind == DocKind::Edit { EDIT_BIT } else { 0 };
        self.docs.push((slot, seq as u32 | flag));
        self.conv_docs[slot as usize].push(doc);
        let mut terms: Vec<String> = words(text)
            .map(|mut w| {
                let keep = term(&w).len();
                w.truncate(keep);
                w
            })
            .collect();
        terms.sort_unstable();
        terms.dedup();
        for t in terms {
            match self.terms.get_mut(t.as_str()) {
                Some(p) => p.push(doc),
                None => {
                    let mut p = Postings::default();
                    p.push(doc);
                    self.terms.insert(t.into_boxed_str(), p);
                }
            }
        }
        true
    }

    fn slot(&mut self, conv: u64) -> u32 {
        if let Some(&s) = self.slots.get(&conv) {
            return s;
        }
        let s = self.convs.len() as u32;
        self.convs.push(conv);
        self.conv_docs.push(Vec::new());
        self.slots.insert(conv, s);
        s
    }

    /// Up to `max` candidates for `query` within `scope`, newest document
    /// first.
    pub fn candidates(&self, query: &Query, scope: &Scope, max: usize) -> Vec<Candidate> {
        let slots: HashMap<u32, (u64, u64)> = scope
            .iter()
            .filter_map(|(conv, range)| self.slots.get(conv).map(|s| (*s, *range)))
            .collect();
        let (whole, last) = query.split();
        let mut lists = Vec::with_capacity(whole.len());
        for w in whole {
            match self.terms.get(term(w)) {
                Some(p) => lists.push(p),
                None => return Vec::new(),
            }
        }
        let prefixed = self.prefixed(term(last));
        if slots.is_empty() || prefixed.as_ref().is_some_and(Vec::is_empty) {
            return Vec::new();
        }
        lists.sort_by_key(|p| p.len);
        let scope_cost: usize = slots
            .keys()
            .map(|s| self.conv_docs[*s as usize].len())
            .sum();
        let word_cost = lists.first().map_or(usize::MAX, |p| p.len as usize);
        let prefix_cost = prefixed
            .as_ref()
            .map_or(usize::MAX, |ps| ps.iter().map(|p| p.len as usize).sum());
        let mut out = Vec::new();
        let mut keep = |doc: u32, probe: &[&Postings], prefix: &Prefix| {
            if let Some(c) = self.admitted(doc, &slots, probe, prefix) {
                out.push(c);
            }
            out.len() < max
        };
        if prefix_cost < word_cost.min(scope_cost) {
            let gathered = Bitmap::of(prefixed.as_deref().unwrap_or(&[]), self.docs.len());
            gathered.each_newest_first(|d| keep(d, &lists, &Prefix::Broad));
        } else if word_cost < scope_cost {
            let prefix = self.prefix_check(prefixed, scope_cost.min(word_cost));
            lists[0].each_newest_first(|d| keep(d, &lists[1..], &prefix));
        } else {
            let prefix = self.prefix_check(prefixed, scope_cost);
            let mut docs: Vec<u32> = slots
                .keys()
                .flat_map(|s| self.conv_docs[*s as usize].iter().copied())
                .collect();
            docs.sort_unstable();
            for &d in docs.iter().rev() {
                if !keep(d, &lists, &prefix) {
                    break;
                }
            }
        }
        out
    }

    /// `doc` as a candidate, if it is in scope and in every list probed.
    fn admitted(
        &self,
        doc: u32,
        slots: &HashMap<u32, (u64, u64)>,
        probe: &[&Postings],
        prefix: &Prefix,
    ) -> Option<Candidate> {
        let (slot, raw) = self.docs[doc as usize];
        let &(after, before) = slots.get(&slot)?;
        let seq = u64::from(raw & !EDIT_BIT);
        let admitted = seq > after
            && seq < before
            && probe.iter().all(|p| p.contains(doc))
            && prefix.admits(doc);
        let kind = if raw & EDIT_BIT != 0 {
            DocKind::Edit
        } else {
            DocKind::Sent
        };
        admitted.then(|| Candidate {
            conv: self.convs[slot as usize],
            seq,
            kind,
        })
    }

    /// How to apply the prefix to a walk of about `walk` documents: the
    /// cheaper of probing each term per document (half a block of gaps
    /// each) and gathering every posting into a bitmap once; neither when
    /// both would cost more than reading the text of the walk.
    fn prefix_check<'a>(&'a self, prefixed: Option<Vec<&'a Postings>>, walk: usize) -> Prefix<'a> {
        let Some(lists) = prefixed else {
            return Prefix::Broad;
        };
        let probe = walk.saturating_mul(lists.len()) * (BLOCK_POSTINGS as usize / 2);
        let gather = lists.iter().map(|p| p.len as usize).sum::<usize>() + self.docs.len() / 64;
        if lists.len() <= PREFIX_PROBE_TERMS_MAX && probe <= gather {
            Prefix::Probe(lists)
        } else if gather <= PREFIX_POSTINGS_MAX {
            Prefix::Gathered(Bitmap::of(&lists, self.docs.len()))
        } else {
            Prefix::Broad
        }
    }

    /// The postings of every term starting with `prefix`; `None` when
    /// there are too many to narrow anything.
    fn prefixed(&self, prefix: &str) -> Option<Vec<&Postings>> {
        let mut lists = Vec::new();
        let mut total = 0usize;
        let range = self
            .terms
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded));
        for (t, p) in range.take_while(|(t, _)| t.starts_with(prefix)) {
            let _ = t;
            total += p.len as usize;
            if lists.len() >= PREFIX_TERMS_MAX || total > PREFIX_POSTINGS_MAX {
                return None;
            }
            lists.push(p);
        }
        Some(lists)
    }

    /// Documents added.
    pub fn docs(&self) -> u64 {
        self.docs.len() as u64
    }

    /// Bytes of memory held, estimated from capacities (BTreeMap nodes
    /// counted at 16 bytes per entry beyond the entry itself).
    pub fn heap_bytes(&self) -> usize {
        let per_term = std::mem::size_of::<Box<str>>() + std::mem::size_of::<Postings>() + 16;
        let terms: usize = self
            .terms
            .iter()
            .map(|(t, p)| per_term + t.len() + p.heap_bytes())
            .sum();
        let conv_docs: usize = self.conv_docs.iter().map(|d| 24 + d.capacity() * 4).sum();
        terms
            + conv_docs
            + self.docs.capacity() * 8
            + self.convs.capacity() * 8
            + self.slots.capacity() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(convs: &[u64]) -> Scope {
        convs.iter().map(|c| (*c, (0, u64::MAX))).collect()
    }

    fn seqs(c: &[Candidate]) -> Vec<(u64, u64)> {
        c.iter().map(|c| (c.conv, c.seq)).collect()
    }

    #[test]
    fn candidates_hold_every_word_newest_first_within_the_scope() {
        let mut ix = SearchIndex::default();
        ix.add(1, 1, DocKind::Sent, "the quick brown fox");
        ix.add(2, 1, DocKind::Sent, "quick brown dogs");
        ix.add(1, 2, DocKind::Sent, "slow brown fox");
        ix.add(1, 3, DocKind::Sent, "Quick! Brownies");
        let q = Query::parse("quick bro").unwrap();
        assert_eq!(
            seqs(&ix.candidates(&q, &all(&[1, 2]), 10)),
            [(1, 3), (2, 1), (1, 1)]
        );
        assert_eq!(seqs(&ix.candidates(&q, &all(&[1]), 10)), [(1, 3), (1, 1)]);
        assert_eq!(seqs(&ix.candidates(&q, &all(&[1, 2]), 2)), [(1, 3), (2, 1)]);
        let mut before = all(&[1]);
        before.insert(1, (1, 3));
        assert!(
            ix.candidates(&q, &before, 10).is_empty(),
            "seq 1 is not above 1"
        );
        assert!(ix
            .candidates(&Query::parse("cat").unwrap(), &all(&[1, 2]), 10)
            .is_empty());
        assert!(ix.candidates(&q, &all(&[9]), 10).is_empty());
    }

    #[test]
    fn an_edit_is_a_later_document_of_the_same_message() {
        let mut ix = SearchIndex::default();
        ix.add(1, 1, DocKind::Sent, "hello");
        ix.add(1, 2, DocKind::Sent, "other");
        ix.add(1, 1, DocKind::Edit, "goodbye");
        let c = ix.candidates(&Query::parse("goodbye").unwrap(), &all(&[1]), 10);
        assert_eq!(
            c,
            [Candidate {
                conv: 1,
                seq: 1,
                kind: DocKind::Edit
            }]
        );
        // The old text still proposes it: the caller checks the current text.
        assert_eq!(
            ix.candidates(&Query::parse("hello").unwrap(), &all(&[1]), 10)
                .len(),
            1
        );
    }

    #[test]
    fn postings_round_trip_through_varints() {
        let mut p = Postings::default();
        let mut docs = vec![0u32, 1, 127, 128, 300, 16_384, 2_000_000];
        docs.extend((0..300).map(|i| 3_000_000 + i * 1000));
        docs.push(u32::MAX - 1);
        for &d in &docs {
            p.push(d);
        }
        let mut out = Vec::new();
        p.each_newest_first(|d| {
            out.push(d);
            true
        });
        out.reverse();
        assert_eq!(out, docs);
        assert!(docs.iter().all(|d| p.contains(*d)));
        assert!(![2u32, 129, 301, u32::MAX].iter().any(|d| p.contains(*d)));
    }

    #[test]
    fn a_broad_prefix_falls_back_to_every_document() {
        let mut ix = SearchIndex::default();
        for i in 0..(PREFIX_TERMS_MAX as u64 + 10) {
            ix.add(1, i + 1, DocKind::Sent, &format!("a{i}"));
        }
        let c = ix.candidates(&Query::parse("a").unwrap(), &all(&[1]), 3);
        assert_eq!(seqs(&c), [(1, 4106), (1, 4105), (1, 4104)]);
        assert!(!ix.add(1, SEQ_INDEXED_MAX, DocKind::Sent, "x"));
    }

    /// Every walk (scope, rarest word, prefix union; prefix probed or
    /// gathered) proposes exactly the documents a brute force finds.
    #[test]
    fn each_walk_agrees_with_brute_force() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let vocab: Vec<String> = (0..60)
            .map(|i| format!("{}{}", ["ab", "ac", "b"][i % 3], i))
            .collect();
        let mut ix = SearchIndex::default();
        let mut texts = Vec::new();
        let mut seq = [0u64; 8];
        for _ in 0..3000 {
            let conv = next(8);
            seq[conv as usize] += 1;
            // Zipf-ish: low indices far more often.
            let text: Vec<&str> = (0..1 + next(6))
                .map(|_| vocab[(next(60) * next(60) / 60) as usize].as_str())
                .collect();
            let text = text.join(" ");
            ix.add(conv, seq[conv as usize], DocKind::Sent, &text);
            texts.push((conv, seq[conv as usize], text));
        }
        for round in 0..400 {
            let convs: Vec<u64> = (0..1 + next(8)).map(|_| next(8)).collect();
            let scope = all(&convs);
            let n = 1 + next(3) as usize;
            let mut q: Vec<String> = (0..n)
                .map(|_| vocab[(next(60) * next(60) / 60) as usize].clone())
                .collect();
            if round % 2 == 0 {
                let last = q.last_mut().unwrap();
                last.truncate(1 + next(2) as usize);
            }
            let query = Query::parse(&q.join(" ")).unwrap();
            let want: Vec<(u64, u64)> = texts
                .iter()
                .rev()
                .filter(|(c, _, t)| scope.contains_key(c) && query.matches(t))
                .map(|(c, s, _)| (*c, *s))
                .collect();
            let got = seqs(&ix.candidates(&query, &scope, usize::MAX));
            // A superset, newest first: a broad prefix is left to the
            // text check.
            let text =
                |c: &(u64, u64)| &texts.iter().find(|(tc, ts, _)| (*tc, *ts) == *c).unwrap().2;
            let kept: Vec<(u64, u64)> = got
                .iter()
                .filter(|c| query.matches(text(c)))
                .copied()
                .collect();
            assert_eq!(kept, want, "query {q:?} in {convs:?}");
            assert!(got.windows(2).all(|w| w[0] != w[1]), "each once");
            if round % 2 == 1 {
                assert_eq!(
                    got, want,
                    "whole words only: exact, query {q:?} in {convs:?}"
                );
            }
        }
    }
}
