//! Chat-like message text for the benchmarks.
//!
//! A fixed padding sentence would flatter anything that stores a text's distinct
//! pieces once (the search blocks' trigram index does), so the chat workloads send
//! generated text with the statistics of chat: word frequencies follow Zipf's law over
//! a vocabulary of 8,000 made-up words (one to three syllables), message lengths are
//! log-normal (median 6 words, a long tail), and one message in seven is Chinese-like
//! (4–30 characters drawn by Zipf's law from 3,000 CJK ideographs). The average body is
//! about 65 bytes. The text is generated from a seed, so runs are repeatable.

use rand::{Rng, SeedableRng, distributions::WeightedIndex, prelude::Distribution, rngs::StdRng};

const ONSETS: [&str; 27] = [
    "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y", "ch", "sh", "th",
    "st", "br", "pl", "tr", "gr",
];
const VOWELS: [&str; 11] = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "ee", "oo", "y"];
const CODAS: [&str; 13] = ["", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "ll", "rt"];
const ENDINGS: [&str; 5] = [".", "?", "!", "", " :)"];
const VOCABULARY: usize = 8_000;
const IDEOGRAPHS: u32 = 3_000;

/// A source of chat-like message bodies.
pub struct ChatText {
    words: Vec<String>,
    word_rank: WeightedIndex<f64>,
    ideograph_rank: WeightedIndex<f64>,
    rng: StdRng,
}

impl ChatText {
    /// The same vocabulary for every seed; `seed` chooses the messages.
    pub fn new(seed: u64) -> Self {
        let mut vocabulary_rng = StdRng::seed_from_u64(7);
        let mut words = Vec::with_capacity(VOCABULARY);
        let mut seen = std::collections::HashSet::new();
        while words.len() < VOCABULARY {
            let syllables = [1, 1, 1, 2, 2, 3][vocabulary_rng.gen_range(0..6)];
            let word: String = (0..syllables)
                .map(|_| {
                    let pick = |parts: &[&'static str], rng: &mut StdRng| parts[rng.gen_range(0..parts.len())];
                    [
                        pick(&ONSETS, &mut vocabulary_rng),
                        pick(&VOWELS, &mut vocabulary_rng),
                        pick(&CODAS, &mut vocabulary_rng),
                    ]
                    .concat()
                })
                .collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let zipf = |n: usize| WeightedIndex::new((1..=n).map(|rank| 1.0 / rank as f64)).ok();
        let (Some(word_rank), Some(ideograph_rank)) = (zipf(VOCABULARY), zipf(IDEOGRAPHS as usize)) else {
            unreachable!("Zipf weights are positive and finite")
        };
        Self { words, word_rank, ideograph_rank, rng: StdRng::seed_from_u64(seed) }
    }

    /// The next message body.
    pub fn message(&mut self) -> String {
        if self.rng.gen_ratio(1, 7) {
            let length = self.rng.gen_range(4..=30);
            return (0..length)
                .filter_map(|_| char::from_u32(0x4E00 + self.ideograph_rank.sample(&mut self.rng) as u32))
                .collect();
        }
        // Log-normal word count: exp(N(1.9, 0.7)), at least one word.
        let normal = {
            let (u1, u2): (f64, f64) = (self.rng.gen_range(f64::EPSILON..1.0), self.rng.gen_range(0.0..1.0));
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        };
        let count = ((1.9 + 0.7 * normal).exp() as usize).clamp(1, 200);
        let mut text = String::new();
        for i in 0..count {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(&self.words[self.word_rank.sample(&mut self.rng)]);
        }
        if let Some(first) = text.get(..1) {
            let upper = first.to_ascii_uppercase();
            text.replace_range(..1, &upper);
        }
        text.push_str(ENDINGS[self.rng.gen_range(0..ENDINGS.len())]);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_look_like_chat_and_repeat_with_the_seed() {
        let mut text = ChatText::new(1);
        let bodies: Vec<String> = (0..2_000).map(|_| text.message()).collect();
        let average = bodies.iter().map(String::len).sum::<usize>() as f64 / bodies.len() as f64;
        assert!((40.0..100.0).contains(&average), "average body {average} bytes");
        let chinese = bodies.iter().filter(|b| !b.is_ascii()).count();
        assert!((150..450).contains(&chinese), "{chinese} of 2000 Chinese-like");
        let distinct: std::collections::HashSet<&String> = bodies.iter().collect();
        assert!(distinct.len() > 1_900, "bodies vary: {} distinct", distinct.len());
        assert_eq!(ChatText::new(1).message(), bodies[0]);
        assert_ne!(ChatText::new(2).message(), bodies[0]);
    }
}
