//! The daemon's side of the library: what `shmbusd` uses to own a bus's
//! topics (create, adopt, reap, close, unlink), to serve pattern
//! subscriptions, and to clean up. **Not for applications**: a program that
//! publishes and subscribes needs only [`Bus`](crate::Bus) and the types at
//! the crate root. The project's own tests and benchmark use it to set up
//! topics without a daemon.

pub use crate::segment::{euid, list_shm, owner_of, removal_hint, shm_file, SHM_DIR};
pub use crate::topic::{
    list_bus_topics, remove_bus_segments, remove_segment_files, Cleaned, ReapReport,
    SegmentIdentity, SegmentPerms, TopicOwner,
};
pub use crate::watch::{send_with_fd, FdReader, WakePage, WAKE_PAGE_SIZE};

/// Removes shared-memory object `name` (a file under `/dev/shm`, without
/// the directory) from the name space; mappings stay valid.
pub fn unlink_segment(name: &str) -> crate::error::Result<()> {
    crate::segment::Segment::unlink(name)
}
