//! The reference of every section and key, as `raw.rs` declares them: for the
//! `acme-delegate.conf(5)` page (`cli/generate`).
//!
//! Design note: nothing here is written by hand. Each `section!` declaration in `raw.rs` gives
//! its doc comments, and each key its doc comment, its type and its default, as text; the
//! macro that makes the reader's serde struct makes the [`Section`] too, so a key cannot be
//! read without appearing in the page, nor appear without being read. The helpers below only
//! format defaults the way a value is written in the file.

/// One `[section]` of the file.
#[derive(Clone, Debug)]
pub(crate) struct Section {
    /// Its name, as written between brackets.
    pub(crate) name: &'static str,
    /// Its doc comment, one line per line of the comment.
    pub(crate) doc: &'static str,
    /// Its keys, in declaration order.
    pub(crate) keys: Vec<Key>,
}

/// One key of a section.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    /// Its name within the section.
    pub(crate) name: &'static str,
    /// Its doc comment, one line per line of the comment.
    pub(crate) doc: &'static str,
    /// What value it takes; `None` when the declaration does not say (a test refuses that).
    pub(crate) kind: Option<&'static str>,
    /// What applies when it is absent, as text; `None` when the declaration does not say.
    pub(crate) default: Option<String>,
}

/// Every section the reader knows, with its keys, in the file's usual order.
pub(crate) fn reference() -> Vec<Section> {
    super::raw::File::reference()
}

/// Every `section.key` the reader accepts: the list the parser itself matches keys against.
#[cfg(test)]
pub(crate) fn known_keys() -> Vec<String> {
    super::raw::File::SECTIONS
        .iter()
        .flat_map(|(section, keys)| keys.iter().map(move |key| format!("{section}.{key}")))
        .collect()
}

/// A string default as written in the file: in double quotes.
pub(super) fn quote(text: &str) -> String {
    format!("\"{text}\"")
}

/// A duration default as written in the file: the largest unit that divides it (`"30d"`).
pub(super) fn duration(seconds: u64) -> String {
    let (n, unit) = match seconds {
        0 => (0, "s"),
        s if s % 86_400 == 0 => (s / 86_400, "d"),
        s if s % 3600 == 0 => (s / 3600, "h"),
        s if s % 60 == 0 => (s / 60, "m"),
        s => (s, "s"),
    };
    quote(&format!("{n}{unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defaults read as the reader reads a duration back.
    #[test]
    fn durations_use_the_largest_unit() {
        assert_eq!(duration(30 * 86_400), "\"30d\"");
        assert_eq!(duration(3600), "\"1h\"");
        assert_eq!(duration(90), "\"90s\"");
        assert_eq!(duration(120), "\"2m\"");
    }

    /// Every declared key says what it takes and what applies without it, and has a doc line.
    #[test]
    fn every_key_has_a_doc_a_type_and_a_default() {
        for section in reference() {
            assert!(!section.doc.trim().is_empty(), "[{}] has no doc comment in config/raw.rs", section.name);
            for key in &section.keys {
                let name = format!("{}.{}", section.name, key.name);
                assert!(!key.doc.trim().is_empty(), "{name} has no doc comment in config/raw.rs");
                assert!(key.kind.is_some(), "{name} has no `: \"type\" = default` in config/raw.rs");
                assert!(key.default.is_some(), "{name} has no default in config/raw.rs");
            }
        }
    }

    /// The reference and the parser's list are the same keys, in the same order.
    #[test]
    fn reference_lists_the_known_keys() {
        let listed: Vec<String> = reference()
            .iter()
            .flat_map(|s| s.keys.iter().map(move |k| format!("{}.{}", s.name, k.name)))
            .collect();
        assert_eq!(listed, known_keys());
    }
}
