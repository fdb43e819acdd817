//! The Rust names prost-build gives protobuf types, so that generated impls
//! can name the structs it wrote.

use heck::{ToSnakeCase, ToUpperCamelCase};

/// The Rust path of the message `full_name` (fully qualified, no leading
/// dot), written inside the module prost-build generates for package
/// `from_package`: relative, with `super::` to climb out of the package as
/// prost-build does for cross-package field types. Enclosing messages become
/// snake_case modules, the message itself an UpperCamelCase type.
pub(crate) fn rust_path(from_package: &str, full_name: &str) -> String {
    let mut here = from_package.split('.').filter(|s| !s.is_empty()).peekable();
    let mut target: Vec<&str> = full_name.split('.').collect();
    let type_name = target.pop().unwrap_or_default();
    let mut target = target.into_iter().peekable();
    while here.peek().is_some() && here.peek() == target.peek() {
        here.next();
        target.next();
    }
    let mut parts: Vec<String> = here.map(|_| "super".to_owned()).collect();
    parts.extend(target.map(module_ident));
    parts.push(type_ident(type_name));
    parts.join("::")
}

/// A package segment or an enclosing message as a Rust module name.
fn module_ident(name: &str) -> String {
    sanitize(name.to_snake_case())
}

/// A message name as a Rust type name.
fn type_ident(name: &str) -> String {
    sanitize(name.to_upper_camel_case())
}

/// Makes an identifier usable in Rust the way prost-build does: keywords
/// become raw identifiers, except the few that cannot be raw, which get a
/// trailing underscore; a leading digit gets a leading underscore.
fn sanitize(ident: String) -> String {
    const RAW: &[&str] = &[
        "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn", "else", "enum",
        "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod", "move",
        "mut", "override", "priv", "pub", "ref", "return", "static", "struct", "trait", "true", "try", "type",
        "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    ];
    const SUFFIXED: &[&str] = &["_", "crate", "extern", "self", "Self", "super"];
    if RAW.contains(&ident.as_str()) {
        format!("r#{ident}")
    } else if SUFFIXED.contains(&ident.as_str()) {
        format!("{ident}_")
    } else if ident.starts_with(|c: char| c.is_numeric()) {
        format!("_{ident}")
    } else {
        ident
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_within_a_package() {
        assert_eq!(rust_path("market.v1", "market.v1.ReserveSlot"), "ReserveSlot");
        assert_eq!(rust_path("market.v1", "market.v1.ReserveSlot.Window"), "reserve_slot::Window");
        assert_eq!(rust_path("market.v1", "market.v1.HTTPRequest.inner_part"), "http_request::InnerPart");
        assert_eq!(rust_path("", "Top.Nested"), "top::Nested");
    }

    #[test]
    fn paths_across_packages() {
        assert_eq!(rust_path("market.v1", "market.common.Money"), "super::common::Money");
        assert_eq!(rust_path("market.v1", "billing.v1.Invoice"), "super::super::billing::v1::Invoice");
        assert_eq!(rust_path("", "a.B"), "a::B");
        assert_eq!(rust_path("a", "B"), "super::B");
    }

    #[test]
    fn keywords_are_escaped() {
        assert_eq!(rust_path("p", "p.type.Self"), "r#type::Self_");
        assert_eq!(rust_path("p", "p.self.crate"), "self_::Crate");
    }
}
