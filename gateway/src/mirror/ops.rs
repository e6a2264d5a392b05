//! What operators do with links (the admin API and `gateway mirror` call these): create, pause,
//! resume, fail over (a topic or the whole link), delete, and reverse after a failover.

use super::link::{Filters, LinkChange, LinkSpec, LinkState, MIRROR_ATTRIBUTE};
use super::source::SourceConfig;
use super::MirrorError;
use crate::broker::Broker;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{MetadataRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// What `create` is given.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub(crate) struct CreateLink {
    #[serde(default)]
    pub(crate) name: String,
    pub(crate) source: String,
    #[serde(default)]
    pub(crate) topics: Vec<String>,
    #[serde(default)]
    pub(crate) exclude: Vec<String>,
    #[serde(default)]
    pub(crate) groups: Option<String>,
    #[serde(default)]
    pub(crate) source_config: BTreeMap<String, String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The source's topics the link would mirror, with their partition counts.
async fn source_topics(spec: &LinkSpec) -> Result<BTreeMap<String, i32>, MirrorError> {
    let filters = Filters::new(spec).map_err(MirrorError::Invalid)?;
    let source = SourceConfig::new(&spec.source_config).map_err(MirrorError::Invalid)?;
    let mut last = String::from("no bootstrap server given");
    for addr in spec
        .source
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let attempt = async {
            let mut conn = source
                .connect(addr, &format!("mirror-{}", spec.name))
                .await?;
            let v = conn.version::<MetadataRequest>(9)?;
            let mut req = MetadataRequest::default();
            req.topics = None;
            req.allow_auto_topic_creation = false;
            let md = conn.call(&req, v, CALL_TIMEOUT).await?;
            Ok::<_, anyhow::Error>(
                md.topics
                    .iter()
                    .filter(|t| t.error_code == 0 && !t.is_internal)
                    .filter_map(|t| {
                        let n = t.name.as_ref()?.0.to_string();
                        filters.topic(&n).then_some((n, t.partitions.len() as i32))
                    })
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        match attempt.await {
            Ok(t) => return Ok(t),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(MirrorError::Source(format!(
        "cannot reach the source cluster: {last}"
    )))
}

fn spec_of(req: CreateLink) -> Result<LinkSpec, MirrorError> {
    if !valid_name(&req.name) {
        return Err(MirrorError::Invalid(format!(
            "invalid link name {:?}: letters, digits, '.', '_' and '-' only",
            req.name
        )));
    }
    if req.source.trim().is_empty() {
        return Err(MirrorError::Invalid("--source is required".into()));
    }
    let spec = LinkSpec {
        name: req.name,
        source: req.source,
        topics: req.topics,
        exclude: req.exclude,
        groups: req.groups,
        source_config: req.source_config,
        state: LinkState::Active,
        failed_over: BTreeSet::new(),
    };
    Filters::new(&spec).map_err(MirrorError::Invalid)?;
    SourceConfig::new(&spec.source_config).map_err(MirrorError::Invalid)?;
    Ok(spec)
}

/// Creates a link. Refuses to adopt a local topic that exists and is not a mirror of it.
pub(crate) async fn create(broker: &Broker, req: CreateLink) -> Result<LinkSpec, MirrorError> {
    let spec = spec_of(req)?;
    if broker.mirrors.state().links.contains_key(&spec.name) {
        return Err(MirrorError::Exists(spec.name));
    }
    let topics = source_topics(&spec).await?;
    for t in topics.keys() {
        if let Some(local) = broker.store.topic(t) {
            if local.meta.attributes.get(MIRROR_ATTRIBUTE) != Some(&spec.name) {
                return Err(MirrorError::Invalid(format!(
                    "topic {t} already exists here and is not a mirror topic; a link does not adopt existing topics (use reverse after a failover, or exclude it)"
                )));
            }
        }
    }
    broker
        .mirrors
        .change(broker, LinkChange::Create(spec.clone()))
        .await?;
    Ok(spec)
}

/// Pauses or resumes a link.
pub(crate) async fn set_active(
    broker: &Broker,
    name: &str,
    active: bool,
) -> Result<(), MirrorError> {
    let link = broker.mirrors.link(name)?;
    if matches!(link.state, LinkState::FailingOver | LinkState::FailedOver) {
        return Err(MirrorError::Invalid(format!(
            "mirror link {name} is {}: it cannot be {}",
            link.state.label(),
            if active { "resumed" } else { "paused" }
        )));
    }
    let state = if active {
        LinkState::Active
    } else {
        LinkState::Paused
    };
    broker
        .mirrors
        .change(
            broker,
            LinkChange::SetState {
                name: name.to_string(),
                state,
            },
        )
        .await
}

/// Makes a mirror topic an ordinary, writable topic: its attribute goes, and (on one node)
/// the leader epoch moves past every mirrored batch, so the records written from now on are
/// told apart from the source's (failback finds the divergence by epoch).
async fn promote(broker: &Broker, topic: &str, link: &str) -> Result<(), MirrorError> {
    let Some(t) = broker.store.topic(topic) else {
        return Ok(());
    };
    let mut attrs = t.meta.attributes.clone();
    if attrs.remove(MIRROR_ATTRIBUTE).is_none() {
        return Ok(());
    }
    // Writes after the failover carry an epoch above every mirrored batch's: the epoch
    // history stays monotonic, and a failback finds the divergence point by epoch.
    let mut floors = broker.mirrors.status(link).epochs_of(topic);
    for (i, log) in t.partitions.iter().enumerate() {
        let seen = log.latest_epoch().unwrap_or(0).max(log.leader_epoch());
        let e = floors.entry(i as i32).or_insert(seen);
        *e = (*e).max(seen) + 1;
        if broker.cluster.is_none() {
            log.set_leader_epoch(*e);
        }
    }
    broker
        .set_topic_attributes_and_epochs(topic, attrs, floors)
        .await
        .map_err(|e| MirrorError::Invalid(e.to_string()))?;
    tracing::info!(topic, "mirror topic failed over: now writable");
    Ok(())
}

/// Fails over one topic (the link goes on with the others) or the whole link.
pub(crate) async fn failover(
    broker: &Broker,
    name: &str,
    topic: Option<&str>,
) -> Result<(), MirrorError> {
    let link = broker.mirrors.link(name)?;
    let mirrors = &broker.mirrors;
    if let Some(t) = topic {
        let is_ours = broker.mirror_link_of(t).as_deref() == Some(name);
        if !is_ours {
            return Err(MirrorError::Invalid(format!(
                "topic {t} is not a mirror topic of link {name}"
            )));
        }
        mirrors
            .change(
                broker,
                LinkChange::FailoverTopic {
                    name: name.to_string(),
                    topic: t.to_string(),
                },
            )
            .await?;
        promote(broker, t, name).await?;
        mirrors.status(name).update_state_of_topic(t, "FAILED_OVER");
        return Ok(());
    }
    if link.state == LinkState::FailedOver {
        return Ok(());
    }
    // FAILING_OVER stops the link's task (and waits for it) before any topic turns writable.
    mirrors
        .change(
            broker,
            LinkChange::SetState {
                name: name.to_string(),
                state: LinkState::FailingOver,
            },
        )
        .await?;
    let ours = mirror_topics(broker, name);
    for t in &ours {
        promote(broker, t, name).await?;
        mirrors.status(name).update_state_of_topic(t, "FAILED_OVER");
    }
    mirrors
        .change(
            broker,
            LinkChange::SetState {
                name: name.to_string(),
                state: LinkState::FailedOver,
            },
        )
        .await
}

/// The local mirror topics of link `name`.
fn mirror_topics(broker: &Broker, name: &str) -> Vec<String> {
    broker
        .store
        .topics()
        .iter()
        .filter(|t| t.meta.attributes.get(MIRROR_ATTRIBUTE).map(String::as_str) == Some(name))
        .map(|t| t.meta.name.clone())
        .collect()
}

/// Deletes a link; its mirror topics become ordinary topics.
pub(crate) async fn delete(broker: &Broker, name: &str) -> Result<(), MirrorError> {
    broker.mirrors.link(name)?;
    broker
        .mirrors
        .change(
            broker,
            LinkChange::Delete {
                name: name.to_string(),
            },
        )
        .await?;
    let ours = mirror_topics(broker, name);
    for t in ours {
        promote(broker, &t, name).await?;
    }
    Ok(())
}

/// After a failover, on the old source: mirror back from the new primary. Local topics the
/// new primary has are cut back to where the two diverged (the end of this side's last epoch
/// on the primary, as OffsetForLeaderEpoch tells a follower) and become mirror topics of
/// link `name`, which then pulls from `source`.
pub(crate) async fn reverse(broker: &Broker, req: CreateLink) -> Result<LinkSpec, MirrorError> {
    let name = req.name.clone();
    let name = name.as_str();
    if broker.mirrors.state().links.contains_key(name) {
        return Err(MirrorError::Exists(name.to_string()));
    }
    let mut spec = spec_of(req)?;
    if spec.topics.is_empty() {
        // Without filters a failback takes back exactly the topics both sides have (the ones
        // that were mirrored), never an unrelated topic of the new primary.
        let all = source_topics(&spec).await?;
        spec.topics = all
            .keys()
            .filter(|t| broker.store.topic(t).is_some())
            .map(|t| regex::escape(t))
            .collect();
        if spec.topics.is_empty() {
            return Err(MirrorError::Invalid(format!(
                "no topic of {} exists here: nothing to reverse",
                spec.source
            )));
        }
    }
    let topics = source_topics(&spec).await?;
    let cfg = SourceConfig::new(&spec.source_config).map_err(MirrorError::Invalid)?;
    for (topic, partitions) in &topics {
        let Some(local) = broker.store.topic(topic) else {
            continue;
        };
        let leaders = partition_leaders(&cfg, &spec, topic).await?;
        for (p, log) in local.partitions.iter().enumerate() {
            if p as i32 >= *partitions {
                break;
            }
            let Some(epoch) = log.latest_epoch() else {
                continue;
            };
            let Some(addr) = leaders.get(&(p as i32)) else {
                continue;
            };
            let (their_epoch, end) =
                end_for_epoch(&cfg, &spec, addr, topic, p as i32, epoch).await?;
            // Kafka's follower rule: our epoch ended (on the primary) at `end`; if the
            // primary knows only an older epoch, cut at the end of that epoch here too.
            let cut = if their_epoch == epoch || their_epoch < 0 {
                end
            } else {
                end.min(log.end_offset_for_epoch(their_epoch).1)
            };
            let cut = cut.max(0);
            if cut < log.log_end_offset() {
                tracing::warn!(
                    topic,
                    partition = p,
                    from = log.log_end_offset(),
                    to = cut,
                    "failback: dropping records the new primary does not have"
                );
                log.truncate_to(cut)
                    .map_err(|e| MirrorError::Invalid(e.to_string()))?;
            }
        }
        let mut attrs = local.meta.attributes.clone();
        attrs.insert(MIRROR_ATTRIBUTE.to_string(), name.to_string());
        broker
            .set_topic_attributes(topic, attrs)
            .await
            .map_err(|e| MirrorError::Invalid(e.to_string()))?;
    }
    broker
        .mirrors
        .change(broker, LinkChange::Create(spec.clone()))
        .await?;
    Ok(spec)
}

/// Leader address of each partition of `topic` on the source.
async fn partition_leaders(
    cfg: &SourceConfig,
    spec: &LinkSpec,
    topic: &str,
) -> Result<BTreeMap<i32, String>, MirrorError> {
    let err = |e: anyhow::Error| MirrorError::Source(e.to_string());
    let addr = spec.source.split(',').next().unwrap_or("").trim();
    let mut conn = cfg
        .connect(addr, &format!("mirror-{}", spec.name))
        .await
        .map_err(err)?;
    let v = conn.version::<MetadataRequest>(9).map_err(err)?;
    let mut req = MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    req.topics = Some(vec![t]);
    let md = conn.call(&req, v, CALL_TIMEOUT).await.map_err(err)?;
    let brokers: BTreeMap<i32, String> = md
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    Ok(md
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| {
            brokers
                .get(&p.leader_id.0)
                .map(|a| (p.partition_index, a.clone()))
        })
        .collect())
}

/// OffsetForLeaderEpoch on the source: (epoch, end offset) for `epoch`.
async fn end_for_epoch(
    cfg: &SourceConfig,
    spec: &LinkSpec,
    addr: &str,
    topic: &str,
    partition: i32,
    epoch: i32,
) -> Result<(i32, i64), MirrorError> {
    let err = |e: anyhow::Error| MirrorError::Source(e.to_string());
    let mut conn = cfg
        .connect(addr, &format!("mirror-{}", spec.name))
        .await
        .map_err(err)?;
    let v = conn
        .version::<OffsetForLeaderEpochRequest>(3)
        .map_err(err)?;
    let mut req = OffsetForLeaderEpochRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    let mut p = OffsetForLeaderPartition::default();
    p.partition = partition;
    p.leader_epoch = epoch;
    p.current_leader_epoch = -1;
    let mut t = OffsetForLeaderTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![p];
    req.topics = vec![t];
    let resp = conn.call(&req, v, CALL_TIMEOUT).await.map_err(err)?;
    let r = resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|x| x.partition == partition)
        .ok_or_else(|| {
            MirrorError::Source(format!(
                "no OffsetForLeaderEpoch answer for {topic}-{partition}"
            ))
        })?;
    if r.error_code != 0 {
        return Err(MirrorError::Source(format!(
            "OffsetForLeaderEpoch {topic}-{partition}: error {}",
            r.error_code
        )));
    }
    Ok((r.leader_epoch, r.end_offset))
}
