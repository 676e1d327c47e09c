# Sourced by the example scripts: finds the plugin and picks a video sink.
#
# The plugin: a GST_PLUGIN_PATH that already holds it is used as it is; otherwise a build
# in this checkout (target/release or target/debug, newest first) is put on
# GST_PLUGIN_PATH; otherwise an installed one (`make install`) is used.
#
# The sink: autovideosink when there is a display. Without one, autovideosink falls
# through to a sink that crashes, so the examples decode into fakesink instead and print
# how many frames they got.

root=$(cd "$(dirname "$0")/.." && pwd)
sample="$root/media/sample.Mjpeg"

plugin_on_path() {
    (
        IFS=:
        for dir in ${GST_PLUGIN_PATH:-}; do
            [ -e "$dir/libgstmjpegrtp.so" ] && exit 0
        done
        exit 1
    )
}

if ! plugin_on_path; then
    for lib in $(ls -t "$root"/target/release/libgstmjpegrtp.so \
        "$root"/target/debug/libgstmjpegrtp.so 2>/dev/null); do
        export GST_PLUGIN_PATH="$(dirname "$lib")${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
        break
    done
fi

if ! gst-inspect-1.0 mjpegrtp >/dev/null 2>&1; then
    echo "$(basename "$0"): the mjpegrtp plugin is not built or installed: run 'make' or 'make install'" >&2
    exit 1
fi

have_display() {
    [ -n "${WAYLAND_DISPLAY:-}" ] && return 0
    [ -n "${DISPLAY:-}" ] || return 1
    case "$DISPLAY" in
        :*) n=${DISPLAY#:}; n=${n%%.*}; [ -S "/tmp/.X11-unix/X$n" ] ;;
        *) return 0 ;; # a remote display (ssh forwarding): trust it
    esac
}

# The video sink for the examples' pipelines.
if have_display; then
    SINK=autovideosink
else
    SINK="fakesink silent=false"
fi

# run_video PIPELINE...: runs a pipeline that ends in $SINK. Without a display, prints how
# many frames reached the fakesink.
run_video() {
    if have_display; then
        gst-launch-1.0 "$@"
    else
        echo "$(basename "$0"): no display, decoding into fakesink" >&2
        out=$(gst-launch-1.0 -v "$@" 2>&1) || { echo "$out" | grep -v 'last-message' >&2; return 1; }
        frames=$(echo "$out" | grep -c 'last-message = chain')
        echo "decoded $frames frames"
    fi
}

# start_server CLIP: starts this checkout's mjpeg-rtsp-server on CLIP (127.0.0.1, any
# free port), stopped when the script exits, and sets $url to the clip's URL.
start_server() {
    server="$root/target/debug/mjpeg-rtsp-server"
    [ -x "$server" ] || { echo "$(basename "$0"): $server is not built: run 'make'" >&2; exit 1; }
    urls=$(mktemp)
    "$server" --bind 127.0.0.1 --port 0 --http-port 0 "$1" >"$urls" &
    server_pid=$!
    trap 'kill "$server_pid" 2>/dev/null; rm -f "$urls"' EXIT INT TERM
    for _ in $(seq 100); do
        [ -s "$urls" ] && break
        kill -0 "$server_pid" 2>/dev/null || { echo "$(basename "$0"): the server did not start" >&2; exit 1; }
        sleep 0.1
    done
    url=$(head -n 1 "$urls")
    # The status page's URL follows the clip's (printed together).
    sleep 0.1
    page=$(grep -m 1 '^http://' "$urls" || true)
    echo "$(basename "$0"): playing $url" >&2
    [ -z "$page" ] || echo "$(basename "$0"): status page $page, MJPEG for browsers at ${page}$(basename "$1")/stream.mjpg" >&2
}
