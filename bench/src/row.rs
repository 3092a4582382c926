//! One case of a run summarised over its repeats: the [`Row`] that
//! [`crate::report`] builds and prints and [`crate::targets`] judges.
//! Plain data below both, so neither reaches into the other.

use serde::Serialize;

use crate::options::Group;
use crate::stats::LatencySummary;

/// Min–max of a row's headline figure over the repeats.
#[derive(Clone, Debug, Serialize)]
pub struct Spread {
    /// Which figure (`p50_ns`, `rtt_p50_ns`, `msgs_per_sec`, `mib_per_sec`,
    /// `publish_ns`).
    pub of: &'static str,
    /// Smallest over repeats.
    pub min: f64,
    /// Largest over repeats.
    pub max: f64,
}

/// A ratio of this row's headline figure to another row's.
#[derive(Clone, Debug, Serialize)]
pub struct Versus {
    /// Id of the reference row.
    pub reference: String,
    /// Short name of the reference.
    pub name: String,
    /// This row's figure divided by the reference's (latency: lower is
    /// better; rates: higher is better).
    pub ratio: f64,
}

/// One case, summarised over its repeats (medians).
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Stable id, e.g. `shmbus/latency/spin/64`.
    pub id: String,
    /// Group.
    pub group: Group,
    /// Name in the table.
    pub label: String,
    /// Message size in bytes.
    pub size: usize,
    /// Repeats summarised.
    pub repeats: usize,
    /// One-way latency percentiles (ping-pong cases).
    pub latency: Option<LatencySummary>,
    /// Messages per second (streams: at the receiver; fan-out: median
    /// subscriber).
    pub msgs_per_sec: Option<f64>,
    /// MiB per second (streams, memcpy).
    pub mib_per_sec: Option<f64>,
    /// Mean cost of one `send` with every subscriber keeping up (fan-out).
    pub publish_ns: Option<f64>,
    /// Delivered rate of the slowest subscriber (fan-out).
    pub slowest_msgs_per_sec: Option<f64>,
    /// Round-trip percentiles of sequential calls (request/reply cases; not
    /// halved, unlike `latency`).
    pub round_trip: Option<LatencySummary>,
    /// Calls per second with several in flight (request/reply cases).
    pub calls_per_sec: Option<f64>,
    /// Range of the headline figure over repeats.
    pub range: Option<Spread>,
    /// Ratios to floors and baselines.
    pub versus: Vec<Versus>,
}
