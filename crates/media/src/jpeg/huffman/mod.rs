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
//!
//! # Files
//!
//! - `bits`: the bit reader (with its byte source) and the bit writer of entropy-coded
//!   data, byte stuffing and markers included.
//! - `transcoder`: the Huffman tables: canonical codes, the fused decode/encode table of
//!   one (input table, output table) pair, and the transcoding of one 8x8 block.
//! - this file: the public API and the scan loop (MCUs, restart intervals, errors).

mod bits;
mod transcoder;

use std::ops::Range;

use super::JpegImage;
use super::markers::{RST0, RST7};
use super::tables::{HuffmanTable, standard};
use bits::{BitReader, BitWriter, Source, Stop};
pub use transcoder::FAST_BITS;
use transcoder::{Fault, Transcoder, encode_map, for_each_code, transcode_block};

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
mod tests;
