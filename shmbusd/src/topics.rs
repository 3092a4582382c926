//! The bus's topics as the daemon owns them: adoption of existing segments at
//! start, creation, removal, reaping, and the summaries clients ask for.
//!
//! The segments are the truth: a topic exists for clients when its segments
//! are in `/dev/shm`. This registry holds one [`TopicOwner`] per topic so the
//! daemon can reap, measure and finally close them; it is rebuilt from
//! `/dev/shm` when a daemon restarts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use shmbus::daemon::{SegmentIdentity, SegmentPerms, TopicOwner};
use shmbus::names::{segment_name, Part};
use shmbus::TopicInfo;
use shmbus::{Error, TopicConfig, TopicStats};

/// Every topic of the bus served by this daemon.
pub struct Topics {
    bus: String,
    owners: BTreeMap<String, TopicOwner>,
}

/// Whether [`Topics::ensure`] found or made the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// It was there already.
    Existing,
    /// This call created it.
    Created,
}

impl Topics {
    /// An empty registry for `bus`.
    pub fn new(bus: &str) -> Topics {
        Topics {
            bus: bus.to_string(),
            owners: BTreeMap::new(),
        }
    }

    /// Adopts the segments a previous daemon of this bus left in `/dev/shm`
    /// (it was killed, or crashed). Only files owned by the daemon's uid in
    /// a mode it sets are adopted, and each is validated by the library; a
    /// file of ours that fails is unlinked with a warning, never trusted.
    /// Files of other owners are left alone and reported once, with the
    /// command that removes them. `perms` gives each adopted topic the
    /// current config's file permissions.
    pub fn adopt_existing(&mut self, perms: impl Fn(&str) -> SegmentPerms) {
        let names = match shmbus::daemon::list_bus_topics(&self.bus) {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!("cannot list existing segments of bus `{}`: {e}", self.bus);
                return;
            }
        };
        for topic in names {
            let adopted = TopicOwner::adopt(&self.bus, &topic).and_then(|owner| {
                owner.set_perms(&perms(&topic))?;
                Ok(owner)
            });
            match adopted {
                Ok(owner) => {
                    let stats = owner.stats();
                    tracing::info!(
                        "adopted topic `{topic}`: {} messages published, {} publishers and {} subscribers attached",
                        stats.published,
                        stats.publishers,
                        stats.subscribers
                    );
                    self.owners.insert(topic, owner);
                }
                Err(e @ Error::Untrusted { .. }) => {
                    tracing::warn!("not adopting topic `{topic}`, leaving its files alone: {e}");
                }
                Err(e) => {
                    tracing::warn!(
                        "removing the segments of topic `{topic}`: they cannot be adopted ({e})"
                    );
                    if let Err(e) = shmbus::daemon::remove_segment_files(&self.bus, &topic) {
                        tracing::warn!("cannot remove the segments of topic `{topic}`: {e}");
                    }
                }
            }
        }
        self.remove_orphans();
    }

    /// Unlinks every file of the bus in `/dev/shm` that no adopted topic
    /// owns: a `subs` segment whose `data` part is gone (a creation cut short
    /// by SIGKILL) or a name neither a topic nor a service can have. A
    /// service's segment is kept: services live without the daemon (their
    /// servers created them), and a restart must not cut them off. Files of
    /// other owners are never removed: they are reported.
    fn remove_orphans(&self) {
        let prefix = shmbus::names::bus_segment_prefix(&self.bus);
        let files = match shmbus::daemon::list_shm(&prefix) {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!("cannot list existing segments of bus `{}`: {e}", self.bus);
                return;
            }
        };
        let me = shmbus::daemon::euid();
        for file in files {
            let owned = shmbus::names::parse_segment_name(&self.bus, &file)
                .is_some_and(|(topic, _)| self.owners.contains_key(&topic))
                || shmbus::names::parse_service_segment_name(&self.bus, &file).is_some();
            if owned {
                continue;
            }
            let path = shmbus::daemon::shm_file(&file);
            match shmbus::daemon::owner_of(&file) {
                Some((owner, _)) if owner != me => {
                    // Reported by the adoption above when it names a topic.
                    if shmbus::names::parse_segment_name(&self.bus, &file).is_none() {
                        tracing::warn!(
                            "leaving {} alone: it is owned by uid {owner}, not by shmbusd's uid {me}, so it is not this bus's; {}",
                            path.display(),
                            shmbus::daemon::removal_hint(&path, owner)
                        );
                    }
                }
                _ => {
                    tracing::warn!(
                        "removing {}: it belongs to no topic of bus `{}`",
                        path.display(),
                        self.bus
                    );
                    if let Err(e) = shmbus::daemon::unlink_segment(&file) {
                        tracing::warn!("cannot remove {}: {e}", path.display());
                    }
                }
            }
        }
    }

    /// Number of topics.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// The owner of `topic`, if it exists.
    pub fn owner(&self, topic: &str) -> Option<&TopicOwner> {
        self.owners.get(topic)
    }

    /// Every topic, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TopicOwner)> + Clone {
        self.owners
            .iter()
            .map(|(name, owner)| (name.as_str(), owner))
    }

    /// Whether `topic` exists.
    pub fn contains(&self, topic: &str) -> bool {
        self.owners.contains_key(topic)
    }

    /// The settings of `topic`, if it exists.
    pub fn config(&self, topic: &str) -> Option<TopicConfig> {
        self.owners.get(topic).map(TopicOwner::config)
    }

    /// Makes sure `topic` exists, creating it with `cfg` if not.
    pub fn ensure(
        &mut self,
        topic: &str,
        cfg: &TopicConfig,
        perms: &SegmentPerms,
    ) -> Result<Ensured, Error> {
        if self.owners.contains_key(topic) {
            return Ok(Ensured::Existing);
        }
        let owner = TopicOwner::create(&self.bus, topic, cfg, perms)?;
        tracing::info!(
            "created topic `{topic}`: capacity {}, max message size {} B, policy {}, {} B of shared memory",
            cfg.capacity,
            cfg.max_msg_size,
            cfg.policy,
            cfg.memory_bytes()
        );
        self.owners.insert(topic.to_string(), owner);
        Ok(Ensured::Created)
    }

    /// Closes `topic` (its waiters get `Closed`) and unlinks its segments.
    pub fn remove(&mut self, topic: &str) -> Result<(), Error> {
        let owner = self
            .owners
            .remove(topic)
            .ok_or_else(|| Error::NoSuchTopic(topic.to_string()))?;
        owner.close();
        owner.unlink()?;
        tracing::info!("removed topic `{topic}`");
        Ok(())
    }

    /// The summary of `topic`.
    pub fn info(&self, topic: &str) -> Option<TopicInfo> {
        self.owners
            .get(topic)
            .map(|o| TopicInfo::new(o.config(), &o.stats()))
    }

    /// Summaries of the topics `visible` accepts, sorted by name.
    pub fn list(&self, visible: impl Fn(&str) -> bool) -> Vec<TopicInfo> {
        self.owners
            .iter()
            .filter(|(name, _)| visible(name))
            .map(|(_, o)| TopicInfo::new(o.config(), &o.stats()))
            .collect()
    }

    /// Stats of the topics `visible` accepts, sorted by name.
    pub fn stats(&self, visible: impl Fn(&str) -> bool) -> Vec<TopicStats> {
        self.owners
            .iter()
            .filter(|(name, _)| visible(name))
            .map(|(_, o)| o.stats())
            .collect()
    }

    /// Reclaims what dead clients held, on every topic, and logs it.
    pub fn reap(&self) {
        for (name, owner) in &self.owners {
            let r = owner.reap();
            if r.publishers + r.subscribers + r.abandoned_slots > 0 {
                tracing::info!(
                    "topic `{name}`: reaped {} dead publisher(s), {} dead subscriber(s), {} abandoned slot(s)",
                    r.publishers,
                    r.subscribers,
                    r.abandoned_slots
                );
            }
        }
    }

    /// Closes and forgets every topic whose segment files were removed from
    /// `/dev/shm` behind the daemon's back (systemd-logind's `RemoveIPC` at
    /// logout, an `rm`) or truncated by a client with write access, and
    /// returns how many. Attached clients of a removed topic still share the
    /// unlinked memory, but no new client could join them: closing wakes
    /// them with `Closed`; those of a truncated one get `Corrupt`. The next
    /// open creates the topic afresh.
    pub fn drop_vanished(&mut self) -> usize {
        let vanished: Vec<(String, &'static str)> = self
            .owners
            .iter()
            .filter_map(|(name, owner)| {
                let cfg = owner.config();
                let sizes = [
                    (Part::Data, cfg.data_segment_size()),
                    (Part::Subs, cfg.subs_segment_size()),
                ];
                let mut why = None;
                for (part, size) in sizes {
                    match std::fs::symlink_metadata(shm_path(&self.bus, name, part)) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            why = Some("removed from /dev/shm by someone else (systemd-logind RemoveIPC?)");
                        }
                        Ok(meta) if meta.len() != size => {
                            why = Some("truncated by a process with write access to them");
                        }
                        _ => {}
                    }
                }
                if why.is_none() && owner.is_unlinked() {
                    why = Some("removed and replaced by other files under the same names");
                }
                if why.is_none() && owner.is_damaged() {
                    why = Some("truncated under the daemon's mapping by a process with write access to them");
                }
                why.map(|w| (name.clone(), w))
            })
            .collect();
        for (name, why) in &vanished {
            if let Some(owner) = self.owners.remove(name) {
                tracing::warn!(
                    "topic `{name}`: its segments were {why}; closing it, the next open creates it afresh"
                );
                owner.close();
                if let Err(e) = owner.unlink() {
                    tracing::warn!("cannot remove what is left of topic `{name}`: {e}");
                }
            }
        }
        vanished.len()
    }

    /// Gives the files of every topic the permissions `perms` computes (after
    /// a reload changed the access rules). A topic whose files cannot take
    /// them keeps its old ones, with a warning: clients are told the modes
    /// the files have, so they never refuse a topic for it.
    pub fn reapply_perms(&self, perms: impl Fn(&str) -> SegmentPerms) {
        for (name, owner) in &self.owners {
            let p = perms(name);
            if let Err(e) = owner.set_perms(&p) {
                tracing::warn!(
                    "topic `{name}`: cannot give its files group {:?} and modes {:04o}/{:04o}: {e}",
                    p.gid,
                    p.data_mode,
                    p.subs_mode
                );
            }
        }
    }

    /// What clients must find when they open `topic` (see
    /// [`shmbus::daemon::SegmentIdentity`]).
    pub fn identity(&self, topic: &str) -> Option<Result<SegmentIdentity, Error>> {
        self.owners.get(topic).map(TopicOwner::identity)
    }

    /// Logs a stats snapshot of every topic (SIGUSR1).
    pub fn log_stats(&self) {
        if self.owners.is_empty() {
            tracing::info!("stats: no topics");
        }
        for owner in self.owners.values() {
            let s = owner.stats();
            tracing::info!(
                "stats `{}`: published {}, publishers {}, subscribers {}, blocked publishes {}, abandoned {}, reaped {} publisher(s) {} subscriber(s)",
                s.topic,
                s.published,
                s.publishers,
                s.subscribers,
                s.blocked_publishes,
                s.abandoned,
                s.reaped_publishers,
                s.reaped_subscribers
            );
            for sub in &s.subscriber_stats {
                tracing::info!(
                    "stats `{}` subscriber {} (pid {}): delivered {}, lost {}, lag {}{}",
                    s.topic,
                    sub.index,
                    sub.pid,
                    sub.delivered,
                    sub.lost,
                    sub.lag,
                    if sub.waiting { ", waiting" } else { "" }
                );
            }
        }
    }

    /// Closes every topic (waking every waiter), then unlinks them all.
    /// Closing all first means no client sees one topic gone while another
    /// still runs.
    pub fn shutdown(&mut self) {
        for owner in self.owners.values() {
            owner.close();
        }
        for (name, owner) in std::mem::take(&mut self.owners) {
            if let Err(e) = owner.unlink() {
                tracing::warn!("cannot unlink topic `{name}`: {e}");
            }
        }
    }
}

/// Where POSIX shared memory puts a segment on Linux.
fn shm_path(bus: &str, topic: &str, part: Part) -> PathBuf {
    shmbus::daemon::shm_file(&segment_name(bus, topic, part))
}
