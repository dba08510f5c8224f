//! Words as search sees them: runs of Unicode letters and digits,
//! lowercased. Standard library only (the search bench includes this file
//! by path).
//!
//! Lives on: any core (pure functions).

/// A word longer than this is indexed by its first bytes (cut at a char
/// boundary); matching still compares the whole word.
pub const TERM_BYTES_MAX: usize = 64;

/// The words of `text`, lowercased, in order (repeats kept).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The index key of a (lowercased) word: at most `TERM_BYTES_MAX` bytes.
pub fn term(word: &str) -> &str {
    if word.len() <= TERM_BYTES_MAX {
        return word;
    }
    let mut end = TERM_BYTES_MAX;
    while !word.is_char_boundary(end) {
        end -= 1;
    }
    &word[..end]
}

/// A parsed query: every word must be in the text; the last may be a
/// prefix of a text word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub words: Vec<String>,
}

impl Query {
    /// The query of `q`; `None` when it holds no word.
    pub fn parse(q: &str) -> Option<Query> {
        let words: Vec<String> = words(q).collect();
        (!words.is_empty()).then_some(Query { words })
    }

    /// The words that must appear whole, and the last (a prefix).
    pub fn split(&self) -> (&[String], &str) {
        let (last, whole) = self.words.split_last().expect("a query has a word");
        (whole, last)
    }

    /// Whether `text` matches: each word but the last equals a word of
    /// the text, the last starts one.
    pub fn matches(&self, text: &str) -> bool {
        let found: Vec<String> = words(text).collect();
        let (whole, last) = self.split();
        whole.iter().all(|w| found.iter().any(|f| f == w))
            && found.iter().any(|f| f.starts_with(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_letter_and_digit_runs_lowercased() {
        let w: Vec<String> = words("Héllo, WORLD! it's 2026—Ünïcode_ok 東京").collect();
        assert_eq!(
            w,
            ["héllo", "world", "it", "s", "2026", "ünïcode", "ok", "東京"]
        );
    }

    #[test]
    fn the_last_word_may_be_a_prefix_the_others_are_whole() {
        let q = Query::parse("quick BRO").unwrap();
        assert!(q.matches("The quick brown fox"));
        assert!(
            !q.matches("The quickest brown fox"),
            "quick is a whole word"
        );
        assert!(!q.matches("quick fox"));
        assert!(Query::parse(" ,.! ").is_none());
    }

    #[test]
    fn long_words_are_indexed_by_their_first_bytes_at_a_char_boundary() {
        let long = "é".repeat(40); // 80 bytes
        let t = term(&long);
        assert!(t.len() <= TERM_BYTES_MAX && t.len() >= TERM_BYTES_MAX - 1);
        assert!(long.starts_with(t));
        assert_eq!(term("short"), "short");
    }
}
