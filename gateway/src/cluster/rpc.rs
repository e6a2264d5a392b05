//! The controller listener: Raft messages between the metadata voters, writes forwarded to
//! the Raft leader, and node heartbeats. Frames are a 4-byte big-endian length and a JSON body
//! over one persistent TCP connection per peer.

use super::raft_store::{NodeId, TypeConfig};
use super::state::{Command, NodeInfo, Outcome};
use super::Cluster;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Largest frame accepted on the controller port (snapshots travel in one frame).
const MAX_FRAME: usize = 256 << 20;

#[derive(Serialize, Deserialize)]
pub(crate) enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A metadata change forwarded to the Raft leader.
    Write(Command),
    /// A node's periodic "I am alive" to the controller.
    Heartbeat(NodeInfo),
    /// A node outside the voter set asks to replicate the metadata as a learner.
    Join {
        id: NodeId,
        addr: String,
    },
    /// The controller asks a replica where its log of a partition ends (quorum elections).
    LogEnd {
        topic: String,
        partition: i32,
    },
}

#[derive(Serialize, Deserialize)]
pub(crate) enum WriteReply {
    /// Committed at `index` with this outcome.
    Done {
        index: u64,
        outcome: Outcome,
    },
    /// This node is not the Raft leader.
    NotLeader,
    Failed(String),
}

#[derive(Serialize, Deserialize)]
pub(crate) enum Response {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Write(WriteReply),
    /// Whether the receiver is the controller.
    Heartbeat(bool),
    /// (latest leader epoch, log end offset) of the partition here, if it has it.
    LogEnd(Option<(i32, i64)>),
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let len = r.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("controller frame of {len} bytes exceeds {MAX_FRAME}"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    w.write_all(&out).await?;
    w.flush().await
}

/// One request/response connection to a peer's controller port, reopened after errors.
pub(crate) struct RpcClient {
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<BufReader<Box<dyn crate::net::Stream>>>,
}

impl RpcClient {
    /// A client of a peer's controller port (mutual TLS when `tls` is given).
    pub(crate) fn new(addr: String, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self {
            addr,
            tls,
            conn: None,
        }
    }

    pub(crate) async fn call(
        &mut self,
        req: &Request,
        timeout: Duration,
    ) -> std::io::Result<Response> {
        let body = serde_json::to_vec(req)?;
        let res = tokio::time::timeout(timeout, async {
            if self.conn.is_none() {
                let s = crate::auth::tls::connect(&self.addr, self.tls.as_ref()).await?;
                self.conn = Some(BufReader::new(s));
            }
            let Some(conn) = self.conn.as_mut() else {
                return Err(std::io::Error::other("no connection"));
            };
            write_frame(conn.get_mut(), &body).await?;
            let frame = read_frame(conn).await?;
            Ok(serde_json::from_slice::<Response>(&frame)?)
        })
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "controller rpc timed out",
            ))
        });
        if res.is_err() {
            self.conn = None;
        }
        res
    }
}

/// Creates one [`PeerNetwork`] per Raft peer.
pub(crate) struct NetworkFactory {
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

/// The Raft transport to one peer.
pub(crate) struct PeerNetwork {
    target: NodeId,
    client: RpcClient,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerNetwork {
            target,
            client: RpcClient::new(node.addr.clone(), self.tls.clone()),
        }
    }
}

fn net_err<E: std::error::Error>(e: std::io::Error) -> RPCError<NodeId, BasicNode, E> {
    if matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut
    ) {
        RPCError::Unreachable(Unreachable::new(&e))
    } else {
        RPCError::Network(NetworkError::new(&e))
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
    let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected reply");
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .client
            .call(&Request::Append(rpc), option.hard_ttl())
            .await
            .map_err(net_err)?
        {
            Response::Append(Ok(r)) => Ok(r),
            Response::Append(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .client
            .call(&Request::Snapshot(rpc), option.hard_ttl())
            .await
            .map_err(net_err)?
        {
            Response::Snapshot(Ok(r)) => Ok(r),
            Response::Snapshot(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .client
            .call(&Request::Vote(rpc), option.hard_ttl())
            .await
            .map_err(net_err)?
        {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(unexpected()),
        }
    }
}

/// Serves the controller port.
pub(crate) async fn serve(cluster: Arc<Cluster>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "controller accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let cluster = cluster.clone();
        tokio::spawn(async move {
            // With cluster TLS only a peer whose certificate chains to the cluster's trust
            // store gets past the handshake: nothing else can vote, join or write.
            let stream: Box<dyn crate::net::Stream> = match &cluster.tls {
                None => Box::new(stream),
                Some(t) => {
                    let accepted = tokio::time::timeout(
                        Duration::from_secs(10),
                        t.server.acceptor().accept(stream),
                    )
                    .await;
                    match accepted {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            metrics::counter!("tls_handshake_failures_total", "listener" => "CONTROLLER", "reason" => "handshake").increment(1);
                            tracing::warn!(target: "audit", %peer, error = %e, "controller connection without a valid cluster certificate refused");
                            return;
                        }
                        Err(_) => {
                            metrics::counter!("tls_handshake_failures_total", "listener" => "CONTROLLER", "reason" => "timeout").increment(1);
                            return;
                        }
                    }
                }
            };
            if let Err(e) = connection(cluster, stream, peer).await {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    tracing::debug!(%peer, error = %e, "controller connection closed");
                }
            }
        });
    }
}

async fn connection(
    cluster: Arc<Cluster>,
    stream: Box<dyn crate::net::Stream>,
    peer: std::net::SocketAddr,
) -> std::io::Result<()> {
    // The node heartbeating on this connection: when the connection drops, the controller
    // probes it at once instead of waiting for it to be late.
    let mut heartbeating = None;
    let r = requests(&cluster, stream, peer, &mut heartbeating).await;
    if let Some(id) = heartbeating {
        cluster.liveness.connection_lost(id);
    }
    r
}

async fn requests(
    cluster: &Arc<Cluster>,
    stream: Box<dyn crate::net::Stream>,
    peer: std::net::SocketAddr,
    heartbeating: &mut Option<i32>,
) -> std::io::Result<()> {
    let mut conn = BufReader::new(stream);
    loop {
        let frame = read_frame(&mut conn).await?;
        let req: Request = match serde_json::from_slice(&frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "undecodable controller request; closing");
                return Ok(());
            }
        };
        let resp = match req {
            Request::Append(r) => Response::Append(cluster.raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(cluster.raft.vote(r).await),
            Request::Snapshot(r) => Response::Snapshot(cluster.raft.install_snapshot(r).await),
            Request::Write(cmd) => Response::Write(cluster.write_as_leader(cmd).await),
            Request::Heartbeat(info) => {
                *heartbeating = Some(info.id);
                Response::Heartbeat(cluster.on_heartbeat(info).await)
            }
            Request::Join { id, addr } => Response::Write(cluster.add_learner(id, addr).await),
            Request::LogEnd { topic, partition } => {
                Response::LogEnd(cluster.log_end(&topic, partition))
            }
        };
        let body = serde_json::to_vec(&resp)?;
        write_frame(conn.get_mut(), &body).await?;
    }
}
