//! What the daemon writes to a connection: reply and announcement frames,
//! each with the descriptor (if any) that travels with its first byte.

use std::os::fd::OwnedFd;

use shmbus::control::{encode_frame, ErrorReply, Outcome, Reply, MAX_REPLY_LEN, PROTOCOL_VERSION};

/// One frame to write, with the descriptor that goes with its first byte.
pub struct Outgoing {
    /// The frame, length prefix included.
    pub bytes: Vec<u8>,
    /// Passed with the first byte (`SCM_RIGHTS`), then closed.
    pub fd: Option<OwnedFd>,
}

impl Outgoing {
    /// A frame without a descriptor.
    pub fn plain(bytes: Vec<u8>) -> Outgoing {
        Outgoing { bytes, fd: None }
    }
}

/// Encodes a reply; one too large for the protocol (a bus with a huge number
/// of topics) becomes an error reply, so the client is told instead of cut
/// off.
pub fn encode_reply(id: u64, outcome: Outcome) -> Vec<u8> {
    let reply = Reply {
        v: PROTOCOL_VERSION,
        id,
        outcome,
    };
    encode_frame(&reply, MAX_REPLY_LEN).unwrap_or_else(|e| {
        let fallback = Reply {
            v: PROTOCOL_VERSION,
            id,
            outcome: Outcome::Error(ErrorReply::Internal {
                message: e.to_string(),
            }),
        };
        encode_frame(&fallback, MAX_REPLY_LEN).unwrap_or_default()
    })
}
