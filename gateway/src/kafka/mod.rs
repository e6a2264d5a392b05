//! The Kafka front end: one connection task per client, requests processed in arrival order
//! (Kafka's per-connection ordering guarantee) while reading and writing run independently,
//! and one thin handler per API key.

mod alter_configs;
mod alter_partition_reassignments;
mod api_versions;
#[cfg(test)]
mod capture_tests;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod elect_leaders;
mod errors;
mod fetch;
mod fetch_session;
mod find_coordinator;
pub(crate) mod group;
mod incremental_alter_configs;
mod init_producer_id;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod partition_metrics;
mod produce;
mod topic_configs;

use crate::broker::Broker;
use bytes::{Bytes, BytesMut};
use codecs::kafka::frame::{self, FrameError};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, HeaderVersion, Message};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub(crate) use api_versions::supported_versions;
pub(crate) use errors::code as storage_error_code;
pub(crate) use fetch_session::FetchSessions;
pub(crate) use partition_metrics::record as record_partition_metrics;

/// A protocol string from a Rust string.
pub(crate) fn sb(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}

/// A topic name from a Rust string.
pub(crate) fn topic_name(s: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(sb(s))
}

/// Largest step by which a request buffer grows while its bytes arrive.
const READ_CHUNK: usize = 256 * 1024;

/// What a handler sees besides its request body.
pub(crate) struct RequestContext<'a> {
    pub(crate) broker: &'a Arc<Broker>,
    pub(crate) header: &'a RequestHeader,
    pub(crate) version: i16,
    pub(crate) peer: SocketAddr,
}

impl RequestContext<'_> {
    /// The client id of the request, or "".
    pub(crate) fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed {api:?} v{version} request: {why}")]
    Malformed {
        api: ApiKey,
        version: i16,
        why: String,
    },
    #[error("cannot encode {api:?} v{version} response: {why}")]
    Encode {
        api: ApiKey,
        version: i16,
        why: String,
    },
}

/// Accepts Kafka connections until the listener fails.
pub(crate) async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let broker = broker.clone();
                tokio::spawn(async move {
                    metrics::gauge!("kafka_connections").increment(1.0);
                    metrics::counter!("kafka_connections_accepted_total").increment(1);
                    if let Err(e) = connection(broker, stream, peer).await {
                        tracing::warn!(%peer, error = %e, "closing Kafka connection");
                    }
                    metrics::gauge!("kafka_connections").decrement(1.0);
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "Kafka accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
) -> Result<(), ConnError> {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = tokio::io::BufReader::with_capacity(crate::net::READ_BUFFER, rd);
    let max = broker.limits.max_request_bytes;
    // Responses go to a writer task in request order. Requests are processed one after
    // another (appends keep their order), but a produce that only waits for its fsync or its
    // replication hands that wait to the writer, so the next requests are read and appended
    // meanwhile (pipelining); the channel bounds how many answers may be outstanding.
    let (tx, mut rx) = mpsc::channel::<Reply>(64);
    let writer = tokio::spawn(async move {
        let mut next = rx.recv().await;
        while let Some(reply) = next {
            let buf = match reply {
                Reply::Now(b) => b,
                Reply::Later {
                    api_name,
                    started,
                    answer,
                } => {
                    let r = answer.await;
                    metrics::histogram!("kafka_request_duration_seconds", "api" => api_name)
                        .record(started.elapsed().as_secs_f64());
                    match r {
                        Ok(Some(b)) => b,
                        Ok(None) => {
                            next = rx.recv().await;
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "closing Kafka connection");
                            break;
                        }
                    }
                }
            };
            // Ready answers queued behind this one go out in the same write; a pending
            // one stops the batch (answers keep request order).
            let mut pending: Option<Reply> = None;
            let written = crate::net::write_batch(&mut wr, buf, || match rx.try_recv() {
                Ok(Reply::Now(b)) => Some(b),
                Ok(later) => {
                    pending = Some(later);
                    None
                }
                Err(_) => None,
            })
            .await;
            next = match written {
                Err(_) => break,
                Ok(Some(held)) => Some(Reply::Now(held)),
                Ok(None) => match pending {
                    Some(p) => Some(p),
                    None => rx.recv().await,
                },
            };
        }
        let _ = wr.shutdown().await;
    });
    let result = async {
        loop {
            let mut prefix = [0u8; 4];
            match rd.read_exact(&mut prefix).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(_) => return Ok(()),
            }
            let size = frame::frame_size(prefix, max)?;
            // Grow the buffer as bytes arrive rather than trusting the claimed size up front,
            // so a client announcing 100 MiB and sending nothing costs nothing.
            let mut buf = BytesMut::with_capacity(size.min(READ_CHUNK));
            while buf.len() < size {
                buf.reserve((size - buf.len()).min(READ_CHUNK));
                let want = (size - buf.len()) as u64;
                match (&mut rd).take(want).read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                }
            }
            let started = Instant::now();
            let response = handle_frame(&broker, buf.freeze(), peer).await?;
            let api = response.api_name;
            metrics::counter!("kafka_requests_total", "api" => api).increment(1);
            let reply = match response.answer {
                Answer::Now(None) => None,
                Answer::Now(Some(b)) => {
                    metrics::histogram!("kafka_request_duration_seconds", "api" => api)
                        .record(started.elapsed().as_secs_f64());
                    Some(Reply::Now(b))
                }
                Answer::Later(answer) => Some(Reply::Later {
                    api_name: api,
                    started,
                    answer,
                }),
            };
            if let Some(r) = reply {
                if tx.send(r).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    .await;
    drop(tx);
    let _ = writer.await;
    result
}

/// A response to be written: ready, or still to be earned (a produce's fsync/replication).
enum Reply {
    Now(Bytes),
    Later {
        api_name: &'static str,
        started: Instant,
        answer: LaterAnswer,
    },
}

type LaterAnswer =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<Bytes>, ConnError>> + Send>>;

/// What handling a request produced.
enum Answer {
    Now(Option<Bytes>),
    Later(LaterAnswer),
}

struct Handled {
    api_name: &'static str,
    answer: Answer,
}

fn api_name(api: ApiKey) -> &'static str {
    api_versions::name(api)
}

async fn handle_frame(
    broker: &Arc<Broker>,
    mut frame: Bytes,
    peer: SocketAddr,
) -> Result<Handled, ConnError> {
    let ids = frame::peek_ids(&frame)?;
    let api = ApiKey::try_from(ids.api_key).map_err(|_| ConnError::UnknownApiKey(ids.api_key))?;
    let Some((min, max)) = supported_versions(api) else {
        return Err(ConnError::UnknownApiKey(ids.api_key));
    };
    if ids.api_version < min || ids.api_version > max {
        if api == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version in v0 format with the error and
            // our ranges, so the client can retry with a version we speak.
            let body = api_versions::unsupported_version_response();
            let bytes = frame::encode_response(ids.correlation_id, 0, &body, 0).map_err(|why| {
                ConnError::Encode {
                    api,
                    version: 0,
                    why,
                }
            })?;
            return Ok(Handled {
                api_name: api_name(api),
                answer: Answer::Now(Some(bytes)),
            });
        }
        metrics::counter!("kafka_request_errors_total", "api" => api_name(api), "error" => "UNSUPPORTED_VERSION").increment(1);
        return Err(ConnError::UnsupportedVersion {
            api,
            version: ids.api_version,
        });
    }
    let header = frame::decode_header(api, &mut frame)?;
    let version = ids.api_version;
    if api == ApiKey::Produce && version < produce::FIRST_MODERN_VERSION {
        let ctx = RequestContext {
            broker,
            header: &header,
            version,
            peer,
        };
        return Ok(Handled {
            api_name: api_name(api),
            answer: Answer::Now(produce::handle_legacy(&ctx, frame).await?),
        });
    }
    let malformed = |e: anyhow::Error| ConnError::Malformed {
        api,
        version,
        why: e.to_string(),
    };
    let request = RequestKind::decode(api, &mut frame, version).map_err(malformed)?;
    let ctx = RequestContext {
        broker,
        header: &header,
        version,
        peer,
    };
    Ok(Handled {
        api_name: api_name(api),
        answer: dispatch(&ctx, request).await?,
    })
}

fn encode<R: Encodable + HeaderVersion + Message>(
    ctx: &RequestContext<'_>,
    api: ApiKey,
    body: &R,
) -> Result<Option<Bytes>, ConnError> {
    let header_version = R::header_version(ctx.version);
    frame::encode_response(ctx.header.correlation_id, header_version, body, ctx.version)
        .map(Some)
        .map_err(|why| ConnError::Encode {
            api,
            version: ctx.version,
            why,
        })
}

/// A produce is appended now, in request order, and acknowledged later, when its data is
/// as durable and replicated as it asked (the connection reads on meanwhile).
fn produce_later(
    ctx: &RequestContext<'_>,
    req: kafka_protocol::messages::ProduceRequest,
) -> Answer {
    let pending = produce::begin(ctx, req);
    let (correlation_id, version) = (ctx.header.correlation_id, ctx.version);
    let header_version = kafka_protocol::messages::ProduceResponse::header_version(version);
    Answer::Later(Box::pin(async move {
        match pending.finish().await {
            Some(resp) => frame::encode_response(correlation_id, header_version, &resp, version)
                .map(Some)
                .map_err(|why| ConnError::Encode {
                    api: ApiKey::Produce,
                    version,
                    why,
                }),
            None => Ok(None),
        }
    }))
}

async fn dispatch(ctx: &RequestContext<'_>, request: RequestKind) -> Result<Answer, ConnError> {
    macro_rules! reply {
        ($api:expr, $resp:expr) => {{
            let resp = $resp;
            encode(ctx, $api, &resp).map(Answer::Now)
        }};
    }
    match request {
        RequestKind::ApiVersions(r) => reply!(ApiKey::ApiVersions, api_versions::handle(ctx, r)),
        RequestKind::Metadata(r) => reply!(ApiKey::Metadata, metadata::handle(ctx, r).await),
        RequestKind::Produce(r) => Ok(produce_later(ctx, r)),
        RequestKind::Fetch(r) => reply!(ApiKey::Fetch, fetch::handle(ctx, r).await),
        RequestKind::ListOffsets(r) => reply!(ApiKey::ListOffsets, list_offsets::handle(ctx, r)),
        RequestKind::CreateTopics(r) => {
            reply!(ApiKey::CreateTopics, create_topics::handle(ctx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            reply!(ApiKey::DeleteTopics, delete_topics::handle(ctx, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            reply!(
                ApiKey::CreatePartitions,
                create_partitions::handle(ctx, r).await
            )
        }
        RequestKind::DescribeConfigs(r) => {
            reply!(ApiKey::DescribeConfigs, describe_configs::handle(ctx, r))
        }
        RequestKind::AlterConfigs(r) => {
            reply!(ApiKey::AlterConfigs, alter_configs::handle(ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => reply!(
            ApiKey::IncrementalAlterConfigs,
            incremental_alter_configs::handle(ctx, r).await
        ),
        RequestKind::DeleteRecords(r) => {
            reply!(ApiKey::DeleteRecords, delete_records::handle(ctx, r))
        }
        RequestKind::DescribeCluster(r) => {
            reply!(ApiKey::DescribeCluster, describe_cluster::handle(ctx, r))
        }
        RequestKind::DescribeLogDirs(r) => {
            reply!(ApiKey::DescribeLogDirs, describe_log_dirs::handle(ctx, r))
        }
        RequestKind::FindCoordinator(r) => {
            reply!(ApiKey::FindCoordinator, find_coordinator::handle(ctx, r))
        }
        RequestKind::InitProducerId(r) => {
            reply!(ApiKey::InitProducerId, init_producer_id::handle(ctx, r))
        }
        RequestKind::OffsetCommit(r) => {
            reply!(ApiKey::OffsetCommit, offset_commit::handle(ctx, r).await)
        }
        RequestKind::AlterPartitionReassignments(r) => reply!(
            ApiKey::AlterPartitionReassignments,
            alter_partition_reassignments::handle(ctx, r).await
        ),
        RequestKind::ListPartitionReassignments(r) => reply!(
            ApiKey::ListPartitionReassignments,
            list_partition_reassignments::handle(ctx, r)
        ),
        RequestKind::ElectLeaders(r) => {
            reply!(ApiKey::ElectLeaders, elect_leaders::handle(ctx, r).await)
        }
        RequestKind::OffsetForLeaderEpoch(r) => reply!(
            ApiKey::OffsetForLeaderEpoch,
            offset_for_leader_epoch::handle(ctx, r)
        ),
        RequestKind::OffsetFetch(r) => reply!(ApiKey::OffsetFetch, offset_fetch::handle(ctx, r)),
        RequestKind::OffsetDelete(r) => {
            reply!(ApiKey::OffsetDelete, offset_delete::handle(ctx, r).await)
        }
        RequestKind::JoinGroup(r) => {
            reply!(ApiKey::JoinGroup, group::join_group::handle(ctx, r).await)
        }
        RequestKind::SyncGroup(r) => {
            reply!(ApiKey::SyncGroup, group::sync_group::handle(ctx, r).await)
        }
        RequestKind::Heartbeat(r) => reply!(ApiKey::Heartbeat, group::heartbeat::handle(ctx, r)),
        RequestKind::LeaveGroup(r) => {
            reply!(ApiKey::LeaveGroup, group::leave_group::handle(ctx, r))
        }
        RequestKind::ListGroups(r) => {
            reply!(ApiKey::ListGroups, group::list_groups::handle(ctx, r))
        }
        RequestKind::DescribeGroups(r) => {
            reply!(
                ApiKey::DescribeGroups,
                group::describe_groups::handle(ctx, r)
            )
        }
        RequestKind::DeleteGroups(r) => {
            reply!(
                ApiKey::DeleteGroups,
                group::delete_groups::handle(ctx, r).await
            )
        }
        _ => {
            // supported_versions() admits only the keys matched above.
            Err(ConnError::UnknownApiKey(ctx.header.request_api_key))
        }
    }
}
