//! `shmbus topics` (alias `ls`): the bus's topics with their settings and
//! usage, as an aligned table or, with `--json`, as a JSON array for scripts.

use shmbus::TopicInfo;

use crate::error::CliError;
use crate::global::Global;
use crate::output::Output;
use crate::table::{Align, Table};
use crate::units;

const EXAMPLES: &str = "\
Examples:
  shmbus topics
  shmbus ls --bus robot
  shmbus topics --json | jq -r '.[].topic'";

/// Options of `shmbus topics`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct TopicsArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `shmbus topics`.
pub fn run(global: &Global, args: TopicsArgs) -> Result<(), CliError> {
    let bus = global.connect()?;
    let mut topics = bus
        .topics()
        .map_err(|e| CliError::from(e).context("cannot list topics"))?;
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    let mut out = Output::new();
    if args.json {
        let array: Vec<TopicJson<'_>> = topics.iter().map(TopicJson::new).collect();
        let text = serde_json::to_string_pretty(&array)
            .map_err(|e| CliError::runtime(format!("cannot encode JSON: {e}")))?;
        out.write(text.as_bytes())?;
        out.write(b"\n")?;
    } else if topics.is_empty() {
        // An empty table says nothing; say where we looked.
        out.write(format!("no topics on bus `{}`\n", global.bus).as_bytes())?;
    } else {
        out.write(table(&topics).render().as_bytes())?;
    }
    out.flush()
}

/// The table for people.
fn table(topics: &[TopicInfo]) -> Table {
    let mut t = Table::new(&[
        ("TOPIC", Align::Left),
        ("POLICY", Align::Left),
        ("CAPACITY", Align::Right),
        ("MAX SIZE", Align::Right),
        ("PUBS", Align::Right),
        ("SUBS", Align::Right),
        ("MESSAGES", Align::Right),
        ("MEMORY", Align::Right),
    ]);
    for info in topics {
        t.row(vec![
            info.topic.clone(),
            info.config.policy.to_string(),
            info.config.capacity.to_string(),
            units::bytes(u64::from(info.config.max_msg_size)),
            info.publishers.to_string(),
            info.subscribers.to_string(),
            info.published.to_string(),
            units::bytes(info.memory_bytes),
        ]);
    }
    t
}

/// One topic for `--json`: exact integers, the policy as in the config file,
/// keys in the table's order rather than sorted.
#[derive(serde::Serialize)]
struct TopicJson<'a> {
    topic: &'a str,
    policy: String,
    capacity: u64,
    max_msg_size: u32,
    max_publishers: u32,
    max_subscribers: u32,
    publishers: u32,
    subscribers: u32,
    published: u64,
    memory_bytes: u64,
}

impl<'a> TopicJson<'a> {
    fn new(info: &'a TopicInfo) -> TopicJson<'a> {
        TopicJson {
            topic: &info.topic,
            policy: info.config.policy.to_string(),
            capacity: info.config.capacity,
            max_msg_size: info.config.max_msg_size,
            max_publishers: info.config.max_publishers,
            max_subscribers: info.config.max_subscribers,
            publishers: info.publishers,
            subscribers: info.subscribers,
            published: info.published,
            memory_bytes: info.memory_bytes,
        }
    }
}
