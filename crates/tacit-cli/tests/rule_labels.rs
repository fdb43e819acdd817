//! The rule labels of docs/PROTOCOL.md and the checks of `tacit conformance`
//! cannot drift apart: every label a check names is a rule of the spec, every
//! `[label]` the spec refers to is defined, and no label is defined twice.

use std::collections::BTreeMap;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn spec() -> String {
    std::fs::read_to_string(root().join("docs/PROTOCOL.md")).unwrap()
}

/// Whether `label` has the shape of a rule label: `section.slug`, lowercase
/// letters, digits and dashes.
fn is_label(label: &str) -> bool {
    let Some((section, slug)) = label.split_once('.') else { return false };
    !section.is_empty()
        && section.chars().all(|c| c.is_ascii_lowercase())
        && !slug.is_empty()
        && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Every `open label close` in `text` with a label shape, with what follows it.
fn occurrences<'a>(text: &'a str, open: &str, close: &str) -> Vec<(&'a str, &'a str)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(open) {
        let after = &rest[at + open.len()..];
        if let Some(end) = after.find(close) {
            let label = &after[..end];
            if is_label(label) {
                found.push((label, &after[end + close.len()..]));
            }
        }
        rest = after;
    }
    found
}

/// The rules the spec defines: a bold label (`**[hs.refusal-sent]**`)
/// followed by the rule's text (a space and no lower-case word) or the end
/// of the line — not by punctuation or words continuing a sentence (a bold
/// reference) — with how often each is defined.
fn defined(spec: &str) -> BTreeMap<&str, usize> {
    let mut rules = BTreeMap::new();
    for (label, after) in occurrences(spec, "**[", "]**") {
        let defines = match after.chars().next() {
            None | Some('\n') => true,
            Some(' ') => !after[1..].starts_with(|c: char| c.is_ascii_lowercase()),
            Some(_) => false,
        };
        if defines {
            *rules.entry(label).or_insert(0) += 1;
        }
    }
    rules
}

#[test]
fn every_rule_is_defined_once_and_every_reference_resolves() {
    let spec = spec();
    let rules = defined(&spec);
    assert!(rules.len() > 100, "only {} rules found: the label syntax changed?", rules.len());
    let twice: Vec<_> = rules.iter().filter(|(_, count)| **count > 1).map(|(label, _)| *label).collect();
    assert!(twice.is_empty(), "rules defined more than once: {twice:?}");
    let mut unknown: Vec<&str> = occurrences(&spec, "[", "]")
        .into_iter()
        .map(|(label, _)| label)
        .filter(|label| !rules.contains_key(label))
        .collect();
    unknown.dedup();
    assert!(unknown.is_empty(), "references to rules the spec does not define: {unknown:?}");
}

/// The label each check names, from the conformance sources: the second
/// string of every `check!(section, "id", "rule", ..)`,
/// `checks.add(section, "id", "rule", ..)` and
/// `CheckReport::named("id", "rule", ..)`.
fn check_rules() -> Vec<(String, String)> {
    let dir = root().join("crates/tacit-cli/src/conformance");
    let mut rules = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for opener in ["check!(", "checks.add(", "CheckReport::named("] {
            for (at, _) in source.match_indices(opener) {
                let call = &source[at + opener.len()..];
                let call = &call[..call.find(')').unwrap_or(call.len())];
                let strings: Vec<&str> = call.split('"').skip(1).step_by(2).collect();
                if let [_id, rule, ..] = strings[..]
                    && is_label(rule)
                {
                    rules.push((file.clone(), rule.to_owned()));
                }
            }
        }
    }
    rules
}

#[test]
fn every_check_names_a_rule_of_the_spec() {
    let spec = spec();
    let rules = defined(&spec);
    let checks = check_rules();
    assert!(checks.len() > 40, "only {} checks found: the check syntax changed?", checks.len());
    let missing: Vec<_> = checks.iter().filter(|(_, rule)| !rules.contains_key(rule.as_str())).collect();
    assert!(missing.is_empty(), "checks naming rules PROTOCOL.md does not define: {missing:?}");
}
