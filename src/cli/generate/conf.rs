//! acme-delegate.conf(5): the configuration file's page, one entry per key the reader knows.
//!
//! Design note: every section and key, with its doc, type and default, comes from
//! [`crate::config::docs::reference`], which the declarations the reader matches keys against
//! make (`config/raw.rs`); only the prose around them is written here. A test reads the page
//! back and checks it against the reader's list of keys, both ways.

use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

use crate::config::docs;

/// The page's file name.
pub(super) const FILE_NAME: &str = "acme-delegate.conf.5";

/// What the DESCRIPTION says, one paragraph per item (`…` spans set in bold).
const DESCRIPTION: &[&str] = &[
    "acme-delegate reads one file in TOML, the format of acme-dns's `config.cfg`: an acme-dns \
     configuration works unchanged. Commands are given it with `-c FILE`; the Debian package's unit \
     runs `acme-delegate serve -c /etc/acme-delegate/config.cfg`. Section and key names are \
     case-insensitive. Sections and keys marked (acme-dns) are acme-dns's; those marked (ours) are \
     acme-delegate's additions, all optional.",
    "Values: a string is written in double quotes; a list as `[\"a\", \"b\"]`, and one string counts as \
     a list of one; an integer may also be a string of digits (`port = \"443\"`, as acme-dns writes it); \
     a duration is a number of seconds or a string such as `\"30d\"`, `\"12h\"`, `\"15m\"` or `\"90s\"`; \
     `true` and `false` are written bare. An address is `host:port`, with an IPv6 address in brackets \
     (`[2001:db8::53]:53`).",
    "`acme-delegate check-config -c FILE` reads a file as the server would and names each problem by \
     its key (`section.key`), unknown sections and keys included. A running server reads the file again \
     on SIGHUP (`systemctl reload acme-delegate`): what can change while serving changes at once, and \
     the log names every other changed setting as needing a restart.",
];

/// Text with `…` spans in bold.
fn inline(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) })
        .collect()
}

/// A doc comment as one paragraph: its lines joined, each line's leading space dropped.
fn paragraph(doc: &str) -> String {
    doc.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A section's doc as the page says it: raw.rs writes "`[name]` (origin): what it is. More."
/// and the heading already names it, so this gives "What it is (origin). More."
fn section_text(name: &str, doc: &str) -> String {
    let doc = paragraph(doc);
    let doc = doc.strip_prefix(&format!("`[{name}]` ")).unwrap_or(&doc);
    let Some((origin, rest)) = doc.strip_prefix('(').and_then(|d| d.split_once("): ")) else {
        return doc.to_owned();
    };
    let (first, more) = rest.split_once(". ").map_or((rest.trim_end_matches('.'), ""), |(f, m)| (f, m));
    let mut chars = first.chars();
    let first = chars.next().map_or(String::new(), |c| c.to_uppercase().chain(chars).collect());
    format!("{first} ({origin}). {more}").trim_end().to_owned()
}

/// The page, as roff. `root` is the command (for the version and the configuration's
/// environment variable).
pub(super) fn page(root: &clap::Command) -> String {
    let mut roff = Roff::new();
    let source = format!("acme-delegate {}", super::super::version());
    roff.control("TH", ["ACME-DELEGATE.CONF", "5", &super::date(), &source, "acme-delegate"]);
    roff.control("SH", ["NAME"]).text([roman("acme-delegate.conf - configuration file of acme-delegate")]);
    roff.control("SH", ["SYNOPSIS"]).text([bold("/etc/acme-delegate/config.cfg")]);
    roff.control("SH", ["DESCRIPTION"]);
    for (i, text) in DESCRIPTION.iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text(inline(text));
    }
    roff.control("SH", ["SECTIONS AND KEYS"]);
    for section in docs::reference() {
        roff.control("SS", [format!("[{}]", section.name).as_str()]);
        roff.text(inline(&section_text(section.name, section.doc)));
        for key in &section.keys {
            roff.control("TP", []).text([bold(key.name)]);
            roff.text(inline(&paragraph(key.doc)));
            roff.control("br", []);
            let mut line = vec![italic("Type:"), roman(format!(" {}. ", key.kind.unwrap_or("not declared")))];
            line.push(italic("Default:"));
            line.push(roman(format!(" {}.", key.default.as_deref().unwrap_or("not declared"))));
            roff.text(line);
        }
    }
    let config_env = root
        .get_arguments()
        .find(|a| a.get_id() == "config")
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    if let Some(name) = &config_env {
        roff.control("SH", ["ENVIRONMENT"]);
        roff.control("TP", []).text([bold(name.as_str())]);
        roff.text([roman(
            "The configuration file, when -c is not given. With neither, the server commands run the \
                          demo configuration (see acme-delegate(1)).",
        )]);
    }
    roff.control("SH", ["FILES"]);
    roff.control("TP", []).text([bold("/etc/acme-delegate/config.cfg")]);
    roff.text([roman(
        "The packaged configuration: a conffile, mode 0640, owned by root and group acme-delegate, \
                      since it may hold secrets (registration_token, tsig_secret, a PostgreSQL password).",
    )]);
    roff.control("TP", []).text([bold("/usr/share/doc/acme-delegate/config.sample.cfg")]);
    roff.text([roman("A configuration with every section and key, each explained, with its default.")]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman("acme-delegate(1), acme-delegate-check-config(1), acme-delegate-serve(1)")]);
    roff.to_roff()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The `section.key` entries of a rendered page, read back from its roff.
    fn keys_in(page: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut section = None;
        let heading = ".SH \"SECTIONS AND KEYS\"";
        let mut lines = page.lines().skip_while(|l| *l != heading).skip(1);
        while let Some(line) = lines.next() {
            if line.starts_with(".SH ") {
                break;
            }
            if let Some(name) = line.strip_prefix(".SS [").and_then(|l| l.strip_suffix(']')) {
                section = Some(name.to_owned());
            } else if line == ".TP" {
                let key = lines.next().unwrap_or_default();
                let key = key.strip_prefix("\\fB").and_then(|k| k.strip_suffix("\\fR")).unwrap_or(key);
                let section = section.as_deref().unwrap_or("(none)");
                keys.push(format!("{section}.{}", key.replace("\\-", "-")));
            }
        }
        keys
    }

    /// Every key the reader knows is in the page, and every key in the page is one the reader
    /// knows: the page is checked against the parser's own list, not against the reference it
    /// was written from.
    #[test]
    fn conf_page_lists_exactly_the_keys_the_reader_knows() {
        let page = page(&super::super::command());
        let in_page = keys_in(&page);
        let known = docs::known_keys();
        let page_set: BTreeSet<&String> = in_page.iter().collect();
        assert_eq!(page_set.len(), in_page.len(), "a key is listed twice: {in_page:?}");
        let known_set: BTreeSet<&String> = known.iter().collect();
        let missing: Vec<_> = known_set.difference(&page_set).collect();
        let unknown: Vec<_> = page_set.difference(&known_set).collect();
        assert!(missing.is_empty(), "known to the reader but not in acme-delegate.conf(5): {missing:?}");
        assert!(unknown.is_empty(), "in acme-delegate.conf(5) but not known to the reader: {unknown:?}");
        assert!(known.len() > 70, "{} keys", known.len());
    }

    /// Each entry gives a type and a default; the page has FILES and ENVIRONMENT sections.
    #[test]
    fn conf_page_gives_type_default_files_and_environment() {
        let page = page(&super::super::command());
        assert!(page.starts_with(".TH ACME-DELEGATE.CONF 5 20"), "{}", &page[..80]);
        assert!(page.contains("\n.SS [general]\nDNS listeners and the zone (acme\\-dns).\n"));
        assert_eq!(page.matches("\\fIType:\\fR").count(), docs::known_keys().len());
        assert_eq!(page.matches("\\fIDefault:\\fR").count(), docs::known_keys().len());
        assert!(!page.contains("not declared"));
        // A default from config/defaults.rs, rendered as the file writes it.
        assert!(page.contains(&format!("{}.", crate::config::defaults::EDNS_UDP_SIZE)));
        assert!(page.contains("\"30d\""), "audit_retention's default");
        for section in [".SH ENVIRONMENT\n", ".SH FILES\n", ".SH \"SEE ALSO\"\n"] {
            assert!(page.contains(section), "no {section}");
        }
        assert!(page.contains("\\fBACME_DELEGATE_CONFIG\\fR"));
    }
}
