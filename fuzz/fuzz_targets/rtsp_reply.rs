//! Fuzzes what the player and the load generator read from servers: a lab server's reply,
//! `WWW-Authenticate` challenges (and the Authorization built from them), a DESCRIBE's SDP
//! with its control URLs, and whole replies as the RTSP core's client side reads them
//! (DESCRIBE, SETUP, OPTIONS). No panic on any input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtsp_core::describe;
use rtsp_core::{auth, client, lab};
use rtsp_types::{Message, Method, Url};

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
    if let Ok((Message::Response(reply), _)) = Message::<Vec<u8>>::parse(data) {
        if let Ok(url) = Url::parse("rtsp://127.0.0.1:8554/clip.Mjpeg") {
            if let Ok(description) = client::read_describe(&url, &reply) {
                let _ = description.jpeg_video();
                if let Ok(stream) = description.rtp_stream() {
                    let _ = description.control_url(stream);
                }
            }
        }
        let mut session = client::Client::new("fuzz");
        let _ = session.read_setup(&reply);
        let _ = client::offers(&reply, &Method::GetParameter);
    }
});
