//! Normal forms of the descriptor values that enter an IntentId's canonical
//! form: `json_name` and `default_value`.
//!
//! Compilers disagree on how they spell these values (protoc writes a float
//! default `1e10` as `1e+10`, protox as `10000000000`; bytes defaults are
//! C-escaped with octal or hex escapes), so the canonical form never uses the
//! spelling: it uses the value. The rules are in `docs/PROTOCOL.md`
//! ("Canonical form", rules `id.json-name` and `id.default-value`).

use std::fmt::Write as _;

use prost_types::field_descriptor_proto::Type;

/// The JSON name protobuf derives from a field name when `json_name` is not
/// given: underscores dropped, the letter after each underscore upper-cased
/// (protoc's `ToJsonName`).
pub(crate) fn default_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper_next = false;
    for c in name.chars() {
        if c == '_' {
            upper_next = true;
        } else if upper_next {
            out.extend(c.to_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `text` with `\` as `\\` and a line feed as `\n`, all else verbatim:
/// the escaping of string defaults and JSON names.
pub(crate) fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes a JSON name escaped as [`push_escaped`] does, and a space as `\s`,
/// so that the name stays one token.
pub(crate) fn push_json_name(out: &mut String, json_name: &str) {
    for part in json_name.split(' ').enumerate() {
        if part.0 > 0 {
            out.push_str("\\s");
        }
        push_escaped(out, part.1);
    }
}

/// The normal form of a field's `default_value`, or `None` if the value does
/// not parse as the field's type.
pub(crate) fn normal_default(ty: Type, value: &str) -> Option<String> {
    match ty {
        Type::Double => parse_float(value).map(|v| float_text(v, v.is_sign_negative())),
        Type::Float => parse_float(value).map(|v| {
            // The value of the field's type: rounded to single precision, and
            // printed as the shortest decimal that reads back as that float.
            #[allow(clippy::cast_possible_truncation)]
            let single = v as f32;
            if single.is_nan() || single.is_infinite() {
                float_text(f64::from(single), single.is_sign_negative())
            } else {
                single.to_string()
            }
        }),
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => {
            parse_integer(value).filter(|v| i32::try_from(*v).is_ok()).map(|v| v.to_string())
        }
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => {
            parse_integer(value).filter(|v| i64::try_from(*v).is_ok()).map(|v| v.to_string())
        }
        Type::Uint32 | Type::Fixed32 => {
            parse_integer(value).filter(|v| u32::try_from(*v).is_ok()).map(|v| v.to_string())
        }
        Type::Uint64 | Type::Fixed64 => {
            parse_integer(value).filter(|v| u64::try_from(*v).is_ok()).map(|v| v.to_string())
        }
        Type::Bool => matches!(value, "true" | "false").then(|| value.to_owned()),
        Type::String => {
            let mut out = String::with_capacity(value.len());
            push_escaped(&mut out, value);
            Some(out)
        }
        Type::Bytes => c_unescape(value).map(|raw| {
            let mut out = String::with_capacity(2 * raw.len());
            for byte in raw {
                let _ = write!(out, "{byte:02x}");
            }
            out
        }),
        // An enum default is a value name, which compilers write as declared.
        Type::Enum => (!value.is_empty()).then(|| value.to_owned()),
        // Message and group fields have no default.
        Type::Message | Type::Group => None,
    }
}

/// `inf`, `-inf`, `nan`, or the shortest round-trip decimal without exponent.
fn float_text(value: f64, negative: bool) -> String {
    if value.is_nan() {
        "nan".to_owned()
    } else if value.is_infinite() {
        if negative { "-inf".to_owned() } else { "inf".to_owned() }
    } else {
        value.to_string()
    }
}

/// Parses a float default as compilers write it: decimal with an optional
/// exponent, or `inf` / `-inf` / `nan` in any case (also `infinity`).
fn parse_float(value: &str) -> Option<f64> {
    let lower = value.trim().to_ascii_lowercase();
    let (negative, magnitude) = match lower.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, lower.strip_prefix('+').unwrap_or(&lower)),
    };
    let parsed = match magnitude {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        digits if digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-')) => {
            digits.parse::<f64>().ok()?
        }
        _ => return None,
    };
    Some(if negative { -parsed } else { parsed })
}

/// Parses an integer default: decimal, or `0x` hex / leading-zero octal as the
/// protobuf language writes them, with an optional sign.
fn parse_integer(value: &str) -> Option<i128> {
    let value = value.trim();
    let (negative, magnitude) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let parsed = if let Some(hex) = magnitude.strip_prefix("0x").or_else(|| magnitude.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else if magnitude.len() > 1 && magnitude.starts_with('0') {
        u64::from_str_radix(&magnitude[1..], 8).ok()?
    } else if !magnitude.is_empty() && magnitude.bytes().all(|b| b.is_ascii_digit()) {
        magnitude.parse::<u64>().ok()?
    } else {
        return None;
    };
    let parsed = i128::from(parsed);
    Some(if negative { -parsed } else { parsed })
}

/// Undoes the C escaping of a bytes default: `\n \r \t \v \f \a \b \\ \' \" \?`,
/// octal `\NNN` (1–3 digits) and hex `\xHH` (1–2 digits). Other characters
/// stand for their UTF-8 bytes.
fn c_unescape(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let escape = *bytes.get(i)?;
        i += 1;
        let simple = match escape {
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'f' => Some(0x0c),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'\\' | b'\'' | b'"' | b'?' => Some(escape),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
        } else if escape == b'x' || escape == b'X' {
            let digits =
                bytes.get(i..).unwrap_or_default().iter().take(2).take_while(|d| d.is_ascii_hexdigit()).count();
            let text = std::str::from_utf8(bytes.get(i..i + digits)?).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += digits;
        } else if (b'0'..=b'7').contains(&escape) {
            let rest = bytes.get(i..).unwrap_or_default();
            let more = rest.iter().take(2).take_while(|d| (b'0'..=b'7').contains(d)).count();
            let text = std::str::from_utf8(bytes.get(i - 1..i + more)?).ok()?;
            out.push(u8::try_from(u16::from_str_radix(text, 8).ok()?).ok()?);
            i += more;
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes C-escaped as protoc writes them: octal for all but printable ASCII.
    fn octal_escaped(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|&b| match b {
                b'\\' => "\\\\".to_owned(),
                b'"' => "\\\"".to_owned(),
                0x20..=0x7e => char::from(b).to_string(),
                _ => format!("\\{b:03o}"),
            })
            .collect()
    }

    /// The same bytes with hex escapes for everything.
    fn hex_escaped(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
    }

    proptest! {
        /// `id.default-value`: every spelling of a double gives one form, and
        /// the form reads back as the value.
        #[test]
        fn double_spellings_agree(value in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            let normal = normal_default(Type::Double, &value.to_string());
            prop_assert_eq!(normal_default(Type::Double, &format!("{value:e}")), normal.clone());
            prop_assert_eq!(normal_default(Type::Double, &format!("{value:?}")), normal.clone());
            let back: f64 = normal.unwrap_or_default().parse().unwrap_or(f64::NAN);
            prop_assert_eq!(back.to_bits(), value.to_bits());
        }

        /// The same for a float field, whose value is single precision.
        #[test]
        fn float_spellings_agree(value in any::<f32>().prop_filter("finite", |v| v.is_finite())) {
            let normal = normal_default(Type::Float, &value.to_string());
            prop_assert_eq!(normal_default(Type::Float, &format!("{value:e}")), normal.clone());
            prop_assert_eq!(normal_default(Type::Float, &f64::from(value).to_string()), normal.clone());
            let back: f32 = normal.unwrap_or_default().parse().unwrap_or(f32::NAN);
            prop_assert_eq!(back.to_bits(), value.to_bits());
        }

        /// Octal and hex escaping of the same bytes give one form: their hex.
        #[test]
        fn bytes_escapings_agree(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(normal_default(Type::Bytes, &octal_escaped(&bytes)), Some(expected.clone()));
            prop_assert_eq!(normal_default(Type::Bytes, &hex_escaped(&bytes)), Some(expected));
        }

        /// Decimal, hex and octal spellings of an integer give one form.
        #[test]
        fn integer_spellings_agree(value: i64) {
            let expected = Some(value.to_string());
            let sign = if value < 0 { "-" } else { "" };
            let magnitude = value.unsigned_abs();
            prop_assert_eq!(normal_default(Type::Int64, &format!("{sign}{magnitude:#x}")), expected.clone());
            prop_assert_eq!(normal_default(Type::Int64, &format!("{sign}0{magnitude:o}")), expected.clone());
            prop_assert_eq!(normal_default(Type::Int64, &value.to_string()), expected);
        }

        /// Any text: no panic.
        #[test]
        fn never_panics(text in "\\PC{0,30}") {
            for ty in [Type::Double, Type::Float, Type::Int32, Type::Uint64, Type::Bytes, Type::Bool, Type::String] {
                let _ = normal_default(ty, &text);
            }
        }
    }

    #[test]
    fn json_names() {
        assert_eq!(default_json_name("minor_units"), "minorUnits");
        assert_eq!(default_json_name("nonce"), "nonce");
        assert_eq!(default_json_name("a__b_"), "aB");
        assert_eq!(default_json_name("Foo_bar2_x"), "FooBar2X");
    }

    #[test]
    fn json_name_escaping() {
        let mut out = String::new();
        push_json_name(&mut out, "a b\\c\nd");
        assert_eq!(out, "a\\sb\\\\c\\nd");
    }

    #[test]
    fn bytes_defaults_of_every_spelling() {
        for spelling in ["\\001\\377a\\n", "\\x01\\xffa\\012", "\\1\\377\\141\\n", "\\x1\\xFFa\\x0a"] {
            assert_eq!(normal_default(Type::Bytes, spelling).as_deref(), Some("01ff610a"), "{spelling}");
        }
        assert_eq!(normal_default(Type::Bytes, "").as_deref(), Some(""));
        assert_eq!(normal_default(Type::Bytes, "\\").as_deref(), None);
        assert_eq!(normal_default(Type::Bytes, "\\400").as_deref(), None);
        assert_eq!(normal_default(Type::Bytes, "\\q").as_deref(), None);
        assert_eq!(normal_default(Type::Bytes, "\\x").as_deref(), None);
    }

    #[test]
    fn float_defaults_of_every_spelling() {
        for spelling in ["1e10", "1e+10", "10000000000", "1.0E10", "10000000000.0"] {
            assert_eq!(normal_default(Type::Double, spelling).as_deref(), Some("10000000000"), "{spelling}");
            assert_eq!(normal_default(Type::Float, spelling).as_deref(), Some("10000000000"), "{spelling}");
        }
        assert_eq!(normal_default(Type::Double, "inf").as_deref(), Some("inf"));
        assert_eq!(normal_default(Type::Float, "Infinity").as_deref(), Some("inf"));
        assert_eq!(normal_default(Type::Double, "-inf").as_deref(), Some("-inf"));
        assert_eq!(normal_default(Type::Double, "-nan").as_deref(), Some("nan"));
        assert_eq!(normal_default(Type::Double, "0.1").as_deref(), Some("0.1"));
        assert_eq!(normal_default(Type::Float, "0.1").as_deref(), Some("0.1"));
        // Single precision: the value of the field's type, not of the text.
        assert_eq!(normal_default(Type::Float, "0.100000001").as_deref(), Some("0.1"));
        assert_eq!(normal_default(Type::Double, "-0").as_deref(), Some("-0"));
        assert_eq!(normal_default(Type::Double, "1.5").as_deref(), Some("1.5"));
        assert_eq!(normal_default(Type::Double, "x1"), None);
    }

    #[test]
    fn integer_defaults() {
        assert_eq!(normal_default(Type::Int32, "0x10").as_deref(), Some("16"));
        assert_eq!(normal_default(Type::Int32, "020").as_deref(), Some("16"));
        assert_eq!(normal_default(Type::Int32, "-16").as_deref(), Some("-16"));
        assert_eq!(normal_default(Type::Int32, "0").as_deref(), Some("0"));
        assert_eq!(normal_default(Type::Int32, "2147483648"), None);
        assert_eq!(normal_default(Type::Uint64, "18446744073709551615").as_deref(), Some("18446744073709551615"));
        assert_eq!(normal_default(Type::Uint32, "-1"), None);
        assert_eq!(normal_default(Type::Bool, "yes"), None);
        assert_eq!(normal_default(Type::String, "a\\b\nc").as_deref(), Some("a\\\\b\\nc"));
    }
}
