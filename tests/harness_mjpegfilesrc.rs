//! mjpegfilesrc under gst_check::Harness: one whole JPEG per buffer, timestamps, caps and
//! EOS, and how corrupt files are reported.

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;
use mjpeg_rtsp_tests::*;

const WIDTH: u32 = 64;
const HEIGHT: u32 = 48;

/// A harness around an mjpegfilesrc reading `bytes` (written to a file in `dir`), with a
/// bus of its own so that its messages can be read.
fn source(dir: &tempfile::TempDir, bytes: &[u8], props: &[(&str, glib::Value)]) -> Harness {
    init();
    let path = write_file(dir.path(), "clip.mjpeg", bytes);
    let h = Harness::new("mjpegfilesrc");
    let element = h.element().unwrap();
    element.set_property("location", path.to_str().unwrap());
    for (name, value) in props {
        element.set_property_from_value(name, value);
    }
    element.set_bus(Some(&gst::Bus::new()));
    h
}

/// The events up to and including EOS.
fn events_to_eos(h: &mut Harness) -> Vec<gst::Event> {
    let mut events = Vec::new();
    loop {
        let event = h.pull_event().expect("an event before the timeout");
        let eos = event.type_() == gst::EventType::Eos;
        events.push(event);
        if eos {
            return events;
        }
    }
}

fn bytes(buffer: &gst::Buffer) -> Vec<u8> {
    buffer.map_readable().unwrap().to_vec()
}

/// Pulls `n` buffers and checks each against `frames`, `step` ns apart.
fn assert_frames(h: &mut Harness, frames: &[Vec<u8>], step: u64) {
    for (n, frame) in frames.iter().enumerate() {
        let buffer = h.pull().expect("a frame");
        let data = bytes(&buffer);
        assert_eq!(&data[..2], [0xFF, 0xD8], "frame {n} starts with SOI");
        assert_eq!(
            &data[data.len() - 2..],
            [0xFF, 0xD9],
            "frame {n} ends with EOI"
        );
        assert_eq!(&data, frame, "frame {n} is the file's JPEG");
        assert_eq!(buffer.pts().map(|t| t.nseconds()), Some(n as u64 * step));
        assert_eq!(buffer.duration().map(|t| t.nseconds()), Some(step));
        assert_eq!(buffer.offset(), n as u64);
        assert_eq!(buffer.offset_end(), n as u64 + 1);
    }
}

fn caps_event(events: &[gst::Event]) -> gst::Caps {
    events
        .iter()
        .find_map(|e| match e.view() {
            gst::EventView::Caps(c) => Some(c.caps_owned()),
            _ => None,
        })
        .expect("a caps event")
}

#[test]
fn lab_file_gives_one_jpeg_per_buffer_then_eos() {
    let frames = encode_jpegs(4, WIDTH, HEIGHT, "ball");
    let dir = tempfile::tempdir().unwrap();
    let rate = gst::Fraction::new(25, 1);
    let mut h = source(&dir, &lab_file(&frames), &[("framerate", rate.to_value())]);
    h.play();
    assert_frames(&mut h, &frames, 40_000_000);

    let events = events_to_eos(&mut h);
    let kinds: Vec<_> = events.iter().map(|e| e.type_()).collect();
    assert_eq!(
        kinds,
        [
            gst::EventType::StreamStart,
            gst::EventType::Caps,
            gst::EventType::Segment,
            gst::EventType::Eos
        ]
    );
    let caps = caps_event(&events);
    let s = caps.structure(0).unwrap();
    assert_eq!(s.name(), "image/jpeg");
    assert_eq!(s.get::<i32>("width"), Ok(WIDTH as i32));
    assert_eq!(s.get::<i32>("height"), Ok(HEIGHT as i32));
    assert_eq!(s.get::<gst::Fraction>("framerate"), Ok(rate));
    assert_eq!(s.get::<bool>("parsed"), Ok(true));
    assert_eq!(s.get::<&str>("sampling"), Ok("YCbCr-4:2:0"));
    assert!(h.try_pull().is_none(), "nothing after EOS");
    assert_eq!(h.element().unwrap().property::<u64>("frames"), 4);
}

#[test]
fn concatenated_jpegs_at_the_default_rate() {
    let frames = encode_jpegs(3, WIDTH, HEIGHT, "smpte");
    let dir = tempfile::tempdir().unwrap();
    let mut h = source(&dir, &frames.concat(), &[]);
    h.play();
    assert_frames(&mut h, &frames, 50_000_000);
    let caps = caps_event(&events_to_eos(&mut h));
    assert_eq!(
        caps.structure(0).unwrap().get::<gst::Fraction>("framerate"),
        Ok(gst::Fraction::new(20, 1))
    );
    assert!(h.try_pull().is_none());
}

/// The first error message on the element's bus.
fn bus_error(h: &Harness) -> glib::Error {
    let bus = h.element().unwrap().bus().unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error message");
    match msg.view() {
        gst::MessageView::Error(e) => e.error(),
        _ => unreachable!(),
    }
}

#[test]
fn a_corrupt_frame_mid_file_is_an_error_after_the_good_frames() {
    let frames = encode_jpegs(2, WIDTH, HEIGHT, "ball");
    let mut file = lab_file(&frames);
    file.extend_from_slice(b"00010garbage!!");
    let dir = tempfile::tempdir().unwrap();
    let mut h = source(&dir, &file, &[]);
    h.play();
    assert_frames(&mut h, &frames, 50_000_000);
    let error = bus_error(&h);
    assert!(error.matches(gst::StreamError::Decode), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("corrupt") && text.contains("skip-corrupt"),
        "{text}"
    );
    assert!(h.try_pull().is_none(), "no frame after the corrupt one");
}

#[test]
fn skip_corrupt_skips_the_bad_frame_and_counts_it() {
    let frames = encode_jpegs(2, WIDTH, HEIGHT, "ball");
    let mut file = lab_file(&frames[..1]);
    file.extend_from_slice(b"00010garbage!!");
    file.extend_from_slice(&lab_file(&frames[1..]));
    let dir = tempfile::tempdir().unwrap();
    let mut h = source(&dir, &file, &[("skip-corrupt", true.to_value())]);
    h.play();
    assert_frames(&mut h, &frames, 50_000_000);
    events_to_eos(&mut h);
    let element = h.element().unwrap();
    assert_eq!(element.property::<u64>("frames"), 2);
    assert_eq!(element.property::<u64>("skipped-frames"), 1);
    let warning = element
        .bus()
        .unwrap()
        .pop_filtered(&[gst::MessageType::Warning])
        .expect("a warning for the skipped frame");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    assert!(w.error().matches(gst::StreamError::Decode), "{}", w.error());
}

#[test]
fn a_file_with_no_jpeg_fails_to_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let h = source(&dir, b"this is not a Motion-JPEG file", &[]);
    // Not h.play(): the harness asserts that the state change succeeds.
    let element = h.element().unwrap();
    assert!(element.set_state(gst::State::Playing).is_err());
    let error = bus_error(&h);
    assert!(error.matches(gst::StreamError::WrongType), "{error}");
    assert!(error.to_string().contains("clip.mjpeg"), "{error}");
    element.set_state(gst::State::Null).unwrap();
}
