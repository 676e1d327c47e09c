//! Finding the end of entropy-coded data: the first `FF` followed by a byte other than `00`
//! (stuffing), `D0`..`D7` (restart markers) or `FF` (fill).
//!
//! Scan data is most of a JPEG, and `FF` is common in it (every literal `FF` is stuffed as
//! `FF 00`), so a byte-by-byte search for `FF` stops every few dozen bytes. On x86_64 the
//! search compares 16 bytes and their 16 successors at once with SSE2 (part of the x86_64
//! baseline, so always present) and skips stuffed pairs without stopping; elsewhere it
//! falls back to `memchr`.

/// Whether `FF b` ends entropy-coded data.
fn ends_scan(b: u8) -> bool {
    !matches!(b, 0x00 | 0xD0..=0xD7 | 0xFF)
}

/// Position of the `FF` of the first marker at or after `pos` that ends the entropy-coded
/// data, or `None` if the data ends first.
pub fn find_scan_end(data: &[u8], pos: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        let (found, resume) = sse2::find(data, pos);
        found.or_else(|| find_scan_end_scalar(data, resume))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        find_scan_end_scalar(data, pos)
    }
}

/// The portable search; also finishes the last bytes after the SIMD loop.
pub fn find_scan_end_scalar(data: &[u8], pos: usize) -> Option<usize> {
    let rest = data.get(pos..)?;
    memchr::memchr_iter(0xFF, rest)
        .map(|i| pos + i)
        .find(|&ff| data.get(ff + 1).is_none_or(|&b| ends_scan(b)))
        .filter(|&ff| ff + 1 < data.len())
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_set1_epi8, _mm_setzero_si128,
    };

    /// Searches 16 bytes at a time while 17 bytes remain. Returns the marker if found, and
    /// where the caller should continue otherwise.
    pub fn find(data: &[u8], mut pos: usize) -> (Option<usize>, usize) {
        // The last position from which 17 bytes can be read; None for shorter data.
        let Some(last) = data.len().checked_sub(17) else {
            return (None, pos);
        };
        // SAFETY: SSE2 is part of the x86_64 baseline. Both unaligned 16-byte loads read
        // data[pos..pos + 17], in bounds because pos <= data.len() - 17 (no overflow: the
        // comparison is against `last`, not `pos + 17`).
        unsafe {
            let all_ff = _mm_set1_epi8(-1);
            let zero = _mm_setzero_si128();
            while pos <= last {
                let here = _mm_loadu_si128(data.as_ptr().add(pos).cast::<__m128i>());
                let next = _mm_loadu_si128(data.as_ptr().add(pos + 1).cast::<__m128i>());
                // FF bytes not followed by 00.
                let candidates =
                    _mm_andnot_si128(_mm_cmpeq_epi8(next, zero), _mm_cmpeq_epi8(here, all_ff));
                let mut mask = _mm_movemask_epi8(candidates) as u32;
                while mask != 0 {
                    let ff = pos + mask.trailing_zeros() as usize;
                    if super::ends_scan(data[ff + 1]) {
                        return (Some(ff), pos);
                    }
                    mask &= mask - 1;
                }
                pos += 16;
            }
        }
        (None, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so failures reproduce.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // Bias towards the interesting bytes.
                match s % 8 {
                    0 => 0xFF,
                    1 => 0x00,
                    2 => 0xD0 + (s >> 8) as u8 % 8,
                    3 => 0xD9,
                    _ => (s >> 16) as u8,
                }
            })
            .collect()
    }

    #[test]
    fn simd_and_scalar_searches_agree() {
        for seed in 0..2000u64 {
            let data = bytes(seed, (seed % 97) as usize);
            for pos in 0..data.len().min(20) {
                assert_eq!(
                    find_scan_end(&data, pos),
                    find_scan_end_scalar(&data, pos),
                    "seed {seed} pos {pos}: {data:02X?}"
                );
            }
        }
    }

    #[test]
    fn stuffing_restarts_and_fill_are_skipped() {
        let mut data = vec![0x11; 40];
        data[3..5].copy_from_slice(&[0xFF, 0x00]);
        data[20..22].copy_from_slice(&[0xFF, 0xD3]);
        data[30..33].copy_from_slice(&[0xFF, 0xFF, 0xD9]);
        // The fill byte is skipped; the marker is the FF right before D9.
        assert_eq!(find_scan_end(&data, 0), Some(31));
        assert_eq!(find_scan_end_scalar(&data, 0), Some(31));
        // An FF as the very last byte is not a marker (its code is missing).
        let mut cut = vec![0x11; 40];
        cut[39] = 0xFF;
        assert_eq!(find_scan_end(&cut, 0), None);
        assert_eq!(find_scan_end(&cut, 50), None);
    }

    #[test]
    fn positions_past_the_end_find_nothing() {
        let data = [0xFF, 0xD9].repeat(20);
        for pos in [
            data.len(),
            data.len() + 1,
            usize::MAX - 16,
            usize::MAX - 8,
            usize::MAX,
        ] {
            assert_eq!(find_scan_end(&data, pos), None, "pos {pos}");
            assert_eq!(find_scan_end_scalar(&data, pos), None, "pos {pos}");
        }
    }
}
