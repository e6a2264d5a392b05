//! The classic group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) for any protocol
//! type, and the group admin APIs.

mod coordinator;
pub(crate) mod delete_groups;
pub(crate) mod describe_groups;
pub(crate) mod heartbeat;
pub(crate) mod join_group;
pub(crate) mod leave_group;
pub(crate) mod list_groups;
pub(crate) mod sync_group;

pub(crate) use coordinator::{GroupConfig, GroupCoordinator};

use kafka_protocol::protocol::StrBytes;
use std::net::{IpAddr, SocketAddr};

/// The client host as Kafka records it (`InetAddress.toString()`: "/" and the address, IPv6
/// uncompressed).
pub(crate) fn client_host(peer: SocketAddr) -> String {
    match peer.ip().to_canonical() {
        IpAddr::V4(ip) => format!("/{ip}"),
        IpAddr::V6(ip) => {
            let parts: Vec<String> = ip.segments().iter().map(|s| format!("{s:x}")).collect();
            format!("/{}", parts.join(":"))
        }
    }
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_host_like_java() {
        let v4: SocketAddr = "10.1.2.3:5555".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(client_host(v4), "/10.1.2.3");
        let v6: SocketAddr = "[::1]:5555".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(client_host(v6), "/0:0:0:0:0:0:0:1");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:1"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(client_host(mapped), "/127.0.0.1");
    }
}
