//! Which credential digests the database may hold: a Bloom filter over every stored
//! credential's digest, in front of [`Store::find_credential_by_hash`] (store/cache.rs). A key
//! that is not in it is unknown for certain, and answers so without reading the database.
//!
//! Unknown keys are the one lookup the credential cache cannot help: a guesser, a typo or a
//! load test presents a new string each time, and each missed the cache and read the
//! database (issue 16: 4.4% of CheckTemporaryKey's CPU; one lookup in ten of the
//! 1,000,000-key row). The filter holds 12 to 24 bits per stored key (a power of two: 2 MiB
//! for 1,000,000) and answers "maybe" for fewer than 1 unknown key in 200 right after a build
//! (those read the database as before).
//!
//! # Never a false "absent"
//! A key is refused here only if its digest is in no filter bit set, so the filter must hold
//! every digest a caller could present:
//! - Built from the database: [`DigestFilter::begin`] installs an empty filter as `building`,
//!   then the builder reads every stored digest into it, in pages each read after `begin` (so
//!   each sees every commit made before it), then [`DigestFilter::finish`] makes it the live
//!   one, unless it was declared stale meanwhile.
//! - This process's inserts: [`DigestFilter::add`] after the insert committed (in the write's
//!   future, which runs to its end even if its caller stops waiting: store/cache.rs), into the
//!   live filter and the one being built. An insert that committed before a build began is in
//!   what the build read; one that committed after has its `add` after the build began, so
//!   into `building`. Until its `add`, the key's creator has not been answered: nobody can
//!   present it yet.
//! - Other processes: the cache sees another process's commit (its change probe) before the
//!   next request uses the filter, and drops everything, which declares the filter stale
//!   ([`DigestFilter::stale`]): lookups read the database until a new build finishes. (Behind
//!   PostgreSQL's change feed, which learns of other nodes' keys only after a delay, the
//!   filter is not built at all.)
//! - Growth: once the live filter holds twice the keys it was sized for, a rebuild is due
//!   (lookups keep using it meanwhile: it only answers "maybe" more often).
//!
//! Deleted keys stay in the filter until the next rebuild: a "maybe", never a wrong answer.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Bits per key the filter is sized for (before rounding up to a power of two).
const BITS_PER_KEY: u64 = 12;
/// Probes per digest, each in the same 512-bit block (one cache line).
const PROBES: u32 = 7;
/// The smallest filter: 64 Ki keys' worth (128 KiB).
const MIN_KEYS: u64 = 1 << 16;
/// 64-bit words per block.
const BLOCK_WORDS: usize = 8;

/// One Bloom filter of fixed size.
#[derive(Debug)]
struct Bits {
    words: Box<[AtomicU64]>,
    /// Blocks - 1 (a power of two).
    block_mask: u64,
    /// Keys it was sized for, and keys added so far (with repeats).
    capacity: u64,
    added: AtomicU64,
}

impl Bits {
    fn for_keys(keys: u64) -> Self {
        let capacity = keys.max(MIN_KEYS);
        let bits = capacity.saturating_mul(BITS_PER_KEY).next_power_of_two();
        let blocks = (bits / 512).max(1);
        let words = (0..blocks * BLOCK_WORDS as u64).map(|_| AtomicU64::new(0)).collect();
        Bits {
            words,
            block_mask: blocks - 1,
            capacity,
            added: AtomicU64::new(0),
        }
    }

    /// The block and the seven bit positions (0..512) of `digest`'s probes.
    fn probes(&self, digest: &[u8]) -> (usize, [u16; PROBES as usize]) {
        // SipHash with std's fixed keys: the positions need not be stable across processes or
        // versions, and a digest is not chosen by the caller (an HMAC of what it presents), so
        // any good mix will do.
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
        h.write(digest);
        let x = h.finish();
        let mut y = x.rotate_left(29).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The block from the low bits of x (truncation is the point: a power-of-two mask).
        let block = usize::try_from(x & self.block_mask).unwrap_or(0);
        let mut bits = [0u16; PROBES as usize];
        for b in &mut bits {
            *b = (y & 511) as u16;
            y >>= 9;
        }
        (block, bits)
    }

    fn insert(&self, digest: &[u8]) {
        let (block, bits) = self.probes(digest);
        let base = block * BLOCK_WORDS;
        for b in bits {
            let (w, bit) = (usize::from(b / 64), b % 64);
            self.words[base + w].fetch_or(1 << bit, Ordering::Relaxed);
        }
        self.added.fetch_add(1, Ordering::Relaxed);
    }

    fn may_hold(&self, digest: &[u8]) -> bool {
        let (block, bits) = self.probes(digest);
        let base = block * BLOCK_WORDS;
        bits.iter().all(|&b| {
            let (w, bit) = (usize::from(b / 64), b % 64);
            self.words[base + w].load(Ordering::Relaxed) & (1 << bit) != 0
        })
    }

    fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[derive(Debug, Default)]
struct State {
    /// The filter lookups use; `None` until built, and while stale.
    live: Option<Arc<Bits>>,
    /// The filter a build is filling.
    building: Option<Arc<Bits>>,
    /// Bumped by every `stale`: a build that began before finishes into nothing.
    epoch: u64,
}

/// A ticket of one build: what [`DigestFilter::begin`] answered, for `fill` and `finish`.
#[derive(Debug)]
pub(crate) struct Build {
    bits: Arc<Bits>,
    epoch: u64,
}

impl Build {
    /// One digest the build read from the database.
    pub(crate) fn fill(&self, digest: &[u8]) {
        self.bits.insert(digest);
    }
}

/// The filter of stored credential digests (see the module's comment).
#[derive(Debug, Default)]
pub(crate) struct DigestFilter {
    state: RwLock<State>,
}

impl DigestFilter {
    /// `false` when `digest` is certainly not stored; `true` when it may be, or when there is
    /// no usable filter (not built yet, or stale).
    pub(crate) fn may_hold(&self, digest: &[u8]) -> bool {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.live.as_ref().is_none_or(|b| b.may_hold(digest))
    }

    /// A digest this process has just stored (call after its commit).
    pub(crate) fn add(&self, digest: &[u8]) {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        for b in [&state.live, &state.building].into_iter().flatten() {
            b.insert(digest);
        }
    }

    /// Others may have stored digests this filter lacks: lookups stop using it, and a build
    /// under way will not be installed.
    pub(crate) fn stale(&self) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.live = None;
        state.building = None;
        state.epoch = state.epoch.wrapping_add(1);
    }

    /// Does the filter need a build: none is live, or the live one holds twice its size?
    pub(crate) fn needs_build(&self) -> bool {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.building.is_none()
            && state
                .live
                .as_ref()
                .is_none_or(|b| b.added.load(Ordering::Relaxed) > b.capacity.saturating_mul(2))
    }

    /// Start a build sized for `expected` keys: from now on `add` fills it too. The caller then
    /// reads every stored digest into it (each read begun after this call) and calls `finish`.
    pub(crate) fn begin(&self, expected: u64) -> Build {
        let bits = Arc::new(Bits::for_keys(expected));
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.building = Some(bits.clone());
        Build {
            bits,
            epoch: state.epoch,
        }
    }

    /// Make a finished build the live filter, unless the filter went stale since it began
    /// (`false`: build again). Answers the filter's size in bytes when installed.
    pub(crate) fn finish(&self, build: Build) -> Option<usize> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.epoch != build.epoch || !state.building.as_ref().is_some_and(|b| Arc::ptr_eq(b, &build.bits)) {
            return None;
        }
        state.building = None;
        let bytes = build.bits.bytes();
        state.live = Some(build.bits);
        Some(bytes)
    }

    /// A build that failed: forget it (lookups keep the live filter, if any).
    pub(crate) fn abandon(&self, build: Build) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.building.as_ref().is_some_and(|b| Arc::ptr_eq(b, &build.bits)) {
            state.building = None;
        }
    }

    /// Is a filter live, with no build under way?
    #[cfg(test)]
    pub(crate) fn settled(&self) -> bool {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.live.is_some() && state.building.is_none()
    }

    /// Keys the live filter was built for and has had added.
    #[cfg(test)]
    fn live_counts(&self) -> Option<(u64, u64)> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state
            .live
            .as_ref()
            .map(|b| (b.capacity, b.added.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn digest(i: u64) -> Vec<u8> {
        Sha256::digest(i.to_le_bytes()).to_vec()
    }

    fn built(keys: impl Iterator<Item = Vec<u8>>, expected: u64) -> DigestFilter {
        let f = DigestFilter::default();
        let b = f.begin(expected);
        for k in keys {
            b.fill(&k);
        }
        assert!(f.finish(b).is_some());
        f
    }

    #[test]
    fn without_a_filter_everything_may_be_held() {
        let f = DigestFilter::default();
        assert!(f.may_hold(&digest(1)));
        assert!(f.needs_build());
    }

    #[test]
    fn every_stored_digest_is_held_and_few_others_are() {
        let n = 100_000;
        let f = built((0..n).map(digest), n);
        assert!(!f.needs_build());
        assert!((0..n).all(|i| f.may_hold(&digest(i))), "no false absent");
        // Digests of any length, as the tests' stores use.
        f.add(b"");
        f.add(&[7; 3]);
        assert!(f.may_hold(b"") && f.may_hold(&[7; 3]));
        let others = (n..n + 100_000).filter(|&i| f.may_hold(&digest(i))).count();
        // Sized for n keys at 12 bits (rounded up): well under 1% answer "maybe".
        assert!(others < 1_000, "{others} of 100,000 unknown digests answered maybe");
    }

    #[test]
    fn adds_during_a_build_reach_the_new_filter_and_a_stale_build_is_dropped() {
        let f = built((0..10).map(digest), 10);
        let b = f.begin(10);
        f.add(&digest(1_000));
        // The old filter has it at once, and so does the new one once installed.
        assert!(f.may_hold(&digest(1_000)));
        b.fill(&digest(0));
        assert!(f.finish(b).is_some());
        assert!(f.may_hold(&digest(1_000)) && f.may_hold(&digest(0)));
        assert!(!f.may_hold(&digest(5)), "the new build did not read 5");

        // Declared stale during a build: the build is not installed, and lookups read the
        // database (maybe) until a build that began afterwards finishes.
        let b = f.begin(10);
        f.stale();
        assert!(f.may_hold(&digest(5)));
        assert!(f.finish(b).is_none());
        assert!(f.needs_build());
        let b = f.begin(10);
        b.fill(&digest(5));
        assert!(f.finish(b).is_some());
        assert!(f.may_hold(&digest(5)) && !f.may_hold(&digest(6)));
    }

    #[test]
    fn a_filter_past_twice_its_size_wants_a_rebuild() {
        let f = built(std::iter::empty(), 0);
        let (capacity, _) = f.live_counts().unwrap();
        assert_eq!(capacity, MIN_KEYS);
        for i in 0..=2 * capacity {
            f.add(&digest(i));
        }
        assert!(f.needs_build());
        assert!((0..=2 * capacity).all(|i| f.may_hold(&digest(i))));
    }
}
