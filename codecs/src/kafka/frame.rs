//! Kafka framing: a 4-byte big-endian size, then a request header and body.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Kafka's default `socket.request.max.bytes`.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// Why a frame or its header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The size prefix is negative.
    #[error("negative frame size {0}")]
    NegativeSize(i32),
    /// The size prefix exceeds the configured limit.
    #[error("frame size {size} exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size claimed by the prefix.
        size: usize,
        /// Configured limit.
        max: usize,
    },
    /// The frame ends before the fixed part of the request header.
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// The request header does not decode.
    #[error("malformed request header: {0}")]
    Header(String),
}

/// Validates a frame's size prefix against `max`, returning the number of bytes that follow.
pub fn frame_size(prefix: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(size)
}

/// The fixed leading fields of every request header, readable even when the API key or version
/// is unknown, so that an error response can still carry the right correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestIds {
    /// Raw API key.
    pub api_key: i16,
    /// Requested API version.
    pub api_version: i16,
    /// Correlation id to echo in the response.
    pub correlation_id: i32,
}

/// Reads the API key, version and correlation id from the start of a frame body.
pub fn peek_ids(frame: &[u8]) -> Result<RequestIds, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    Ok(RequestIds {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decodes the request header of a known API key, leaving `frame` at the start of the body.
pub fn decode_header(api_key: ApiKey, frame: &mut Bytes) -> Result<RequestHeader, FrameError> {
    let ids = peek_ids(frame)?;
    let header_version = api_key.request_header_version(ids.api_version);
    RequestHeader::decode(frame, header_version).map_err(|e| FrameError::Header(e.to_string()))
}

/// Encodes a complete response frame (size prefix, response header, body).
pub fn encode_response<R: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &R,
    version: i16,
) -> Result<Bytes, String> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .and_then(|h| body.compute_size(version).map(|b| h + b))
        .map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| e.to_string())?;
    body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits() {
        assert_eq!(frame_size(10i32.to_be_bytes(), 100).ok(), Some(10));
        assert!(matches!(
            frame_size((-1i32).to_be_bytes(), 100),
            Err(FrameError::NegativeSize(-1))
        ));
        assert!(matches!(
            frame_size(i32::MAX.to_be_bytes(), 100),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn header_roundtrip_and_garbage() {
        let mut ok = Bytes::from_static(&[0, 18, 0, 3, 0, 0, 0, 7, 0, 2, b'c', b'1', 0, 1, 2]);
        let h = decode_header(ApiKey::ApiVersions, &mut ok).ok();
        assert_eq!(h.as_ref().map(|h| h.correlation_id), Some(7));
        assert_eq!(&ok[..], &[1, 2]);
        let mut short = Bytes::from_static(&[0, 18, 0, 3, 0, 0, 0, 7, 0, 9, b'c']);
        assert!(decode_header(ApiKey::ApiVersions, &mut short).is_err());
    }
}
