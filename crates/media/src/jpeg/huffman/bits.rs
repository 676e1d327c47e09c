//! Bit I/O of entropy-coded data: the reader (a 64-bit MSB-first buffer fed by a byte
//! [`Source`] that undoes `FF 00` stuffing and stops at markers) and the writer (a 64-bit
//! accumulator that stuffs `FF` bytes).

/// Bits one symbol can take: a 16-bit code and 11 magnitude bits.
const MAX_SYMBOL_BITS: u32 = 27;

/// Where the reader stopped taking data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// A marker: its code, the absolute position of its (last) `FF`, and the position
    /// after it in the scan data.
    Marker {
        code: u8,
        at: usize,
        after: usize,
    },
    End,
}

/// Whether any byte of `w` is `FF`.
#[inline(always)]
fn has_ff64(w: u64) -> bool {
    let x = !w;
    (x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080) != 0
}

#[inline(always)]
fn has_ff32(w: u32) -> bool {
    let x = !w;
    (x.wrapping_sub(0x0101_0101) & !x & 0x8080_8080) != 0
}

/// Where a [`BitReader`]'s bytes come from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Source<'a> {
    pub(super) data: &'a [u8],
    /// Absolute position of `data[0]`, for messages.
    pub(super) base: usize,
    pub(super) pos: usize,
    /// How many of the buffered bits (the last ones) are zeros fed after a stop, not data.
    pub(super) padding: u32,
    pub(super) stop: Option<Stop>,
}

impl<'a> Source<'a> {
    pub(super) fn new(data: &'a [u8], base: usize) -> Self {
        Source {
            data,
            base,
            pos: 0,
            padding: 0,
            stop: None,
        }
    }

    /// Of `bits` buffered bits, how many are real data; `None` if zeros fed after a stop
    /// were used.
    pub(super) fn real_bits(&self, bits: u32) -> Option<u32> {
        bits.checked_sub(self.padding)
    }

    /// Roughly where the byte holding the next unread bit is, for messages (stuffed bytes
    /// in the buffer make it a little early).
    pub(super) fn byte_pos(&self, bits: u32) -> usize {
        let buffered = self.real_bits(bits).unwrap_or(0).div_ceil(8) as usize;
        self.base + self.pos.saturating_sub(buffered)
    }

    /// Roughly where the first byte not yet started is.
    pub(super) fn next_byte_pos(&self, bits: u32) -> usize {
        let buffered = (self.real_bits(bits).unwrap_or(0) / 8) as usize;
        self.base + self.pos.saturating_sub(buffered)
    }

    /// What follows the buffered bits: a stop, or data at the returned position. Only
    /// meaningful when less than a byte of real data is buffered.
    pub(super) fn next_marker(&self) -> Result<Stop, usize> {
        if let Some(stop) = self.stop {
            return Ok(stop);
        }
        match self.data.get(self.pos) {
            None => Ok(Stop::End),
            Some(&0xFF) => {
                let mut p = self.pos + 1;
                while self.data.get(p) == Some(&0xFF) {
                    p += 1;
                }
                match self.data.get(p) {
                    Some(&0) => Err(self.base + self.pos),
                    Some(&code) => Ok(Stop::Marker {
                        code,
                        at: self.base + p - 1,
                        after: p + 1,
                    }),
                    None => Ok(Stop::End),
                }
            }
            Some(_) => Err(self.base + self.pos),
        }
    }
}

/// The bit buffer of the reader: the next bits of entropy-coded data, MSB first, with
/// byte stuffing undone. A plain pair of numbers (the [`Source`] is passed separately),
/// so that in the hot loop it lives in registers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BitReader {
    /// The next bits, left-aligned; the bits after the first `bits` are zero.
    pub(super) buf: u64,
    pub(super) bits: u32,
}

impl BitReader {
    /// Makes sure at least [`MAX_SYMBOL_BITS`] bits are in the buffer.
    #[inline(always)]
    pub(super) fn ensure(&mut self, src: &mut Source<'_>) {
        if self.bits < MAX_SYMBOL_BITS {
            self.refill(src);
        }
    }

    #[inline(always)]
    fn refill(&mut self, src: &mut Source<'_>) {
        if src.stop.is_none()
            && let Some(chunk) = src.data.get(src.pos..).and_then(|d| d.first_chunk::<8>())
        {
            let w = u64::from_be_bytes(*chunk);
            if !has_ff64(w) {
                // bits <= 56 here, so at least one whole byte fits.
                let n = (64 - self.bits) / 8;
                let nbits = 8 * n;
                self.buf |= (w >> (64 - nbits)) << (64 - self.bits - nbits);
                self.bits += nbits;
                src.pos += n as usize;
                return;
            }
        }
        (self.buf, self.bits) = refill_slow(src, self.buf, self.bits);
    }
}

/// Refills the buffer byte by byte: stuffed bytes, markers, the end of the data, and the
/// zeros fed after those. Returns the new buffer and bit count (more than 56 bits).
#[inline(never)]
fn refill_slow(src: &mut Source<'_>, mut buf: u64, mut bits: u32) -> (u64, u32) {
    let push = |byte: u8, buf: &mut u64, bits: &mut u32| {
        *buf |= u64::from(byte) << (56 - *bits);
        *bits += 8;
    };
    while bits <= 56 {
        if src.stop.is_some() {
            src.padding += 64 - bits;
            bits = 64;
            break;
        }
        match src.data.get(src.pos) {
            None => src.stop = Some(Stop::End),
            Some(&0xFF) => {
                // Fill bytes (FF FF ...) may precede a marker or, as libjpeg reads it, a
                // stuffed zero.
                let mut p = src.pos + 1;
                while src.data.get(p) == Some(&0xFF) {
                    p += 1;
                }
                match src.data.get(p) {
                    Some(&0) => {
                        push(0xFF, &mut buf, &mut bits);
                        src.pos = p + 1;
                    }
                    Some(&code) => {
                        src.stop = Some(Stop::Marker {
                            code,
                            at: src.base + p - 1,
                            after: p + 1,
                        });
                    }
                    None => src.stop = Some(Stop::End),
                }
            }
            Some(&b) => {
                push(b, &mut buf, &mut bits);
                src.pos += 1;
            }
        }
    }
    (buf, bits)
}

/// The bit accumulator of the writer (the output `Vec` is passed separately): bits are
/// written MSB first, `FF` bytes stuffed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BitWriter {
    /// The last `n` bits are pending (earlier bits are stale).
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// Appends the low `len` bits of `value` (whose other bits are zero); `len` <= 32.
    #[inline(always)]
    pub(super) fn put(&mut self, out: &mut Vec<u8>, value: u64, len: u32) {
        self.acc = (self.acc << len) | value;
        self.n += len;
        if self.n >= 32 {
            self.n -= 32;
            let word = (self.acc >> self.n) as u32;
            let bytes = word.to_be_bytes();
            if has_ff32(word) {
                emit_stuffed(out, &bytes);
            } else {
                out.extend_from_slice(&bytes);
            }
        }
    }

    /// Pads with 1-bits to a byte boundary and writes out everything pending.
    #[inline(always)]
    pub(super) fn flush(&mut self, out: &mut Vec<u8>) {
        let pad = (8 - self.n % 8) % 8;
        self.put(out, (1 << pad) - 1, pad);
        while self.n >= 8 {
            self.n -= 8;
            let b = (self.acc >> self.n) as u8;
            emit_stuffed(out, &[b]);
        }
        self.acc = 0;
    }
}

/// Appends `bytes`, each `FF` followed by a stuffed `00`.
#[inline(never)]
fn emit_stuffed(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0xFF {
            out.push(0);
        }
    }
}
