//! TCP for the gRPC and HTTP/1.1 cases, plain or with TLS 1.3 (tokio-rustls,
//! the same Ed25519 credentials and verifier as the QUIC cases), with
//! `TCP_NODELAY` on both ends.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tacit_benches::tls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// Whether a TCP case runs TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// Plain TCP (h2c, plain HTTP/1.1).
    Plain,
    /// TLS 1.3 with client certificates, as Tacit and the QUIC cases.
    Tls,
}

/// One end of a connection. A server's end says on its `closed` sender when
/// it is dropped, i.e. when the server is done with the connection.
#[derive(Debug)]
pub(crate) struct Io {
    stream: Stream,
    closed: Option<mpsc::UnboundedSender<()>>,
}

#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Client(Box<client::TlsStream<TcpStream>>),
    Server(Box<server::TlsStream<TcpStream>>),
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Some(closed) = self.closed.take() {
            // The receiver is gone only once the benchmark is over.
            let _ = closed.send(());
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Client(s) => s.is_write_vectored(),
            Stream::Server(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Io {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// The client side of a TCP case: dials the server, with TLS or without.
#[derive(Clone)]
pub(crate) struct Dialer {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
}

impl Dialer {
    /// A new connection to the server, its TLS handshake done.
    pub(crate) async fn dial(&self) -> io::Result<Io> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let name = ServerName::try_from("server").expect("a valid name");
                Stream::Client(Box::new(tls.connect(name, tcp).await?))
            }
        };
        Ok(Io { stream, closed: None })
    }
}

/// The server side of a TCP case: a listener on loopback whose accepted
/// connections (after their TLS handshake) come out of [`Listener::next`].
pub(crate) struct Listener {
    accepted: mpsc::UnboundedReceiver<Io>,
    /// One message per server end of a connection that has been dropped.
    pub(crate) closed: mpsc::UnboundedReceiver<()>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Binds a listener on loopback; returns it and a dialer for it. `alpn`
    /// is offered by both sides' TLS.
    pub(crate) async fn bind(security: Security, alpn: &[u8]) -> (Self, Dialer) {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await.expect("a TCP listener");
        let addr = listener.local_addr().expect("a bound address");
        let (acceptor, connector) = match security {
            Security::Plain => (None, None),
            Security::Tls => (
                Some(TlsAcceptor::from(Arc::new(tls::server_config(alpn)))),
                Some(TlsConnector::from(Arc::new(tls::client_config(alpn)))),
            ),
        };
        let (accepted_tx, accepted) = mpsc::unbounded_channel();
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, accepted, closed) = (acceptor.clone(), accepted_tx.clone(), closed_tx.clone());
                // The TLS handshake in its own task, as servers do, so a slow
                // client does not hold up the others.
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let stream = match acceptor {
                        None => Stream::Plain(tcp),
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(tls) => Stream::Server(Box::new(tls)),
                            Err(_) => return,
                        },
                    };
                    let _ = accepted.send(Io { stream, closed: Some(closed) });
                });
            }
        });
        (Self { accepted, closed, task }, Dialer { addr, tls: connector })
    }

    /// The next accepted connection.
    pub(crate) async fn next(&mut self) -> Option<Io> {
        self.accepted.recv().await
    }

    /// Splits off the stream of accepted connections, for a server that
    /// takes a stream (tonic); the listener keeps the `closed` receiver.
    pub(crate) fn incoming(&mut self) -> impl tokio_stream::Stream<Item = io::Result<Io>> + use<> {
        let (_, empty) = mpsc::unbounded_channel();
        UnboundedReceiverStream::new(std::mem::replace(&mut self.accepted, empty)).map(Ok)
    }
}
