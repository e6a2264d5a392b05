//! The framing shared by the append-only metadata journals (committed offsets, the
//! transaction coordinator's table): records `len u32 | crc32c u32 | payload`, replayed on
//! open up to the first torn or corrupt record, which is cut off with what follows it.

use crate::error::Result;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

/// Frames one record around `payload`.
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut rec = Vec::with_capacity(8 + payload.len());
    rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    rec.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    rec.extend_from_slice(payload);
    rec
}

/// Hands each intact payload of `buf` to `apply` until one is torn, fails its CRC, is longer
/// than `max`, or `apply` rejects it; returns the bytes accepted and their record count.
pub(crate) fn replay(buf: &[u8], max: usize, mut apply: impl FnMut(&[u8]) -> bool) -> (usize, u64) {
    let (mut pos, mut records) = (0usize, 0u64);
    while buf.len() - pos >= 8 {
        let word = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&buf[at..at + 4]);
            u32::from_be_bytes(w)
        };
        let (len, crc) = (word(pos) as usize, word(pos + 4));
        if len > max || buf.len() - pos - 8 < len {
            break;
        }
        let payload = &buf[pos + 8..pos + 8 + len];
        if crc32c::crc32c(payload) != crc || !apply(payload) {
            break;
        }
        records += 1;
        pos += 8 + len;
    }
    (pos, records)
}

/// Opens the journal at `path` for appending after replaying it into `apply`; a torn tail is
/// truncated (and the truncation made durable). Returns the file and its record count.
pub(crate) fn open(
    path: &Path,
    max: usize,
    apply: impl FnMut(&[u8]) -> bool,
) -> Result<(File, u64)> {
    let mut buf = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut buf)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let (valid, records) = replay(&buf, max, apply);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .truncate(false)
        .open(path)?;
    if valid < buf.len() {
        tracing::warn!(
            path = %path.display(),
            kept = valid,
            dropped = buf.len() - valid,
            "truncating torn tail of journal"
        );
        file.set_len(valid as u64)?;
        file.sync_all()?;
    }
    Ok((file, records))
}
