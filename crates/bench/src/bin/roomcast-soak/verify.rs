//! The verdict of a soak: reads `acks.jsonl`, every `sub-*.jsonl`, `history-*.jsonl` and
//! `hostile.json`, and counts
//!
//! - **losses**: an acknowledged publish after a subscriber's first join that it neither
//!   received nor was told about (a `recovery_failed` excuses the positions between the
//!   one it held and the one the notice names);
//! - **duplicates**: a payload id or an `(epoch, sequence)` received twice by one
//!   subscriber;
//! - **mismatches**: a received `(epoch, sequence)` naming another payload than the
//!   acknowledgement did (a resume from a wrong point);
//! - **order violations**: a sequence not above the previous one within an epoch;
//! - **not durable**: an acknowledged publish missing from the room's history at the end
//!   (acknowledged HTTP publishes are on disk and must survive `kill -9`); when the broker
//!   may lose its data (the Redis phase), only for the epochs the history still holds, the
//!   others being counted as vanished;
//! - wrong answers of the hostile client.
//!
//! Positions are compared as (epoch rank, sequence), an epoch's rank being the order in
//! which the room's acknowledgements first name it: after a new epoch, its sequences start
//! again, and a `recovery_failed` `epoch_changed` excuses the rest of the old epoch after
//! the held position plus the new one up to the position it names.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use anyhow::Context;

use crate::hostile::Tally;
use crate::record::{self, Ack, Seen};

/// Figures of one subscriber.
#[derive(Debug, Default)]
pub(crate) struct SubReport {
    events: u64,
    replayed: u64,
    recovery_failed: BTreeMap<String, u64>,
    excused: u64,
    closes: BTreeMap<String, u64>,
    lost: Vec<String>,
    dups: u64,
    mismatches: u64,
    order: u64,
}

/// The verdict.
#[derive(Debug, Default)]
pub(crate) struct Report {
    acked: u64,
    subs: BTreeMap<String, SubReport>,
    not_durable: Vec<String>,
    /// Acknowledged publishes of epochs the history no longer holds (broker data lost).
    vanished: u64,
    history_checked: bool,
    hostile: Option<Tally>,
}

impl Report {
    /// No loss, duplicate, mismatch, order violation, durability gap or wrong answer.
    pub(crate) fn passed(&self) -> bool {
        self.problems().is_empty()
    }

    /// Behaviour checks beyond loss and duplicates: the short-token subscriber was closed
    /// 4003 at least once, the refresher never was.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let closes = |name: &str, code: &str| {
            self.subs
                .get(name)
                .and_then(|s| s.closes.get(code))
                .copied()
                .unwrap_or(0)
        };
        if self.subs.contains_key("expiring") && closes("expiring", "4003") == 0 {
            out.push("the expiring subscriber was never closed with 4003".to_owned());
        }
        if closes("refresher", "4003") > 0 {
            out.push("the refresher was closed with 4003 despite refreshing".to_owned());
        }
        if !self.core_passed() {
            out.push("loss, duplicate, mismatch, order, durability or hostile failure".to_owned());
        }
        out
    }

    fn core_passed(&self) -> bool {
        self.acked > 0
            && self.subs.values().all(|s| {
                s.lost.is_empty()
                    && s.dups == 0
                    && s.mismatches == 0
                    && s.order == 0
                    && s.events > 0
            })
            && self.not_durable.is_empty()
            && self.hostile.as_ref().is_none_or(|h| h.wrong.is_empty())
    }
}

/// Reads the directory and computes the report.
pub(crate) fn verify(dir: &Path, epochs_may_change: bool) -> anyhow::Result<Report> {
    let acks: Vec<Ack> = record::read(&dir.join("acks.jsonl"))?;
    let mut report = Report {
        acked: acks.len() as u64,
        ..Report::default()
    };
    let by_pid: HashMap<&str, &Ack> = acks.iter().map(|a| (a.pid.as_str(), a)).collect();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in &files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(sub) = name
            .strip_prefix("sub-")
            .and_then(|n| n.strip_suffix(".jsonl"))
        {
            let seen: Vec<Seen> = record::read(path)?;
            report
                .subs
                .insert(sub.to_owned(), check_subscriber(&acks, &by_pid, &seen));
        }
        if let Some(room) = name
            .strip_prefix("history-")
            .and_then(|n| n.strip_suffix(".jsonl"))
        {
            report.history_checked = true;
            let stored: Vec<Ack> = record::read(path)?;
            let epochs: HashSet<&str> = stored.iter().map(|a| a.epoch.as_str()).collect();
            let stored: HashSet<(&str, u64, &str)> = stored
                .iter()
                .map(|a| (a.epoch.as_str(), a.seq, a.pid.as_str()))
                .collect();
            for a in acks.iter().filter(|a| a.room == room) {
                if epochs_may_change && !epochs.contains(a.epoch.as_str()) {
                    report.vanished += 1;
                    continue;
                }
                if !stored.contains(&(a.epoch.as_str(), a.seq, a.pid.as_str())) {
                    report
                        .not_durable
                        .push(format!("{} {}@{}#{}", a.room, a.pid, a.epoch, a.seq));
                }
            }
        }
    }
    let hostile = dir.join("hostile.json");
    if hostile.exists() {
        let text = std::fs::read(&hostile).context("reading hostile.json")?;
        report.hostile = Some(serde_json::from_slice(&text).context("parsing hostile.json")?);
    }
    Ok(report)
}

/// Per room: where the subscriber joined and which positions a `recovery_failed` excused,
/// as (epoch rank, sequence).
#[derive(Debug, Default)]
struct RoomView {
    joined: Option<(usize, u64)>,
    have: (usize, u64),
    last: Option<(String, u64)>,
    pids: HashSet<String>,
    positions: HashSet<(String, u64)>,
    excused: Vec<((usize, u64), (usize, u64))>,
}

/// Each room's epochs in the order its acknowledgements first name them.
struct EpochRanks(HashMap<(String, String), usize>);

impl EpochRanks {
    fn new(acks: &[Ack]) -> EpochRanks {
        let mut ranks = HashMap::new();
        let mut next: HashMap<&str, usize> = HashMap::new();
        for a in acks {
            let key = (a.room.clone(), a.epoch.clone());
            if let std::collections::hash_map::Entry::Vacant(slot) = ranks.entry(key) {
                let n = next.entry(a.room.as_str()).or_default();
                slot.insert(*n);
                *n += 1;
            }
        }
        EpochRanks(ranks)
    }

    /// The rank of `epoch`; an epoch no acknowledgement names gets `unknown`.
    fn rank(&self, room: &str, epoch: &str, unknown: usize) -> usize {
        self.0
            .get(&(room.to_owned(), epoch.to_owned()))
            .copied()
            .unwrap_or(unknown)
    }
}

fn check_subscriber(acks: &[Ack], by_pid: &HashMap<&str, &Ack>, seen: &[Seen]) -> SubReport {
    let ranks = EpochRanks::new(acks);
    let mut r = SubReport::default();
    let mut rooms: HashMap<String, RoomView> = HashMap::new();
    for s in seen {
        match s {
            Seen::Join { room, epoch, seq } => {
                // An epoch without acknowledgements when joined: the run's first one (owing
                // everything after it is the strict reading).
                let at = (ranks.rank(room, epoch, 0), *seq);
                let v = rooms.entry(room.clone()).or_default();
                v.joined.get_or_insert(at);
                v.have = at;
            }
            Seen::Event {
                room,
                epoch,
                seq,
                pid,
                replayed,
            } => {
                r.events += 1;
                r.replayed += u64::from(*replayed);
                let v = rooms.entry(room.clone()).or_default();
                if !v.pids.insert(pid.clone()) || !v.positions.insert((epoch.clone(), *seq)) {
                    r.dups += 1;
                }
                if let Some(a) = by_pid.get(pid.as_str()) {
                    if a.epoch != *epoch || a.seq != *seq || a.room != *room {
                        r.mismatches += 1;
                    }
                }
                if let Some((last_epoch, last_seq)) = &v.last {
                    if last_epoch == epoch && *seq <= *last_seq {
                        r.order += 1;
                    }
                }
                v.last = Some((epoch.clone(), *seq));
                v.have = (ranks.rank(room, epoch, usize::MAX), *seq);
            }
            Seen::RecoveryFailed {
                room,
                epoch,
                seq,
                reason,
            } => {
                *r.recovery_failed.entry(reason.clone()).or_default() += 1;
                // An epoch nothing was acknowledged in comes after every acknowledged one.
                let to = (ranks.rank(room, epoch, usize::MAX), *seq);
                let v = rooms.entry(room.clone()).or_default();
                v.excused.push((v.have, to));
                v.have = to;
                v.last = Some((epoch.clone(), *seq));
            }
            Seen::ReplayComplete { .. } => {}
            Seen::Closed { code } => {
                let key = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
                *r.closes.entry(key).or_default() += 1;
            }
        }
    }
    for a in acks {
        let Some(v) = rooms.get(&a.room) else {
            continue;
        };
        let Some(joined) = v.joined else { continue };
        let at = (ranks.rank(&a.room, &a.epoch, usize::MAX), a.seq);
        if at <= joined || v.pids.contains(&a.pid) {
            continue;
        }
        if v.excused.iter().any(|&(lo, hi)| at > lo && at <= hi) {
            r.excused += 1;
            continue;
        }
        r.lost
            .push(format!("{} {}@{}#{}", a.room, a.pid, a.epoch, a.seq));
    }
    r
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "publishes acknowledged: {}", self.acked)?;
        let (mut lost, mut dups, mut events, mut rf) = (0, 0, 0, 0);
        for (name, s) in &self.subs {
            lost += s.lost.len();
            dups += s.dups;
            events += s.events;
            rf += s.recovery_failed.values().sum::<u64>();
            writeln!(
                f,
                "subscriber {name:<10} deliveries {:>7} (replayed {:>6})  recovery_failed {:?} (excusing {})  closes {:?}  lost {}  dups {}  mismatches {}  order {}",
                s.events, s.replayed, s.recovery_failed, s.excused, s.closes, s.lost.len(), s.dups, s.mismatches, s.order
            )?;
            for l in s.lost.iter().take(5) {
                writeln!(f, "  LOST {l}")?;
            }
        }
        match self.history_checked {
            true => writeln!(
                f,
                "acknowledged publishes missing from history: {}",
                self.not_durable.len()
            )?,
            false => writeln!(f, "history not checked (no history-*.jsonl)")?,
        }
        if self.vanished > 0 {
            writeln!(
                f,
                "acknowledged publishes of epochs the broker lost (not in history): {}",
                self.vanished
            )?;
        }
        for l in self.not_durable.iter().take(5) {
            writeln!(f, "  NOT DURABLE {l}")?;
        }
        if let Some(h) = &self.hostile {
            writeln!(f, "{h}")?;
        }
        for p in self.problems() {
            writeln!(f, "PROBLEM: {p}")?;
        }
        writeln!(
            f,
            "total: deliveries {events}, recovery_failed {rf}, losses {lost}, duplicates {dups}"
        )?;
        write!(
            f,
            "verdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(seq: u64) -> Ack {
        Ack {
            room: "soak-0".into(),
            epoch: "e1".into(),
            seq,
            pid: format!("p{seq}"),
        }
    }

    fn ev(epoch: &str, seq: u64, pid: &str) -> Seen {
        Seen::Event {
            room: "soak-0".into(),
            epoch: epoch.into(),
            seq,
            pid: pid.into(),
            replayed: false,
        }
    }

    fn join(seq: u64) -> Seen {
        Seen::Join {
            room: "soak-0".into(),
            epoch: "e1".into(),
            seq,
        }
    }

    fn check(acks: &[Ack], seen: &[Seen]) -> SubReport {
        let by_pid = acks.iter().map(|a| (a.pid.as_str(), a)).collect();
        check_subscriber(acks, &by_pid, seen)
    }

    #[test]
    fn a_missing_acknowledged_event_is_a_loss() {
        let acks: Vec<Ack> = (1..=3).map(ack).collect();
        let r = check(&acks, &[join(0), ev("e1", 1, "p1"), ev("e1", 3, "p3")]);
        assert_eq!(r.lost, vec!["soak-0 p2@e1#2".to_owned()]);
    }

    #[test]
    fn recovery_failed_excuses_exactly_its_gap() {
        let acks: Vec<Ack> = (1..=5).map(ack).collect();
        // Within one epoch (history trimmed past the held position).
        let rf = Seen::RecoveryFailed {
            room: "soak-0".into(),
            epoch: "e1".into(),
            seq: 3,
            reason: "history_trimmed".into(),
        };
        let seen = [join(0), ev("e1", 1, "p1"), rf, ev("e1", 5, "p5")];
        let r = check(&acks, &seen);
        assert_eq!(r.excused, 2);
        assert_eq!(r.lost, vec!["soak-0 p4@e1#4".to_owned()]);
    }

    #[test]
    fn duplicates_mismatches_and_reordering_are_counted() {
        let acks: Vec<Ack> = (1..=2).map(ack).collect();
        let seen = [
            join(0),
            ev("e1", 1, "p1"),
            ev("e1", 1, "p1"),
            ev("e1", 2, "p9"),
        ];
        let r = check(&acks, &seen);
        assert_eq!((r.dups, r.order, r.mismatches), (1, 1, 0));
        assert_eq!(r.lost, vec!["soak-0 p2@e1#2".to_owned()]);
        let r = check(&acks, &[join(0), ev("e1", 2, "p1"), ev("e1", 1, "p2")]);
        assert_eq!(r.mismatches, 2);
    }

    #[test]
    fn an_epoch_change_excuses_the_old_tail_and_the_new_head_only() {
        let mut acks: Vec<Ack> = (1..=4).map(ack).collect();
        for seq in 1..=3 {
            acks.push(Ack {
                room: "soak-0".into(),
                epoch: "e2".into(),
                seq,
                pid: format!("q{seq}"),
            });
        }
        let rf = Seen::RecoveryFailed {
            room: "soak-0".into(),
            epoch: "e2".into(),
            seq: 1,
            reason: "epoch_changed".into(),
        };
        // Held e1#2, told e2#1: e1#3, e1#4 and e2#1 are excused; e2#3 is owed.
        let seen = [
            join(0),
            ev("e1", 1, "p1"),
            ev("e1", 2, "p2"),
            rf,
            ev("e2", 2, "q2"),
        ];
        let r = check(&acks, &seen);
        assert_eq!(r.excused, 3);
        assert_eq!(r.lost, vec!["soak-0 q3@e2#3".to_owned()]);
    }

    #[test]
    fn a_later_epoch_is_owed_even_below_the_join_sequence() {
        let mut acks: Vec<Ack> = (1..=3).map(ack).collect();
        acks.push(Ack {
            room: "soak-0".into(),
            epoch: "e2".into(),
            seq: 1,
            pid: "q1".into(),
        });
        let r = check(&acks, &[join(2), ev("e1", 3, "p3")]);
        assert_eq!(r.lost, vec!["soak-0 q1@e2#1".to_owned()]);
    }

    #[test]
    fn events_before_the_first_join_are_not_owed() {
        let acks: Vec<Ack> = (1..=3).map(ack).collect();
        let r = check(&acks, &[join(2), ev("e1", 3, "p3")]);
        assert!(r.lost.is_empty() && r.dups == 0);
    }
}
