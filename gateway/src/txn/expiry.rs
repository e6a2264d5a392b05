//! The coordinator's timer: every `transaction.abort.timed.out.transaction.cleanup.interval.ms`
//! it aborts overdue transactions and completes those a crash left half-done.

use crate::broker::Broker;
use std::sync::Arc;
use std::time::Duration;

/// Runs until the process ends.
pub(crate) async fn run(broker: Arc<Broker>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        broker.txns.expire(&broker).await;
    }
}
