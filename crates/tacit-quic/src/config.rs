//! Transport limits and their defaults.

use std::sync::Arc;
use std::time::Duration;

use crate::credit::Dir;

/// Limits of the QUIC transport. Every peer-growable resource has one; the
/// defaults suit an agent talking to a few hundred peers. Presets:
/// [`many_peers`](Self::many_peers), [`bulk_transfer`](Self::bulk_transfer).
#[derive(Debug, Clone)]
pub struct TransportLimits {
    pub(crate) handshake_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) receive_window: u32,
    pub(crate) stream_receive_window: u32,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) max_pending_handshakes: usize,
    pub(crate) dedup_window: usize,
    pub(crate) max_connections_per_peer: usize,
    pub(crate) max_stream_rate: u32,
    pub(crate) udp_receive_buffer: usize,
    /// `None`: quinn's default; `Some(0)`: datagrams refused.
    pub(crate) datagram_receive_buffer: Option<usize>,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(1)),
            receive_window: 8 * 1024 * 1024,
            stream_receive_window: 2 * 1024 * 1024,
            max_concurrent_streams: 512,
            max_pending_handshakes: 256,
            dedup_window: 4096,
            max_connections_per_peer: 8,
            max_stream_rate: 1000,
            udp_receive_buffer: 2 * 1024 * 1024,
            datagram_receive_buffer: None,
        }
    }
}

impl TransportLimits {
    /// For an agent serving many peers (thousands of mostly idle sessions):
    /// smaller windows so each connection reserves less, more handshakes in
    /// progress, a longer idle timeout kept by less frequent keep-alives.
    pub fn many_peers() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            keep_alive: Some(Duration::from_secs(25)),
            receive_window: 1024 * 1024,
            stream_receive_window: 256 * 1024,
            max_concurrent_streams: 128,
            max_pending_handshakes: 1024,
            udp_receive_buffer: 8 * 1024 * 1024,
            ..Self::default()
        }
    }

    /// For few peers moving large payloads: large windows so a single stream
    /// fills a fast path (raise `max_frame_len` in the capabilities too).
    pub fn bulk_transfer() -> Self {
        Self { receive_window: 64 * 1024 * 1024, stream_receive_window: 32 * 1024 * 1024, ..Self::default() }
    }

    /// How long each half of the handshake may take (default 10 s): the QUIC
    /// and TLS handshake, and then, from its end, the capability handshake
    /// (the dialer's `Hello` to the acceptor's `Welcome`). Both sides count
    /// the same way, so a connection whose QUIC handshake was slow still has
    /// the whole time for its control stream.
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    /// A connection with no traffic for this long is closed (default 30 s);
    /// `Duration::ZERO` turns the idle timeout off.
    pub fn idle_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.idle_timeout = timeout;
        self
    }

    /// Interval of keep-alive packets, or none (default 1 s: a dialed peer notices a restarted agent within about a second, through its stateless reset).
    pub fn keep_alive(&mut self, interval: Option<Duration>) -> &mut Self {
        self.keep_alive = interval;
        self
    }

    /// Bytes a peer may have in flight to us on one connection, over all
    /// streams (default 8 MiB; quinn's default is unbounded).
    pub fn receive_window(&mut self, bytes: u32) -> &mut Self {
        self.receive_window = bytes;
        self
    }

    /// Bytes a peer may have in flight to us on one stream (default 2 MiB).
    pub fn stream_receive_window(&mut self, bytes: u32) -> &mut Self {
        self.stream_receive_window = bytes;
        self
    }

    /// Streams a peer may have open to us at once, of each direction
    /// (default 512). The peer gets this credit as it uses it: 16
    /// bidirectional and 4 unidirectional streams at first, doubled whenever
    /// half are open, so an idle connection does not pay for the slots quinn
    /// sets aside for every stream a peer may open.
    pub fn max_concurrent_streams(&mut self, count: u32) -> &mut Self {
        self.max_concurrent_streams = count;
        self
    }

    /// Incoming connections that may be in their handshake at once; more are
    /// refused (default 256).
    pub fn max_pending_handshakes(&mut self, count: usize) -> &mut Self {
        self.max_pending_handshakes = count;
        self
    }

    /// How many recent asks (over all peers) the idempotent-retry window
    /// remembers with their answers (default 4096; 0 turns it off): asks
    /// marked idempotent ([`AskOptions::idempotent`](crate::AskOptions::idempotent)) enter it. Such an ask
    /// re-sent with the same message id while in the window runs at most once.
    pub fn dedup_window(&mut self, asks: usize) -> &mut Self {
        self.dedup_window = asks;
        self
    }

    /// Connections one peer (by AgentId) may have to this endpoint at once;
    /// more are closed with `TOO_MANY_CONNECTIONS` (default 8).
    pub fn max_connections_per_peer(&mut self, count: usize) -> &mut Self {
        self.max_connections_per_peer = count;
        self
    }

    /// Streams a peer may open per second on one connection (counting those
    /// it resets at once); a connection over it is closed with
    /// `STREAM_RATE_EXCEEDED` (default 1000).
    pub fn max_stream_rate(&mut self, per_second: u32) -> &mut Self {
        self.max_stream_rate = per_second;
        self
    }

    /// Bytes the kernel may queue on the endpoint's UDP socket before this
    /// endpoint reads them (`SO_RCVBUF`; default 2 MiB, `many_peers` 8 MiB;
    /// 0 keeps the system's default). Datagrams arriving while it is full are
    /// dropped, and QUIC recovers them only after its loss timers, which back
    /// off: an endpoint serving many peers needs room for their bursts. Linux
    /// caps the size at `net.core.rmem_max` (often 208 KiB; raise it with
    /// `sysctl -w net.core.rmem_max=8388608`); a buffer already larger is kept.
    pub fn udp_receive_buffer(&mut self, bytes: usize) -> &mut Self {
        self.udp_receive_buffer = bytes;
        self
    }

    /// Bytes of received datagrams buffered until the application reads
    /// them (default 1.25 MB, quinn's). 0 refuses datagrams: the endpoint
    /// does not advertise `max_datagram_frame_size`, and peers cannot send
    /// it any (`[dgram.advertise]`, `[dgram.unsupported]`).
    pub fn datagram_receive_buffer(&mut self, bytes: usize) -> &mut Self {
        self.datagram_receive_buffer = Some(bytes);
        self
    }

    /// Sizes the receive buffer of `socket` as asked, as far as the system allows.
    pub(crate) fn size_socket(&self, socket: &std::net::UdpSocket) {
        let wanted = self.udp_receive_buffer;
        let socket = socket2::SockRef::from(socket);
        if wanted == 0 || socket.recv_buffer_size().is_ok_and(|size| size >= wanted) {
            return;
        }
        if let Err(e) = socket.set_recv_buffer_size(wanted) {
            tracing::debug!("cannot set the UDP receive buffer to {wanted} bytes: {e}");
        }
        // Linux reports twice the size it grants (the doubling covers its bookkeeping).
        match socket.recv_buffer_size() {
            Ok(size) if size < wanted => tracing::debug!(
                "UDP receive buffer is {size} bytes, less than the {wanted} asked for: raise net.core.rmem_max"
            ),
            _ => {}
        }
    }

    /// The quinn transport configuration these limits describe.
    pub(crate) fn quinn_transport(&self) -> Arc<quinn::TransportConfig> {
        let mut transport = quinn::TransportConfig::default();
        transport
            // quinn treats an idle timeout of 0 as "expired at once": map it to none.
            .max_idle_timeout(
                Some(self.idle_timeout).filter(|t| !t.is_zero()).and_then(|t| quinn::IdleTimeout::try_from(t).ok()),
            )
            .keep_alive_interval(self.keep_alive)
            .receive_window(self.receive_window.into())
            .stream_receive_window(self.stream_receive_window.into())
            // The credit starts small and grows with use (crate::credit).
            .max_concurrent_bidi_streams(Dir::Bi.initial(self.max_concurrent_streams).into())
            .max_concurrent_uni_streams(Dir::Uni.initial(self.max_concurrent_streams).into());
        if let Some(bytes) = self.datagram_receive_buffer {
            transport.datagram_receive_buffer_size(Some(bytes).filter(|&b| b > 0));
        }
        Arc::new(transport)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::TransportLimits;

    fn receive_buffer(socket: &std::net::UdpSocket) -> usize {
        socket2::SockRef::from(socket).recv_buffer_size().unwrap()
    }

    #[test]
    fn receive_buffer_grows_as_far_as_the_system_allows_and_never_shrinks() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = receive_buffer(&socket);
        TransportLimits::default().udp_receive_buffer(0).size_socket(&socket);
        assert_eq!(receive_buffer(&socket), before, "0 keeps the system's default");
        TransportLimits::default().udp_receive_buffer(before / 2).size_socket(&socket);
        assert_eq!(receive_buffer(&socket), before, "a larger buffer is kept");
        let wanted = before * 4;
        TransportLimits::default().udp_receive_buffer(wanted).size_socket(&socket);
        // Linux grants up to net.core.rmem_max and reports twice what it grants.
        let max = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse::<usize>().unwrap();
        assert!(receive_buffer(&socket) >= wanted.min(2 * max), "{} < {wanted}", receive_buffer(&socket));
    }
}
