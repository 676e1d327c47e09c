//! RTP and RTCP interleaved in the control connection (RFC 2326 10.12): `$`, the channel,
//! the length (16 bits), then the packet. Reading is in `request::next`.

/// Appends one interleaved frame holding `parts` (a packet in pieces) to `out`; `false`
/// (and nothing appended) when the packet is longer than the 16-bit length allows.
pub fn append<'a>(
    out: &mut Vec<u8>,
    channel: u8,
    parts: impl IntoIterator<Item = &'a [u8]>,
) -> bool {
    let start = out.len();
    out.extend_from_slice(&[b'$', channel, 0, 0]);
    for part in parts {
        out.extend_from_slice(part);
    }
    match u16::try_from(out.len() - start - 4) {
        Ok(len) => {
            out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
            true
        }
        Err(_) => {
            out.truncate(start);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Framed, next};

    #[test]
    fn frames_read_back_as_interleaved_data() {
        let mut out = b"x".to_vec();
        assert!(append(&mut out, 1, [&b"ab"[..], b"cde"]));
        assert_eq!(out, b"x$\x01\x00\x05abcde");
        match next(&out[1..], false) {
            Some((Framed::Interleaved { channel: 1, data }, 9)) => assert_eq!(data, b"abcde"),
            other => panic!("{other:?}"),
        }
        let big = vec![0u8; 70_000];
        assert!(!append(&mut out, 0, [&big[..]]));
        assert_eq!(out.len(), 10, "nothing appended");
    }
}
