//! The settings C passes in: topic settings (`shmbus_topic_config_t`),
//! subscriber options (`shmbus_subscribe_options_t`), overflow policies and
//! wait strategies, each with an `_init` function that fills in the
//! library's defaults, so that programs keep compiling and behaving when a
//! later version adds fields.
//!
//! Enumerations that C passes in are plain integers with named constants,
//! not Rust enums: any value C puts there is checked, and one out of range
//! is `SHMBUS_ERR_INVALID_ARGUMENT`.

use shmbus::{Policy, SubscribeOptions, TopicConfig, WaitStrategy};

use crate::boundary::{self, FfiError, FfiResult, Out};
use crate::status::shmbus_error_t;

/// A topic's overflow policy: `SHMBUS_POLICY_BLOCK` or
/// `SHMBUS_POLICY_DROP_OLDEST`.
pub type shmbus_policy_t = u32;

/// Lossless: a publisher never overwrites a message a live subscriber has
/// not read; it waits, times out or gets `SHMBUS_ERR_FULL`.
pub const SHMBUS_POLICY_BLOCK: shmbus_policy_t = 0;
/// Publishers never wait; a subscriber a whole ring behind gets
/// `SHMBUS_ERR_LAGGED` with the number of messages it lost.
pub const SHMBUS_POLICY_DROP_OLDEST: shmbus_policy_t = 1;

/// How a blocking call waits: `SHMBUS_WAIT_SPIN_THEN_PARK` (the default),
/// `SHMBUS_WAIT_SPIN` or `SHMBUS_WAIT_PARK`.
pub type shmbus_wait_t = u32;

/// Spin briefly, then yield the CPU a few times, then sleep on the futex
/// (the default).
pub const SHMBUS_WAIT_SPIN_THEN_PARK: shmbus_wait_t = 0;
/// Busy-spin: lowest latency, burns a core, never sleeps.
pub const SHMBUS_WAIT_SPIN: shmbus_wait_t = 1;
/// Sleep on the futex at once.
pub const SHMBUS_WAIT_PARK: shmbus_wait_t = 2;

/// Settings of a topic, for `shmbus_bus_create_topic`. Fill it with
/// `shmbus_topic_config_init` first, then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct shmbus_topic_config_t {
    /// Number of slots: a power of two (default 1024).
    pub capacity: u64,
    /// Largest message in bytes (default 4096).
    pub max_msg_size: u32,
    /// Overflow policy (default `SHMBUS_POLICY_BLOCK`).
    pub policy: shmbus_policy_t,
    /// Publishers that may be attached at once (default 64).
    pub max_publishers: u32,
    /// Subscribers that may be attached at once (default 64).
    pub max_subscribers: u32,
}

/// How a subscriber starts and waits, for `shmbus_subscriber_open`. Fill
/// it with `shmbus_subscribe_options_init` first.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct shmbus_subscribe_options_t {
    /// Start at the oldest message still in the ring (history for late
    /// joiners) instead of the next one published (default false).
    pub from_start: bool,
    /// How blocking receives wait (default `SHMBUS_WAIT_SPIN_THEN_PARK`).
    pub wait: shmbus_wait_t,
}

/// The policy constant of a library policy.
pub fn policy_to_c(p: Policy) -> shmbus_policy_t {
    match p {
        Policy::Block => SHMBUS_POLICY_BLOCK,
        Policy::DropOldest => SHMBUS_POLICY_DROP_OLDEST,
    }
}

/// The library policy named by `p`.
pub fn policy_from_c(p: shmbus_policy_t) -> FfiResult<Policy> {
    match p {
        SHMBUS_POLICY_BLOCK => Ok(Policy::Block),
        SHMBUS_POLICY_DROP_OLDEST => Ok(Policy::DropOldest),
        other => Err(FfiError::invalid(format!(
            "policy {other} is not SHMBUS_POLICY_BLOCK (0) or SHMBUS_POLICY_DROP_OLDEST (1)"
        ))),
    }
}

/// The library wait strategy named by `w`.
pub fn wait_from_c(w: shmbus_wait_t) -> FfiResult<WaitStrategy> {
    match w {
        SHMBUS_WAIT_SPIN_THEN_PARK => Ok(WaitStrategy::SpinThenPark),
        SHMBUS_WAIT_SPIN => Ok(WaitStrategy::Spin),
        SHMBUS_WAIT_PARK => Ok(WaitStrategy::Park),
        other => Err(FfiError::invalid(format!(
            "wait strategy {other} is not SHMBUS_WAIT_SPIN_THEN_PARK (0), SHMBUS_WAIT_SPIN (1) or SHMBUS_WAIT_PARK (2)"
        ))),
    }
}

fn wait_to_c(w: WaitStrategy) -> shmbus_wait_t {
    match w {
        WaitStrategy::SpinThenPark => SHMBUS_WAIT_SPIN_THEN_PARK,
        WaitStrategy::Spin => SHMBUS_WAIT_SPIN,
        WaitStrategy::Park => SHMBUS_WAIT_PARK,
    }
}

impl shmbus_topic_config_t {
    /// The library's settings for this C struct (checked only for the
    /// policy here; the ranges are checked by the library).
    pub fn to_rust(self) -> FfiResult<TopicConfig> {
        Ok(TopicConfig {
            capacity: self.capacity,
            max_msg_size: self.max_msg_size,
            policy: policy_from_c(self.policy)?,
            max_publishers: self.max_publishers,
            max_subscribers: self.max_subscribers,
        })
    }

    fn from_rust(c: &TopicConfig) -> shmbus_topic_config_t {
        shmbus_topic_config_t {
            capacity: c.capacity,
            max_msg_size: c.max_msg_size,
            policy: policy_to_c(c.policy),
            max_publishers: c.max_publishers,
            max_subscribers: c.max_subscribers,
        }
    }
}

impl shmbus_subscribe_options_t {
    /// The library's options for this C struct.
    pub fn to_rust(self) -> FfiResult<SubscribeOptions> {
        Ok(SubscribeOptions {
            from_start: self.from_start,
            wait: wait_from_c(self.wait)?,
        })
    }
}

/// Fills `*config` with the library's default topic settings.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` if `config` is NULL.
/// Thread-safe.
///
/// # Safety
/// `config` must be NULL or point to writable memory for a
/// `shmbus_topic_config_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_topic_config_init(
    config: *mut shmbus_topic_config_t,
) -> shmbus_error_t {
    boundary::call("shmbus_topic_config_init", || {
        let out = Out::new(config, "config")?;
        // SAFETY: writable per this function's contract.
        unsafe { out.write(shmbus_topic_config_t::from_rust(&TopicConfig::default())) };
        Ok(())
    })
}

/// Fills `*options` with the default subscriber options (start at the next
/// message, spin then park).
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` if `options` is NULL.
/// Thread-safe.
///
/// # Safety
/// `options` must be NULL or point to writable memory for a
/// `shmbus_subscribe_options_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscribe_options_init(
    options: *mut shmbus_subscribe_options_t,
) -> shmbus_error_t {
    boundary::call("shmbus_subscribe_options_init", || {
        let out = Out::new(options, "options")?;
        let d = SubscribeOptions::default();
        // SAFETY: writable per this function's contract.
        unsafe {
            out.write(shmbus_subscribe_options_t {
                from_start: d.from_start,
                wait: wait_to_c(d.wait),
            })
        };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let mut c = std::mem::MaybeUninit::<shmbus_topic_config_t>::uninit();
        // SAFETY: `c` is writable.
        let code = unsafe { shmbus_topic_config_init(c.as_mut_ptr()) };
        assert_eq!(code, shmbus_error_t::SHMBUS_OK);
        // SAFETY: initialized by the call above.
        let c = unsafe { c.assume_init() };
        assert_eq!(c.to_rust().unwrap(), TopicConfig::default());
    }

    #[test]
    fn out_of_range_enums_are_refused() {
        assert!(policy_from_c(2).is_err());
        assert!(wait_from_c(3).is_err());
        assert_eq!(wait_from_c(SHMBUS_WAIT_PARK).unwrap(), WaitStrategy::Park);
    }
}
