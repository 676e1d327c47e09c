//! Behaviour of `mjpegfilesrc`, driven in-process on real `jpegenc` frames.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use gst::prelude::*;
use mjpeg_rtsp_tests::*;

const TIMEOUT: Duration = Duration::from_secs(60);
const FRAME_NS: u64 = 50_000_000; // 20 fps, the default

/// Ten distinct 320x240 frames (the "ball" pattern moves, so each frame differs).
static FRAMES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| encode_jpegs(10, 320, 240, "ball"));

struct Clip {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn clip(name: &str, bytes: &[u8]) -> Clip {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(dir.path(), name, bytes);
    Clip { _dir: dir, path }
}

fn description(path: &Path, props: &str) -> String {
    format!(
        "mjpegfilesrc name=src location=\"{}\" {props} ! appsink name=sink sync=false",
        path.display()
    )
}

/// A pipeline reading `path` into an appsink, and its mjpegfilesrc.
fn source_pipeline(path: &Path, props: &str) -> (gst::Pipeline, gst::Element) {
    init();
    let pipeline = launch(&description(path, props));
    let src = pipeline.by_name("src").unwrap();
    (pipeline, src)
}

fn play(path: &Path, props: &str) -> Run {
    run_pipeline(&description(path, props), TIMEOUT)
}

fn assert_frames(run: &Run, expected: &[Vec<u8>]) {
    assert!(run.error.is_none(), "unexpected error: {:?}", run.error);
    assert!(run.eos, "no EOS");
    let got = run.buffers();
    assert_eq!(got.len(), expected.len(), "frame count");
    for (n, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(g == e, "frame {n} differs");
    }
}

#[test]
fn reads_lab_files_with_auto_and_forced_format() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    assert_frames(&play(&c.path, ""), &FRAMES);
    assert_frames(&play(&c.path, "format=lab"), &FRAMES);
}

#[test]
fn reads_concatenated_jpeg_with_auto_and_forced_format() {
    let c = clip("clip.mjpeg", &FRAMES.concat());
    assert_frames(&play(&c.path, ""), &FRAMES);
    assert_frames(&play(&c.path, "format=jpeg"), &FRAMES);
}

#[test]
fn forcing_the_wrong_format_is_a_clear_error() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    let run = play(&c.path, "format=jpeg");
    let err = run.error.expect("an error");
    assert!(err.contains("frame 0 at byte offset 0"), "{err}");
    assert!(err.contains("does not start with SOI"), "{err}");
    assert!(run.samples.is_empty());
}

#[test]
fn caps_describe_the_frames() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    let run = play(&c.path, "framerate=25/2");
    let caps = run.caps(0);
    let s = caps.structure(0).unwrap();
    assert_eq!(s.name(), "image/jpeg");
    assert_eq!(s.get::<bool>("parsed"), Ok(true));
    assert_eq!(s.get::<i32>("width"), Ok(320));
    assert_eq!(s.get::<i32>("height"), Ok(240));
    assert_eq!(
        s.get::<gst::Fraction>("framerate"),
        Ok(gst::Fraction::new(25, 2))
    );
    assert_eq!(s.get::<i32>("sof-marker"), Ok(0));
    assert_eq!(s.get::<&str>("colorspace"), Ok("sYUV"));
    assert_eq!(s.get::<&str>("sampling"), Ok("YCbCr-4:2:0"));
    assert_eq!(
        s.get::<gst::Fraction>("pixel-aspect-ratio"),
        Ok(gst::Fraction::new(1, 1))
    );
    assert!(caps.is_fixed());
}

#[test]
fn caps_match_what_jpegparse_says() {
    let c = clip("clip.mjpeg", &FRAMES.concat());
    let ours = play(&c.path, "").caps(0);
    let theirs = run_pipeline(
        &format!(
            "filesrc location=\"{}\" ! jpegparse ! appsink name=sink sync=false",
            c.path.display()
        ),
        TIMEOUT,
    )
    .caps(0);
    let (o, t) = (ours.structure(0).unwrap(), theirs.structure(0).unwrap());
    // A plain file has no frame rate for jpegparse to find; ours comes from a property.
    let compared: Vec<_> = t.fields().filter(|f| f.as_str() != "framerate").collect();
    assert!(compared.len() >= 7, "jpegparse gave {t}");
    for field in compared {
        assert_eq!(
            o.value(field.as_str()).map(|v| format!("{v:?}")),
            t.value(field.as_str()).map(|v| format!("{v:?}")),
            "field {field}"
        );
    }
}

#[test]
fn caps_change_when_the_frame_size_changes() {
    let small = encode_jpegs(2, 160, 120, "smpte");
    let frames = [FRAMES[..2].to_vec(), small, FRAMES[2..4].to_vec()].concat();
    let c = clip("sizes.Mjpeg", &lab_file(&frames));
    let run = play(&c.path, "");
    assert_frames(&run, &frames);
    let widths: Vec<i32> = (0..run.samples.len())
        .map(|n| {
            run.caps(n)
                .structure(0)
                .unwrap()
                .get::<i32>("width")
                .unwrap()
        })
        .collect();
    assert_eq!(widths, [320, 320, 160, 160, 320, 320]);
}

#[test]
fn every_buffer_has_pts_duration_and_frame_offset() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    let run = play(&c.path, "");
    for (n, sample) in run.samples.iter().enumerate() {
        let b = sample.buffer().unwrap();
        assert_eq!(b.pts().map(|t| t.nseconds()), Some(n as u64 * FRAME_NS));
        assert_eq!(b.duration().map(|t| t.nseconds()), Some(FRAME_NS));
        assert_eq!((b.offset(), b.offset_end()), (n as u64, n as u64 + 1));
    }
}

#[test]
fn ntsc_timestamps_do_not_drift() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    let run = play(&c.path, "framerate=30000/1001");
    let pts = run.pts();
    for (n, &t) in pts.iter().enumerate() {
        assert_eq!(t, n as u64 * 1001 * 1_000_000_000 / 30000);
    }
    // Each buffer ends exactly where the next one starts.
    for w in run.samples.windows(2) {
        let (a, b) = (w[0].buffer().unwrap(), w[1].buffer().unwrap());
        assert_eq!(a.pts().unwrap() + a.duration().unwrap(), b.pts().unwrap());
    }
}

#[test]
fn frames_are_slices_of_the_mapped_file_not_copies() {
    let data = lab_file(&FRAMES);
    let c = clip("clip.Mjpeg", &data);
    let run = play(&c.path, "");
    let offsets = lab_jpeg_offsets(&FRAMES);
    let maps: Vec<_> = run
        .samples
        .iter()
        .map(|s| {
            let buffer = s.buffer().unwrap();
            assert_eq!(buffer.n_memory(), 1);
            buffer.peek_memory(0).map_readable().unwrap()
        })
        .collect();
    // Every frame lies where it lies in the file relative to the first: they all point
    // into one mapping of the file. Copies would be scattered.
    let base = maps[0].as_ptr() as usize;
    for (n, map) in maps.iter().enumerate() {
        assert_eq!(
            map.as_ptr() as usize - base,
            offsets[n] - offsets[0],
            "frame {n}"
        );
    }
}

#[test]
fn no_memory_has_every_frame_as_a_child() {
    // GStreamer counts a memory's sub-memories in 16 bits: frames must not all hang off
    // one memory, or holding 65536 of them would overflow it. Each frame's memory is a
    // root of its own.
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    let run = play(&c.path, "");
    for sample in &run.samples {
        let memory = sample.buffer().unwrap().peek_memory(0);
        assert!(memory.parent().is_none());
    }
}

/// Prerolls a pipeline, seeks, and returns the frames pushed after the seek.
fn after_seek(path: &Path, seek: impl FnOnce(&gst::Pipeline)) -> Vec<Vec<u8>> {
    let (pipeline, _src) = source_pipeline(path, "");
    pipeline.set_state(gst::State::Paused).unwrap();
    let (res, _, _) = pipeline.state(gst::ClockTime::from_seconds(10));
    res.expect("prerolls");
    seek(&pipeline);
    let run = collect(&pipeline, TIMEOUT);
    assert!(run.error.is_none(), "{:?}", run.error);
    run.buffers()
}

#[test]
fn seek_to_frame_n_yields_exactly_frame_n() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    for n in [0usize, 1, 7, 9] {
        let got = after_seek(&c.path, |p| {
            p.seek_simple(
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::format::Default::from_u64(n as u64),
            )
            .expect("seek in frames");
        });
        assert_eq!(got.len(), FRAMES.len() - n, "seek to {n}");
        assert!(got[0] == FRAMES[n], "seek to frame {n} gave another frame");
    }
}

#[test]
fn seek_in_time_lands_on_the_frame_shown_then() {
    let c = clip("clip.mjpeg", &FRAMES.concat());
    // 6 frames plus 20 ms is inside frame 6.
    let got = after_seek(&c.path, |p| {
        p.seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::ClockTime::from_nseconds(6 * FRAME_NS + 20_000_000),
        )
        .expect("seek in time");
    });
    assert!(got[0] == FRAMES[6]);
    assert_eq!(got.len(), 4);
}

#[test]
fn seek_with_a_stop_position_ends_there() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    let got = after_seek(&c.path, |p| {
        p.seek(
            1.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::SeekType::Set,
            gst::format::Default::from_u64(3),
            gst::SeekType::Set,
            gst::format::Default::from_u64(6),
        )
        .expect("seek with stop");
    });
    assert_eq!(got, FRAMES[3..6].to_vec());
}

#[test]
fn reverse_playback_is_refused_not_faked() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    after_seek(&c.path, |p| {
        let refused = p.seek(
            -1.0,
            gst::SeekFlags::FLUSH,
            gst::SeekType::Set,
            gst::ClockTime::ZERO,
            gst::SeekType::Set,
            gst::ClockTime::from_mseconds(300),
        );
        assert!(refused.is_err());
    });
}

#[test]
fn duration_position_and_conversion_queries() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    let (pipeline, src) = source_pipeline(&c.path, "");
    pipeline.set_state(gst::State::Paused).unwrap();
    pipeline.state(gst::ClockTime::from_seconds(10)).0.unwrap();
    assert_eq!(
        pipeline.query_duration::<gst::ClockTime>(),
        Some(gst::ClockTime::from_nseconds(10 * FRAME_NS))
    );
    assert_eq!(
        src.query_duration::<gst::format::Default>(),
        Some(gst::format::Default::from_u64(10))
    );
    assert_eq!(
        src.query_convert::<Option<gst::ClockTime>>(gst::format::Default::from_u64(4)),
        Some(Some(gst::ClockTime::from_nseconds(4 * FRAME_NS)))
    );
    assert_eq!(
        src.query_convert::<Option<gst::format::Default>>(gst::ClockTime::from_nseconds(
            4 * FRAME_NS + 1
        )),
        Some(Some(gst::format::Default::from_u64(4)))
    );
    let mut seeking = gst::query::Seeking::new(gst::Format::Default);
    assert!(src.query(&mut seeking));
    assert!(seeking.result().0);
    // After the seek, the position (in frames) follows the buffers pushed.
    pipeline
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::format::Default::from_u64(5),
        )
        .unwrap();
    pipeline.state(gst::ClockTime::from_seconds(10)).0.unwrap();
    let pos = pipeline.query_position::<gst::ClockTime>().unwrap();
    assert!(
        (5 * FRAME_NS..=6 * FRAME_NS).contains(&pos.nseconds()),
        "position {pos}"
    );
    let frame = src.query_position::<gst::format::Default>().map(|f| *f);
    assert!(matches!(frame, Some(5 | 6)), "position in frames {frame:?}");
    assert_eq!(src.property::<u64>("frames"), 10);
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn loop_restarts_with_increasing_timestamps() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES[..4]));
    let run = play(&c.path, "loop=true num-buffers=10");
    assert!(run.eos && run.error.is_none(), "{:?}", run.error);
    let got = run.buffers();
    let expected: Vec<Vec<u8>> = (0..10).map(|n| FRAMES[n % 4].clone()).collect();
    assert_eq!(got, expected);
    let pts = run.pts();
    assert_eq!(pts, (0..10).map(|n| n * FRAME_NS).collect::<Vec<_>>());
}

#[test]
fn live_mode_paces_frames_in_real_time() {
    let c = clip("clip.Mjpeg", &lab_file(&FRAMES));
    let run = play(&c.path, "is-live=true");
    assert_frames(&run, &FRAMES);
    // Ten frames at 20 fps: the last arrives 9 frame periods after the first. A busy
    // machine can only make it later, never earlier.
    let span = run.arrivals[9] - run.arrivals[0];
    let nominal = Duration::from_nanos(9 * FRAME_NS);
    assert!(
        span >= nominal - Duration::from_millis(20),
        "frames came too fast: {span:?}"
    );
    assert!(
        span < nominal + Duration::from_secs(3),
        "frames came far too slowly: {span:?}"
    );
    // Timestamps keep the frame spacing exactly.
    let pts = run.pts();
    for w in pts.windows(2) {
        assert_eq!(w[1] - w[0], FRAME_NS);
    }
}

#[test]
fn uri_handler_takes_file_uris() {
    init();
    let c = clip("with space.Mjpeg", &lab_file(&FRAMES));
    let src = gst::ElementFactory::make("mjpegfilesrc").build().unwrap();
    let handler = src.dynamic_cast_ref::<gst::URIHandler>().unwrap();
    assert_eq!(handler.protocols(), ["file"]);
    let uri = gst::glib::filename_to_uri(&c.path, None).unwrap();
    assert!(uri.contains("%20"), "{uri}");
    handler.set_uri(&uri).unwrap();
    assert_eq!(
        src.property::<Option<String>>("location").as_deref(),
        c.path.to_str()
    );
    assert_eq!(handler.uri().as_deref(), Some(uri.as_str()));
    assert!(handler.set_uri("http://example.invalid/x.Mjpeg").is_err());
}

// Bad input: each case gets an error that names the file, frame and offset.

fn expect_error(bytes: &[u8], props: &str, needles: &[&str]) {
    let c = clip("bad.Mjpeg", bytes);
    let run = play(&c.path, props);
    let err = run
        .error
        .unwrap_or_else(|| panic!("no error for {needles:?}"));
    assert!(err.contains("bad.Mjpeg"), "file not named: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
}

/// A lab file of FRAMES[..4] with frame 2 damaged, and frame 2's offset.
fn damaged(damage: impl FnOnce(&mut Vec<u8>, usize)) -> Vec<u8> {
    let mut data = lab_file(&FRAMES[..4]);
    let at = lab_jpeg_offsets(&FRAMES[..4])[2] - 5;
    damage(&mut data, at);
    data
}

fn frame2_offset() -> String {
    format!(
        "frame 2 at byte offset {}",
        lab_jpeg_offsets(&FRAMES[..4])[2] - 5
    )
}

#[test]
fn bad_length_field() {
    let data = damaged(|d, at| d[at + 1] = b'z');
    expect_error(
        &data,
        "",
        &[&frame2_offset(), "is not 5 ASCII decimal digits"],
    );
}

#[test]
fn frame_not_starting_with_soi() {
    let data = damaged(|d, at| d[at + 5] = 0x00);
    expect_error(&data, "", &[&frame2_offset(), "does not start with SOI"]);
}

#[test]
fn truncated_last_frame() {
    let mut data = lab_file(&FRAMES[..3]);
    data.truncate(data.len() - 100);
    expect_error(
        &data,
        "",
        &[
            &format!(
                "frame 2 at byte offset {}",
                lab_jpeg_offsets(&FRAMES[..3])[2] - 5
            ),
            "truncated",
        ],
    );
}

#[test]
fn zero_length() {
    let data = damaged(|d, at| d[at..at + 5].copy_from_slice(b"00000"));
    expect_error(&data, "", &[&frame2_offset(), "length field is zero"]);
}

#[test]
fn oversized_length() {
    let data = damaged(|d, at| d[at..at + 5].copy_from_slice(b"99999"));
    expect_error(&data, "", &[&frame2_offset(), "only"]);
}

#[test]
fn length_longer_than_the_jpeg() {
    let len = FRAMES[2].len() + 9;
    let data = damaged(|d, at| d[at..at + 5].copy_from_slice(format!("{len:05}").as_bytes()));
    expect_error(&data, "", &[&frame2_offset(), "followed by other data"]);
}

#[test]
fn frames_before_the_damage_play_then_the_error_stops_the_stream() {
    let c = clip("bad.Mjpeg", &damaged(|d, at| d[at + 1] = b'z'));
    let run = play(&c.path, "");
    assert!(run.error.is_some());
    assert_eq!(
        run.buffers(),
        FRAMES[..2].to_vec(),
        "only the good frames before it"
    );
}

#[test]
fn empty_missing_directory_and_unknown_files() {
    expect_error(b"", "", &["empty"]);
    expect_error(
        b"GIF89a.......",
        "",
        &["not a Motion-JPEG file", "47 49 46"],
    );

    let dir = tempfile::tempdir().unwrap();
    let run = play(&dir.path().join("missing.Mjpeg"), "");
    let err = run.error.unwrap();
    assert!(
        err.contains("missing.Mjpeg") && err.contains("No such file"),
        "{err}"
    );

    let run = play(dir.path(), "");
    let err = run.error.unwrap();
    assert!(err.contains("is a directory"), "{err}");
    assert!(err.contains(dir.path().to_str().unwrap()), "{err}");

    let run = run_pipeline("mjpegfilesrc ! appsink name=sink", TIMEOUT);
    assert!(run.error.unwrap().contains("set the location property"));
}

#[test]
fn skip_corrupt_skips_with_a_warning_and_a_count() {
    init();
    let mut data = damaged(|d, at| d[at + 1] = b'z');
    // And a second problem: a truncated frame at the end.
    data.extend_from_slice(b"01000\xff\xd8\xff");
    let c = clip("bad.Mjpeg", &data);
    let (pipeline, src) = source_pipeline(&c.path, "skip-corrupt=true");
    let run = collect(&pipeline, TIMEOUT);
    assert!(run.error.is_none() && run.eos, "{:?}", run.error);
    assert_eq!(
        run.buffers(),
        vec![FRAMES[0].clone(), FRAMES[1].clone(), FRAMES[3].clone()]
    );
    assert_eq!(src.property::<u64>("skipped-frames"), 2);
    assert_eq!(src.property::<u64>("frames"), 3);
    assert_eq!(run.warnings.len(), 2, "{:?}", run.warnings);
    assert!(
        run.warnings[0].contains(&frame2_offset()),
        "{:?}",
        run.warnings
    );
    assert!(run.warnings[1].contains("frame 4"), "{:?}", run.warnings);
}

#[test]
fn skip_corrupt_with_nothing_usable_is_an_error() {
    let data = b"00010\xff\xd8garbage!00005\xff\xd8\xff\xd9x".to_vec();
    expect_error(
        &data,
        "skip-corrupt=true",
        &["no usable frame", "2 frames are corrupt"],
    );
}

#[test]
fn errors_can_be_handled_by_a_sync_bus_handler_that_queries_the_source() {
    // The error is posted from the streaming thread; a sync handler runs right there and
    // may query the element, so the element must not hold its own lock while posting.
    init();
    let c = clip("bad.Mjpeg", &damaged(|d, at| d[at + 1] = b'z'));
    let (pipeline, src) = source_pipeline(&c.path, "");
    let (tx, rx) = std::sync::mpsc::channel();
    pipeline.bus().unwrap().set_sync_handler(move |_, msg| {
        if let gst::MessageView::Error(_) = msg.view() {
            let _ = tx.send(src.query_duration::<gst::ClockTime>());
        }
        gst::BusSyncReply::Pass
    });
    let run = collect(&pipeline, TIMEOUT);
    assert!(run.error.is_some());
    let duration = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("handler ran");
    assert_eq!(duration, Some(gst::ClockTime::from_nseconds(2 * FRAME_NS)));
}
