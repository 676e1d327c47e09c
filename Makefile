# mjpeg-rtsp: every target first installs what is missing (scripts/bootstrap.sh).
#
#   make demo     serve the bundled sample clip with mjpeg-rtsp-server and play it with mjpeg-player
#   make test     formatting, lints, unit/element/end-to-end tests, a short fuzz run (CI)
#   make bench    benchmarks against GStreamer's own elements (see BENCHMARKS.md)
#   make install  build the plugin with meson and install it into GStreamer's plugin dir
#   make fuzz     fuzz the parsers for FUZZ_SECONDS (default 60) each (see fuzz/README.md)

CARGO ?= cargo
MESON_BUILD ?= build

.PHONY: all bootstrap build demo test bench install fuzz sample clean

all: build

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	$(CARGO) build --workspace --locked

demo: build
	scripts/demo.sh media/sample.Mjpeg

test: bootstrap
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) build --workspace --locked
	$(CARGO) test --workspace --locked
	FUZZ_SECONDS=10 FUZZ_QUIET=1 fuzz/run.sh

bench: bootstrap
	$(CARGO) bench --locked -p mjpeg-rtsp-tests

install: bootstrap
	if [ -d $(MESON_BUILD) ]; then meson setup --reconfigure $(MESON_BUILD); else meson setup $(MESON_BUILD); fi
	meson compile -C $(MESON_BUILD)
	meson install -C $(MESON_BUILD)

fuzz: bootstrap
	fuzz/run.sh

# Regenerates media/sample.Mjpeg (needs only GStreamer's tools).
sample: bootstrap
	media/make-sample.sh media/sample.Mjpeg

clean:
	$(CARGO) clean
	rm -rf $(MESON_BUILD)
