# trueconf-bot — make targets. `make run` and `make test` do all setup on a
# fresh Debian machine that has the Rust toolchain.

BIN       := trueconf-bot
VERSION   := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
MUSL      := x86_64-unknown-linux-musl
STATIC    := target/$(MUSL)/release/$(BIN)
CONFIG    ?= settings.toml
PREFIX    ?= /usr/local
DESTDIR   ?=

.PHONY: all build run test soak lint static static-setup bench install dist clean

all: build

build:
	cargo build --locked --release

# Builds and starts the bot with ./settings.toml (or CONFIG=path).
run: build
	@if [ ! -f "$(CONFIG)" ]; then \
	  echo "No $(CONFIG) here. Create it from the example and fill in your bot token,"; \
	  echo "your Telegram user id and your servers:"; \
	  echo "    cp settings.example.toml $(CONFIG) && chmod 600 $(CONFIG) && \$${EDITOR:-nano} $(CONFIG)"; \
	  echo "then run 'make run' again (or: make run CONFIG=/path/to/settings.toml)."; \
	  exit 2; \
	fi
	./target/release/$(BIN) --config "$(CONFIG)"

# Every test: unit tests and the end-to-end suite against the fake servers.
test:
	cargo test --locked --all-targets

# The compressed-time soak of `make test` (probes every 10 ms, scans every
# 100 ms, presses, Telegram faults), run for 10 minutes instead of 15 s.
soak:
	TRUECONF_BOT_SOAK_SECONDS=600 cargo test --locked --test e2e durability::weeks -- --nocapture

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

# Installs what the static build needs (musl-tools, the rustup target).
static-setup:
	@command -v musl-gcc >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq musl-tools; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq musl-tools; fi; }
	@rustup target list --installed | grep -qx $(MUSL) || rustup target add $(MUSL)

# The static, stripped x86_64 binary for routers and small VMs.
static: static-setup
	cargo build --locked --release --target $(MUSL)
	@ls -l $(STATIC)

bench: static
	cargo run --locked --release --example bench -- $(STATIC)

install: static
	install -Dm755 $(STATIC) $(DESTDIR)$(PREFIX)/bin/$(BIN)
	install -Dm644 trueconf-bot.service $(DESTDIR)/etc/systemd/system/trueconf-bot.service
	@if [ ! -f $(DESTDIR)/etc/trueconf-bot/settings.toml ]; then \
	  install -Dm600 settings.example.toml $(DESTDIR)/etc/trueconf-bot/settings.toml; \
	  echo "Now edit /etc/trueconf-bot/settings.toml, then: systemctl enable --now trueconf-bot"; \
	fi

dist: static
	mkdir -p dist/$(BIN)-$(VERSION)
	cp $(STATIC) trueconf-bot.service settings.example.toml README.md dist/$(BIN)-$(VERSION)/
	tar -C dist -czf dist/$(BIN)-$(VERSION)-$(MUSL).tar.gz $(BIN)-$(VERSION)

clean:
	cargo clean
	rm -rf dist
