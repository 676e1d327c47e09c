//! Fuzzes what the player reads from servers: a lab server's reply, `WWW-Authenticate`
//! challenges (and the Authorization built from them), and a DESCRIBE's SDP with its
//! control URLs. No panic on any input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtsp_core::describe;
use rtsp_core::{auth, lab};
use rtsp_types::Url;

fuzz_target!(|data: &[u8]| {
    let _ = lab::parse_reply(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(challenges) = auth::parse_challenges(text) {
            let mut authenticator =
                auth::Authenticator::new(Some(auth::Credentials::new("user", "pass")));
            if authenticator.on_unauthorized([text]).is_ok() {
                let _ = authenticator.authorization("DESCRIBE", "rtsp://h/x");
            }
            let _ = auth::strongest(&challenges);
        }
    }
    if let Ok(base) = Url::parse("rtsp://127.0.0.1:8554/clip.Mjpeg/") {
        let _ = describe::read(data, &base);
    }
});
