//! Socket helpers shared by the protocol front ends.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// A byte stream to a peer: plain TCP or TLS over it.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// Reads from a connection go through a buffer this big, so one `recv` can carry several
/// small requests (and their length prefixes).
pub(crate) const READ_BUFFER: usize = 16 * 1024;

/// Answers smaller than this are gathered into one write with the answers queued behind
/// them; larger ones (fetch responses) go out as they are, without a copy.
const COALESCE_BELOW: usize = 64 * 1024;

/// Writes `first` and whatever small answers are already queued behind it with as few
/// syscalls as possible: on loopback every `send` also runs the receiver's TCP work, so with
/// many requests in flight one write per answer costs more than the answers themselves.
/// Returns the first queued item it could not include (a large one), to be written next.
pub(crate) async fn write_batch<W: AsyncWrite + Unpin>(
    wr: &mut W,
    first: Bytes,
    more: impl FnMut() -> Option<Bytes>,
) -> std::io::Result<Option<Bytes>> {
    let mut more = more;
    if first.len() >= COALESCE_BELOW {
        wr.write_all(&first).await?;
        wr.flush().await?;
        return Ok(None);
    }
    let mut held: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    while let Some(next) = more() {
        if next.len() >= COALESCE_BELOW {
            held = Some(next);
            break;
        }
        let b = buf.get_or_insert_with(|| {
            let mut b = BytesMut::with_capacity(COALESCE_BELOW * 2);
            b.extend_from_slice(&first);
            b
        });
        b.extend_from_slice(&next);
        if b.len() >= COALESCE_BELOW {
            break;
        }
    }
    match buf {
        Some(b) => wr.write_all(&b).await?,
        None => wr.write_all(&first).await?,
    }
    // A TLS stream may keep encrypted records buffered until flushed; plain TCP has nothing
    // to flush.
    wr.flush().await?;
    Ok(held)
}
