//! Connection limits with Kafka's names, shared by every listener of both protocols:
//! `max.connections` (the acceptors wait for a free slot, as Kafka's do),
//! `max.connections.per.ip` with `max.connections.per.ip.overrides` (`host:N,...`; a
//! connection over the limit is closed at once), and `queued.max.request.bytes` (memory for
//! request bodies being read or handled; readers wait when it is used up).

use crate::config::Config;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connection limits and counts.
pub(crate) struct Connections {
    slots: Arc<Semaphore>,
    per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// `queued.max.request.bytes`, when limited.
    request_memory: Option<(Arc<Semaphore>, usize)>,
}

/// A counted connection; dropping it frees its slot.
pub(crate) struct Permit {
    _slot: OwnedSemaphorePermit,
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock();
        if let Some(n) = c.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

fn limit(v: i64) -> usize {
    if v < 0 {
        usize::MAX
    } else {
        v as usize
    }
}

impl Connections {
    pub(crate) fn new(cfg: &Config) -> anyhow::Result<Self> {
        let max = limit(cfg.int("max.connections")?).min(Semaphore::MAX_PERMITS);
        let per_ip = limit(cfg.int("max.connections.per.ip")?);
        let mut overrides = HashMap::new();
        for part in cfg
            .get("max.connections.per.ip.overrides")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (host, n) = part.rsplit_once(':').ok_or_else(|| {
                anyhow::anyhow!("max.connections.per.ip.overrides entry {part:?} is not host:count")
            })?;
            let ip: IpAddr = match host.trim().parse() {
                Ok(ip) => ip,
                Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host.trim(), 0))
                    .ok()
                    .and_then(|mut a| a.next())
                    .map(|a| a.ip())
                    .ok_or_else(|| {
                        anyhow::anyhow!("max.connections.per.ip.overrides: cannot resolve {host:?}")
                    })?,
            };
            let n: i64 = n.trim().parse().map_err(|_| {
                anyhow::anyhow!("max.connections.per.ip.overrides: {n:?} is not a number")
            })?;
            overrides.insert(ip, limit(n));
        }
        let mem = cfg.int("queued.max.request.bytes")?;
        let request_memory = (mem > 0).then(|| {
            let n = (mem as usize).min(Semaphore::MAX_PERMITS);
            (Arc::new(Semaphore::new(n)), n)
        });
        Ok(Self {
            slots: Arc::new(Semaphore::new(max)),
            per_ip,
            overrides,
            counts: Arc::new(Mutex::new(HashMap::new())),
            request_memory,
        })
    }

    /// Waits for a free connection slot (`max.connections`); called before accepting.
    pub(crate) async fn slot(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(p) = self.slots.clone().acquire_owned().await {
                return p;
            }
        }
    }

    /// Counts an accepted connection against its address's limit; `None` (and a logged
    /// reason) if the address has too many.
    pub(crate) fn admit(
        &self,
        slot: OwnedSemaphorePermit,
        ip: IpAddr,
        listener: &str,
    ) -> Option<Permit> {
        let max = self.overrides.get(&ip).copied().unwrap_or(self.per_ip);
        let mut c = self.counts.lock();
        let n = c.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                c.remove(&ip);
            }
            drop(c);
            metrics::counter!("connections_rejected_total", "listener" => listener.to_string(), "reason" => "max.connections.per.ip").increment(1);
            tracing::warn!(%ip, listener, limit = max, "Rejected connection: address already has the configured maximum of connections");
            return None;
        }
        *n += 1;
        Some(Permit {
            _slot: slot,
            ip,
            counts: self.counts.clone(),
        })
    }

    /// Reserves memory for a request body of `size` bytes (`queued.max.request.bytes`);
    /// `Err` if the body alone exceeds the whole budget.
    pub(crate) async fn request_memory(
        &self,
        size: usize,
    ) -> Result<Option<OwnedSemaphorePermit>, usize> {
        let Some((sem, total)) = &self.request_memory else {
            return Ok(None);
        };
        if size > *total {
            return Err(*total);
        }
        sem.clone()
            .acquire_many_owned(size.max(1) as u32)
            .await
            .map(Some)
            .map_err(|_| *total)
    }
}
