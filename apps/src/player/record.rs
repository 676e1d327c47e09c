//! `--record FILE.Mjpeg`: every frame the depayloader completes, written in the lab's
//! `.Mjpeg` format (playable again by `mjpeg-rtsp-server` and `mjpegfilesrc`) by a
//! writer thread, so the streaming thread never waits on the disk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use gstmjpegrtp::mjpeg::lab;

use super::pipeline::Player;
use crate::log_limit::{self, LogLimit};

pub struct Recorder {
    /// Shared with the pad probe; emptied at the end so the writer sees the last frame.
    tx: Arc<Mutex<Option<mpsc::Sender<Vec<u8>>>>>,
    writer: JoinHandle<Result<u64>>,
}

impl Recorder {
    pub fn start(path: &Path, player: &Player) -> Result<Recorder> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let path: PathBuf = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("record".into())
            .spawn(move || {
                let mut out = BufWriter::new(file);
                let mut written = 0u64;
                let mut frame = Vec::new();
                // A stream of frames the format cannot hold would say so for each.
                let mut limit = LogLimit::default();
                let summary = log_limit::suppressed;
                for jpeg in rx {
                    frame.clear();
                    match lab::write_frame(&mut frame, &jpeg) {
                        Ok(()) => {
                            out.write_all(&frame)
                                .with_context(|| format!("writing {}", path.display()))?;
                            written += 1;
                        }
                        Err(e) => {
                            let line = format!("not recorded: {e}");
                            for line in limit.filter(Instant::now(), [line], summary) {
                                tracing::warn!("{line}");
                            }
                        }
                    }
                }
                if let Some(n) = limit.take() {
                    tracing::warn!("{}", summary(n));
                }
                out.flush()
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(written)
            })?;
        let tx = Arc::new(Mutex::new(Some(tx)));
        let sender = tx.clone();
        player.on_frame_out(move |jpeg| {
            if let Ok(tx) = sender.lock()
                && let Some(tx) = tx.as_ref()
            {
                let _ = tx.send(jpeg.to_vec());
            }
        })?;
        Ok(Recorder { tx, writer })
    }

    /// Waits for the writer: the number of frames written.
    pub fn finish(self) -> Result<u64> {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        self.writer
            .join()
            .map_err(|_| anyhow!("the recording thread failed"))?
    }
}
