//! The RocketMQ 4.x remoting protocol: frames ([`frame`]), request/response codes ([`codes`]),
//! typed custom headers ([`header`]), JSON bodies ([`body`]) and the stored-message, batch,
//! properties and message-id encodings ([`message`]).
//!
//! Facts follow Apache RocketMQ 4.9.4 and the golden captures in `compat-tests/captures/rocketmq-4.9.4`.

pub mod body;
pub mod codes;
pub mod error;
pub mod frame;
pub mod header;
pub mod message;

pub use error::RocketMqError;
pub use frame::{decode, encode, frame_size, RemotingCommand, SerializeType};
pub use message::{
    decode_batch, decode_offset_msg_id, decode_properties, decode_stored, encode_properties,
    encode_stored, offset_msg_id, BatchEntry, StoredMessage,
};
