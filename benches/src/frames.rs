//! Counting length-prefixed frames in a byte stream, for the raw baselines
//! (raw quinn, blocking TCP), which count requests and acks without
//! decoding them.

/// Counts whole frames (varint length prefix + body) in a byte stream cut
/// anywhere, without keeping the bodies.
#[derive(Debug, Default)]
pub struct FrameCounter {
    /// The length prefix read so far.
    len: u64,
    /// Bits of the length prefix read so far.
    shift: u32,
    /// Body bytes still to come, once the prefix is whole.
    body_left: Option<u64>,
}

impl FrameCounter {
    /// Takes the next bytes of the stream; returns how many frames they
    /// completed.
    pub fn feed(&mut self, mut data: &[u8]) -> usize {
        let mut frames = 0;
        while !data.is_empty() {
            if let Some(left) = self.body_left {
                let take = left.min(data.len() as u64);
                data = &data[take as usize..];
                self.body_left = Some(left - take).filter(|&left| left > 0);
                frames += usize::from(self.body_left.is_none());
                continue;
            }
            let byte = data[0];
            data = &data[1..];
            assert!(self.shift < 64, "a frame length prefix longer than ten bytes");
            self.len |= u64::from(byte & 0x7f) << self.shift;
            self.shift += 7;
            if byte < 0x80 {
                let len = std::mem::take(&mut self.len);
                self.shift = 0;
                self.body_left = Some(len).filter(|&len| len > 0);
                frames += usize::from(len == 0);
            }
        }
        frames
    }

    /// Whether the bytes fed so far end on a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.shift == 0 && self.body_left.is_none()
    }
}
