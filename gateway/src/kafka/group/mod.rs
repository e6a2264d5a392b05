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
