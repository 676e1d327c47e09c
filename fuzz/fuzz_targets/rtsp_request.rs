//! Fuzzes the server's request reading: arbitrary bytes from a control connection, split
//! into requests (RFC 2326 through rtsp-types, the lab dialect, interleaved data) as the
//! server does, with and without the lab "quiet" end, then every header the server reads
//! (Transport, Range, Session, the clip path: read once into typed values). No panic, and
//! every step consumes bytes it was given.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtsp_core::request::{self, Framed};
use rtsp_core::{lab, path};

fuzz_target!(|data: &[u8]| {
    for quiet in [false, true] {
        let mut rest = data;
        while let Some((framed, used)) = request::next(rest, quiet) {
            assert!(
                used > 0 && used <= rest.len(),
                "used {used} of {}",
                rest.len()
            );
            rest = &rest[used..];
            if let Framed::Request(r) = framed {
                if let Some(p) = &r.path {
                    if let Ok(t) = path::target(p) {
                        assert!(!t.clip.contains('/') && t.clip != "..", "{t:?}");
                    }
                }
                // Headers are read once, into typed values; a range that was read is
                // ordered.
                if let Some(Ok(range)) = &r.range {
                    if let (Some(start), Some(end)) = (range.start, range.end) {
                        assert!(start <= end, "{range:?}");
                    }
                }
                // Whatever was read, a reply about it can be written in both dialects.
                let reply = rtsp_core::Reply::new(rtsp_types::StatusCode::Ok);
                let _ = reply.into_bytes(r.dialect, r.cseq);
            }
        }
    }
    let _ = lab::parse(data);
});
