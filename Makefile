# trueconf-bot — make targets. `make run` and `make test` do all setup on a
# fresh Debian machine that has the Rust toolchain, make and a C compiler.
# The static, release and package targets install what they need themselves
# (Debian packages through apt-get, as root or through sudo; rustup targets).

BIN       := trueconf-bot
VERSION   := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
TARGETS   := x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
TARGET    ?= x86_64-unknown-linux-musl
STATIC     = target/$(TARGET)/release/$(BIN)
CONFIG    ?= settings.toml
PREFIX    ?= /usr/local
DESTDIR   ?=
# The Debian architectures packaged by `make deb`, and the binary each gets.
DEB_ARCHES := amd64 arm64
TRIPLE_amd64 := x86_64-unknown-linux-musl
TRIPLE_arm64 := aarch64-unknown-linux-musl
# Timestamps inside archives and packages: the last commit's, so that a
# rebuild of the same commit gives the same bytes. Given only to the packaging
# steps: cargo rebuilds ring's C when it changes.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

ifeq ($(filter $(TARGET),$(TARGETS)),)
$(error TARGET=$(TARGET) is none of: $(TARGETS))
endif

.PHONY: all build run test soak lint static static-setup smoke smoke-setup bench footprint \
        install uninstall install-test openwrt-test dist dist-test archive deb deb-test sums clean

all: build

build:
	cargo build --locked --release

# Builds and starts the bot with ./settings.toml (or CONFIG=path).
run: build
	@if [ ! -f "$(CONFIG)" ]; then \
	  echo "No $(CONFIG) here. Create it from the example and fill in your bot token,"; \
	  echo "your Telegram user id and your servers:"; \
	  echo "    cp settings.example.toml $(CONFIG) && chmod 600 $(CONFIG) && \$${EDITOR:-vi} $(CONFIG)"; \
	  echo "then run 'make run' again (or: make run CONFIG=/path/to/settings.toml)."; \
	  exit 2; \
	fi
	./target/release/$(BIN) --config "$(CONFIG)"

# Every test: unit tests and the end-to-end suite against the fake servers.
# Four tests at a time on any machine: the end-to-end tests spend most of
# their time waiting on loopback sockets (on 2 cores the suite uses under half
# of the CPU at 4), and every test that measures a process (threads, memory,
# descriptors) measures a bot of its own in a child process.
test:
	cargo test --locked --all-targets -- --test-threads=4

# The compressed-time soak of `make test` (probes every 10 ms, scans every
# 100 ms, presses, Telegram faults), run for 10 minutes instead of 15 s.
soak:
	TRUECONF_BOT_SOAK_SECONDS=600 cargo test --locked --test e2e durability::weeks -- --nocapture

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

# --- Installing what a step needs -------------------------------------------

AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo)
# Installs those of the Debian packages $(1) that are missing (one apt-get
# update first, only when something is missing).
apt_need = missing=; \
  for p in $(1); do \
    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$p"; \
  done; \
  if [ -n "$$missing" ]; then \
    echo "installing Debian packages:$$missing"; \
    $(AS_ROOT) apt-get update -qq && \
    $(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
  fi
# Adds a rustup target to the stable toolchain unless it is there.
rustup_target = rustup target list --installed | grep -qx $(1) || rustup target add $(1)

# --- Static binaries ----------------------------------------------------------
# What each target needs, and how it is built. ring (under rustls) compiles C
# and assembly: musl-gcc does it for x86_64, clang with llvm-ar for ARM, and
# the link uses rust-lld, so no gcc cross toolchain is needed.

PKGS_x86_64-unknown-linux-musl := musl-tools file
SETUP_x86_64-unknown-linux-musl = $(call rustup_target,x86_64-unknown-linux-musl)
BUILD_x86_64-unknown-linux-musl = cargo build --locked --release --target x86_64-unknown-linux-musl
FILE_x86_64-unknown-linux-musl := x86-64

PKGS_aarch64-unknown-linux-musl := clang lld llvm file
SETUP_aarch64-unknown-linux-musl = $(call rustup_target,aarch64-unknown-linux-musl)
BUILD_aarch64-unknown-linux-musl = \
  CC_aarch64_unknown_linux_musl=clang AR_aarch64_unknown_linux_musl=llvm-ar \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
  cargo build --locked --release --target aarch64-unknown-linux-musl
FILE_aarch64-unknown-linux-musl := ARM aarch64

# armv7: rustup has no prebuilt std for it here (404), so std is built from
# rust-src with nightly's -Z build-std, against Debian's musl for armhf and
# the pieces packaging/armv7-sysroot.sh makes. Only this target uses nightly.
# build-std-features=llvm-libunwind drops std's backtrace symbolizer (164 kB);
# with panic = "abort" and the bot's own panic hook nothing is lost.
ARMV7_SYSROOT := $(CURDIR)/target/armv7-sysroot
ARMV7_INCLUDE := -isystem $(ARMV7_SYSROOT)/sysroot/usr/include/arm-linux-musleabihf
PKGS_armv7-unknown-linux-musleabihf := clang lld llvm file
SETUP_armv7-unknown-linux-musleabihf = \
  { rustup toolchain list | grep -q '^nightly' || \
    rustup toolchain install nightly --profile minimal; } && \
  { rustup component list --toolchain nightly --installed | grep -q '^rust-src' || \
    rustup component add rust-src --toolchain nightly; } && \
  packaging/armv7-sysroot.sh $(ARMV7_SYSROOT)
BUILD_armv7-unknown-linux-musleabihf = \
  CC_armv7_unknown_linux_musleabihf=clang CXX_armv7_unknown_linux_musleabihf=clang++ \
  AR_armv7_unknown_linux_musleabihf=llvm-ar \
  CFLAGS_armv7_unknown_linux_musleabihf="$(ARMV7_INCLUDE)" \
  CXXFLAGS_armv7_unknown_linux_musleabihf="$(ARMV7_INCLUDE)" \
  CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER=rust-lld \
  CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS="-L native=$(ARMV7_SYSROOT)/sysroot/usr/lib/arm-linux-musleabihf -L native=$(ARMV7_SYSROOT)/lib" \
  cargo +nightly build --locked --release --target armv7-unknown-linux-musleabihf \
    -Z build-std=std,panic_abort -Z build-std-features=llvm-libunwind
FILE_armv7-unknown-linux-musleabihf := ARM, EABI5

# Installs what the static build of TARGET needs.
static-setup:
	@$(call apt_need,$(PKGS_$(TARGET)))
	@$(SETUP_$(TARGET))

# The static, stripped binary of TARGET (default x86_64) for routers and
# small VMs; fails unless it is static, stripped, for the right machine and
# at most 3 MB.
static: static-setup
	$(BUILD_$(TARGET))
	@f=$(STATIC); kind=$$(file -b $$f); size=$$(stat -c %s $$f); \
	echo "$$f: $$size bytes, $$kind"; \
	case "$$kind" in *"$(FILE_$(TARGET))"*) ;; *) echo "$$f: not a $(FILE_$(TARGET)) binary" >&2; exit 1;; esac; \
	case "$$kind" in *"statically linked"*|*"static-pie linked"*) ;; *) echo "$$f: not statically linked" >&2; exit 1;; esac; \
	case "$$kind" in *", stripped"*) ;; *) echo "$$f: not stripped" >&2; exit 1;; esac; \
	if [ $$size -gt 3000000 ]; then echo "$$f: $$size bytes, more than 3 MB" >&2; exit 1; fi

# --- Running the binaries -------------------------------------------------------
# qemu-user-static runs the ARM binaries on this machine; x86_64 runs natively.
RUNNER_x86_64-unknown-linux-musl :=
RUNNER_aarch64-unknown-linux-musl := qemu-aarch64-static
RUNNER_armv7-unknown-linux-musleabihf := qemu-arm-static
RUNNER = $(RUNNER_$(TARGET))

smoke-setup:
	@$(if $(RUNNER),$(call apt_need,qemu-user-static),true)

# --version, `check` against an unreachable server, and /start → menu →
# status → DOWN alert against the fakes, with the binary of TARGET (under
# qemu for ARM) and the fakes native (examples/smoke.rs).
smoke: static smoke-setup
	cargo run --locked --example smoke -- $(STATIC) $(RUNNER)

bench: static
	cargo run --locked --release --example bench -- $(STATIC)

# Resident memory and threads with 2 and 20 monitored servers (README).
footprint: static
	cargo run --locked --example smoke -- $(STATIC) --footprint

# --- Installing -----------------------------------------------------------------
# Installs what `make static` built, nothing else: it never runs cargo or
# rustup, so `sudo make install` works with sudo's PATH and does not build as
# root in your target/. PREFIX (default /usr/local) also goes into the unit.

unit_for = sed -e 's|^ExecStart=/usr/local/|ExecStart=$(1)/|' \
               -e 's|^Documentation=file:///usr/local/|Documentation=file://$(1)/|' trueconf-bot.service

install:
	@if [ ! -f "$(STATIC)" ]; then \
	  echo "Nothing to install: $(STATIC) has not been built."; \
	  echo "Build it first, as yourself (not with sudo):"; \
	  echo "    make static$(if $(filter-out x86_64-unknown-linux-musl,$(TARGET)), TARGET=$(TARGET))"; \
	  echo "then run 'sudo make install' again."; \
	  exit 2; \
	fi
	install -Dm755 $(STATIC) $(DESTDIR)$(PREFIX)/bin/$(BIN)
	install -Dm644 README.md $(DESTDIR)$(PREFIX)/share/doc/$(BIN)/README.md
	install -d $(DESTDIR)/etc/systemd/system
	$(call unit_for,$(PREFIX)) > $(DESTDIR)/etc/systemd/system/$(BIN).service
	chmod 644 $(DESTDIR)/etc/systemd/system/$(BIN).service
	@if [ -f $(DESTDIR)/etc/trueconf-bot/settings.toml ]; then \
	  echo "Kept the existing /etc/trueconf-bot/settings.toml."; \
	  echo "Next: systemctl daemon-reload && systemctl restart $(BIN)"; \
	else \
	  install -Dm600 settings.example.toml $(DESTDIR)/etc/trueconf-bot/settings.toml; \
	  echo "Now edit the settings (bot token, your Telegram id, your servers):"; \
	  echo "    sudo \$${EDITOR:-vi} /etc/trueconf-bot/settings.toml"; \
	  echo "check them, then start the bot:"; \
	  echo "    sudo $(PREFIX)/bin/$(BIN) check --config /etc/trueconf-bot/settings.toml"; \
	  echo "    sudo systemctl daemon-reload && sudo systemctl enable --now $(BIN)"; \
	fi

# Removes what `make install` put in place, except the settings.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/$(BIN) $(DESTDIR)/etc/systemd/system/$(BIN).service
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/$(BIN)
	@echo "Kept /etc/trueconf-bot/ (your settings)."

# Checks `make install` into scratch roots: with sudo's PATH (no cargo),
# PREFIX=/usr, and the refusal when nothing is built.
install-test:
	packaging/test-install.sh $(TARGET)

# Checks the OpenWrt init script's procd service with stubbed procd helpers.
openwrt-test:
	packaging/openwrt/test.sh

# --- Release archives and Debian packages ----------------------------------------

ARCHIVE = $(BIN)-$(VERSION)-$(TARGET)
TAR := tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$(SOURCE_DATE_EPOCH)

# dist/trueconf-bot-VERSION-TRIPLE.tar.gz for every target, and SHA256SUMS.
dist:
	@for t in $(TARGETS); do $(MAKE) --no-print-directory static archive TARGET=$$t || exit 1; done
	@$(MAKE) --no-print-directory sums

# Checks every archive as a deployer meets it: SHA256SUMS, the listing, and
# the unpacked binary through `make smoke`'s steps (under qemu for ARM).
dist-test:
	@$(call apt_need,qemu-user-static)
	cargo build --locked --example smoke
	packaging/test-dist.sh $(VERSION) $(foreach t,$(TARGETS),$(t):$(or $(RUNNER_$(t)),native))

# The archive of TARGET from the binary already built.
archive:
	@test -f $(STATIC) || { echo "$(STATIC) has not been built: make static TARGET=$(TARGET)" >&2; exit 2; }
	rm -rf dist/$(ARCHIVE) && mkdir -p dist/$(ARCHIVE)
	install -m755 $(STATIC) dist/$(ARCHIVE)/$(BIN)
	install -m644 trueconf-bot.service settings.example.toml README.md LICENSE dist/$(ARCHIVE)/
	install -m755 packaging/openwrt/trueconf-bot.init dist/$(ARCHIVE)/trueconf-bot.init
	$(TAR) -C dist -cf - $(ARCHIVE) | gzip -9n > dist/$(ARCHIVE).tar.gz
	rm -rf dist/$(ARCHIVE)
	@ls -l dist/$(ARCHIVE).tar.gz

# dist/trueconf-bot_VERSION_ARCH.deb for amd64 and arm64, with plain dpkg-deb.
deb:
	@$(foreach a,$(DEB_ARCHES),$(MAKE) --no-print-directory static TARGET=$(TRIPLE_$(a)) && ) true
	@$(foreach a,$(DEB_ARCHES),SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) packaging/deb/build.sh $(a) target/$(TRIPLE_$(a))/release/$(BIN) $(VERSION) dist && ) true
	@$(MAKE) --no-print-directory sums

# Unpacks each package into a scratch root and checks the tree, the modes and
# the maintainer scripts; runs lintian when it can be installed.
deb-test: deb
	@$(call apt_need,lintian) || echo "!!! lintian cannot be installed: the lintian run is SKIPPED"
	packaging/deb/test.sh $(foreach a,$(DEB_ARCHES),dist/$(BIN)_$(VERSION)_$(a).deb)

sums:
	cd dist && ls $(BIN)-*.tar.gz $(BIN)_*.deb 2>/dev/null | xargs -r sha256sum > SHA256SUMS
	@cat dist/SHA256SUMS

clean:
	cargo clean
	rm -rf dist
