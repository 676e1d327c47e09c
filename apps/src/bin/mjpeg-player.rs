//! mjpeg-player: plays Motion-JPEG RTSP streams (not in this build yet).

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "usage: mjpeg-player rtsp://HOST:PORT/CLIP\n\
         \n\
         mjpeg-player is not available in this build. To play a clip now, see\n\
         pipelines/play-file.sh and pipelines/udp-receive.sh."
    );
    ExitCode::from(mjpeg_rtsp::NOT_AVAILABLE)
}
