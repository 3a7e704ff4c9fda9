//! The known name a mistyped one most likely meant ("did you mean `train`?"), for the names
//! clap does not check: config sections and keys, environment variables, metrics fields.

/// How alike (normalised Damerau–Levenshtein) a name must be to a known one to be offered:
/// `COOP_LOAD` for `COOP_LOADS`, `trian` for `train`; not `FOO` for `COOP`.
pub const ALIKE: f64 = 0.7;

/// The name of `known` closest to `word`, where it is at least [`ALIKE`] alike (on a tie, the
/// last of them).
pub fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|n| (strsim::normalized_damerau_levenshtein(word, n), n))
        .filter(|(alike, _)| *alike >= ALIKE)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_a_close_name_only() {
        let sections = ["model", "data", "train", "sweep", "monitor", "gpu"];
        assert_eq!(closest("trian", sections), Some("train"));
        assert_eq!(closest("swep", sections), Some("sweep"));
        assert_eq!(closest("landscape", sections), None);
        assert_eq!(closest("COOP_LOAD", ["COOP", "COOP_LOADS"]), Some("COOP_LOADS"));
        assert_eq!(closest("FOO", ["COOP"]), None);
    }
}
