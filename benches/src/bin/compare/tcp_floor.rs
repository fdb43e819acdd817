//! The physical floor: blocking TCP over loopback (`std::net`), a client on
//! the calling thread and server threads that ack every whole frame, with
//! `TCP_NODELAY`. The request is the raw quinn cases' frame (the reference
//! envelope, length-prefixed), the ack the same 3-byte frame. No TLS, no
//! async runtime: the cheapest round trip two threads can make.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tacit_benches::frames::FrameCounter;
use tacit_benches::raw_quic::ACK_FRAME;

/// Server threads, each serving one connection at a time: the two
/// long-lived connections and the connect case need three.
const SERVER_THREADS: usize = 4;
/// Bound on any blocking read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// The most acks a server thread writes at once.
const MAX_ACKS: usize = 1024;

pub(crate) struct TcpFloor {
    addr: SocketAddr,
    rtt: TcpStream,
    batch: TcpStream,
    /// One request frame.
    request: Vec<u8>,
    /// `in_flight` request frames back to back, for pipelined writes.
    requests: Vec<u8>,
    in_flight: usize,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl TcpFloor {
    pub(crate) fn start(request: &[u8], in_flight: usize) -> Self {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("a TCP listener");
        let addr = listener.local_addr().expect("a bound address");
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..SERVER_THREADS)
            .map(|i| {
                let listener = listener.try_clone().expect("a listener handle");
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("tcp-floor-{i}"))
                    .spawn(move || serve(&listener, &stop))
                    .expect("a server thread")
            })
            .collect();
        let rtt = dial(addr);
        let batch = dial(addr);
        Self {
            addr,
            rtt,
            batch,
            request: request.to_vec(),
            requests: request.repeat(in_flight),
            in_flight,
            stop,
            threads,
        }
    }

    /// One request and its ack on the long-lived connection.
    pub(crate) fn round_trip(&mut self) {
        round_trip(&mut self.rtt, &self.request);
    }

    /// `total` requests pipelined on the other long-lived connection,
    /// `in_flight` unacked at most: as acks arrive, as many requests go out
    /// in one write.
    pub(crate) fn pipelined(&mut self, total: usize) {
        let len = self.request.len();
        let mut sent = total.min(self.in_flight);
        self.batch.write_all(&self.requests[..sent * len]).expect("the requests are sent");
        let mut acks = FrameCounter::default();
        let mut acked = 0;
        let mut buf = [0u8; 64 * 1024];
        while acked < total {
            let n = self.batch.read(&mut buf).expect("acks arrive");
            assert!(n > 0, "the server closed the connection");
            let new = acks.feed(&buf[..n]);
            acked += new;
            let more = new.min(total - sent);
            if more > 0 {
                self.batch.write_all(&self.requests[..more * len]).expect("the requests are sent");
                sent += more;
            }
        }
        assert!(acked == total && acks.at_boundary(), "{acked} acks for {total} requests");
    }

    /// A new connection and one request on it; closed afterwards.
    pub(crate) fn connect_first_request(&self) {
        let mut stream = dial(self.addr);
        round_trip(&mut stream, &self.request);
    }

    /// Stops the server threads and joins them.
    pub(crate) fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        for stream in [&self.rtt, &self.batch] {
            let _ = stream.shutdown(Shutdown::Both);
        }
        drop((self.rtt, self.batch));
        // Wake every thread blocked in accept.
        for _ in 0..SERVER_THREADS {
            let _ = TcpStream::connect(self.addr);
        }
        for thread in self.threads {
            thread.join().expect("a server thread ends cleanly");
        }
    }
}

fn dial(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("a TCP connection");
    configure(&stream);
    stream
}

fn configure(stream: &TcpStream) {
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("a read timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("a write timeout");
}

fn round_trip(stream: &mut TcpStream, request: &[u8]) {
    stream.write_all(request).expect("the request is sent");
    let mut ack = [0; ACK_FRAME.len()];
    stream.read_exact(&mut ack).expect("the ack arrives");
    assert_eq!(ack, ACK_FRAME);
}

/// A server thread: serves one connection at a time until `stop`.
fn serve(listener: &TcpListener, stop: &AtomicBool) {
    let acks = ACK_FRAME.repeat(MAX_ACKS);
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok((mut stream, _)) = listener.accept() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        configure(&stream);
        let mut frames = FrameCounter::default();
        // Until the client closes (or a read fails or times out).
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            let mut new = frames.feed(&buf[..n]);
            while new > 0 {
                let now = new.min(MAX_ACKS);
                if stream.write_all(&acks[..now * ACK_FRAME.len()]).is_err() {
                    break;
                }
                new -= now;
            }
        }
    }
}
