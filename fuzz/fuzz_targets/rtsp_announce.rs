//! Fuzzes the reading of a publisher's ANNOUNCE body: arbitrary bytes as the session
//! description, with and without a Content-Type. No panic; what is accepted is JPEG over
//! RTP with a payload type RTP can carry, and a description over the limit is refused
//! before it is parsed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtsp_core::announce::{self, AnnounceError, MAX_SDP};

fuzz_target!(|data: &[u8]| {
    for content_type in [None, Some("application/sdp")] {
        match announce::read(content_type, data) {
            Ok(announced) => {
                assert!(announced.payload_type <= 127, "{announced:?}");
                assert!(data.len() <= MAX_SDP);
            }
            Err(AnnounceError::TooLarge { len, max }) => assert!(len > max),
            Err(e) => {
                assert!(data.len() <= MAX_SDP);
                let _ = e.to_string();
            }
        }
    }
});
