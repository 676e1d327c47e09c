//! Synthetic JPEG images for unit tests: structurally valid, byte positions known.

/// Builds an image from its parts. The scan bytes are written as given, so tests can put
/// stuffed bytes and restart markers in them.
pub struct JpegBuilder {
    pub segments: Vec<(u8, Vec<u8>)>,
    pub scan: Vec<u8>,
}

impl JpegBuilder {
    /// A 4:2:0 YCbCr baseline image header with JFIF, one DQT and an 8-byte scan.
    pub fn yuv420(width: u16, height: u16) -> JpegBuilder {
        let mut jfif = b"JFIF\0\x01\x01\x00".to_vec();
        jfif.extend_from_slice(&[0, 1, 0, 1, 0, 0]);
        JpegBuilder {
            segments: vec![
                (0xE0, jfif),
                (0xDB, [vec![0x00], vec![1; 64]].concat()),
                (0xC0, sof(width, height, &[(1, 0x22), (2, 0x11), (3, 0x11)])),
                (0xC4, vec![0x00; 17]),
                (0xDA, vec![3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]),
            ],
            scan: vec![0x12, 0x34, 0xFF, 0x00, 0x56, 0xFF, 0xD0, 0x78],
        }
    }

    pub fn segment(mut self, at: usize, marker: u8, payload: &[u8]) -> Self {
        self.segments.insert(at, (marker, payload.to_vec()));
        self
    }

    pub fn replace(mut self, marker: u8, payload: &[u8]) -> Self {
        for seg in &mut self.segments {
            if seg.0 == marker {
                seg.1 = payload.to_vec();
            }
        }
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        for (marker, payload) in &self.segments {
            out.extend_from_slice(&[0xFF, *marker]);
            out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
            out.extend_from_slice(payload);
        }
        out.extend_from_slice(&self.scan);
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }
}

/// An SOF payload: 8-bit precision, size, and (component id, sampling byte) pairs.
pub fn sof(width: u16, height: u16, components: &[(u8, u8)]) -> Vec<u8> {
    let mut p = vec![8];
    p.extend_from_slice(&height.to_be_bytes());
    p.extend_from_slice(&width.to_be_bytes());
    p.push(components.len() as u8);
    for (i, (id, hv)) in components.iter().enumerate() {
        p.extend_from_slice(&[*id, *hv, (i > 0) as u8]);
    }
    p
}
