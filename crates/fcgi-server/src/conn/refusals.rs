//! How often a peer refused by the allow-list (`--allow`, `FCGI_WEB_SERVER_ADDRS`) is logged:
//! one line per peer address per [`WINDOW`] at most, each with the number of refusals it
//! stands for. Without it, a peer that connects in a loop wrote a line per connection (5,000
//! connects, 5,000 lines) and could fill the disk the log is on.
//!
//! The decision is [`Refusals`], a pure function of the peer and the time; the reactor logs
//! what it says, and its sweep (once a second) asks for the counts of peers that went quiet, so
//! that every refusal is counted in exactly one line, at most a window and a sweep late.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The least time between two lines about one peer.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// Peers counted one by one; refusals of further peers (a scan from many addresses) share one
/// count, so that the table stays small whatever the peers do.
pub(crate) const MAX_PEERS: usize = 1024;

/// Whose refusals a line counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Whose {
    /// One peer's.
    Peer(IpAddr),
    /// Peers past [`MAX_PEERS`], together.
    Others,
}

/// A line to write: refusals that had no line of their own yet, this one among them for a
/// line written at a refusal, or those of a peer whose window is over for the sweep's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Whose.
    pub(crate) whose: Whose,
    /// How many (at least 1).
    pub(crate) refused: u64,
    /// The listener of the last of them, by index.
    pub(crate) listener: usize,
}

/// One peer's count: since its last line (`lined`), `unlogged` refusals had no line.
#[derive(Clone, Copy, Debug)]
struct Count {
    lined: Instant,
    unlogged: u64,
    listener: usize,
}

impl Count {
    fn new(now: Instant, listener: usize) -> Count {
        Count { lined: now, unlogged: 0, listener }
    }

    /// A refusal at `now`: the line to write, or `None` when it waits for the next.
    fn refused(&mut self, now: Instant, listener: usize, whose: Whose) -> Option<Summary> {
        self.listener = listener;
        if now.saturating_duration_since(self.lined) < WINDOW {
            self.unlogged += 1;
            return None;
        }
        let refused = self.unlogged + 1;
        *self = Count::new(now, listener);
        Some(Summary { whose, refused, listener })
    }

    /// The sweep at `now`: `Some` count to write if the window is over and refusals wait;
    /// `None` with `expired` when the window is over and nothing waits (the entry can go).
    fn sweep(&mut self, now: Instant) -> (Option<u64>, bool) {
        if now.saturating_duration_since(self.lined) < WINDOW {
            return (None, false);
        }
        if self.unlogged == 0 {
            return (None, true);
        }
        let refused = self.unlogged;
        *self = Count::new(now, self.listener);
        (Some(refused), false)
    }
}

/// The refusals counted per peer.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    peers: HashMap<IpAddr, Count>,
    others: Option<Count>,
}

impl Refusals {
    /// Peer `ip` was refused at `now` on listener `listener`: the line to write, if one is
    /// due; `None` when the refusal is counted in the peer's next line.
    pub(crate) fn refused(&mut self, ip: IpAddr, now: Instant, listener: usize) -> Option<Summary> {
        if let Some(count) = self.peers.get_mut(&ip) {
            return count.refused(now, listener, Whose::Peer(ip));
        }
        let first = |whose| Some(Summary { whose, refused: 1, listener });
        if self.peers.len() < MAX_PEERS {
            self.peers.insert(ip, Count::new(now, listener));
            return first(Whose::Peer(ip));
        }
        match &mut self.others {
            Some(count) => count.refused(now, listener, Whose::Others),
            None => {
                self.others = Some(Count::new(now, listener));
                first(Whose::Others)
            }
        }
    }

    /// The sweep at `now`: the lines to write for peers whose window is over with refusals
    /// that had no line; peers whose window is over with none are forgotten.
    pub(crate) fn sweep(&mut self, now: Instant) -> Vec<Summary> {
        let mut lines = Vec::new();
        self.peers.retain(|ip, count| {
            let (refused, expired) = count.sweep(now);
            if let Some(refused) = refused {
                lines.push(Summary { whose: Whose::Peer(*ip), refused, listener: count.listener });
            }
            !expired
        });
        if let Some(count) = &mut self.others {
            let (refused, expired) = count.sweep(now);
            if let Some(refused) = refused {
                lines.push(Summary { whose: Whose::Others, refused, listener: count.listener });
            }
            if expired {
                self.others = None;
            }
        }
        lines
    }

    /// Whether no peer is counted (nothing for the sweep to do).
    pub(crate) fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.others.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    /// What happens at a time, in milliseconds from the start: a refusal, and the count of
    /// the line it writes (`None`: no line); a sweep, and its lines.
    enum Step {
        Refused(IpAddr, u64, Option<u64>),
        Sweep(u64, Vec<(Whose, u64)>),
    }

    const fn log(refused: u64) -> Option<u64> {
        Some(refused)
    }

    /// The line of a refusal, as whose and how many.
    fn line(summary: Option<Summary>) -> Option<(Whose, u64)> {
        summary.map(|s| (s.whose, s.refused))
    }

    #[test]
    fn one_line_per_peer_per_window_and_every_refusal_counted_once() {
        use Step::{Refused, Sweep};
        let table = [
            Refused(A, 0, log(1)),
            Refused(A, 1, None),
            Refused(A, 2, None),
            // Another peer has its own window.
            Refused(B, 3, log(1)),
            Sweep(9_999, vec![]),
            Refused(A, 5_000, None),
            // The window is over: the line counts the three quiet ones and itself.
            Refused(A, 10_000, log(4)),
            Refused(A, 10_001, None),
            // B's window is over with nothing waiting: forgotten. A's is not over yet.
            Sweep(10_003, vec![]),
            // A's window is over with one waiting: the sweep writes it.
            Sweep(20_000, vec![(Whose::Peer(A), 1)]),
            // That line opened a window: still quiet.
            Refused(A, 20_500, None),
            Sweep(30_000, vec![(Whose::Peer(A), 1)]),
            Sweep(40_000, vec![]),
            // Forgotten: a new first line.
            Refused(A, 40_001, log(1)),
            Refused(B, 40_002, log(1)),
        ];
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut refusals = Refusals::default();
        for (i, step) in table.into_iter().enumerate() {
            match step {
                Refused(ip, ms, count) => {
                    let got = line(refusals.refused(ip, at(ms), 0));
                    assert_eq!(got, count.map(|n| (Whose::Peer(ip), n)), "step {i}: {ip} at {ms}");
                }
                Sweep(ms, lines) => {
                    let got: Vec<(Whose, u64)> =
                        refusals.sweep(at(ms)).iter().map(|s| (s.whose, s.refused)).collect();
                    assert_eq!(got, lines, "step {i}: sweep at {ms}");
                }
            }
        }
    }

    #[test]
    fn a_burst_makes_two_lines_whose_counts_add_up() {
        let start = Instant::now();
        let mut refusals = Refusals::default();
        let mut lines = Vec::new();
        for n in 0..5_000u64 {
            if let Some(line) = refusals.refused(A, start + Duration::from_micros(n * 100), 0) {
                lines.push(line.refused);
            }
        }
        // A sweep each second, as the monitor's.
        for s in 1..=12 {
            lines.extend(refusals.sweep(start + Duration::from_secs(s)).iter().map(|l| l.refused));
        }
        assert_eq!(lines, [1, 4_999]);
        assert!(refusals.sweep(start + Duration::from_secs(30)).is_empty());
        assert!(refusals.is_empty());
    }

    #[test]
    fn peers_past_the_table_share_one_count() {
        let start = Instant::now();
        let mut refusals = Refusals::default();
        let peer =
            |n: u32| IpAddr::V6(std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(n)));
        for n in 0..MAX_PEERS as u32 {
            assert_eq!(line(refusals.refused(peer(n), start, 0)), Some((Whose::Peer(peer(n)), 1)));
        }
        assert_eq!(line(refusals.refused(peer(5_000), start, 1)), Some((Whose::Others, 1)));
        for n in 5_001..6_000 {
            assert_eq!(refusals.refused(peer(n), start, 1), None);
        }
        // A peer in the table keeps its own count.
        assert_eq!(refusals.refused(peer(0), start, 0), None);
        let later = start + WINDOW;
        let lines = refusals.sweep(later);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.contains(&Summary { whose: Whose::Peer(peer(0)), refused: 1, listener: 0 }));
        assert!(lines.contains(&Summary { whose: Whose::Others, refused: 999, listener: 1 }));
    }
}
