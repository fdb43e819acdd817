//! The agent card: who an agent says it is, with bounded sizes.

use std::collections::BTreeMap;

use tacit_wire::{ErrorCode, pb};

use crate::Refusal;

/// Size limits of an [`AgentCard`], in bytes unless stated.
pub mod limits {
    /// Longest name.
    pub const NAME: usize = 64;
    /// Longest description.
    pub const DESCRIPTION: usize = 1024;
    /// Most roles.
    pub const ROLES: usize = 32;
    /// Longest role.
    pub const ROLE: usize = 64;
    /// Longest software version.
    pub const SOFTWARE_VERSION: usize = 64;
    /// Most metadata entries.
    pub const METADATA_ENTRIES: usize = 32;
    /// Longest metadata key.
    pub const METADATA_KEY: usize = 64;
    /// Longest metadata value.
    pub const METADATA_VALUE: usize = 256;
    /// Largest encoded card.
    pub const ENCODED: usize = 16 * 1024;
}

/// Who an agent says it is: shown to peers in the handshake. Its
/// cryptographic identity is its [`AgentId`](crate::AgentId), from TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentCard {
    /// Human-readable name (≤ 64 bytes).
    pub name: String,
    /// What the agent does (≤ 1024 bytes).
    pub description: String,
    /// Roles or tags (≤ 32, each ≤ 64 bytes).
    pub roles: Vec<String>,
    /// Software name and version (≤ 64 bytes).
    pub software_version: String,
    /// Free-form metadata (≤ 32 entries; keys ≤ 64, values ≤ 256 bytes).
    pub metadata: BTreeMap<String, String>,
}

impl AgentCard {
    /// A card with just a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Sets the software version.
    pub fn with_software_version(mut self, version: impl Into<String>) -> Self {
        self.software_version = version.into();
        self
    }

    /// Adds a metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Checks every size limit; the refusal names the first field over its limit.
    pub fn validate(&self) -> Result<(), Refusal> {
        check_len("name", &self.name, limits::NAME)?;
        check_len("description", &self.description, limits::DESCRIPTION)?;
        check_count("roles", self.roles.len(), limits::ROLES)?;
        for role in &self.roles {
            check_len("role", role, limits::ROLE)?;
        }
        check_len("software_version", &self.software_version, limits::SOFTWARE_VERSION)?;
        check_count("metadata", self.metadata.len(), limits::METADATA_ENTRIES)?;
        for (key, value) in &self.metadata {
            check_len("metadata key", key, limits::METADATA_KEY)?;
            check_len("metadata value", value, limits::METADATA_VALUE)?;
        }
        Ok(())
    }

    /// Validates a card received from a peer.
    pub(crate) fn from_pb(card: pb::AgentCard) -> Result<Self, Refusal> {
        let encoded = prost::Message::encoded_len(&card);
        if encoded > limits::ENCODED {
            return Err(too_large(format!("agent card is {encoded} bytes, more than {}", limits::ENCODED)));
        }
        let card = Self {
            name: card.name,
            description: card.description,
            roles: card.roles,
            software_version: card.software_version,
            metadata: card.metadata,
        };
        card.validate()?;
        Ok(card)
    }

    pub(crate) fn to_pb(&self) -> pb::AgentCard {
        pb::AgentCard {
            name: self.name.clone(),
            description: self.description.clone(),
            roles: self.roles.clone(),
            software_version: self.software_version.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

fn too_large(reason: String) -> Refusal {
    Refusal::new(ErrorCode::CardTooLarge, reason)
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), Refusal> {
    if value.len() > max {
        return Err(too_large(format!("agent card {field} is {} bytes, more than {max}", value.len())));
    }
    Ok(())
}

fn check_count(field: &str, count: usize, max: usize) -> Result<(), Refusal> {
    if count > max {
        return Err(too_large(format!("agent card has {count} {field}, more than {max}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_per_field() {
        let ok = AgentCard::new("a".repeat(64)).with_role("buyer").with_metadata("k", "v".repeat(256));
        assert_eq!(ok.validate(), Ok(()));
        let cases = [
            AgentCard::new("a".repeat(65)),
            AgentCard::new("x").with_description("d".repeat(1025)),
            AgentCard::new("x").with_role("r".repeat(65)),
            AgentCard { roles: vec!["r".into(); 33], ..AgentCard::new("x") },
            AgentCard::new("x").with_software_version("v".repeat(65)),
            AgentCard::new("x").with_metadata("k".repeat(65), "v"),
            AgentCard::new("x").with_metadata("k", "v".repeat(257)),
            AgentCard { metadata: (0..33).map(|i| (i.to_string(), String::new())).collect(), ..AgentCard::new("x") },
        ];
        for card in cases {
            let refusal = card.validate().unwrap_err();
            assert_eq!(refusal.code, ErrorCode::CardTooLarge, "{card:?}");
        }
    }

    #[test]
    fn oversized_encoding_refused_before_field_checks() {
        let card = pb::AgentCard { description: "d".repeat(20_000), ..Default::default() };
        let refusal = AgentCard::from_pb(card).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::CardTooLarge);
        assert!(refusal.reason.contains("20"), "{}", refusal.reason);
    }
}
