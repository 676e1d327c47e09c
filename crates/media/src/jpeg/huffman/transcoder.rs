//! Huffman tables: the canonical codes of a table (T.81 Annex C), the fused lookup that
//! decodes an input code and gives the standard code for its symbol, and the transcoding of
//! one 8x8 block with it.

use super::bits::{BitReader, BitWriter, Source};
use crate::jpeg::tables::HuffmanTable;

/// Bits of the decoding lookup table: codes up to this long decode with one lookup.
pub const FAST_BITS: u32 = 9;
const FAST_SIZE: usize = 1 << FAST_BITS;

/// Generates the canonical codes of a table (T.81 C.1, C.2), calling `f(length, code,
/// symbol index)` for each in order, after checking that the table is a valid prefix code.
pub(super) fn for_each_code(
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
pub(super) type EncodeMap = [(u16, u8); 256];

pub(super) fn encode_map(table: &HuffmanTable<'_>) -> Result<EncodeMap, &'static str> {
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
pub(super) enum Fault {
    BadCode,
    DcSize(u8, u8),
    AcSymbol(u8, u8),
    RunPastEnd(u8),
}

/// Decodes one input table and maps its symbols to the codes of one output table.
pub(super) struct Transcoder {
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
    pub(super) fn new(
        input: &HuffmanTable<'_>,
        output: &EncodeMap,
        dc: bool,
    ) -> Result<Self, &'static str> {
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
pub(super) fn transcode_block(
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
