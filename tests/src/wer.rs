//! Word error rate: word-level edit distance (substitutions, insertions, deletions) over the
//! reference's word count, after lower-casing and dropping punctuation.

/// The words of `text`, lower case, punctuation dropped (apostrophes kept).
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance between `reference` and `hypothesis`.
pub fn word_errors(reference: &str, hypothesis: &str) -> usize {
    let r = words(reference);
    let h = words(hypothesis);
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let substitution = diagonal + usize::from(rw != hw);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[h.len()]
}

/// Corpus word error rate of `(reference, hypothesis)` pairs: all errors over all reference
/// words.
pub fn word_error_rate<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> f64 {
    let (mut errors, mut total) = (0usize, 0usize);
    for (reference, hypothesis) in pairs {
        errors += word_errors(reference, hypothesis);
        total += words(reference).len();
    }
    errors as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_substitutions_insertions_and_deletions() {
        assert_eq!(word_errors("What time is it?", "what time is it"), 0);
        assert_eq!(word_errors("what time is it", "what tame is it"), 1);
        assert_eq!(word_errors("what time is it", "what is it"), 1);
        assert_eq!(word_errors("what time is it", "so what time is it now"), 2);
        let wer = word_error_rate([("a b c d", "a b c d"), ("e f g h", "e x g")]);
        assert!((wer - 0.25).abs() < 1e-9, "{wer}");
    }
}
