//! Base-128 varints as protobuf defines them, with errors that say what went
//! wrong (prost's decoder reports only an opaque message).

use bytes::BufMut;

/// The longest varint a 64-bit value needs.
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// More than ten bytes, or a value that overflows 64 bits.
    Overlong,
}

/// Reads a varint from the front of `buf`, returning it and its length in bytes.
///
/// Non-minimal encodings (e.g. `0x80 0x00` for 0) are accepted, as protobuf
/// requires, up to ten bytes.
#[inline]
pub(crate) fn decode(buf: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        if i == MAX_VARINT_LEN - 1 && byte > 0x01 {
            return Err(VarintError::Overlong);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= MAX_VARINT_LEN { Err(VarintError::Overlong) } else { Err(VarintError::Truncated) }
}

/// Appends `value` as a minimal varint.
#[inline]
pub(crate) fn encode(mut value: u64, buf: &mut impl BufMut) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// The length of the minimal varint encoding of `value`.
#[inline]
pub(crate) const fn encoded_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        for (value, bytes) in [
            (0u64, &[0x00][..]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (u64::MAX, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ] {
            let mut out = Vec::new();
            encode(value, &mut out);
            assert_eq!(out, bytes, "encode {value}");
            assert_eq!(encoded_len(value), bytes.len());
            assert_eq!(decode(bytes), Ok((value, bytes.len())));
        }
    }

    #[test]
    fn errors() {
        assert_eq!(decode(&[]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x80, 0x80]), Err(VarintError::Truncated));
        // Eleven bytes of continuation.
        assert_eq!(decode(&[0xff; 11]), Err(VarintError::Overlong));
        // Ten bytes whose last one carries more than the 64th bit.
        let mut overflow = [0xff; 10];
        overflow[9] = 0x02;
        assert_eq!(decode(&overflow), Err(VarintError::Overlong));
        // Non-minimal but within ten bytes is accepted.
        assert_eq!(decode(&[0x80, 0x80, 0x00]), Ok((0, 3)));
    }

    proptest! {
        #[test]
        fn round_trip(value: u64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            encode(value, &mut out);
            prop_assert_eq!(out.len(), encoded_len(value));
            prop_assert_eq!(out.len(), prost::encoding::encoded_len_varint(value));
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode(&out), Ok((value, encoded_len(value))));
        }
    }
}
