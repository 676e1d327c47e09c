#!/bin/sh
# Fuzzes each target for FUZZ_SECONDS (default 60) seconds, starting from the seed inputs
# in seeds/<target>/. What the fuzzer learns goes to corpus/<target>/ and crashing inputs
# to artifacts/<target>/ (both git-ignored). Run by `make fuzz`.
#
# Needs cargo-fuzz (installed here if missing). cargo-fuzz uses nightly-only compiler
# flags (sanitizers); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
#
#   FUZZ_SECONDS=300 fuzz/run.sh              # longer runs
#   FUZZ_TARGETS=mjpeg_index fuzz/run.sh      # one target
#   FUZZ_QUIET=1 fuzz/run.sh                  # a summary line per target (as make test)
set -eu
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"jpeg_parse mjpeg_index rtp_depay rtp_roundtrip rtcp_session rtsp_request rtsp_reply multipart_reader rtsp_announce server_authorization"}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

failed=""
for target in $targets; do
    if [ -d "regressions/$target" ]; then
        echo "fuzz: replaying regressions/$target"
        cargo fuzz run "$target" "regressions/$target"/* -- -runs=0 || failed="$failed $target"
    fi
    mkdir -p "corpus/$target" target
    echo "fuzz: running $target for ${seconds}s"
    log="target/$target.log"
    if [ -n "${FUZZ_QUIET:-}" ]; then
        if cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
            -max_total_time="$seconds" -print_final_stats=1 > "$log" 2>&1; then
            runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
            cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
            echo "fuzz: $target: $runs runs, $cov, no failure"
        else
            tail -n 40 "$log"
            failed="$failed $target"
        fi
    elif ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1; then
        failed="$failed $target"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed (crashing inputs are in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: no failures"
