//! `cargo run --release -- [MESSAGES]` (default 1,000,000): generates
//! messages (Zipf-distributed words over 10,000 conversations, 4–16
//! words each, seeded), indexes them with chatd's own index and with
//! tantivy, then times the same queries on both: p50/p99 per query kind,
//! build rate, and index bytes per message. Prints one table.
//!
//! Both return the 20 newest matches within the conversations searched.
//! chatd's index checks each candidate against the message's current
//! text (the server reads it from its cache or log; here from memory).

#[path = "../../../engine/src/search/mod.rs"]
mod search;

use std::time::{Duration, Instant};

use search::index::{DocKind, Scope, SearchIndex};
use search::words::Query;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Query as TQuery, RegexQuery, TermQuery, TermSetQuery};
use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED};
use tantivy::{doc, Index, Order, Term};

const CONVS: u64 = 10_000;
const VOCABULARY: usize = 30_000;
const QUERIES: usize = 2_000;
const LIMIT: usize = 20;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Corpus {
    words: Vec<String>,
    cumulative: Vec<f64>,
    messages: Vec<(u64, u64, String)>, // conv, seq, text
}

fn corpus(n: usize, rng: &mut Rng) -> Corpus {
    let words: Vec<String> = (0..VOCABULARY)
        .map(|_| {
            let len = 3 + rng.below(7);
            (0..len)
                .map(|_| (b'a' + rng.below(26) as u8) as char)
                .collect()
        })
        .collect();
    let mut total = 0.0;
    let cumulative: Vec<f64> = (0..VOCABULARY)
        .map(|i| {
            total += 1.0 / (i as f64 + 1.0);
            total
        })
        .collect();
    let mut c = Corpus {
        words,
        cumulative,
        messages: Vec::with_capacity(n),
    };
    let mut seqs = vec![0u64; CONVS as usize];
    for _ in 0..n {
        let conv = rng.below(CONVS);
        seqs[conv as usize] += 1;
        let len = 4 + rng.below(13);
        let text: Vec<&str> = (0..len).map(|_| c.zipf(rng)).collect();
        let text = text.join(" ");
        c.messages.push((conv + 1, seqs[conv as usize], text));
    }
    c
}

impl Corpus {
    fn zipf(&self, rng: &mut Rng) -> &str {
        let x = rng.unit() * self.cumulative[VOCABULARY - 1];
        let i = self
            .cumulative
            .partition_point(|c| *c < x)
            .min(VOCABULARY - 1);
        &self.words[i]
    }
}

/// One query: its text and the conversations searched.
struct Ask {
    kind: &'static str,
    q: String,
    convs: Vec<u64>,
}

fn asks(c: &Corpus, rng: &mut Rng) -> Vec<Ask> {
    let mut out = Vec::new();
    for i in 0..QUERIES {
        // Words of a real message, so that every query has a match.
        let (conv, _, text) = &c.messages[rng.below(c.messages.len() as u64) as usize];
        let words: Vec<&str> = text.split(' ').collect();
        let mut pick = || words[rng.below(words.len() as u64) as usize];
        let (a, b) = (pick(), pick());
        let mut user_convs: Vec<u64> = (0..19).map(|_| 1 + rng.below(CONVS)).collect();
        user_convs.push(*conv);
        let ask = match i % 3 {
            0 => Ask {
                kind: "1 word, 1 conversation",
                q: a.into(),
                convs: vec![*conv],
            },
            1 => Ask {
                kind: "2 words, 20 conversations",
                q: format!("{a} {b}"),
                convs: user_convs,
            },
            _ => Ask {
                kind: "3-letter prefix, 20 conversations",
                q: a[..3].to_owned(),
                convs: user_convs,
            },
        };
        out.push(ask);
    }
    out
}

fn ours_search(ix: &SearchIndex, c: &Corpus, ask: &Ask) -> usize {
    let q = Query::parse(&ask.q).unwrap();
    let scope: Scope = ask.convs.iter().map(|c| (*c, (0, u64::MAX))).collect();
    let cands = ix.candidates(&q, &scope, 4_096);
    let mut found = 0;
    for cand in cands.iter().take(2_000) {
        // The server reads the message by (conv, seq); the bench keeps
        // the document number as the seq's place in `messages`.
        let text = &c.messages[cand.seq as usize].2;
        if q.matches(text) {
            found += 1;
            if found == LIMIT {
                break;
            }
        }
    }
    found
}

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().unwrap());
    let mut rng = Rng(0x5eed_1234_abcd);
    let c = corpus(n, &mut rng);
    let asks = asks(&c, &mut rng);
    let text_bytes: usize = c.messages.iter().map(|m| m.2.len()).sum();
    println!(
        "messages {n}, conversations {CONVS}, text {:.1} MB ({} B/message)",
        text_bytes as f64 / 1e6,
        text_bytes / n
    );

    // chatd's index: the document's seq field holds its place, so the
    // check can find the text (the server keys by the real seq).
    let t = Instant::now();
    let mut ix = SearchIndex::default();
    for (i, (conv, _, text)) in c.messages.iter().enumerate() {
        ix.add(*conv, i as u64, DocKind::Sent, text);
    }
    let ours_build = t.elapsed();
    let ours_bytes = ix.heap_bytes();

    let dir = tempfile::tempdir().unwrap();
    let mut sb = Schema::builder();
    let text_opts = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_index_option(IndexRecordOption::Basic),
    );
    let body = sb.add_text_field("body", text_opts);
    let conv_f = sb.add_u64_field("conv", INDEXED | FAST);
    let ts_f = sb.add_u64_field("ts", FAST);
    let index = Index::create_in_dir(dir.path(), sb.build()).unwrap();
    let t = Instant::now();
    let mut w = index.writer_with_num_threads(1, 64_000_000).unwrap();
    for (i, (conv, _, text)) in c.messages.iter().enumerate() {
        w.add_document(doc!(body => text.as_str(), conv_f => *conv, ts_f => i as u64))
            .unwrap();
    }
    w.commit().unwrap();
    w.wait_merging_threads().unwrap();
    let tantivy_build = t.elapsed();
    let tantivy_bytes = dir_bytes(dir.path());
    let reader = index.reader().unwrap();
    let searcher = reader.searcher();

    let tantivy_search = |ask: &Ask| -> usize {
        let words: Vec<String> = search::words::words(&ask.q).collect();
        let (last, whole) = words.split_last().unwrap();
        let mut parts: Vec<Box<dyn TQuery>> = whole
            .iter()
            .map(|w| {
                Box::new(TermQuery::new(
                    Term::from_field_text(body, w),
                    IndexRecordOption::Basic,
                )) as Box<dyn TQuery>
            })
            .collect();
        parts.push(Box::new(
            RegexQuery::from_pattern(&format!("{last}.*"), body).unwrap(),
        ));
        let terms: Vec<Term> = ask
            .convs
            .iter()
            .map(|c| Term::from_field_u64(conv_f, *c))
            .collect();
        parts.push(Box::new(TermSetQuery::new(terms)));
        let q = BooleanQuery::intersection(parts);
        let top = TopDocs::with_limit(LIMIT).order_by_fast_field::<u64>("ts", Order::Desc);
        searcher.search(&q, &top).unwrap().len()
    };

    let kinds = [
        "1 word, 1 conversation",
        "2 words, 20 conversations",
        "3-letter prefix, 20 conversations",
    ];
    println!("| engine | query | p50 µs | p99 µs | mean hits |");
    println!("|---|---|---|---|---|");
    let mut agree = 0;
    for kind in kinds {
        for (name, which) in [("chatd index", 0), ("tantivy 0.22", 1)] {
            let mut times = Vec::new();
            let mut hits = 0;
            for ask in asks.iter().filter(|a| a.kind == kind) {
                let t = Instant::now();
                let h = if which == 0 {
                    ours_search(&ix, &c, ask)
                } else {
                    tantivy_search(ask)
                };
                times.push(t.elapsed());
                hits += h;
            }
            let m = hits as f64 / times.len() as f64;
            println!(
                "| {name} | {kind} | {:.0} | {:.0} | {m:.1} |",
                percentile(&mut times, 0.5),
                percentile(&mut times, 0.99)
            );
        }
    }
    for ask in &asks {
        agree += usize::from(ours_search(&ix, &c, ask) == tantivy_search(ask));
    }
    println!();
    println!("| engine | build (messages/s) | index bytes per message |");
    println!("|---|---|---|");
    println!(
        "| chatd index (memory) | {:.0} | {:.1} |",
        n as f64 / ours_build.as_secs_f64(),
        ours_bytes as f64 / n as f64
    );
    println!(
        "| tantivy 0.22 (disk, 1 writer thread, one commit) | {:.0} | {:.1} |",
        n as f64 / tantivy_build.as_secs_f64(),
        tantivy_bytes as f64 / n as f64
    );
    println!("hit counts agree on {agree} of {} queries", asks.len());
}
