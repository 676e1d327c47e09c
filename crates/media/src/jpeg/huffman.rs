//! Lossless Huffman re-encoding of a baseline JPEG scan with the standard tables.
//!
//! RFC 2435 (RTP/JPEG) has no way to send Huffman tables: receivers always decode with the
//! tables of ITU-T T.81 Annex K.3. A frame coded with other tables (for example the
//! "optimised" tables of `cjpeg -optimize` or ffmpeg's default) must therefore have its
//! scan re-encoded before it is sent. That needs no DCT and no DC prediction: every Huffman
//! code is decoded to its symbol (DC: the size of the difference; AC: the run/size byte,
//! EOB `0x00` and ZRL `0xF0` included), the magnitude bits that follow it are copied as they
//! are, and the symbol is written again with the standard table's code. The coefficients
//! are bit-exact, so a decoder produces the same pixels.
//!
//! # Design
//!
//! - Decoding and encoding are fused in one table per (input table, output table) pair: a
//!   [`FAST_BITS`]-bit lookup indexed by the next input bits gives how many input bits the
//!   symbol takes (code and magnitude), how many output bits it makes, the XOR that turns
//!   the input code into the standard one in place, and how far it moves the coefficient
//!   index. Codes longer than [`FAST_BITS`] bits, invalid bit patterns and symbols the
//!   standard tables cannot code take a slow path (the canonical `maxcode` search of T.81
//!   F.2.2.3), which also says what is wrong.
//! - The reader keeps a 64-bit, MSB-first bit buffer, refilled 8 bytes at a time when they
//!   hold no `FF`, byte by byte otherwise (undoing the `FF 00` stuffing). At a marker or at
//!   the end of the data it feeds zero bits and counts them, so a symbol can always take 27
//!   bits; an MCU that used any of those bits is reported as interrupted or truncated.
//! - The writer keeps a 64-bit accumulator and emits 32 bits at a time, stuffing `FF` bytes.
//! - The bit buffer and the accumulator are plain `Copy` pairs of numbers, and only the
//!   byte source and the output `Vec` are passed by reference to out-of-line code, so the
//!   hot loop keeps them in registers. One restart interval is transcoded per call.
//! - Nothing is allocated per symbol or per MCU; the output is reserved up front.
//!
//! The output never exceeds [`output_limit`] of the input scan (each input code is at least
//! 1 bit, each standard code at most 16 bits, stuffing at most doubles the bytes); this is
//! also checked after every MCU.

use std::ops::Range;

use super::JpegImage;
use super::markers::{RST0, RST7};
use super::tables::{HuffmanTable, standard};

/// Bits of the decoding lookup table: codes up to this long decode with one lookup.
pub const FAST_BITS: u32 = 9;
const FAST_SIZE: usize = 1 << FAST_BITS;

/// Bits one symbol can take: a 16-bit code and 11 magnitude bits.
const MAX_SYMBOL_BITS: u32 = 27;

/// Why a scan could not be re-encoded. Byte positions count from the start of the image
/// data passed to [`reencode_scan`]; MCUs count from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReencodeError {
    #[error("cannot re-encode the Huffman codes of this JPEG: {0}")]
    Unsupported(&'static str),
    #[error("the scan data ({start}..{end}) lies outside the {len}-byte image")]
    ScanOutOfRange {
        start: usize,
        end: usize,
        len: usize,
    },
    #[error("invalid Huffman table ({class} table {id}): {reason}")]
    BadTable {
        class: &'static str,
        id: u8,
        reason: &'static str,
    },
    #[error("invalid Huffman code near byte {at} (MCU {mcu})")]
    BadCode { at: usize, mcu: usize },
    #[error(
        "DC difference of {size} bits near byte {at} (MCU {mcu}): 8-bit JPEG allows 11 at most"
    )]
    BadDcSize { size: u8, at: usize, mcu: usize },
    #[error(
        "invalid AC symbol {symbol:#04x} near byte {at} (MCU {mcu}): 8-bit JPEG allows sizes \
         up to 10, and size 0 only for EOB (0x00) and ZRL (0xf0)"
    )]
    BadAcSymbol { symbol: u8, at: usize, mcu: usize },
    #[error("AC coefficients run past the end of the 8x8 block near byte {at} (MCU {mcu})")]
    RunPastEnd { at: usize, mcu: usize },
    #[error("marker FF {marker:02X} at byte {at} interrupts MCU {mcu}")]
    UnexpectedMarker { marker: u8, at: usize, mcu: usize },
    #[error("the scan data ends inside MCU {mcu} of {total}")]
    Truncated { mcu: usize, total: usize },
    #[error(
        "expected restart marker RST{expected} after MCU {mcu}, found FF {found:02X} at byte {at}"
    )]
    WrongRestart {
        expected: u8,
        found: u8,
        at: usize,
        mcu: usize,
    },
    #[error("the scan data ends where restart marker RST{expected} should follow MCU {mcu}")]
    MissingRestart { expected: u8, mcu: usize },
    #[error("unexpected data at byte {at} after MCU {mcu}, where {expected} should be")]
    ExtraData {
        at: usize,
        mcu: usize,
        expected: &'static str,
    },
    #[error("the re-encoded scan would exceed {limit} bytes")]
    OutputTooLarge { limit: usize },
}

/// The most bytes [`reencode_scan`] appends for an entropy-coded segment of `scan_len` bytes.
pub fn output_limit(scan_len: usize) -> usize {
    scan_len.saturating_mul(34).saturating_add(64)
}

/// Whether every component of the image's first scan uses the standard Annex K.3 tables
/// that RFC 2435 receivers assume: luma (the first frame component) the luminance DC/AC
/// tables, the other components the chrominance ones. A table missing from the image
/// counts as standard (baseline decoders assume K.3 then, e.g. MJPEG webcams omit DHT).
pub fn uses_rfc2435_tables(image: &JpegImage<'_>) -> bool {
    let frame = image.header.components();
    image.scan.components().iter().all(|sc| {
        let Some(index) = frame.iter().position(|c| c.id == sc.id) else {
            return false;
        };
        let (dc, ac) = standard_tables(index == 0);
        let is = |table: Option<&Option<HuffmanTable<'_>>>, std: &HuffmanTable<'_>| match table {
            None => false,
            Some(None) => true,
            Some(Some(t)) => t.counts == std.counts && t.symbols == std.symbols,
        };
        is(image.dc_tables.get(usize::from(sc.dc_table)), &dc)
            && is(image.ac_tables.get(usize::from(sc.ac_table)), &ac)
    })
}

/// Checks that a table defines a valid prefix code: at most 256 symbols, as many symbols
/// as codes, and code lengths that fit in a binary tree (T.81 Annex C). Returns the reason
/// it is invalid otherwise. [`reencode_scan`] checks every table it uses this way.
pub fn check_table(table: &HuffmanTable<'_>) -> Result<(), &'static str> {
    for_each_code(table, |_, _, _| {})
}

/// Re-encodes the first scan of `image` (whose bytes are `data`) with the standard tables
/// (luma: DC_LUMA/AC_LUMA; chroma: DC_CHROMA/AC_CHROMA), appending the new entropy-coded
/// data (with byte stuffing, and with RST0..RST7 markers in the same places as the input) to
/// `out`. Does not append EOI.
///
/// Supports baseline and extended sequential Huffman JPEG (SOF0/SOF1) with 8-bit samples,
/// 1 to 3 components, sampling factors 1..4 and one scan holding every component in frame
/// order. A table the image does not define is taken to be the standard one.
///
/// The input must hold exactly the MCUs the frame header implies, with restart markers
/// in sequence where the restart interval puts them; bits after the last code of an
/// interval are discarded (the output pads with 1-bits), and a restart marker after the
/// last MCU, which some encoders write, is dropped. On error `out` is left as it was.
/// At most [`output_limit`]`(scan length)` bytes are appended.
pub fn reencode_scan(
    data: &[u8],
    image: &JpegImage<'_>,
    out: &mut Vec<u8>,
) -> Result<(), ReencodeError> {
    let start = out.len();
    let result = reencode(data, image, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn standard_tables(luma: bool) -> (HuffmanTable<'static>, HuffmanTable<'static>) {
    if luma {
        (standard::DC_LUMA, standard::AC_LUMA)
    } else {
        (standard::DC_CHROMA, standard::AC_CHROMA)
    }
}

/// Generates the canonical codes of a table (T.81 C.1, C.2), calling `f(length, code,
/// symbol index)` for each in order, after checking that the table is a valid prefix code.
fn for_each_code(
    table: &HuffmanTable<'_>,
    mut f: impl FnMut(u32, u32, usize),
) -> Result<(), &'static str> {
    let total: usize = table.counts.iter().map(|&c| usize::from(c)).sum();
    if total > 256 {
        return Err("more than 256 symbols");
    }
    if total != table.symbols.len() {
        return Err("the number of symbols does not match the code counts");
    }
    // Check the whole table first, so `f` sees only valid codes.
    let mut code: u32 = 0;
    for (len, &count) in (1..=16).zip(table.counts.iter()) {
        code += u32::from(count);
        if code > 1 << len {
            return Err("the code lengths do not form a prefix code");
        }
        code <<= 1;
    }
    let mut code: u32 = 0;
    let mut index = 0;
    for (len, &count) in (1..=16).zip(table.counts.iter()) {
        for _ in 0..count {
            f(len, code, index);
            code += 1;
            index += 1;
        }
        code <<= 1;
    }
    Ok(())
}

/// The standard code (code, length) of every symbol; length 0 for symbols not in the table.
type EncodeMap = [(u16, u8); 256];

fn encode_map(table: &HuffmanTable<'_>) -> Result<EncodeMap, &'static str> {
    let mut map = [(0u16, 0u8); 256];
    for_each_code(table, |len, code, index| {
        if let Some(&symbol) = table.symbols.get(index) {
            // Lengths are 1..=16 and codes fit in them (checked by `for_each_code`).
            map[usize::from(symbol)] = (code as u16, len as u8);
        }
    })?;
    Ok(map)
}

/// One input code and what to write for it, laid out so the hot loop does no arithmetic
/// on the symbol. `in_bits == 0` in the fast table means "take the slow path";
/// `out_bits == 0` means the standard table has no code for the symbol (so it is invalid
/// in 8-bit JPEG).
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The input code and its magnitude bits, read as one number, XOR this is the output
    /// code and the same magnitude bits: `(input code ^ output code) << size`.
    xor: u32,
    /// Input code length plus magnitude size.
    in_bits: u8,
    /// Output code length plus magnitude size (0: no standard code).
    out_bits: u8,
    symbol: u8,
    /// AC: how far the symbol moves the coefficient index: run + 1, 16 for ZRL, and
    /// [`EOB_ADVANCE`] for EOB.
    advance: u8,
}

/// Advance of EOB: more than any index reached otherwise (63 + 16), so an index of 128 or
/// more means the block ended with EOB, and one in 65..128 that a run went past 63.
const EOB_ADVANCE: u8 = 128;

impl Entry {
    const NONE: Entry = Entry {
        xor: 0,
        in_bits: 0,
        out_bits: 0,
        symbol: 0,
        advance: 0,
    };

    fn size(self) -> u8 {
        self.symbol & 0x0F
    }

    /// Length of the input code alone.
    fn code_len(self) -> u8 {
        self.in_bits - self.size()
    }
}

/// Why a block could not be transcoded; the caller adds the position. The `u8` is the
/// length of the offending code.
#[derive(Debug, Clone, Copy)]
enum Fault {
    BadCode,
    DcSize(u8, u8),
    AcSymbol(u8, u8),
    RunPastEnd(u8),
}

/// Decodes one input table and maps its symbols to the codes of one output table.
struct Transcoder {
    fast: [Entry; FAST_SIZE],
    /// Largest code of each length (index 1..=16), -1 for none.
    maxcode: [i32; 17],
    /// Symbol index minus code, for the codes of each length.
    valoff: [i32; 17],
    /// By symbol index, in table order.
    entries: [Entry; 256],
    dc: bool,
}

impl Transcoder {
    fn new(input: &HuffmanTable<'_>, output: &EncodeMap, dc: bool) -> Result<Self, &'static str> {
        let mut t = Transcoder {
            fast: [Entry::NONE; FAST_SIZE],
            maxcode: [-1; 17],
            valoff: [0; 17],
            entries: [Entry::NONE; 256],
            dc,
        };
        for_each_code(input, |len, code, index| {
            let Some(&symbol) = input.symbols.get(index) else {
                return;
            };
            let (out_code, out_len) = output[usize::from(symbol)];
            let (run, size) = (symbol >> 4, symbol & 0x0F);
            let entry = Entry {
                xor: (code ^ u32::from(out_code)) << size,
                in_bits: len as u8 + size,
                out_bits: if out_len == 0 { 0 } else { out_len + size },
                symbol,
                advance: match (run, size) {
                    (0, 0) => EOB_ADVANCE,
                    (_, 0) => 16,
                    _ => run + 1,
                },
            };
            if let Some(slot) = t.entries.get_mut(index) {
                *slot = entry;
            }
            let len_index = len as usize;
            if t.maxcode[len_index] < 0 {
                t.valoff[len_index] = index as i32 - code as i32;
            }
            t.maxcode[len_index] = code as i32;
            // Invalid symbols stay out of the fast table, so the slow path reports them.
            if len <= FAST_BITS && out_len != 0 {
                let shift = FAST_BITS - len;
                let first = (code << shift) as usize;
                if let Some(slots) = t.fast.get_mut(first..first + (1 << shift)) {
                    slots.fill(entry);
                }
            }
        })?;
        Ok(t)
    }

    /// The entry of the code at the top of `buf`, or `Entry::NONE` (`in_bits == 0`) if it
    /// is invalid; [`Transcoder::fault`] then says why. (A plain `Entry` rather than a
    /// `Result` keeps the hot path in registers.)
    #[inline(always)]
    fn decode(&self, buf: u64) -> Entry {
        let entry = self.fast[(buf >> (64 - FAST_BITS)) as usize];
        if entry.in_bits != 0 {
            entry
        } else {
            self.decode_slow(buf).unwrap_or(Entry::NONE)
        }
    }

    /// Canonical decoding (T.81 F.2.2.3), for codes longer than `FAST_BITS` and errors.
    #[inline(never)]
    fn decode_slow(&self, buf: u64) -> Result<Entry, Fault> {
        for len in 1..=16usize {
            let code = (buf >> (64 - len)) as i32;
            if code <= self.maxcode[len] {
                let entry = usize::try_from(code + self.valoff[len])
                    .ok()
                    .and_then(|i| self.entries.get(i))
                    .ok_or(Fault::BadCode)?;
                return match (entry.out_bits, self.dc) {
                    (0, true) => Err(Fault::DcSize(entry.symbol, entry.code_len())),
                    (0, false) => Err(Fault::AcSymbol(entry.symbol, entry.code_len())),
                    _ => Ok(*entry),
                };
            }
        }
        Err(Fault::BadCode)
    }

    /// Why the code at the top of `buf` does not decode.
    #[cold]
    fn fault(&self, buf: u64) -> Fault {
        self.decode_slow(buf).err().unwrap_or(Fault::BadCode)
    }
}

/// Where the reader stopped taking data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
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
struct Source<'a> {
    data: &'a [u8],
    /// Absolute position of `data[0]`, for messages.
    base: usize,
    pos: usize,
    /// How many of the buffered bits (the last ones) are zeros fed after a stop, not data.
    padding: u32,
    stop: Option<Stop>,
}

impl<'a> Source<'a> {
    fn new(data: &'a [u8], base: usize) -> Self {
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
    fn real_bits(&self, bits: u32) -> Option<u32> {
        bits.checked_sub(self.padding)
    }

    /// Roughly where the byte holding the next unread bit is, for messages (stuffed bytes
    /// in the buffer make it a little early).
    fn byte_pos(&self, bits: u32) -> usize {
        let buffered = self.real_bits(bits).unwrap_or(0).div_ceil(8) as usize;
        self.base + self.pos.saturating_sub(buffered)
    }

    /// Roughly where the first byte not yet started is.
    fn next_byte_pos(&self, bits: u32) -> usize {
        let buffered = (self.real_bits(bits).unwrap_or(0) / 8) as usize;
        self.base + self.pos.saturating_sub(buffered)
    }

    /// What follows the buffered bits: a stop, or data at the returned position. Only
    /// meaningful when less than a byte of real data is buffered.
    fn next_marker(&self) -> Result<Stop, usize> {
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
struct BitReader {
    /// The next bits, left-aligned; the bits after the first `bits` are zero.
    buf: u64,
    bits: u32,
}

impl BitReader {
    /// Makes sure at least [`MAX_SYMBOL_BITS`] bits are in the buffer.
    #[inline(always)]
    fn ensure(&mut self, src: &mut Source<'_>) {
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
struct BitWriter {
    /// The last `n` bits are pending (earlier bits are stale).
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// Appends the low `len` bits of `value` (whose other bits are zero); `len` <= 32.
    #[inline(always)]
    fn put(&mut self, out: &mut Vec<u8>, value: u64, len: u32) {
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
    fn flush(&mut self, out: &mut Vec<u8>) {
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

/// Copies one symbol: its code is re-written with the standard code, its magnitude bits
/// as they are.
#[inline(always)]
fn transfer(r: &mut BitReader, w: &mut BitWriter, out: &mut Vec<u8>, e: Entry) {
    // in_bits is 1..=27 and r.bits >= 27 (`ensure`).
    let in_bits = u32::from(e.in_bits);
    let value = r.buf >> (64 - in_bits);
    r.buf <<= in_bits;
    r.bits -= in_bits;
    w.put(out, value ^ u64::from(e.xor), u32::from(e.out_bits));
}

/// Transcodes one 8x8 block: a DC symbol and AC symbols up to EOB or coefficient 63.
#[inline(always)]
fn transcode_block(
    r: &mut BitReader,
    src: &mut Source<'_>,
    w: &mut BitWriter,
    out: &mut Vec<u8>,
    dc: &Transcoder,
    ac: &Transcoder,
) -> Result<(), Fault> {
    r.ensure(src);
    let e = dc.decode(r.buf);
    if e.in_bits == 0 {
        return Err(dc.fault(r.buf));
    }
    transfer(r, w, out, e);
    // Index of the next coefficient.
    let mut k = 1u32;
    loop {
        r.ensure(src);
        let e = ac.decode(r.buf);
        if e.in_bits == 0 {
            return Err(ac.fault(r.buf));
        }
        transfer(r, w, out, e);
        k += u32::from(e.advance);
        if k >= 64 {
            // Exactly 64: the block is full. 128 and more: EOB. Otherwise a run of zeros
            // went past coefficient 63 (the symbol was written, but the error discards it).
            return if k == 64 || k >= u32::from(EOB_ADVANCE) {
                Ok(())
            } else {
                Err(Fault::RunPastEnd(e.code_len()))
            };
        }
    }
}

/// How one scan component is coded: its transcoders and blocks per MCU.
#[derive(Debug, Clone, Copy, Default)]
struct ComponentPlan {
    dc: usize,
    ac: usize,
    blocks: u32,
}

fn check_layout(image: &JpegImage<'_>) -> Result<(), ReencodeError> {
    let header = &image.header;
    let unsupported = |reason| Err(ReencodeError::Unsupported(reason));
    match header.sof_type {
        0 | 1 => {}
        2 => return unsupported("progressive JPEG"),
        3 => return unsupported("lossless JPEG"),
        9..=11 => return unsupported("arithmetic coding"),
        _ => return unsupported("not a sequential Huffman-coded frame (SOF0 or SOF1)"),
    }
    if header.precision != 8 {
        return unsupported("samples are not 8-bit");
    }
    let frame = header.components();
    if !(1..=3).contains(&frame.len()) {
        return unsupported("more than 3 components");
    }
    if !image
        .scan
        .components()
        .iter()
        .map(|c| c.id)
        .eq(frame.iter().map(|c| c.id))
    {
        return unsupported("the first scan does not hold every component in frame order");
    }
    let scan = &image.scan;
    if (
        scan.spectral_start,
        scan.spectral_end,
        scan.approx_high,
        scan.approx_low,
    ) != (0, 63, 0, 0)
    {
        return unsupported("the scan is not sequential (spectral selection or approximation)");
    }
    Ok(())
}

fn reencode(data: &[u8], image: &JpegImage<'_>, out: &mut Vec<u8>) -> Result<(), ReencodeError> {
    check_layout(image)?;
    let range = image.scan_data.clone();
    let scan = data
        .get(range.clone())
        .ok_or(ReencodeError::ScanOutOfRange {
            start: range.start,
            end: range.end,
            len: data.len(),
        })?;

    // One transcoder per distinct (class, table id, luma or chroma).
    let output_maps = {
        let map = |t: &HuffmanTable<'_>| {
            encode_map(t).map_err(|reason| ReencodeError::BadTable {
                class: "standard",
                id: 0,
                reason,
            })
        };
        [
            (map(&standard::DC_LUMA)?, map(&standard::AC_LUMA)?),
            (map(&standard::DC_CHROMA)?, map(&standard::AC_CHROMA)?),
        ]
    };
    let mut keys: Vec<(bool, u8, bool)> = Vec::with_capacity(6);
    let mut transcoders: Vec<Transcoder> = Vec::with_capacity(6);
    let mut transcoder = |dc: bool, id: u8, luma: bool| -> Result<usize, ReencodeError> {
        if let Some(i) = keys.iter().position(|&k| k == (dc, id, luma)) {
            return Ok(i);
        }
        let (std_dc, std_ac) = standard_tables(luma);
        let (tables, std, class) = if dc {
            (&image.dc_tables, std_dc, "DC")
        } else {
            (&image.ac_tables, std_ac, "AC")
        };
        let input = tables
            .get(usize::from(id))
            .copied()
            .flatten()
            .unwrap_or(std);
        let maps = &output_maps[usize::from(!luma)];
        let map = if dc { &maps.0 } else { &maps.1 };
        let t = Transcoder::new(&input, map, dc).map_err(|reason| ReencodeError::BadTable {
            class,
            id,
            reason,
        })?;
        keys.push((dc, id, luma));
        transcoders.push(t);
        Ok(transcoders.len() - 1)
    };
    let frame = image.header.components();
    let single = frame.len() == 1;
    let mut plan = [ComponentPlan::default(); 3];
    for ((slot, sc), (index, fc)) in plan
        .iter_mut()
        .zip(image.scan.components())
        .zip(frame.iter().enumerate())
    {
        let luma = index == 0;
        *slot = ComponentPlan {
            dc: transcoder(true, sc.dc_table, luma)?,
            ac: transcoder(false, sc.ac_table, luma)?,
            // A non-interleaved scan codes one block per MCU.
            blocks: if single {
                1
            } else {
                u32::from(fc.h) * u32::from(fc.v)
            },
        };
    }
    let plan = &plan[..frame.len()];

    let (hmax, vmax) = if single {
        (1, 1)
    } else {
        let h = frame.iter().map(|c| usize::from(c.h)).max().unwrap_or(1);
        let v = frame.iter().map(|c| usize::from(c.v)).max().unwrap_or(1);
        (h, v)
    };
    let mcus_x = usize::from(image.header.width).div_ceil(8 * hmax);
    let mcus_y = usize::from(image.header.height).div_ceil(8 * vmax);
    let total = mcus_x * mcus_y;
    let interval = usize::from(image.header.restart_interval);

    let start = out.len();
    let limit = output_limit(scan.len());
    out.reserve(scan.len() + scan.len() / 8 + 16);
    let mut src = Source::new(scan, range.start);
    let mut r = BitReader::default();
    let mut w = BitWriter::default();
    let run = Run {
        plan,
        transcoders: &transcoders,
        total,
        start,
        limit,
    };
    // Restart intervals (or all MCUs as one interval).
    let step = if interval > 0 { interval } else { total.max(1) };
    for (restarts, first) in (0..total).step_by(step).enumerate() {
        if restarts > 0 {
            restart(&mut src, &mut r, &mut w, out, restarts - 1, first - 1)?;
        }
        let mcus = first..total.min(first + step);
        (r, w) = run.transcode(mcus, &mut src, r, w, out)?;
    }

    // After the last MCU: at most the padding bits of the last byte, then the end (or a
    // superfluous restart marker).
    let last = total.saturating_sub(1);
    let extra = |at| ReencodeError::ExtraData {
        at,
        mcu: last,
        expected: "the end of the scan",
    };
    if src.real_bits(r.bits).is_some_and(|b| b >= 8) {
        return Err(extra(src.next_byte_pos(r.bits)));
    }
    match src.next_marker() {
        Ok(Stop::Marker {
            code: RST0..=RST7,
            after,
            ..
        }) => {
            if let Some(i) = scan
                .get(after..)
                .and_then(|rest| rest.iter().position(|&b| b != 0xFF))
            {
                return Err(extra(range.start + after + i));
            }
        }
        Ok(_) => {}
        Err(at) => return Err(extra(at)),
    }
    w.flush(out);
    Ok(())
}

/// What [`Run::transcode`] needs besides the reader and writer.
struct Run<'a> {
    plan: &'a [ComponentPlan],
    transcoders: &'a [Transcoder],
    total: usize,
    /// Length of the output before the scan, and the most bytes to add.
    start: usize,
    limit: usize,
}

impl Run<'_> {
    /// Transcodes the MCUs of one restart interval. Out of line, with the reader and
    /// writer passed and returned by value: a small function whose hot state stays in
    /// registers.
    #[inline(never)]
    fn transcode(
        &self,
        mcus: Range<usize>,
        src: &mut Source<'_>,
        mut r: BitReader,
        mut w: BitWriter,
        out: &mut Vec<u8>,
    ) -> Result<(BitReader, BitWriter), ReencodeError> {
        for mcu in mcus {
            for c in self.plan {
                let (dc, ac) = (&self.transcoders[c.dc], &self.transcoders[c.ac]);
                for _ in 0..c.blocks {
                    if let Err(fault) = transcode_block(&mut r, src, &mut w, out, dc, ac) {
                        return Err(fault_error(src, r.bits, fault, mcu, self.total));
                    }
                }
            }
            if src.real_bits(r.bits).is_none() {
                return Err(overread_error(src, mcu, self.total));
            }
            if out.len() - self.start > self.limit {
                return Err(ReencodeError::OutputTooLarge { limit: self.limit });
            }
        }
        Ok((r, w))
    }
}

/// Ends a restart interval after MCU `mcu`: checks the input's marker, writes it, and
/// resets the reader and writer.
#[inline(always)]
fn restart(
    src: &mut Source<'_>,
    r: &mut BitReader,
    w: &mut BitWriter,
    out: &mut Vec<u8>,
    restarts: usize,
    mcu: usize,
) -> Result<(), ReencodeError> {
    let expected = (restarts % 8) as u8;
    let extra = |at| ReencodeError::ExtraData {
        at,
        mcu,
        expected: "a restart marker",
    };
    // The rest of the current byte is padding; whole bytes left over are not.
    if src.real_bits(r.bits).is_some_and(|b| b >= 8) {
        return Err(extra(src.next_byte_pos(r.bits)));
    }
    match src.next_marker() {
        Ok(Stop::Marker { code, after, .. }) if code == RST0 + expected => {
            *src = Source {
                pos: after,
                ..Source::new(src.data, src.base)
            };
            *r = BitReader::default();
        }
        Ok(Stop::Marker { code, at, .. }) => {
            return Err(ReencodeError::WrongRestart {
                expected,
                found: code,
                at,
                mcu,
            });
        }
        Ok(Stop::End) => return Err(ReencodeError::MissingRestart { expected, mcu }),
        Err(at) => return Err(extra(at)),
    }
    w.flush(out);
    out.extend_from_slice(&[0xFF, RST0 + expected]);
    Ok(())
}

/// The error for an MCU that used bits past a marker or the end of the data.
fn overread_error(src: &Source<'_>, mcu: usize, total: usize) -> ReencodeError {
    match src.stop {
        Some(Stop::Marker { code, at, .. }) => ReencodeError::UnexpectedMarker {
            marker: code,
            at,
            mcu,
        },
        _ => ReencodeError::Truncated { mcu, total },
    }
}

/// The error for a block that could not be transcoded, with `bits` bits buffered.
#[inline(never)]
fn fault_error(
    src: &Source<'_>,
    bits: u32,
    fault: Fault,
    mcu: usize,
    total: usize,
) -> ReencodeError {
    // A code read (partly) from the zeros fed after a stop: the stop is the real problem.
    // An invalid code may be up to 16 bits long.
    let code_len = match fault {
        Fault::BadCode => 16,
        Fault::DcSize(_, len) | Fault::AcSymbol(_, len) | Fault::RunPastEnd(len) => len,
    };
    if src
        .real_bits(bits)
        .is_none_or(|b| src.stop.is_some() && b < u32::from(code_len))
    {
        return overread_error(src, mcu, total);
    }
    let at = src.byte_pos(bits);
    match fault {
        Fault::BadCode => ReencodeError::BadCode { at, mcu },
        Fault::DcSize(size, _) => ReencodeError::BadDcSize { size, at, mcu },
        Fault::AcSymbol(symbol, _) => ReencodeError::BadAcSymbol { symbol, at, mcu },
        Fault::RunPastEnd(_) => ReencodeError::RunPastEnd { at, mcu },
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;
    use crate::jpeg::markers::{DHT, SOS};
    use crate::jpeg::{frame_length, parse_image, segments};

    macro_rules! vector {
        ($name:literal) => {
            (
                $name,
                include_bytes!(concat!("../../../../tests/vectors/", $name)).as_slice(),
            )
        };
    }

    /// Vectors whose Huffman tables are not the standard ones.
    const OPTIMISED: [(&str, &[u8]); 3] = [
        vector!("420-optimized-huffman.jpg"),
        vector!("420-optimized-huffman-dri.jpg"),
        vector!("ffmpeg-420-optimal-huffman.jpg"),
    ];

    /// Vectors with the standard tables.
    /// ("unsupported" means by RFC 2435, not by re-encoding: 4:4:4, grayscale, and
    /// ffmpeg's 4:2:2, whose chroma is 1x2 under a 2x2 luma.)
    const STANDARD: [(&str, &[u8]); 11] = [
        vector!("420-q75.jpg"),
        vector!("422-q50.jpg"),
        vector!("420-dri2.jpg"),
        vector!("422-dri3.jpg"),
        vector!("420-odd-size.jpg"),
        vector!("jpegenc-420.jpg"),
        vector!("ffmpeg-420-combined-dqt.jpg"),
        vector!("420-16bit-tables.jpg"),
        vector!("unsupported-444.jpg"),
        vector!("unsupported-grayscale.jpg"),
        vector!("unsupported-ffmpeg-422.jpg"),
    ];

    fn reencode_all(data: &[u8]) -> Vec<u8> {
        let image = parse_image(data).expect("test image parses");
        let mut out = Vec::new();
        reencode_scan(data, &image, &mut out).expect("re-encoding succeeds");
        out
    }

    /// The image up to its scan, with its DHT segments replaced by one standard DHT (luma
    /// tables 0, chroma tables 1) and its SOS pointing at them, then `scan` and EOI.
    fn rebuild(data: &[u8], scan: &[u8]) -> Vec<u8> {
        let image = parse_image(data).expect("test image parses");
        let mut out = vec![0xFF, 0xD8];
        for segment in segments(data) {
            let segment = segment.expect("test image parses");
            match segment.marker {
                DHT => {}
                SOS => {
                    let tables = [
                        (0x00, standard::DC_LUMA),
                        (0x10, standard::AC_LUMA),
                        (0x01, standard::DC_CHROMA),
                        (0x11, standard::AC_CHROMA),
                    ];
                    let len: usize = tables.iter().map(|(_, t)| 17 + t.symbols.len()).sum();
                    out.extend_from_slice(&[0xFF, DHT]);
                    out.extend_from_slice(&(len as u16 + 2).to_be_bytes());
                    for (class_id, t) in tables {
                        out.push(class_id);
                        out.extend_from_slice(t.counts);
                        out.extend_from_slice(t.symbols);
                    }
                    let components = image.scan.components();
                    out.extend_from_slice(&[0xFF, SOS, 0, 6 + 2 * components.len() as u8]);
                    out.push(components.len() as u8);
                    for (i, c) in components.iter().enumerate() {
                        out.extend_from_slice(&[c.id, if i == 0 { 0x00 } else { 0x11 }]);
                    }
                    out.extend_from_slice(&[0, 63, 0]);
                    break;
                }
                _ => out.extend_from_slice(&data[segment.offset..segment.end()]),
            }
        }
        out.extend_from_slice(scan);
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    /// Runs a libjpeg-turbo tool with `input` on stdin; returns its stdout.
    fn run_tool(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = Command::new(tool)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test needs `{tool}` (Debian: libjpeg-turbo-progs): {e}")
            });
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().expect("tool runs");
        writer
            .join()
            .expect("writer thread")
            .expect("tool reads its input");
        assert!(
            output.status.success(),
            "`{tool} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    fn djpeg(jpeg: &[u8]) -> Vec<u8> {
        run_tool("djpeg", &["-ppm"], jpeg)
    }

    /// Re-encodes an image with non-standard tables and checks that the result is a valid
    /// JPEG decoding to the same pixels, and that re-encoding that is the identity.
    fn check_optimised(name: &str, data: &[u8]) {
        let image = parse_image(data).expect("test image parses");
        assert!(
            !uses_rfc2435_tables(&image),
            "{name}: tables are not standard"
        );
        let scan = reencode_all(data);
        let rebuilt = rebuild(data, &scan);
        assert_eq!(frame_length(&rebuilt), Ok(rebuilt.len()), "{name}");
        let again = parse_image(&rebuilt).expect("rebuilt image parses");
        assert!(uses_rfc2435_tables(&again), "{name}");
        assert_eq!(
            reencode_all(&rebuilt),
            scan,
            "{name}: second pass is the identity"
        );
        let (before, after) = (djpeg(data), djpeg(&rebuilt));
        assert!(before.len() > 100, "{name}: djpeg output");
        assert!(before == after, "{name}: decoded pixels differ");
    }

    #[test]
    fn optimised_tables_are_reencoded_losslessly() {
        for (name, data) in OPTIMISED {
            check_optimised(name, data);
        }
    }

    #[test]
    fn standard_tables_reencode_to_the_same_bytes() {
        for (name, data) in STANDARD {
            let image = parse_image(data).expect("vector parses");
            assert!(uses_rfc2435_tables(&image), "{name}");
            assert!(
                reencode_all(data) == data[image.scan_data.clone()],
                "{name}: output differs from the input scan"
            );
        }
    }

    #[test]
    fn missing_tables_count_as_standard() {
        let (_, data) = vector!("420-q75.jpg");
        let mut stripped = vec![0xFF, 0xD8];
        let mut scan_start = 0;
        for segment in segments(data) {
            let segment = segment.expect("vector parses");
            if segment.marker != DHT {
                stripped.extend_from_slice(&data[segment.offset..segment.end()]);
            }
            if segment.marker == SOS {
                scan_start = segment.end();
            }
        }
        stripped.extend_from_slice(&data[scan_start..]);
        let image = parse_image(&stripped).expect("stripped image parses");
        assert!(
            image
                .dc_tables
                .iter()
                .chain(&image.ac_tables)
                .all(Option::is_none)
        );
        assert!(uses_rfc2435_tables(&image));
        assert!(reencode_all(&stripped) == stripped[image.scan_data.clone()]);
    }

    #[test]
    fn non_standard_layouts_from_cjpeg() {
        // Pixels to compress: the decoded vectors (96x64 and 100x75).
        let sources = [
            djpeg(vector!("420-q75.jpg").1),
            djpeg(vector!("420-odd-size.jpg").1),
        ];
        let options: [&[&str]; 9] = [
            &["-sample", "1x1"],
            &["-sample", "2x1"],
            &["-sample", "1x2"],
            &["-sample", "4x1"],
            &["-sample", "4x2"],
            &["-sample", "2x2,1x2,1x1"],
            &["-sample", "1x1,2x2,1x1"],
            &["-grayscale"],
            &["-sample", "2x2", "-restart", "3B", "-quality", "95"],
        ];
        for source in &sources {
            for args in options {
                let args = [args, &["-optimize"]].concat();
                let data = run_tool("cjpeg", &args, source);
                let name = format!("cjpeg {}", args.join(" "));
                check_optimised(&name, &data);
            }
        }
    }

    /// A grayscale 8x8 baseline image with the given tables (none: standard) and scan.
    fn gray8x8(tables: Option<(HuffmanTable<'_>, HuffmanTable<'_>)>, scan: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xDB, 0, 67, 0];
        out.extend_from_slice(&[1; 64]);
        out.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
        if let Some((dc, ac)) = tables {
            let len = 2 + 2 * 17 + dc.symbols.len() + ac.symbols.len();
            out.extend_from_slice(&[0xFF, DHT]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
            for (class_id, t) in [(0x00, dc), (0x10, ac)] {
                out.push(class_id);
                out.extend_from_slice(t.counts);
                out.extend_from_slice(t.symbols);
            }
        }
        out.extend_from_slice(&[0xFF, SOS, 0, 8, 1, 1, 0x00, 0, 63, 0]);
        out.extend_from_slice(scan);
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    const ONE_CODE: [u8; 16] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    fn reencode_gray(
        tables: Option<(HuffmanTable<'_>, HuffmanTable<'_>)>,
        scan: &[u8],
    ) -> Result<Vec<u8>, ReencodeError> {
        let data = gray8x8(tables, scan);
        let image = parse_image(&data).expect("test image parses");
        let mut out = Vec::new();
        reencode_scan(&data, &image, &mut out).map(|()| out)
    }

    #[test]
    fn ff_bytes_in_the_output_are_stuffed() {
        // Input: DC size 11 coded "0", eleven 1-bits, EOB coded "0", padding 111:
        // 0111_1111 1111_0111 = 7F F7 (no FF). Standard: DC size 11 is 1111_1111_0,
        // then the magnitude, then EOB 1010: FF 7F FA, where FF must become FF 00.
        let dc = HuffmanTable {
            counts: &ONE_CODE,
            symbols: &[11],
        };
        let ac = HuffmanTable {
            counts: &ONE_CODE,
            symbols: &[0x00],
        };
        let scan = reencode_gray(Some((dc, ac)), &[0x7F, 0xF7]).expect("re-encodes");
        assert_eq!(scan, [0xFF, 0x00, 0x7F, 0xFA]);
        // Read back with the standard tables, stuffing included: the identity.
        assert_eq!(reencode_gray(None, &scan), Ok(scan.clone()));
        // And both decode to the same pixels.
        assert!(djpeg(&gray8x8(Some((dc, ac)), &[0x7F, 0xF7])) == djpeg(&gray8x8(None, &scan)));
    }

    #[test]
    fn invalid_scans_are_errors() {
        let dc0 = HuffmanTable {
            counts: &ONE_CODE,
            symbols: &[0],
        };
        // A code that is not in the table: the table has only "0".
        let eob = HuffmanTable {
            counts: &ONE_CODE,
            symbols: &[0x00],
        };
        assert!(matches!(
            reencode_gray(Some((dc0, eob)), &[0x80, 0x00, 0x00]),
            Err(ReencodeError::BadCode { mcu: 0, .. })
        ));
        // DC size 12 does not exist in 8-bit JPEG.
        let dc12 = HuffmanTable {
            counts: &ONE_CODE,
            symbols: &[12],
        };
        assert!(matches!(
            reencode_gray(Some((dc12, eob)), &[0x00, 0x3F]),
            Err(ReencodeError::BadDcSize { size: 12, .. })
        ));
        // AC size 11 neither; nor run/size 0x10.
        for symbol in [0x0B, 0x10] {
            let ac = HuffmanTable {
                counts: &ONE_CODE,
                symbols: &[symbol],
            };
            assert_eq!(
                reencode_gray(Some((dc0, ac)), &[0x00, 0x00]),
                Err(ReencodeError::BadAcSymbol {
                    symbol,
                    at: 134,
                    mcu: 0
                })
            );
        }
        // Run 15 size 1, four times: the fourth coefficient would be at 65.
        let f1 = HuffmanTable {
            counts: &ONE_CODE,
            symbols: &[0xF1],
        };
        assert!(matches!(
            reencode_gray(Some((dc0, f1)), &[0x00, 0x7F]),
            Err(ReencodeError::RunPastEnd { .. })
        ));
        // No data at all: the zeros fed after the end decode to symbols, but the error is
        // that the data ran out.
        assert!(matches!(
            reencode_gray(Some((dc0, f1)), &[]),
            Err(ReencodeError::Truncated { mcu: 0, total: 1 })
        ));
        // Extra data after the last MCU.
        let dc_eob = HuffmanTable {
            counts: &ONE_CODE,
            symbols: &[0x00],
        };
        assert_eq!(reencode_gray(Some((dc0, dc_eob)), &[0x3F]), Ok(vec![0x2B]));
        assert!(matches!(
            reencode_gray(Some((dc0, dc_eob)), &[0x3F, 0x12]),
            Err(ReencodeError::ExtraData { mcu: 0, .. })
        ));
        // A superfluous restart marker after the last MCU is dropped.
        assert_eq!(
            reencode_gray(Some((dc0, dc_eob)), &[0x3F, 0xFF, 0xD0]),
            Ok(vec![0x2B])
        );
    }

    #[test]
    fn tables_are_checked() {
        for t in [
            standard::DC_LUMA,
            standard::AC_LUMA,
            standard::DC_CHROMA,
            standard::AC_CHROMA,
        ] {
            assert_eq!(check_table(&t), Ok(()));
        }
        let three_of_one_bit = [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let bad = HuffmanTable {
            counts: &three_of_one_bit,
            symbols: &[0, 1, 2],
        };
        assert!(check_table(&bad).is_err());
        let short = HuffmanTable {
            counts: &standard::DC_LUMA_COUNTS,
            symbols: &[0, 1, 2],
        };
        assert!(check_table(&short).is_err());
        let too_long = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF];
        let full: Vec<u8> = (0..=255).collect();
        assert!(
            check_table(&HuffmanTable {
                counts: &too_long,
                symbols: &full[..255]
            })
            .is_ok()
        );

        // A bad table in an image is reported, not used.
        let (_, data) = vector!("420-optimized-huffman.jpg");
        let mut image = parse_image(data).expect("vector parses");
        let id = image.scan.components()[1].ac_table;
        image.ac_tables[usize::from(id)] = Some(bad);
        let mut out = vec![1, 2, 3];
        assert_eq!(
            reencode_scan(data, &image, &mut out),
            Err(ReencodeError::BadTable {
                class: "AC",
                id,
                reason: "the code lengths do not form a prefix code"
            })
        );
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn unsupported_images_are_refused() {
        for (name, data) in [
            vector!("unsupported-progressive.jpg"),
            vector!("unsupported-arithmetic.jpg"),
        ] {
            let image = parse_image(data).expect("vector parses");
            let mut out = Vec::new();
            assert!(
                matches!(
                    reencode_scan(data, &image, &mut out),
                    Err(ReencodeError::Unsupported(_))
                ),
                "{name}"
            );
            assert!(out.is_empty());
        }
        // A scan range outside the data.
        let (_, data) = vector!("420-q75.jpg");
        let image = parse_image(data).expect("vector parses");
        let mut out = Vec::new();
        assert!(matches!(
            reencode_scan(&data[..100], &image, &mut out),
            Err(ReencodeError::ScanOutOfRange { .. })
        ));
    }

    /// The positions of the restart markers in a scan.
    fn restart_markers(scan: &[u8]) -> Vec<usize> {
        scan.windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] == 0xFF && (RST0..=RST7).contains(&w[1]))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn restart_markers_are_checked_and_kept() {
        let (_, data) = vector!("420-optimized-huffman-dri.jpg");
        let image = parse_image(data).expect("vector parses");
        let scan = &data[image.scan_data.clone()];
        let markers = restart_markers(scan);
        // 96x64 in 4:2:0 is 6x4 MCUs, one per interval.
        assert_eq!(markers.len(), 23);
        let out = reencode_all(data);
        let codes = |s: &[u8]| {
            restart_markers(s)
                .iter()
                .map(|&i| s[i + 1])
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(&out), codes(scan));

        // Out of sequence.
        let mut wrong = data.to_vec();
        wrong[image.scan_data.start + markers[2] + 1] = RST0 + 5;
        let image2 = parse_image(&wrong).expect("still parses");
        let mut out = Vec::new();
        assert_eq!(
            reencode_scan(&wrong, &image2, &mut out),
            Err(ReencodeError::WrongRestart {
                expected: 2,
                found: RST0 + 5,
                at: image.scan_data.start + markers[2],
                mcu: 2
            })
        );
        // Missing: the next interval's data follows directly.
        let at = image.scan_data.start + markers[0];
        let missing = [&data[..at], &data[at + 2..]].concat();
        let image3 = parse_image(&missing).expect("still parses");
        assert_eq!(
            reencode_scan(&missing, &image3, &mut out),
            Err(ReencodeError::ExtraData {
                at,
                mcu: 0,
                expected: "a restart marker"
            })
        );
        assert!(out.is_empty());
    }

    #[test]
    fn truncated_scans_are_errors() {
        let (_, data) = vector!("420-optimized-huffman.jpg");
        let image = parse_image(data).expect("vector parses");
        let half = (image.scan_data.start + image.scan_data.end) / 2;
        let cut = [&data[..half], &[0xFF, 0xD9]].concat();
        let image = parse_image(&cut).expect("still parses");
        let mut out = Vec::new();
        assert!(matches!(
            reencode_scan(&cut, &image, &mut out),
            Err(ReencodeError::Truncated { total: 24, .. })
        ));
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Re-encodes a damaged image: Ok or Err, never a panic; `out` untouched on error and
    /// bounded on success. Returns whether it succeeded (None: the image no longer parses).
    fn reencode_damaged(data: &[u8]) -> Option<bool> {
        let image = parse_image(data).ok()?;
        let mut out = vec![0xAA; 3];
        let ok = reencode_scan(data, &image, &mut out).is_ok();
        if ok {
            assert!(out.len() - 3 <= output_limit(image.scan_data.len()));
        } else {
            assert_eq!(out, [0xAA; 3]);
        }
        Some(ok)
    }

    #[test]
    fn damaged_scans_never_panic() {
        let mut errors = 0;
        let mut state = 0x1234_5678_9ABC_DEF1;
        for (_, data) in OPTIMISED {
            let scan = parse_image(data).expect("vector parses").scan_data;
            for i in scan.clone() {
                let mut flipped = data.to_vec();
                flipped[i] ^= 1 << (i % 8);
                let mut ff = data.to_vec();
                ff[i] = 0xFF;
                let mut zero = data.to_vec();
                zero[i] = 0x00;
                let restart = [&data[..i], &[0xFF, RST0 + (i % 8) as u8], &data[i..]].concat();
                let trimmed = [&data[..i], &[0xFF, 0xD9]].concat();
                let dropped = [&data[..i], &data[i + 1..]].concat();
                for damaged in [flipped, ff, zero, restart, trimmed, dropped] {
                    errors += usize::from(reencode_damaged(&damaged) == Some(false));
                }
            }
            // Random scan data after a valid header.
            for _ in 0..300 {
                let len = (xorshift(&mut state) % 3000) as usize;
                let noise: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
                let damaged = [&data[..scan.start], &noise, &[0xFF, 0xD9]].concat();
                errors += usize::from(reencode_damaged(&damaged) == Some(false));
            }
        }
        assert!(errors > 1000, "only {errors} damaged images were refused");
    }
}
