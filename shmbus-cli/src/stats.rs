//! `shmbus stats [TOPIC]`: counters, rates and lag per topic, subscriber and
//! publisher, and (without TOPIC) the pattern subscriptions (their patterns
//! and the topics they cover) and the services' table of `shmbus services`.
//!
//! Counters in shared memory only ever grow, so rates come from two samples:
//! the one-shot form samples twice `--interval` apart (default 1 s, like
//! `vmstat 1 2`), and `--watch` redraws every interval in place (like `top`)
//! with rates from the deltas since the previous frame, until Ctrl-C. With
//! `--json` the one-shot form prints one JSON object and `--watch` prints one
//! object per line per interval.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shmbus::control::WatcherInfo;
use shmbus::service::ServiceStats;
use shmbus::{Bus, TopicStats};

use crate::duration::{format_duration, parse_duration};
use crate::error::CliError;
use crate::global::Global;
use crate::output::Output;
use crate::table::{Align, Table};
use crate::{signals, units};

const EXAMPLES: &str = "\
Examples:
  shmbus stats                      # every topic, rates measured over 1 s
  shmbus stats sensors/temp         # one topic
  shmbus stats --watch              # redraw every second until Ctrl-C
  shmbus stats --json | jq '.topics[] | {topic, published}'
  shmbus stats --watch --json --interval 5s >> stats.ndjson";

/// Options of `shmbus stats`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct StatsArgs {
    /// Only this topic.
    pub topic: Option<String>,
    /// Redraw every interval, like `top`, until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Print JSON (with --watch: one object per line per interval).
    #[arg(long)]
    pub json: bool,
    /// Time between the samples that rates are measured over.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
}

/// One reading of the bus's counters.
struct Sample {
    at: Instant,
    topics: Vec<TopicStats>,
    /// Every service of the bus (none when one topic was asked for).
    services: Vec<ServiceStats>,
    /// The pattern subscriptions (none when one topic was asked for).
    patterns: Vec<WatcherInfo>,
}

/// Who a rate belongs to: a topic, or a client entry of a topic (index and
/// pid, so that a reused entry does not inherit its predecessor's counters).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Key {
    Topic(String),
    Subscriber(String, u32, u32),
    Publisher(String, u32, u32),
}

/// Messages per second between two samples; a counter that went backwards
/// (topic recreated, daemon restarted) or appeared only now has no rate.
struct Rates(HashMap<Key, f64>);

impl Rates {
    fn between(prev: Option<&Sample>, cur: &Sample) -> Rates {
        let mut rates = HashMap::new();
        let Some(prev) = prev else {
            return Rates(rates);
        };
        let dt = cur.at.saturating_duration_since(prev.at).as_secs_f64();
        if dt <= 0.0 {
            return Rates(rates);
        }
        let before: HashMap<Key, u64> = prev.topics.iter().flat_map(counters).collect();
        for (key, now) in cur.topics.iter().flat_map(counters) {
            if let Some(&then) = before.get(&key) {
                if now >= then {
                    rates.insert(key, (now - then) as f64 / dt);
                }
            }
        }
        Rates(rates)
    }

    fn get(&self, key: &Key) -> Option<f64> {
        self.0.get(key).copied()
    }

    fn show(&self, key: &Key) -> String {
        self.get(key).map(units::rate).unwrap_or_else(|| "-".into())
    }
}

/// The growing counters of one topic, by key.
fn counters(t: &TopicStats) -> Vec<(Key, u64)> {
    let mut out = vec![(Key::Topic(t.topic.clone()), t.published)];
    for s in &t.subscriber_stats {
        out.push((
            Key::Subscriber(t.topic.clone(), s.index, s.pid),
            s.delivered,
        ));
    }
    for p in &t.publisher_stats {
        out.push((Key::Publisher(t.topic.clone(), p.index, p.pid), p.published));
    }
    out
}

/// Runs `shmbus stats`.
pub fn run(global: &Global, args: StatsArgs) -> Result<(), CliError> {
    if let Some(topic) = &args.topic {
        shmbus::names::validate_topic(topic)?;
    }
    let bus = global.connect()?;
    signals::install()?;
    let mut out = Output::new();
    let mut prev = sample(&bus, args.topic.as_deref())?;
    if !args.watch {
        // Ctrl-C during the sampling wait: show what one sample can (no rates).
        let cur = if signals::sleep(args.interval) {
            sample(&bus, args.topic.as_deref())?
        } else {
            let only = Sample {
                at: prev.at,
                topics: std::mem::take(&mut prev.topics),
                services: std::mem::take(&mut prev.services),
                patterns: std::mem::take(&mut prev.patterns),
            };
            return show(&mut out, global, &args, None, &only, false);
        };
        return show(&mut out, global, &args, Some(&prev), &cur, false);
    }
    show(&mut out, global, &args, None, &prev, true)?;
    while signals::sleep(args.interval) {
        let cur = sample(&bus, args.topic.as_deref())?;
        show(&mut out, global, &args, Some(&prev), &cur, true)?;
        prev = cur;
    }
    Ok(())
}

fn sample(bus: &Bus, topic: Option<&str>) -> Result<Sample, CliError> {
    let mut topics = bus
        .stats(topic)
        .map_err(|e| CliError::from(e).context("cannot read stats"))?;
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    // Services live in their own segments, read without the daemon.
    let (services, patterns) = match topic {
        Some(_) => (Vec::new(), Vec::new()),
        None => (
            crate::services::read_all(bus.name())?,
            bus.pattern_subscribers()
                .map_err(|e| CliError::from(e).context("cannot list pattern subscriptions"))?,
        ),
    };
    Ok(Sample {
        at: Instant::now(),
        topics,
        services,
        patterns,
    })
}

/// Prints one frame (or the one-shot answer).
fn show(
    out: &mut Output,
    global: &Global,
    args: &StatsArgs,
    prev: Option<&Sample>,
    cur: &Sample,
    watching: bool,
) -> Result<(), CliError> {
    let rates = Rates::between(prev, cur);
    if args.json {
        let doc = json_document(&global.bus, args.interval, cur, &rates)?;
        let text = if watching {
            serde_json::to_string(&doc)
        } else {
            serde_json::to_string_pretty(&doc)
        }
        .map_err(|e| CliError::runtime(format!("cannot encode JSON: {e}")))?;
        out.write(text.as_bytes())?;
        out.write(b"\n")?;
        return out.flush();
    }
    let mut text = String::new();
    if watching {
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let clock = &crate::timestamp::rfc3339(now_ns)[11..19];
        text.push_str(&format!(
            "shmbus stats: bus `{}`, every {}, {clock} UTC (Ctrl-C to quit)\n\n",
            global.bus,
            format_duration(args.interval)
        ));
    }
    text.push_str(&render(&global.bus, cur, &rates));
    if watching && out.is_terminal() {
        // Home, then each line clears its own tail and the screen below is
        // cleared last: a redraw in place without a blank flash.
        let framed = text.replace('\n', "\x1b[K\n");
        out.write(b"\x1b[H")?;
        out.write(framed.as_bytes())?;
        out.write(b"\x1b[J")?;
    } else {
        if watching && prev.is_some() {
            out.write(b"\n")?;
        }
        out.write(text.as_bytes())?;
    }
    out.flush()
}

/// The tables for people: topics, subscribers, publishers, then services.
fn render(bus: &str, cur: &Sample, rates: &Rates) -> String {
    let mut text = render_topics(bus, cur, rates);
    if !cur.patterns.is_empty() {
        text.push_str("\nPATTERN SUBSCRIBERS\n");
        let mut table = Table::new(&[
            ("PID", Align::Right),
            ("PATTERNS", Align::Left),
            ("TOPICS", Align::Right),
            ("COVERS", Align::Left),
        ]);
        for w in &cur.patterns {
            table.row(vec![
                w.pid.to_string(),
                w.patterns.join(" "),
                w.topics.len().to_string(),
                covers(&w.topics),
            ]);
        }
        text.push_str(&table.render());
    }
    if !cur.services.is_empty() {
        text.push_str("\nSERVICES\n");
        text.push_str(&crate::services::table(&cur.services).render());
    }
    text
}

fn render_topics(bus: &str, cur: &Sample, rates: &Rates) -> String {
    if cur.topics.is_empty() {
        return format!("no topics on bus `{bus}`\n");
    }
    let mut topics = Table::new(&[
        ("TOPIC", Align::Left),
        ("POLICY", Align::Left),
        ("CAPACITY", Align::Right),
        ("MAX SIZE", Align::Right),
        ("MEMORY", Align::Right),
        ("PUBS", Align::Right),
        ("SUBS", Align::Right),
        ("PUBLISHED", Align::Right),
        ("RATE", Align::Right),
        ("BLOCKED", Align::Right),
        ("LOST", Align::Right),
        ("WAITING", Align::Right),
    ]);
    let mut subs = Table::new(&[
        ("TOPIC", Align::Left),
        ("SUB", Align::Right),
        ("PID", Align::Right),
        ("DELIVERED", Align::Right),
        ("RATE", Align::Right),
        ("LAG", Align::Right),
        ("LOST", Align::Right),
        ("WAITING", Align::Left),
    ]);
    let mut pubs = Table::new(&[
        ("TOPIC", Align::Left),
        ("PUB", Align::Right),
        ("PID", Align::Right),
        ("PUBLISHED", Align::Right),
        ("RATE", Align::Right),
        ("BLOCKED", Align::Right),
        ("WAITING", Align::Left),
    ]);
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    for t in &cur.topics {
        let lost: u64 = t.subscriber_stats.iter().map(|s| s.lost).sum();
        let waiting = t.subscriber_stats.iter().filter(|s| s.waiting).count()
            + t.publisher_stats.iter().filter(|p| p.waiting).count();
        let name = if t.closed {
            format!("{} (closed)", t.topic)
        } else {
            t.topic.clone()
        };
        topics.row(vec![
            name,
            t.policy.to_string(),
            t.capacity.to_string(),
            units::bytes(u64::from(t.max_msg_size)),
            units::bytes(t.memory_bytes),
            t.publishers.to_string(),
            t.subscribers.to_string(),
            t.published.to_string(),
            rates.show(&Key::Topic(t.topic.clone())),
            t.blocked_publishes.to_string(),
            lost.to_string(),
            waiting.to_string(),
        ]);
        for s in &t.subscriber_stats {
            subs.row(vec![
                t.topic.clone(),
                s.index.to_string(),
                s.pid.to_string(),
                s.delivered.to_string(),
                rates.show(&Key::Subscriber(t.topic.clone(), s.index, s.pid)),
                s.lag.to_string(),
                s.lost.to_string(),
                yes_no(s.waiting),
            ]);
        }
        for p in &t.publisher_stats {
            pubs.row(vec![
                t.topic.clone(),
                p.index.to_string(),
                p.pid.to_string(),
                p.published.to_string(),
                rates.show(&Key::Publisher(t.topic.clone(), p.index, p.pid)),
                p.blocked.to_string(),
                yes_no(p.waiting),
            ]);
        }
    }
    let mut text = topics.render();
    if !subs.is_empty() {
        text.push_str("\nSUBSCRIBERS\n");
        text.push_str(&subs.render());
    }
    if !pubs.is_empty() {
        text.push_str("\nPUBLISHERS\n");
        text.push_str(&pubs.render());
    }
    text
}

/// The `--json` document: the library's stats per topic (exact counters),
/// with `rate` (messages per second, `null` when unknown) added to each topic,
/// subscriber and publisher, and the library's stats per service as they
/// are (as in `shmbus services --json`).
fn json_document(
    bus: &str,
    interval: Duration,
    cur: &Sample,
    rates: &Rates,
) -> Result<serde_json::Value, CliError> {
    let encode = |e: serde_json::Error| CliError::runtime(format!("cannot encode JSON: {e}"));
    let mut topics = Vec::with_capacity(cur.topics.len());
    for t in &cur.topics {
        let mut v = serde_json::to_value(t).map_err(encode)?;
        v["rate"] = rates.get(&Key::Topic(t.topic.clone())).into();
        if let Some(list) = v["subscriber_stats"].as_array_mut() {
            for (entry, s) in list.iter_mut().zip(&t.subscriber_stats) {
                entry["rate"] = rates
                    .get(&Key::Subscriber(t.topic.clone(), s.index, s.pid))
                    .into();
            }
        }
        if let Some(list) = v["publisher_stats"].as_array_mut() {
            for (entry, p) in list.iter_mut().zip(&t.publisher_stats) {
                entry["rate"] = rates
                    .get(&Key::Publisher(t.topic.clone(), p.index, p.pid))
                    .into();
            }
        }
        topics.push(v);
    }
    Ok(serde_json::json!({
        "bus": bus,
        "interval_ms": interval.as_millis() as u64,
        "topics": topics,
        "services": cur.services,
        "pattern_subscribers": cur.patterns,
    }))
}

/// The first few topics of a pattern subscription, for a table cell.
fn covers(topics: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut text = topics[..topics.len().min(SHOWN)].join(" ");
    if topics.len() > SHOWN {
        text.push_str(&format!(" (+{} more)", topics.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmbus::{Policy, SubscriberStats};

    fn topic(name: &str, published: u64, delivered: &[(u32, u32, u64)]) -> TopicStats {
        TopicStats {
            topic: name.into(),
            capacity: 1024,
            max_msg_size: 4096,
            policy: Policy::Block,
            memory_bytes: 4 << 20,
            publishers: 1,
            subscribers: delivered.len() as u32,
            published,
            blocked_publishes: 0,
            abandoned: 0,
            reaped_publishers: 0,
            reaped_subscribers: 0,
            closed: false,
            subscriber_stats: delivered
                .iter()
                .map(|&(index, pid, delivered)| SubscriberStats {
                    index,
                    pid,
                    cursor: delivered,
                    delivered,
                    lost: 0,
                    lag: published - delivered,
                    waiting: false,
                })
                .collect(),
            publisher_stats: Vec::new(),
        }
    }

    #[test]
    fn rates_come_from_deltas() {
        let t0 = Instant::now();
        let prev = Sample {
            at: t0,
            topics: vec![topic("a", 100, &[(0, 10, 100), (1, 11, 50)])],
            services: Vec::new(),
            patterns: Vec::new(),
        };
        let cur = Sample {
            at: t0 + Duration::from_millis(500),
            topics: vec![
                topic("a", 1100, &[(0, 10, 600), (1, 12, 5)]),
                topic("b", 7, &[]),
            ],
            services: Vec::new(),
            patterns: Vec::new(),
        };
        let r = Rates::between(Some(&prev), &cur);
        assert_eq!(r.get(&Key::Topic("a".into())), Some(2000.0));
        assert_eq!(r.get(&Key::Subscriber("a".into(), 0, 10)), Some(1000.0));
        // Entry 1 now belongs to another process: no rate, not a negative one.
        assert_eq!(r.get(&Key::Subscriber("a".into(), 1, 12)), None);
        // A topic seen for the first time has no rate yet.
        assert_eq!(r.get(&Key::Topic("b".into())), None);
        assert_eq!(r.show(&Key::Topic("b".into())), "-");
        assert_eq!(r.show(&Key::Topic("a".into())), "2.0k msg/s");
        assert!(Rates::between(None, &cur).0.is_empty());
    }

    #[test]
    fn counters_going_back_have_no_rate() {
        let t0 = Instant::now();
        let prev = Sample {
            at: t0,
            topics: vec![topic("a", 100, &[])],
            services: Vec::new(),
            patterns: Vec::new(),
        };
        let cur = Sample {
            at: t0 + Duration::from_secs(1),
            topics: vec![topic("a", 3, &[])],
            services: Vec::new(),
            patterns: Vec::new(),
        };
        assert_eq!(
            Rates::between(Some(&prev), &cur).get(&Key::Topic("a".into())),
            None
        );
    }

    #[test]
    fn tables_show_lag_and_rates() {
        let t0 = Instant::now();
        let prev = Sample {
            at: t0,
            topics: vec![topic("sensors/temp", 0, &[(0, 4242, 0)])],
            services: Vec::new(),
            patterns: Vec::new(),
        };
        let cur = Sample {
            at: t0 + Duration::from_secs(1),
            topics: vec![topic("sensors/temp", 12_345, &[(0, 4242, 345)])],
            services: Vec::new(),
            patterns: Vec::new(),
        };
        let text = render("b", &cur, &Rates::between(Some(&prev), &cur));
        assert!(text.contains("12.3k msg/s"), "{text}");
        assert!(text.contains("4.0 MiB"), "{text}");
        let sub_line = text.lines().find(|l| l.contains("4242")).expect(&text);
        assert!(sub_line.contains("12000"), "lag column: {sub_line}");
        assert!(render(
            "b",
            &Sample {
                at: t0,
                topics: vec![],
                services: Vec::new(),
                patterns: Vec::new(),
            },
            &Rates(HashMap::new())
        )
        .contains("no topics on bus `b`"));
    }

    #[test]
    fn json_has_exact_counters_and_rates() {
        let t0 = Instant::now();
        let prev = Sample {
            at: t0,
            topics: vec![topic("a", 0, &[(0, 1, 0)])],
            services: Vec::new(),
            patterns: Vec::new(),
        };
        let cur = Sample {
            at: t0 + Duration::from_secs(2),
            topics: vec![topic("a", 10, &[(0, 1, 4)])],
            services: Vec::new(),
            patterns: Vec::new(),
        };
        let doc = json_document(
            "b",
            Duration::from_secs(2),
            &cur,
            &Rates::between(Some(&prev), &cur),
        )
        .unwrap();
        assert_eq!(doc["bus"], "b");
        assert_eq!(doc["interval_ms"], 2000);
        assert_eq!(doc["topics"][0]["published"], 10);
        assert_eq!(doc["topics"][0]["rate"], 5.0);
        assert_eq!(doc["topics"][0]["subscriber_stats"][0]["lag"], 6);
        assert_eq!(doc["topics"][0]["subscriber_stats"][0]["rate"], 2.0);
        let first = json_document(
            "b",
            Duration::from_secs(2),
            &cur,
            &Rates::between(None, &cur),
        )
        .unwrap();
        assert!(first["topics"][0]["rate"].is_null());
    }
}
