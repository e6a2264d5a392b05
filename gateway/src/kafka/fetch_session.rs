//! Incremental fetch sessions (KIP-227): the broker remembers a client's partitions and the
//! state it last reported for each, so later fetches send and receive only what changed.

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Instant;

/// Epoch that closes a session (or asks for a sessionless fetch).
pub(crate) const FINAL_EPOCH: i32 = -1;
/// Epoch that opens a new session.
pub(crate) const INITIAL_EPOCH: i32 = 0;

/// A partition as the client asked for it.
#[derive(Debug, Clone)]
pub(crate) struct SessionPartition {
    pub(crate) topic: String,
    pub(crate) topic_id: uuid::Uuid,
    pub(crate) partition: i32,
    pub(crate) fetch_offset: i64,
    pub(crate) max_bytes: i32,
    /// What the last response said (None: not reported yet).
    pub(crate) reported: Option<(i64, i64)>,
}

struct Session {
    next_epoch: i32,
    partitions: Vec<SessionPartition>,
    last_used: Instant,
}

/// The cache of open sessions of this node.
pub(crate) struct FetchSessions {
    max_slots: usize,
    inner: Mutex<(HashMap<i32, Session>, i32)>,
}

/// What a fetch request resolved to.
pub(crate) struct Resolved {
    /// Session id to put in the response (0 for sessionless).
    pub(crate) session_id: i32,
    /// Whether only changed partitions go in the response.
    pub(crate) incremental: bool,
    /// Partitions to read, in session order.
    pub(crate) partitions: Vec<SessionPartition>,
}

/// A partition change carried by a fetch request.
pub(crate) struct Requested {
    pub(crate) topic: String,
    pub(crate) topic_id: uuid::Uuid,
    pub(crate) partition: i32,
    pub(crate) fetch_offset: i64,
    pub(crate) max_bytes: i32,
}

impl FetchSessions {
    pub(crate) fn new(max_slots: usize) -> Self {
        Self {
            max_slots,
            inner: Mutex::new((HashMap::new(), 1)),
        }
    }

    /// Applies a request's session fields; errors are the top-level fetch error.
    pub(crate) fn resolve(
        &self,
        session_id: i32,
        epoch: i32,
        requested: Vec<Requested>,
        forgotten: &[(String, i32)],
    ) -> Result<Resolved, ResponseError> {
        let fresh = |r: Requested| SessionPartition {
            topic: r.topic,
            topic_id: r.topic_id,
            partition: r.partition,
            fetch_offset: r.fetch_offset,
            max_bytes: r.max_bytes,
            reported: None,
        };
        let mut guard = self.inner.lock();
        let (sessions, next_id) = &mut *guard;
        if epoch == FINAL_EPOCH {
            sessions.remove(&session_id);
            return Ok(Resolved {
                session_id: 0,
                incremental: false,
                partitions: requested.into_iter().map(fresh).collect(),
            });
        }
        if epoch == INITIAL_EPOCH {
            sessions.remove(&session_id);
            let partitions: Vec<SessionPartition> = requested.into_iter().map(fresh).collect();
            if self.max_slots == 0 {
                return Ok(Resolved {
                    session_id: 0,
                    incremental: false,
                    partitions,
                });
            }
            if sessions.len() >= self.max_slots {
                // Evict the least recently used session to make room.
                if let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(id, _)| *id)
                {
                    sessions.remove(&oldest);
                }
            }
            let mut id = *next_id;
            while id == 0 || sessions.contains_key(&id) {
                id = id.wrapping_add(1).max(1);
            }
            *next_id = id.wrapping_add(1).max(1);
            sessions.insert(
                id,
                Session {
                    next_epoch: 1,
                    partitions: partitions.clone(),
                    last_used: Instant::now(),
                },
            );
            return Ok(Resolved {
                session_id: id,
                incremental: false,
                partitions,
            });
        }
        let Some(s) = sessions.get_mut(&session_id) else {
            return Err(ResponseError::FetchSessionIdNotFound);
        };
        if s.next_epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        s.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        s.last_used = Instant::now();
        s.partitions.retain(|p| {
            !forgotten
                .iter()
                .any(|(t, i)| *t == p.topic && *i == p.partition)
        });
        for r in requested {
            match s
                .partitions
                .iter_mut()
                .find(|p| p.topic == r.topic && p.partition == r.partition)
            {
                Some(p) => {
                    p.fetch_offset = r.fetch_offset;
                    p.max_bytes = r.max_bytes;
                }
                None => s.partitions.push(fresh(r)),
            }
        }
        Ok(Resolved {
            session_id,
            incremental: true,
            partitions: s.partitions.clone(),
        })
    }

    /// Records what a response reported (high watermark, log start) per partition.
    pub(crate) fn record(&self, session_id: i32, reported: &[(String, i32, i64, i64)]) {
        if session_id == 0 {
            return;
        }
        let mut guard = self.inner.lock();
        if let Some(s) = guard.0.get_mut(&session_id) {
            for (t, p, hw, ls) in reported {
                if let Some(sp) = s
                    .partitions
                    .iter_mut()
                    .find(|sp| sp.topic == *t && sp.partition == *p)
                {
                    sp.reported = Some((*hw, *ls));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(p: i32, off: i64) -> Requested {
        Requested {
            topic: "t".into(),
            topic_id: uuid::Uuid::nil(),
            partition: p,
            fetch_offset: off,
            max_bytes: 100,
        }
    }

    #[test]
    fn lifecycle() {
        let s = FetchSessions::new(2);
        let r = s.resolve(0, 0, vec![req(0, 0), req(1, 0)], &[]).ok();
        let id = r.as_ref().map(|r| r.session_id).unwrap_or(0);
        assert!(id > 0);
        let r = s.resolve(id, 1, vec![req(1, 5)], &[("t".into(), 0)]).ok();
        let parts: Vec<(i32, i64)> = r
            .map(|r| {
                r.partitions
                    .iter()
                    .map(|p| (p.partition, p.fetch_offset))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(parts, vec![(1, 5)]);
        assert_eq!(
            s.resolve(id, 1, vec![], &[]).err(),
            Some(ResponseError::InvalidFetchSessionEpoch)
        );
        assert_eq!(
            s.resolve(id + 100, 1, vec![], &[]).err(),
            Some(ResponseError::FetchSessionIdNotFound)
        );
        assert_eq!(
            s.resolve(id, -1, vec![], &[]).ok().map(|r| r.session_id),
            Some(0)
        );
        assert_eq!(
            s.resolve(id, 2, vec![], &[]).err(),
            Some(ResponseError::FetchSessionIdNotFound)
        );
    }
}
