use super::testdata::{JpegBuilder, sof};
use super::*;

#[test]
fn frame_length_is_the_whole_image() {
    let img = JpegBuilder::yuv420(320, 240).build();
    assert_eq!(frame_length(&img), Ok(img.len()));
    // Trailing bytes after EOI are not part of the image.
    let mut more = img.clone();
    more.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    assert_eq!(frame_length(&more), Ok(img.len()));
}

#[test]
fn eoi_inside_a_thumbnail_does_not_end_the_image() {
    // An EXIF APP1 carrying a complete thumbnail JPEG: a naive search for FF D9 would stop
    // inside it.
    let thumb = JpegBuilder::yuv420(16, 16).build();
    let exif = [b"Exif\0\0".as_slice(), &thumb].concat();
    let img = JpegBuilder::yuv420(320, 240)
        .segment(0, 0xE1, &exif)
        .build();
    let naive = img.windows(2).position(|w| w == [0xFF, 0xD9]).unwrap() + 2;
    assert!(naive < img.len());
    assert_eq!(frame_length(&img), Ok(img.len()));
}

#[test]
fn scan_with_stuffing_restarts_and_fill_bytes() {
    let mut b = JpegBuilder::yuv420(64, 64);
    b.scan = vec![
        0x00, 0xFF, 0x00, 0xFF, 0xD0, 0x11, 0xFF, 0xD7, 0xFF, 0x00, 0x22, 0xFF, 0xFF,
    ];
    // The scan ends with a fill byte: FF FF D9 is fill + EOI.
    let img = b.build();
    assert_eq!(frame_length(&img), Ok(img.len()));
}

#[test]
fn progressive_image_with_several_scans() {
    let mut b = JpegBuilder::yuv420(64, 64).replace(0xC0, &[]);
    b.segments.retain(|(m, _)| *m != 0xC0);
    b.segments
        .insert(2, (0xC2, sof(64, 64, &[(1, 0x22), (2, 0x11), (3, 0x11)])));
    let mut img = b.build();
    // Append a second DHT + SOS + scan before EOI.
    img.truncate(img.len() - 2);
    img.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x13]);
    img.extend_from_slice(&[0u8; 17]);
    img.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 1, 0x00, 1, 5, 0]);
    img.extend_from_slice(&[0xAA, 0xFF, 0x00, 0xBB, 0xFF, 0xD9]);
    assert_eq!(frame_length(&img), Ok(img.len()));
    let h = parse_header(&img).unwrap();
    assert_eq!(h.sof_type, 2);
}

#[test]
fn truncated_images_are_reported_not_misread() {
    let img = JpegBuilder::yuv420(320, 240).build();
    for cut in 2..img.len() {
        let r = frame_length(&img[..cut]);
        assert!(
            matches!(r, Err(JpegError::Truncated { .. })),
            "cut at {cut}: {r:?}"
        );
    }
    assert_eq!(frame_length(&img[..1]), Err(JpegError::NoSoi));
    assert_eq!(frame_length(b""), Err(JpegError::NoSoi));
}

#[test]
fn structural_errors() {
    let img = JpegBuilder::yuv420(320, 240).build();
    // A byte that is not FF where a marker must start (right after SOI).
    let mut bad = img.clone();
    bad[2] = 0x12;
    assert_eq!(
        frame_length(&bad),
        Err(JpegError::ExpectedMarker { at: 2, found: 0x12 })
    );
    // A segment length below 2.
    let mut bad = img.clone();
    bad[4..6].copy_from_slice(&[0, 1]);
    assert_eq!(
        frame_length(&bad),
        Err(JpegError::BadSegmentLength {
            marker: 0xE0,
            at: 2,
            len: 1
        })
    );
    // A second SOI before EOI.
    let nested = JpegBuilder::yuv420(8, 8).segment(1, 0xD8, &[]).build();
    let second_soi = 2 + 4 + JpegBuilder::yuv420(8, 8).segments[0].1.len();
    assert_eq!(
        frame_length(&nested),
        Err(JpegError::UnexpectedMarker {
            marker: 0xD8,
            at: second_soi
        })
    );
}

#[test]
fn header_of_a_420_image() {
    let img = JpegBuilder::yuv420(384, 288)
        .segment(4, 0xDD, &[0x00, 0x08])
        .build();
    let h = parse_header(&img).unwrap();
    assert_eq!(
        (h.width, h.height, h.sof_type, h.precision),
        (384, 288, 0, 8)
    );
    assert_eq!(h.components().len(), 3);
    assert_eq!(h.restart_interval, 8);
    assert!(h.jfif);
    assert_eq!(h.pixel_aspect_ratio(), (1, 1));
    assert_eq!(h.color_space(), ColorSpace::Yuv);
    assert_eq!(h.sampling(), Some(Sampling::Ycbcr420));
    assert_eq!(h.sampling().unwrap().caps_name(), "YCbCr-4:2:0");
}

#[test]
fn sampling_and_color_space_names() {
    let with = |comps: &[(u8, u8)], extra: Option<(u8, Vec<u8>)>| {
        let mut b = JpegBuilder::yuv420(16, 16).replace(0xC0, &sof(16, 16, comps));
        b.segments.retain(|(m, _)| *m != 0xE0);
        if let Some((m, p)) = extra {
            b = b.segment(0, m, &p);
        }
        parse_header(&b.build()).unwrap()
    };
    let yuv = |y| with(&[(1, y), (2, 0x11), (3, 0x11)], None);
    assert_eq!(yuv(0x11).sampling(), Some(Sampling::Ycbcr444));
    assert_eq!(yuv(0x21).sampling(), Some(Sampling::Ycbcr422));
    assert_eq!(yuv(0x22).sampling(), Some(Sampling::Ycbcr420));
    assert_eq!(yuv(0x12).sampling(), Some(Sampling::Ycbcr440));
    assert_eq!(yuv(0x41).sampling(), Some(Sampling::Ycbcr411));
    assert_eq!(yuv(0x42).sampling(), Some(Sampling::Ycbcr410));
    // 3x3 luma over 1x1 chroma has no name.
    assert_eq!(yuv(0x33).sampling(), None);
    let gray = with(&[(1, 0x11)], None);
    assert_eq!(
        (gray.color_space(), gray.sampling()),
        (ColorSpace::Gray, Some(Sampling::Gray))
    );
    let rgb = with(&[(b'R', 0x11), (b'G', 0x11), (b'B', 0x11)], None);
    assert_eq!(
        (rgb.color_space(), rgb.sampling()),
        (ColorSpace::Rgb, Some(Sampling::Rgb))
    );
    let adobe = |t: u8| [b"Adobe".as_slice(), &[0, 100, 0, 0, 0, 0, t]].concat();
    let adobe_rgb = with(&[(1, 0x11), (2, 0x11), (3, 0x11)], Some((0xEE, adobe(0))));
    assert_eq!(adobe_rgb.color_space(), ColorSpace::Rgb);
    let ycck = with(
        &[(1, 0x11), (2, 0x11), (3, 0x11), (4, 0x11)],
        Some((0xEE, adobe(2))),
    );
    assert_eq!(
        (ycck.color_space(), ycck.sampling()),
        (ColorSpace::Ycck, None)
    );
    let cmyk = with(&[(1, 0x11), (2, 0x11), (3, 0x11), (4, 0x11)], None);
    assert_eq!(cmyk.color_space(), ColorSpace::Cmyk);
    // Chroma planes sampled differently from each other have no name.
    let odd = with(&[(1, 0x22), (2, 0x11), (3, 0x21)], None);
    assert_eq!(odd.sampling(), None);
}

#[test]
fn jfif_density_gives_pixel_aspect_ratio() {
    let mut jfif = b"JFIF\0\x01\x01\x00".to_vec();
    jfif.extend_from_slice(&[0, 2, 0, 1, 0, 0]);
    let img = JpegBuilder::yuv420(16, 16).replace(0xE0, &jfif).build();
    // Twice as many pixels per unit across as down: each pixel is half as wide as tall.
    assert_eq!(parse_header(&img).unwrap().pixel_aspect_ratio(), (1, 2));
}

#[test]
fn bad_frame_headers() {
    let sof_err = |payload: &[u8]| {
        let img = JpegBuilder::yuv420(16, 16).replace(0xC0, payload).build();
        parse_header(&img).unwrap_err()
    };
    assert!(matches!(
        sof_err(&sof(0, 16, &[(1, 0x11)])),
        JpegError::BadSof {
            reason: "width is 0",
            ..
        }
    ));
    assert!(matches!(
        sof_err(&sof(16, 0, &[(1, 0x11)])),
        JpegError::BadSof { .. }
    ));
    assert!(matches!(
        sof_err(&sof(16, 16, &[])),
        JpegError::BadSof { .. }
    ));
    assert!(matches!(
        sof_err(&sof(16, 16, &[(1, 0x51)])),
        JpegError::BadSof { .. }
    ));
    assert!(matches!(
        sof_err(&[8, 0, 16]),
        JpegError::BadSof {
            reason: "segment too short",
            ..
        }
    ));
    let mut short = sof(16, 16, &[(1, 0x11), (2, 0x11)]);
    short.pop();
    assert!(matches!(sof_err(&short), JpegError::BadSof { .. }));

    let mut no_sof = JpegBuilder::yuv420(16, 16);
    no_sof.segments.retain(|(m, _)| *m != 0xC0);
    assert_eq!(parse_header(&no_sof.build()), Err(JpegError::NoSof));

    let two_sof = JpegBuilder::yuv420(16, 16).segment(3, 0xC1, &sof(16, 16, &[(1, 0x11)]));
    assert!(matches!(
        parse_header(&two_sof.build()),
        Err(JpegError::UnexpectedMarker { .. })
    ));
    let bad_dri = JpegBuilder::yuv420(16, 16).segment(1, 0xDD, &[0]);
    assert!(matches!(
        parse_header(&bad_dri.build()),
        Err(JpegError::BadDri { .. })
    ));
}

#[test]
fn segments_stop_after_sos() {
    let img = JpegBuilder::yuv420(16, 16).build();
    let markers: Vec<u8> = segments(&img).map(|s| s.unwrap().marker).collect();
    assert_eq!(markers, [0xE0, 0xDB, 0xC0, 0xC4, 0xDA]);
    let sos = segments(&img).last().unwrap().unwrap();
    assert_eq!(&img[sos.end()..sos.end() + 2], &[0x12, 0x34]);
}

#[test]
fn sof_marker_classes() {
    let sofs: Vec<u8> = (0xC0..=0xCF).filter(|&m| markers::is_sof(m)).collect();
    assert_eq!(
        sofs,
        [
            0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF
        ]
    );
}

#[test]
fn framed_parse_trusts_the_final_eoi_only_for_one_clean_image() {
    let img = JpegBuilder::yuv420(64, 64).build();
    let searched = parse_image(&img).unwrap();
    let framed = parse_framed_image(&img).unwrap();
    assert_eq!(framed.scan_data, searched.scan_data);
    assert!(framed.single_scan);
    // Bytes after the image that end in EOI: the search still stops at the real end,
    // while a framed parse (which must not be used on such input) takes them as scan.
    let mut trailing = img.clone();
    trailing.extend_from_slice(&[0x12, 0xFF, 0xD9]);
    assert_eq!(
        parse_image(&trailing).unwrap().scan_data,
        searched.scan_data
    );
    assert_ne!(
        parse_framed_image(&trailing).unwrap().scan_data,
        searched.scan_data
    );
    // Without a final EOI, the framed parse falls back to the search.
    let mut padded = img.clone();
    padded.push(0);
    assert_eq!(
        parse_framed_image(&padded).unwrap().scan_data,
        searched.scan_data
    );
}
