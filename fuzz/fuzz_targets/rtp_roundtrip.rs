//! Fuzzes the RFC 2435 payloader on arbitrary images: whatever `prepare` accepts, cut into
//! packets of an arbitrary size, must come back from the depayloader as an image with
//! exactly the scan data sent, the same size and restart interval.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mjpeg_media::jpeg;
use mjpeg_media::rfc2435::{
    DepayOptions, Packet, Packetizer, PayloadOptions, Reassembler, ScanData, prepare,
};

fuzz_target!(|data: &[u8]| {
    let Some((&knob, image)) = data.split_first() else {
        return;
    };
    // The framed shortcut is for input holding exactly one valid image (what a parser
    // that frames at EOI delivers from a valid stream): where that holds, it must find the
    // same scan as the search.
    let valid_single_image = jpeg::frame_length(image) == Ok(image.len())
        && jpeg::parse_image(image)
            .is_ok_and(|i| i.single_scan && i.scan_data.end + 2 == image.len());
    let framed = knob & 0x80 != 0 && valid_single_image;
    if framed {
        let (a, b) = (jpeg::parse_framed_image(image), jpeg::parse_image(image));
        assert_eq!(a.map(|i| i.scan_data), b.map(|i| i.scan_data));
    }
    let options = PayloadOptions {
        inband_q: 128 + (knob & 0x7F),
        framed,
        ..PayloadOptions::default()
    };
    let Ok(frame) = prepare(image, &options) else {
        return;
    };
    let scan: &[u8] = match &frame.scan {
        ScanData::Borrowed(range) => &image[range.clone()],
        ScanData::Reencoded(bytes) => bytes,
    };
    let max_payload = 16 + usize::from(knob) * 8;
    let mut reassembler = Reassembler::new(DepayOptions {
        dimensions: Some((frame.width, frame.height)),
        ..DepayOptions::default()
    });
    let send_tables = frame.q >= 128;
    let mut out = None;
    let mut header = Vec::new();
    for fragment in Packetizer::new(&frame, scan, send_tables, max_payload) {
        header.clear();
        fragment.write_headers(&frame, send_tables, &mut header);
        assert!(header.len() + fragment.data.len() <= max_payload.max(header.len() + 1));
        header.extend_from_slice(&scan[fragment.data.clone()]);
        let got = reassembler.push(&Packet {
            payload: &header,
            marker: fragment.marker,
            timestamp: 7,
        });
        assert!(got.dropped.is_empty(), "{:?}", got.dropped);
        out = out.or(got.frames.into_iter().next());
    }
    let frame_out = out.expect("the marker packet completes the frame");
    let rebuilt = jpeg::parse_image(&frame_out.jpeg).expect("the rebuilt image parses");
    let rebuilt_scan = &frame_out.jpeg[rebuilt.scan_data.clone()];
    assert_eq!(rebuilt_scan, scan);
    assert_eq!(
        (rebuilt.header.width, rebuilt.header.height),
        (frame.width, frame.height)
    );
    assert_eq!(rebuilt.header.restart_interval, frame.restart_interval);
});
