//! The tell lane, sending side: one-way envelopes on one long-lived
//! unidirectional stream this agent opens on first use, in order, through
//! the one frame writer ([`FrameSink`]).

use tacit_wire::Envelope;

use crate::ask::AskError;
use crate::error::{SessionError, connection_error};
use crate::frames::{FrameSink, PushError, write_frames};
use crate::kind;

/// This agent's tell stream to the peer.
#[derive(Debug, Default)]
pub(crate) struct TellLane {
    writer: tokio::sync::OnceCell<FrameSink>,
}

impl TellLane {
    /// Queues `envelope` (at most `max_frame_len` bytes) on the tell
    /// stream, opening it on first use. Waits while [`SEND_BUFFER`](crate::frames::SEND_BUFFER) bytes
    /// are queued: a slow peer slows the teller down.
    pub(crate) async fn tell(
        &self,
        connection: &quinn::Connection,
        envelope: &Envelope,
        max_frame_len: usize,
    ) -> Result<(), AskError> {
        let writer = self
            .writer
            .get_or_try_init(|| async {
                let send = connection.open_uni().await.map_err(connection_error)?;
                let (sink, source) = FrameSink::open(send, kind::prefix(kind::TELL));
                tokio::spawn(write_frames(source));
                Ok::<_, SessionError>(sink)
            })
            .await
            .map_err(AskError::NotSent)?;
        // Tells come in bursts: the writer task batches them into few writes.
        writer.send(envelope, max_frame_len, false).await.map_err(|e| match e {
            PushError::TooLarge => AskError::TooLarge { len: envelope.encoded_len(), max: max_frame_len },
            PushError::Closed => AskError::NotSent(SessionError::ConnectionLost("tell stream closed".into())),
        })
    }
}
