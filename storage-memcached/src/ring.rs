//! Which server holds a key: rendezvous (highest random weight) hashing.
//!
//! Each server gets a score for each key, `mix(hash(key) ^ hash(server name))`, and the
//! key lives on the server with the highest score (ties, which need equal 64-bit
//! scores, go to the server listed first). So:
//!
//! - a key's server depends only on the key and the set of server names, not on their
//!   order in the URI;
//! - when a server is added, only the keys it now wins move, about 1/n of them, all to
//!   the new server; when one is removed, only its own keys move;
//! - a server that is down affects only the keys it holds: no key is moved away from it
//!   (that would split a key's state between two servers).
//!
//! `hash` is 64-bit FNV-1a and `mix` the MurmurHash3 finaliser, both fixed, so that
//! every process (and any port of this placement to another language) agrees.

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The MurmurHash3 64-bit finaliser: every input bit affects every output bit.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// The servers' hashes, in the order of the URI.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    servers: Vec<u64>,
}

impl Ring {
    /// A ring over servers with these names.
    pub(crate) fn new<I, S>(names: I) -> Ring
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ring {
            servers: names
                .into_iter()
                .map(|name| mix(fnv1a(name.as_ref().as_bytes())))
                .collect(),
        }
    }

    /// The index of the server that holds `key` (a Memcached key, after encoding).
    pub(crate) fn pick(&self, key: &[u8]) -> usize {
        if self.servers.len() <= 1 {
            return 0;
        }
        let key_hash = fnv1a(key);
        let mut best = (0, 0u64);
        for (i, &server) in self.servers.iter().enumerate() {
            let score = mix(key_hash ^ server);
            if i == 0 || score > best.1 {
                best = (i, score);
            }
        }
        best.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{}:11211", i + 1)).collect()
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("LIMITER/fixed-window/user-{i}/10/1/minute"))
            .collect()
    }

    #[test]
    fn one_server_holds_everything() {
        let ring = Ring::new(["only:1"]);
        assert!(keys(100).iter().all(|k| ring.pick(k.as_bytes()) == 0));
    }

    #[test]
    fn keys_spread_evenly() {
        for n in [2, 3, 5] {
            let ring = Ring::new(names(n));
            let mut counts = vec![0usize; n];
            for k in keys(20_000) {
                counts[ring.pick(k.as_bytes())] += 1;
            }
            let expected = 20_000 / n;
            for (i, &c) in counts.iter().enumerate() {
                assert!(
                    c.abs_diff(expected) < expected / 10,
                    "{n} servers: server {i} holds {c}, expected about {expected}"
                );
            }
        }
    }

    #[test]
    fn placement_ignores_the_order_of_servers() {
        let forward = names(4);
        let mut backward = forward.clone();
        backward.reverse();
        let (a, b) = (Ring::new(&forward), Ring::new(&backward));
        for k in keys(2_000) {
            assert_eq!(
                forward[a.pick(k.as_bytes())],
                backward[b.pick(k.as_bytes())]
            );
        }
    }

    /// Adding an n-th server moves only about 1/n of the keys, all of them to it.
    #[test]
    fn adding_a_server_moves_about_one_nth_of_the_keys_to_it() {
        for n in [2, 3, 4, 8] {
            let before_names = names(n - 1);
            let after_names = names(n);
            let (before, after) = (Ring::new(&before_names), Ring::new(&after_names));
            let keys = keys(20_000);
            let mut moved = 0usize;
            for k in &keys {
                let (old, new) = (
                    &before_names[before.pick(k.as_bytes())],
                    &after_names[after.pick(k.as_bytes())],
                );
                if old != new {
                    assert_eq!(new, &after_names[n - 1], "{k} moved between old servers");
                    moved += 1;
                }
            }
            let expected = keys.len() / n;
            assert!(
                moved.abs_diff(expected) < expected / 10,
                "{n} servers: {moved} keys moved, expected about {expected}"
            );
        }
    }

    /// Removing a server (or losing it) moves only its own keys: every other key stays
    /// where it was, so one server down affects only the keys it held.
    #[test]
    fn removing_a_server_moves_only_its_keys() {
        let all = names(4);
        let ring = Ring::new(&all);
        let without: Vec<String> = all.iter().filter(|n| *n != &all[2]).cloned().collect();
        let smaller = Ring::new(&without);
        let mut orphans = 0;
        for k in keys(10_000) {
            let old = &all[ring.pick(k.as_bytes())];
            let new = &without[smaller.pick(k.as_bytes())];
            if old == &all[2] {
                orphans += 1;
            } else {
                assert_eq!(old, new, "{k} moved though its server stayed");
            }
        }
        assert!(orphans > 2_000 && orphans < 3_000, "{orphans}");
    }

    #[test]
    fn placement_is_fixed_across_releases() {
        // Pinned so that a change to the hash, which would move every key, is noticed.
        let ring = Ring::new(["127.0.0.1:21211", "127.0.0.1:21212"]);
        let picks: Vec<usize> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .map(|k| ring.pick(k.as_bytes()))
            .collect();
        assert_eq!(picks, PINNED);
    }

    const PINNED: [usize; 8] = [0, 0, 0, 1, 0, 1, 0, 0];
}
