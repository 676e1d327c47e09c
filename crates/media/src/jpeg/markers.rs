//! Marker codes (the byte after `FF`), from ITU-T T.81 table B.1.

pub const SOF0: u8 = 0xC0;
pub const DHT: u8 = 0xC4;
pub const JPG: u8 = 0xC8;
pub const DAC: u8 = 0xCC;
pub const RST0: u8 = 0xD0;
pub const RST7: u8 = 0xD7;
pub const SOI: u8 = 0xD8;
pub const EOI: u8 = 0xD9;
pub const SOS: u8 = 0xDA;
pub const DQT: u8 = 0xDB;
pub const DNL: u8 = 0xDC;
pub const DRI: u8 = 0xDD;
pub const APP0: u8 = 0xE0;
pub const APP14: u8 = 0xEE;
pub const COM: u8 = 0xFE;
/// Temporary private use in arithmetic coding; stands alone like RSTn.
pub const TEM: u8 = 0x01;

/// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
pub fn is_sof(marker: u8) -> bool {
    (0xC0..=0xCF).contains(&marker) && !matches!(marker, DHT | JPG | DAC)
}

/// Markers that are not followed by a length field.
pub fn is_standalone(marker: u8) -> bool {
    matches!(marker, TEM | RST0..=RST7 | SOI | EOI)
}
