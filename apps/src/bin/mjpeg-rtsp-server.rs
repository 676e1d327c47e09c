//! mjpeg-rtsp-server: serves Motion-JPEG clips over RTSP (not in this build yet).

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "usage: mjpeg-rtsp-server [--port 8554] [--bind ADDR] [--fps N] [--mtu N] [PATH ...]\n\
         \n\
         mjpeg-rtsp-server is not available in this build. To stream a clip now, see\n\
         pipelines/udp-send.sh."
    );
    ExitCode::from(mjpeg_rtsp::NOT_AVAILABLE)
}
