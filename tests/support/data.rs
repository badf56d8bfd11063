//! Test data: deterministic byte patterns for bodies, and hashing and comparing large ones
//! without printing them.

/// `len` bytes that differ from one position to the next and from one `seed` to another (a
/// xorshift stream), so that a shifted, repeated or dropped piece cannot go unnoticed, and a
/// failure can be replayed.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    // xorshift needs a state other than 0: odd, and one of its own for each seed below 2^63.
    let mut state = (seed << 1) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Where a 64-bit FNV-1a hash starts: the hash of no bytes.
pub const FNV1A_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `bytes`, continuing from `hash` ([`FNV1A_OFFSET`] for a new one): a stream
/// hashed piece by piece has the hash of its whole.
pub fn fnv1a_continue(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// 64-bit FNV-1a of `bytes`: a short name for a large body in messages.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_continue(FNV1A_OFFSET, bytes)
}

/// Asserts that `actual` is `expected`, byte for byte; on failure tells the lengths, the
/// hashes and the first differing offset instead of printing megabytes.
pub fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let first_diff = actual.iter().zip(expected).position(|(a, b)| a != b);
    panic!(
        "{what}: got {} bytes (fnv1a {:016x}), expected {} bytes (fnv1a {:016x}); first \
         difference at {:?}",
        actual.len(),
        fnv1a(actual),
        expected.len(),
        fnv1a(expected),
        first_diff.or(Some(actual.len().min(expected.len())))
    );
}
