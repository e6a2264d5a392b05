//! The Kafka front end: one connection task per client, requests processed in arrival order
//! (Kafka's per-connection ordering guarantee) while reading and writing run independently,
//! and one thin handler per API key.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_client_quotas;
mod alter_configs;
mod alter_partition_reassignments;
mod alter_user_scram_credentials;
mod api_versions;
#[cfg(test)]
mod capture_tests;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod describe_producers;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod errors;
mod fetch;
mod fetch_session;
mod find_coordinator;
pub(crate) mod group;
mod incremental_alter_configs;
mod init_producer_id;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
pub(crate) mod listener;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod partition_metrics;
mod produce;
mod sasl_authenticate;
mod sasl_handshake;
pub(crate) mod session;
mod topic_configs;
mod txn_offset_commit;
mod write_txn_markers;

use crate::auth::acl::{Operation, ResourceType};
use crate::auth::{Protocol, Who};
use crate::broker::Broker;
use bytes::{BufMut, Bytes, BytesMut};
use codecs::kafka::frame::{self, FrameError};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, HeaderVersion, Message};
use session::Session;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
    pub(crate) session: &'a Session,
    /// Quota throttle of this request (ms): set in the response, and the connection stops
    /// reading for that long after answering (KIP-219).
    pub(crate) throttle_ms: std::sync::atomic::AtomicI32,
}

impl<'a> RequestContext<'a> {
    fn new(
        broker: &'a Arc<Broker>,
        header: &'a RequestHeader,
        version: i16,
        session: &'a Session,
    ) -> Self {
        Self {
            broker,
            header,
            version,
            peer: session.peer,
            session,
            throttle_ms: Default::default(),
        }
    }

    /// The client id of the request, or "".
    pub(crate) fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }

    /// The connection's principal and address.
    pub(crate) fn who(&self) -> Who<'_> {
        Who {
            principal: &self.session.principal,
            peer: self.peer,
            protocol: Protocol::Kafka,
        }
    }

    /// Whether the principal may do `op` on the resource; a denial is audited.
    pub(crate) fn allowed(&self, op: Operation, t: ResourceType, name: &str) -> bool {
        let api = ApiKey::try_from(self.header.request_api_key)
            .map(api_name)
            .unwrap_or("Other");
        self.broker.security.check(&self.who(), op, t, name, api)
    }

    /// As [`Self::allowed`] without auditing a denial (filtering lists, as Kafka does).
    pub(crate) fn permits(&self, op: Operation, t: ResourceType, name: &str) -> bool {
        self.broker.security.permits(&self.who(), op, t, name)
    }

    /// Records a quota throttle for this request (the largest one counts).
    pub(crate) fn throttle(&self, ms: i32) {
        self.throttle_ms
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Why an ACL request (`api`, needing `op` on the cluster) is refused, if it is: no
    /// authorizer (SECURITY_DISABLED) or no permission (CLUSTER_AUTHORIZATION_FAILED).
    pub(crate) fn acl_admin_refusal(&self, op: Operation, api: &str) -> Option<(i16, String)> {
        use kafka_protocol::error::ResponseError;
        if !self.broker.security.authorizer {
            return Some((
                ResponseError::SecurityDisabled.code(),
                "No Authorizer is configured.".into(),
            ));
        }
        (!self.allowed_on_cluster(op)).then(|| {
            (
                ResponseError::ClusterAuthorizationFailed.code(),
                format!("Request {api} is not authorized."),
            )
        })
    }

    /// Whether the principal may do `op` on the cluster; a denial is audited.
    pub(crate) fn allowed_on_cluster(&self, op: Operation) -> bool {
        self.allowed(op, ResourceType::Cluster, crate::auth::acl::CLUSTER_NAME)
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
    #[error("{api:?} refused: {why}")]
    Unauthenticated { api: ApiKey, why: &'static str },
    #[error("request of {size} bytes exceeds queued.max.request.bytes={total}")]
    RequestMemory { size: usize, total: usize },
    #[error("no authentication within {0:?}")]
    AuthTimeout(std::time::Duration),
}

/// Serves one accepted connection: requests are read and handled in order on this task,
/// answers are written by a second one.
pub(crate) async fn connection<R, W>(
    broker: Arc<Broker>,
    rd: R,
    mut wr: W,
    mut session: Session,
) -> Result<(), ConnError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let peer = session.peer;
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
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    });
    let result = async {
        loop {
            let mut prefix = [0u8; 4];
            let read = match session.authn_deadline {
                // Until it authenticates, a connection has a deadline.
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline.into(), rd.read_exact(&mut prefix))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => {
                            metrics::counter!("sasl_authentications_total", "listener" => session.listener.name.clone(), "mechanism" => "none", "result" => "timeout").increment(1);
                            return Err(ConnError::AuthTimeout(session.listener.authn_timeout));
                        }
                    }
                }
                None => rd.read_exact(&mut prefix).await,
            };
            if read.is_err() {
                return Ok(());
            }
            if crate::auth::tls::looks_like_tls(&prefix) {
                tracing::warn!(%peer, listener = %session.listener.name, "TLS handshake on a plaintext Kafka listener; closing");
                metrics::counter!("tls_handshake_failures_total", "listener" => session.listener.name.clone(), "reason" => "tls_on_plaintext").increment(1);
                return Ok(());
            }
            let limit = if session.authenticated() {
                max
            } else {
                max.min(crate::auth::sasl::MAX_TOKEN)
            };
            let size = frame::frame_size(prefix, limit)?;
            // queued.max.request.bytes: the body waits for memory, held until it is handled.
            let _memory = match broker.connections.request_memory(size).await {
                Ok(permit) => permit,
                Err(total) => return Err(ConnError::RequestMemory { size, total }),
            };
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
            let response = handle_frame(&broker, &mut session, buf.freeze()).await?;
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
            if response.close {
                return Ok(());
            }
            if response.throttle_ms > 0 {
                // KIP-219: the answer is on its way; the channel stays muted meanwhile.
                metrics::counter!("kafka_throttled_requests_total", "api" => api).increment(1);
                tokio::time::sleep(std::time::Duration::from_millis(response.throttle_ms as u64))
                    .await;
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
    /// Close the connection once the answer is written (failed authentication).
    close: bool,
    /// Quota throttle: the connection reads nothing more for this long (ms).
    throttle_ms: i32,
}

fn api_name(api: ApiKey) -> &'static str {
    api_versions::name(api)
}

/// A raw SASL token (after a v0 handshake) answered with a raw, size-prefixed token; a
/// failure closes the connection without an answer, as Kafka does.
fn raw_token(broker: &Broker, session: &mut Session, frame: &[u8]) -> Handled {
    let r = sasl_authenticate::step(session, &broker.security, frame);
    if r.error.is_some() {
        return Handled {
            api_name: "SaslAuthenticate",
            answer: Answer::Now(None),
            close: true,
            throttle_ms: 0,
        };
    }
    let mut b = BytesMut::with_capacity(4 + r.token.len());
    b.put_i32(r.token.len() as i32);
    b.extend_from_slice(&r.token);
    Handled {
        api_name: "SaslAuthenticate",
        answer: Answer::Now(Some(b.freeze())),
        close: false,
        throttle_ms: 0,
    }
}

async fn handle_frame(
    broker: &Arc<Broker>,
    session: &mut Session,
    mut frame: Bytes,
) -> Result<Handled, ConnError> {
    if session.expects_raw_token() {
        return Ok(raw_token(broker, session, &frame));
    }
    let ids = frame::peek_ids(&frame)?;
    let api = ApiKey::try_from(ids.api_key).map_err(|_| ConnError::UnknownApiKey(ids.api_key))?;
    if let Some(why) = session.refuse(api) {
        return Err(ConnError::Unauthenticated { api, why });
    }
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
                close: false,
                throttle_ms: 0,
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
        let ctx = RequestContext::new(broker, &header, version, session);
        let answer = Answer::Now(produce::handle_legacy(&ctx, frame).await?);
        return Ok(Handled {
            api_name: api_name(api),
            answer,
            close: false,
            throttle_ms: ctx.throttle_ms.into_inner(),
        });
    }
    let malformed = |e: anyhow::Error| ConnError::Malformed {
        api,
        version,
        why: e.to_string(),
    };
    let request = RequestKind::decode(api, &mut frame, version).map_err(malformed)?;
    // The SASL requests change the connection's state; everything else only reads it.
    let (request, close) = match request {
        RequestKind::SaslHandshake(r) => {
            let (resp, close) = sasl_handshake::handle(session, r, version);
            (Err(encode_with(&header, version, api, &resp)?), close)
        }
        RequestKind::SaslAuthenticate(r) => {
            let (resp, close) = sasl_authenticate::handle(session, &broker.security, r, version);
            (Err(encode_with(&header, version, api, &resp)?), close)
        }
        other => (Ok(other), false),
    };
    let (answer, throttle_ms) = match request {
        Err(bytes) => (Answer::Now(bytes), 0),
        Ok(request) => {
            let ctx = RequestContext::new(broker, &header, version, session);
            let started = Instant::now();
            let answer = dispatch(&ctx, request).await?;
            // request_percentage: the handling time, as a percentage of one thread.
            let snap = broker.security.snapshot();
            let ms = broker.quotas.record(
                &snap.state,
                crate::auth::quota::Kind::Request,
                crate::auth::principal::name_of(&session.principal),
                header.client_id.as_deref().unwrap_or(""),
                started.elapsed().as_secs_f64() * 100.0,
            );
            ctx.throttle(ms);
            (answer, ctx.throttle_ms.into_inner())
        }
    };
    Ok(Handled {
        api_name: api_name(api),
        answer,
        close,
        throttle_ms,
    })
}

fn encode_with<R: Encodable + HeaderVersion + Message>(
    header: &RequestHeader,
    version: i16,
    api: ApiKey,
    body: &R,
) -> Result<Option<Bytes>, ConnError> {
    frame::encode_response(
        header.correlation_id,
        R::header_version(version),
        body,
        version,
    )
    .map(Some)
    .map_err(|why| ConnError::Encode { api, version, why })
}

fn encode<R: Encodable + HeaderVersion + Message>(
    ctx: &RequestContext<'_>,
    api: ApiKey,
    body: &R,
) -> Result<Option<Bytes>, ConnError> {
    encode_with(ctx.header, ctx.version, api, body)
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
            reply!(
                ApiKey::InitProducerId,
                init_producer_id::handle(ctx, r).await
            )
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
        RequestKind::CreateAcls(r) => {
            reply!(ApiKey::CreateAcls, create_acls::handle(ctx, r).await)
        }
        RequestKind::DescribeAcls(r) => reply!(ApiKey::DescribeAcls, describe_acls::handle(ctx, r)),
        RequestKind::DeleteAcls(r) => {
            reply!(ApiKey::DeleteAcls, delete_acls::handle(ctx, r).await)
        }
        RequestKind::DescribeUserScramCredentials(r) => reply!(
            ApiKey::DescribeUserScramCredentials,
            describe_user_scram_credentials::handle(ctx, r)
        ),
        RequestKind::AlterUserScramCredentials(r) => reply!(
            ApiKey::AlterUserScramCredentials,
            alter_user_scram_credentials::handle(ctx, r).await
        ),
        RequestKind::DescribeClientQuotas(r) => reply!(
            ApiKey::DescribeClientQuotas,
            describe_client_quotas::handle(ctx, r)
        ),
        RequestKind::AlterClientQuotas(r) => reply!(
            ApiKey::AlterClientQuotas,
            alter_client_quotas::handle(ctx, r).await
        ),
        RequestKind::AddPartitionsToTxn(r) => reply!(
            ApiKey::AddPartitionsToTxn,
            add_partitions_to_txn::handle(ctx, r).await
        ),
        RequestKind::AddOffsetsToTxn(r) => reply!(
            ApiKey::AddOffsetsToTxn,
            add_offsets_to_txn::handle(ctx, r).await
        ),
        RequestKind::EndTxn(r) => reply!(ApiKey::EndTxn, end_txn::handle(ctx, r).await),
        RequestKind::TxnOffsetCommit(r) => reply!(
            ApiKey::TxnOffsetCommit,
            txn_offset_commit::handle(ctx, r).await
        ),
        RequestKind::WriteTxnMarkers(r) => reply!(
            ApiKey::WriteTxnMarkers,
            write_txn_markers::handle(ctx, r).await
        ),
        RequestKind::ListTransactions(r) => {
            reply!(ApiKey::ListTransactions, list_transactions::handle(ctx, r))
        }
        RequestKind::DescribeTransactions(r) => reply!(
            ApiKey::DescribeTransactions,
            describe_transactions::handle(ctx, r)
        ),
        RequestKind::DescribeProducers(r) => reply!(
            ApiKey::DescribeProducers,
            describe_producers::handle(ctx, r)
        ),
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
