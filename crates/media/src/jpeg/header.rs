use super::markers::{self, APP0, APP14, DRI};
use super::{JpegError, Segment, segments};

/// One image component from the frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Component {
    pub id: u8,
    pub h: u8,
    pub v: u8,
    pub quant_table: u8,
}

/// Colour space, named as GStreamer's `jpegparse` names it in caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColorSpace {
    Yuv,
    Rgb,
    Gray,
    Cmyk,
    Ycck,
}

impl ColorSpace {
    pub fn caps_name(self) -> &'static str {
        match self {
            ColorSpace::Yuv => "sYUV",
            ColorSpace::Rgb => "sRGB",
            ColorSpace::Gray => "GRAY",
            ColorSpace::Cmyk => "CMYK",
            ColorSpace::Ycck => "YCCK",
        }
    }
}

/// Chroma subsampling, named as GStreamer's `jpegparse` names it in caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sampling {
    Rgb,
    Gray,
    Ycbcr444,
    Ycbcr422,
    Ycbcr420,
    Ycbcr440,
    Ycbcr411,
    Ycbcr410,
}

impl Sampling {
    pub fn caps_name(self) -> &'static str {
        match self {
            Sampling::Rgb => "RGB",
            Sampling::Gray => "GRAYSCALE",
            Sampling::Ycbcr444 => "YCbCr-4:4:4",
            Sampling::Ycbcr422 => "YCbCr-4:2:2",
            Sampling::Ycbcr420 => "YCbCr-4:2:0",
            Sampling::Ycbcr440 => "YCbCr-4:4:0",
            Sampling::Ycbcr411 => "YCbCr-4:1:1",
            Sampling::Ycbcr410 => "YCbCr-4:1:0",
        }
    }
}

/// What the header of one image says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// SOF marker code minus `SOF0`: 0 baseline, 1 extended, 2 progressive, 3 lossless, ...
    pub sof_type: u8,
    /// Bits per sample: 8 or 12 (lossless: 2..16).
    pub precision: u8,
    pub width: u16,
    pub height: u16,
    components: [Component; 4],
    num_components: u8,
    /// MCUs per restart interval, from `DRI`; 0 or absent means no restart markers.
    pub restart_interval: u16,
    /// Transform flag of an Adobe `APP14` segment, if present.
    pub adobe_transform: Option<u8>,
    /// Whether a JFIF `APP0` segment is present.
    pub jfif: bool,
    /// JFIF pixel density (horizontal, vertical), when both are non-zero.
    pub jfif_density: Option<(u16, u16)>,
}

impl FrameHeader {
    pub fn components(&self) -> &[Component] {
        &self.components[..usize::from(self.num_components)]
    }

    /// Pixel aspect ratio (width, height of one pixel) from the JFIF density; 1:1
    /// without one.
    pub fn pixel_aspect_ratio(&self) -> (u16, u16) {
        match self.jfif_density {
            Some((x, y)) => (y, x),
            None => (1, 1),
        }
    }

    pub fn color_space(&self) -> ColorSpace {
        let rgb_ids = self.components().iter().map(|c| c.id).eq(*b"RGB");
        match (self.components().len(), self.adobe_transform) {
            (1, _) => ColorSpace::Gray,
            (3, Some(0)) => ColorSpace::Rgb,
            (3, None) if !self.jfif && rgb_ids => ColorSpace::Rgb,
            (4, Some(2)) => ColorSpace::Ycck,
            (4, _) => ColorSpace::Cmyk,
            _ => ColorSpace::Yuv,
        }
    }

    /// Subsampling, or `None` for layouts with no common name (for example four
    /// components, or chroma components sampled differently from each other).
    pub fn sampling(&self) -> Option<Sampling> {
        match self.components() {
            [_] => Some(Sampling::Gray),
            [y, cb, cr] => {
                if (cb.h, cb.v) != (cr.h, cr.v) || y.h % cb.h != 0 || y.v % cb.v != 0 {
                    return None;
                }
                let rgb = self.color_space() == ColorSpace::Rgb;
                match (y.h / cb.h, y.v / cb.v) {
                    (1, 1) if rgb => Some(Sampling::Rgb),
                    (1, 1) => Some(Sampling::Ycbcr444),
                    (2, 1) => Some(Sampling::Ycbcr422),
                    (2, 2) => Some(Sampling::Ycbcr420),
                    (1, 2) => Some(Sampling::Ycbcr440),
                    (4, 1) => Some(Sampling::Ycbcr411),
                    (4, 2) => Some(Sampling::Ycbcr410),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// Parses the header segments of the image at the start of `data` (up to its first scan).
pub fn parse_header(data: &[u8]) -> Result<FrameHeader, JpegError> {
    let mut builder = HeaderBuilder::default();
    for segment in segments(data) {
        let segment = segment?;
        if segment.marker == markers::SOS {
            break;
        }
        builder.absorb(&segment)?;
    }
    builder.finish()
}

/// Collects what the header segments say about the frame, one segment at a time.
#[derive(Debug, Default)]
pub(super) struct HeaderBuilder {
    sof: Option<FrameHeader>,
    restart_interval: u16,
    adobe_transform: Option<u8>,
    jfif: bool,
    jfif_density: Option<(u16, u16)>,
}

impl HeaderBuilder {
    /// Takes in one header segment; SOF, DRI, JFIF APP0 and Adobe APP14 matter here.
    pub(super) fn absorb(&mut self, segment: &Segment<'_>) -> Result<(), JpegError> {
        match segment.marker {
            m if markers::is_sof(m) => {
                if self.sof.is_some() {
                    return Err(JpegError::UnexpectedMarker {
                        marker: m,
                        at: segment.offset,
                    });
                }
                self.sof = Some(parse_sof(m, segment.payload, segment.offset)?);
            }
            DRI => {
                let [hi, lo] = segment.payload else {
                    return Err(JpegError::BadDri { at: segment.offset });
                };
                self.restart_interval = u16::from_be_bytes([*hi, *lo]);
            }
            APP0 if segment.payload.starts_with(b"JFIF\0") => {
                self.jfif = true;
                // JFIF: identifier(5) version(2) units(1) Xdensity(2) Ydensity(2) ...
                if let [_, _, _, _, _, _, _, _, xh, xl, yh, yl, ..] = segment.payload {
                    let x = u16::from_be_bytes([*xh, *xl]);
                    let y = u16::from_be_bytes([*yh, *yl]);
                    self.jfif_density = (x > 0 && y > 0).then_some((x, y));
                }
            }
            APP14 if segment.payload.starts_with(b"Adobe") && segment.payload.len() >= 12 => {
                self.adobe_transform = Some(segment.payload[11]);
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<FrameHeader, JpegError> {
        let mut header = self.sof.ok_or(JpegError::NoSof)?;
        header.restart_interval = self.restart_interval;
        header.adobe_transform = self.adobe_transform;
        header.jfif = self.jfif;
        header.jfif_density = self.jfif_density;
        Ok(header)
    }
}

fn parse_sof(marker: u8, payload: &[u8], at: usize) -> Result<FrameHeader, JpegError> {
    let bad = |reason| JpegError::BadSof { at, reason };
    let [precision, h_hi, h_lo, w_hi, w_lo, count, rest @ ..] = payload else {
        return Err(bad("segment too short"));
    };
    let height = u16::from_be_bytes([*h_hi, *h_lo]);
    let width = u16::from_be_bytes([*w_hi, *w_lo]);
    let count = usize::from(*count);
    if width == 0 {
        return Err(bad("width is 0"));
    }
    if height == 0 {
        return Err(bad("height is 0 (a DNL segment is not supported)"));
    }
    if !(1..=4).contains(&count) {
        return Err(bad("component count is not between 1 and 4"));
    }
    if rest.len() != count * 3 {
        return Err(bad("length does not match the component count"));
    }
    let mut components = [Component::default(); 4];
    for (slot, c) in components.iter_mut().zip(rest.chunks_exact(3)) {
        let (h, v) = (c[1] >> 4, c[1] & 0x0F);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
            return Err(bad("sampling factor outside 1..4"));
        }
        *slot = Component {
            id: c[0],
            h,
            v,
            quant_table: c[2],
        };
    }
    Ok(FrameHeader {
        sof_type: marker - markers::SOF0,
        precision: *precision,
        width,
        height,
        components,
        num_components: count as u8,
        restart_interval: 0,
        adobe_transform: None,
        jfif: false,
        jfif_density: None,
    })
}
