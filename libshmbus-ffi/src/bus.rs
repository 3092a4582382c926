//! `shmbus_bus_t`: a connection to one bus's daemon — connect, create and
//! remove topics, read a topic's stats, close. Publishers and subscribers
//! are opened from it (`publisher.rs`, `subscriber.rs`).

use std::ffi::c_char;
use std::path::Path;

use shmbus::{Bus, BusOptions};

use crate::boundary::{self, optional_path_arg, read_required, str_arg, FfiError, Out};
use crate::handle::{self, Handle, Kind};
use crate::options::shmbus_topic_config_t;
use crate::stats::shmbus_topic_stats_t;
use crate::status::shmbus_error_t;

/// A connection to one bus (opaque).
///
/// Thread-safety: a bus handle may be used by any number of threads at
/// once (it holds no connection between calls: each request opens its own).
/// It must not be closed while another thread is using it. Publishers and
/// subscribers opened from it do not depend on it: they keep working after
/// the bus handle is closed.
pub struct shmbus_bus_t {
    handle: Handle<Bus>,
}

impl Kind for shmbus_bus_t {
    type Inner = Bus;
    const TAG: u32 = 0x5b05_0b05;
    const C_NAME: &'static str = "shmbus_bus_t";
    fn wrap(handle: Handle<Bus>) -> Self {
        shmbus_bus_t { handle }
    }
    fn handle(&self) -> &Handle<Bus> {
        &self.handle
    }
}

/// The library's bus behind a C handle (for the publisher and subscriber
/// modules).
///
/// # Safety
/// `bus` must be NULL or a live bus handle that stays open while the
/// reference is used.
pub(crate) unsafe fn bus_ref<'a>(bus: *const shmbus_bus_t) -> boundary::FfiResult<&'a Bus> {
    // SAFETY: forwarded contract.
    unsafe { handle::shared(bus, "bus") }
}

/// Connects to the bus `name` (`[A-Za-z0-9_-]{1,32}`) whose daemon's socket
/// is in `runtime_dir`, or, if `runtime_dir` is NULL, in the default
/// runtime directory (`SHMBUS_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/shmbus`,
/// else `/tmp/shmbus-<uid>`). On success `*bus` is a new handle, to be
/// closed with `shmbus_bus_close`; on failure `*bus` is set to NULL.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` (`name` or `bus` NULL, `name` not
/// UTF-8), `SHMBUS_ERR_INVALID_NAME`, `SHMBUS_ERR_NO_DAEMON` (no
/// `shmbusd --bus NAME` running), `SHMBUS_ERR_DENIED`,
/// `SHMBUS_ERR_PROTOCOL`, `SHMBUS_ERR_DAEMON`, `SHMBUS_ERR_IO`.
/// Thread-safe.
///
/// # Safety
/// `name` and `runtime_dir` must be NULL or NUL-terminated strings; `bus`
/// must be NULL or point to writable memory for a pointer.
#[no_mangle]
pub unsafe extern "C" fn shmbus_bus_connect(
    name: *const c_char,
    runtime_dir: *const c_char,
    bus: *mut *mut shmbus_bus_t,
) -> shmbus_error_t {
    boundary::call("shmbus_bus_connect", || {
        let out = Out::new(bus, "bus")?;
        // SAFETY: writable per the contract; NULL until success.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: NUL-terminated strings per the contract.
        let name = unsafe { str_arg(name, "name") }?;
        // SAFETY: as above.
        let runtime_dir = unsafe { optional_path_arg(runtime_dir) };
        let connected = Bus::connect_with(&BusOptions {
            name: name.to_string(),
            runtime_dir: runtime_dir.map(Path::to_path_buf),
        })?;
        // SAFETY: as above.
        unsafe { out.write(handle::into_raw::<shmbus_bus_t>(connected)) };
        Ok(())
    })
}

/// Closes a bus handle and frees it. Publishers and subscribers opened from
/// it stay open.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` if `bus` is NULL or not a live bus
/// handle.
///
/// # Safety
/// `bus` must be NULL or a live bus handle that no other thread is using;
/// it must not be used after this call.
#[no_mangle]
pub unsafe extern "C" fn shmbus_bus_close(bus: *mut shmbus_bus_t) -> shmbus_error_t {
    // SAFETY: forwarded contract.
    boundary::call("shmbus_bus_close", || unsafe { handle::close(bus, "bus") })
}

/// Creates `topic` with the settings `*config` (fill it with
/// `shmbus_topic_config_init` first). Creating a topic that exists with the
/// same settings succeeds; with other settings it fails
/// (`SHMBUS_ERR_DAEMON`, saying which settings differ).
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT` (NULL argument, policy out of
/// range), `SHMBUS_ERR_INVALID_NAME`, `SHMBUS_ERR_INVALID_CONFIG`,
/// `SHMBUS_ERR_NO_SPACE`, `SHMBUS_ERR_DENIED`, `SHMBUS_ERR_NO_DAEMON`,
/// `SHMBUS_ERR_DAEMON`. Thread-safe.
///
/// # Safety
/// `bus` must be NULL or a live bus handle; `topic` NULL or a
/// NUL-terminated string; `config` NULL or a readable
/// `shmbus_topic_config_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_bus_create_topic(
    bus: *const shmbus_bus_t,
    topic: *const c_char,
    config: *const shmbus_topic_config_t,
) -> shmbus_error_t {
    boundary::call("shmbus_bus_create_topic", || {
        // SAFETY: per the contract.
        let (b, topic, config) = unsafe {
            (
                bus_ref(bus)?,
                str_arg(topic, "topic")?,
                read_required(config, "config")?,
            )
        };
        b.create_topic(topic, &config.to_rust()?)?;
        Ok(())
    })
}

/// Removes `topic`: attached publishers and subscribers get
/// `SHMBUS_ERR_CLOSED` and its segments are freed.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_INVALID_NAME`,
/// `SHMBUS_ERR_NO_SUCH_TOPIC`, `SHMBUS_ERR_DENIED`, `SHMBUS_ERR_NO_DAEMON`,
/// `SHMBUS_ERR_DAEMON`. Thread-safe.
///
/// # Safety
/// `bus` must be NULL or a live bus handle; `topic` NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmbus_bus_remove_topic(
    bus: *const shmbus_bus_t,
    topic: *const c_char,
) -> shmbus_error_t {
    boundary::call("shmbus_bus_remove_topic", || {
        // SAFETY: per the contract.
        let (b, topic) = unsafe { (bus_ref(bus)?, str_arg(topic, "topic")?) };
        b.remove_topic(topic)?;
        Ok(())
    })
}

/// Fills `*stats` with a snapshot of `topic`'s counters, as the daemon
/// reads them.
///
/// Errors: `SHMBUS_ERR_INVALID_ARGUMENT`, `SHMBUS_ERR_INVALID_NAME`,
/// `SHMBUS_ERR_NO_SUCH_TOPIC`, `SHMBUS_ERR_NO_DAEMON`, `SHMBUS_ERR_DAEMON`.
/// Thread-safe.
///
/// # Safety
/// `bus` must be NULL or a live bus handle; `topic` NULL or a
/// NUL-terminated string; `stats` NULL or writable memory for a
/// `shmbus_topic_stats_t`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_bus_topic_stats(
    bus: *const shmbus_bus_t,
    topic: *const c_char,
    stats: *mut shmbus_topic_stats_t,
) -> shmbus_error_t {
    boundary::call("shmbus_bus_topic_stats", || {
        let out = Out::new(stats, "stats")?;
        // SAFETY: per the contract.
        let (b, topic) = unsafe { (bus_ref(bus)?, str_arg(topic, "topic")?) };
        let all = b.stats(Some(topic))?;
        let s = all.iter().find(|s| s.topic == topic).ok_or_else(|| {
            FfiError::new(
                shmbus_error_t::SHMBUS_ERR_NO_SUCH_TOPIC,
                format!("no topic `{topic}` on this bus: create it with `shmbus create {topic}`"),
            )
        })?;
        // SAFETY: writable per the contract.
        unsafe { out.write(shmbus_topic_stats_t::from_rust(s)) };
        Ok(())
    })
}
