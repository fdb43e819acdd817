//! The lanes an intent travels on, as offered in the handshake: an agent
//! says on which lanes it handles each intent, so that a sender learns them
//! before it sends, and a message on another lane is refused by both sides
//! without a round trip (docs/PROTOCOL.md, "What is negotiated").

use std::fmt;

use tacit_wire::pb;

/// One way an intent travels between agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Lane {
    /// A request on the ask stream, answered on it.
    Ask,
    /// A one-way envelope on the tell stream.
    Tell,
    /// The opening of a stream lane.
    Stream,
    /// A QUIC datagram.
    Datagram,
}

impl Lane {
    /// Every lane, in wire order.
    pub const ALL: [Lane; 4] = [Lane::Ask, Lane::Tell, Lane::Stream, Lane::Datagram];

    fn bit(self) -> u8 {
        match self {
            Lane::Ask => 1,
            Lane::Tell => 2,
            Lane::Stream => 4,
            Lane::Datagram => 8,
        }
    }

    fn to_pb(self) -> pb::Lane {
        match self {
            Lane::Ask => pb::Lane::Ask,
            Lane::Tell => pb::Lane::Tell,
            Lane::Stream => pb::Lane::Stream,
            Lane::Datagram => pb::Lane::Datagram,
        }
    }

    /// The lane of a wire value; `None` for 0 and for values this version
    /// does not know (they are ignored).
    fn from_pb(value: i32) -> Option<Self> {
        match pb::Lane::try_from(value).ok()? {
            pb::Lane::Ask => Some(Lane::Ask),
            pb::Lane::Tell => Some(Lane::Tell),
            pb::Lane::Stream => Some(Lane::Stream),
            pb::Lane::Datagram => Some(Lane::Datagram),
            pb::Lane::Unspecified => None,
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lane::Ask => "ask",
            Lane::Tell => "tell",
            Lane::Stream => "stream",
            Lane::Datagram => "datagram",
        })
    }
}

/// A set of [`Lane`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lanes(u8);

impl Lanes {
    /// No lane.
    pub const NONE: Lanes = Lanes(0);
    /// Every lane: what an offer that names no lanes means.
    pub const ANY: Lanes = Lanes(0b1111);
    /// The ask lane only.
    pub const ASK: Lanes = Lanes(1);
    /// The one-way lanes: tells and datagrams.
    pub const ONE_WAY: Lanes = Lanes(2 | 8);
    /// The stream lane only.
    pub const STREAM: Lanes = Lanes(4);

    /// The set holding `lane`.
    pub fn of(lane: Lane) -> Self {
        Lanes(lane.bit())
    }

    /// This set and `lane`.
    #[must_use]
    pub fn with(self, lane: Lane) -> Self {
        Lanes(self.0 | lane.bit())
    }

    /// Both sets.
    #[must_use]
    pub fn union(self, other: Lanes) -> Self {
        Lanes(self.0 | other.0)
    }

    /// Whether `lane` is in the set.
    pub fn contains(self, lane: Lane) -> bool {
        self.0 & lane.bit() != 0
    }

    /// Whether the set holds no lane.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The lanes of the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = Lane> {
        Lane::ALL.into_iter().filter(move |lane| self.contains(*lane))
    }

    /// The wire form: the lanes as `Lane` values.
    pub(crate) fn to_pb(self) -> Vec<i32> {
        self.iter().map(|lane| lane.to_pb() as i32).collect()
    }

    /// From the wire: an empty list is [`Lanes::ANY`] (a peer that predates
    /// lanes); unknown values are ignored, so a list of only unknown values
    /// is [`Lanes::NONE`].
    pub(crate) fn from_pb(values: &[i32]) -> Self {
        if values.is_empty() {
            return Lanes::ANY;
        }
        values.iter().filter_map(|&value| Lane::from_pb(value)).fold(Lanes::NONE, Lanes::with)
    }
}

impl fmt::Debug for Lanes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Lanes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no lane");
        }
        let names: Vec<String> = self.iter().map(|lane| lane.to_string()).collect();
        f.write_str(&names.join("+"))
    }
}

impl FromIterator<Lane> for Lanes {
    fn from_iter<T: IntoIterator<Item = Lane>>(iter: T) -> Self {
        iter.into_iter().fold(Lanes::NONE, Lanes::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips_and_empty_means_any() {
        // Tests hs.lanes-absent: an offer without lanes is handled on any lane.
        assert_eq!(Lanes::from_pb(&[]), Lanes::ANY);
        for bits in 1..16u8 {
            let lanes = Lanes(bits);
            assert_eq!(Lanes::from_pb(&lanes.to_pb()), lanes);
        }
        // Tests hs.lanes-unknown: unknown values (and 0) are ignored.
        assert_eq!(Lanes::from_pb(&[0, 99, 1]), Lanes::ASK);
        assert_eq!(Lanes::from_pb(&[99]), Lanes::NONE);
        assert_eq!(Lanes::ONE_WAY.to_string(), "tell+datagram");
    }
}
