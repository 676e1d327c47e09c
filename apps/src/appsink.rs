//! Small pieces of GStreamer plumbing the server and the player share.

/// Hands every buffer `sink` receives to `take`, as bytes, in the streaming thread.
pub fn on_bytes(sink: &gst_app::AppSink, take: impl Fn(&[u8]) + Send + 'static) {
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer()
                    && let Ok(map) = buffer.map_readable()
                {
                    take(map.as_slice());
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Pushes a copy of `bytes` into `src` (a full or stopped source drops it).
pub fn push_copy(src: &gst_app::AppSrc, bytes: &[u8]) {
    let _ = src.push_buffer(gst::Buffer::from_slice(bytes.to_vec()));
}
