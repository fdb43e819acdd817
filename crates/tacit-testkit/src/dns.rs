//! A real authoritative DNS server in process (hickory-server): one zone in
//! memory, served over UDP and TCP on loopback, for the DNS discovery tests
//! and benches. Records can be added while it serves; dropping it stops it.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::rdata::TXT;
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};

use crate::LOCALHOST;

/// An authoritative server for one zone, on `127.0.0.1` (one port, UDP and
/// TCP). Stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    origin: Name,
    zone: Arc<InMemoryZoneHandler>,
    serial: std::sync::atomic::AtomicU32,
    _server: Server<Catalog>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer").field("addr", &self.addr).field("origin", &self.origin).finish_non_exhaustive()
    }
}

fn fqdn(name: &str) -> Name {
    let mut name = Name::from_str(name).unwrap_or_else(|e| panic!("bad name {name:?}: {e}"));
    name.set_fqdn(true);
    name
}

impl DnsServer {
    /// Serves the zone `origin` (`example.test.`) with only its SOA record.
    pub async fn start(origin: &str) -> Self {
        Self::start_with_zone(origin, "").await
    }

    /// Serves the zone `origin` with its SOA record and the records of
    /// `zone_text` (zone-file lines, parsed by hickory's zone-file parser;
    /// relative names are under `origin`).
    pub async fn start_with_zone(origin: &str, zone_text: &str) -> Self {
        let origin = fqdn(origin);
        let text = format!(
            "$ORIGIN {origin}\n$TTL 60\n@ IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 60\n{zone_text}"
        );
        let (_, records) = Parser::new(text, None, Some(origin.clone()))
            .parse()
            .unwrap_or_else(|e| panic!("the zone text does not parse: {e}"));
        let zone = Arc::new(
            InMemoryZoneHandler::new(origin.clone(), records, ZoneType::Primary, AxfrPolicy::Deny)
                .unwrap_or_else(|e| panic!("bad zone: {e}")),
        );
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone() as Arc<dyn ZoneHandler>]);
        let mut server = Server::new(catalog);
        let udp = tokio::net::UdpSocket::bind(LOCALHOST).await.unwrap_or_else(|e| panic!("bind UDP: {e}"));
        let addr = udp.local_addr().unwrap_or_else(|e| panic!("local_addr: {e}"));
        let tcp = tokio::net::TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("bind TCP {addr}: {e}"));
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        Self { addr, origin, zone, serial: 2.into(), _server: server }
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone's origin, fully qualified.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Adds a TXT record at `name` (fully qualified, or relative to the
    /// origin) with these character-strings (each at most 255 bytes).
    pub async fn add_txt(&self, name: &str, strings: Vec<Vec<u8>>) {
        let name = if name.ends_with('.') {
            fqdn(name)
        } else {
            Name::from_str(name)
                .and_then(|n| n.append_domain(&self.origin))
                .unwrap_or_else(|e| panic!("bad name {name:?}: {e}"))
        };
        let txt = TXT::from_bytes(strings.iter().map(Vec::as_slice).collect());
        let serial = self.serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let added = self.zone.upsert(Record::from_rdata(name, 60, RData::TXT(txt)), serial).await;
        assert!(added, "the TXT record was not added");
    }
}
