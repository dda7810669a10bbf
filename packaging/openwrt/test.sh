#!/bin/sh
# Checks packaging/openwrt/trueconf-bot.init without a router: the script's
# start_service runs in a shell where procd's helpers are stubs that record
# what they are given, with its /usr/bin and /etc paths moved to a scratch root.
# Usage: packaging/openwrt/test.sh  (from the repository root)
set -u
init=packaging/openwrt/trueconf-bot.init
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failures=0
fail() { echo "FAIL  openwrt: $*"; failures=$((failures + 1)); }
pass() { echo "ok    openwrt: $*"; }

head -n1 "$init" | grep -qx '#!/bin/sh /etc/rc.common' || fail "not an rc.common script"
grep -qx 'USE_PROCD=1' "$init" && grep -q '^START=[0-9][0-9]*$' "$init" \
    && pass "rc.common script with USE_PROCD=1 and START" || fail "USE_PROCD or START missing"

# Runs start_service; prints what procd was told, then "rc N".
start() {
    sed -e "s|/usr/bin/trueconf-bot|$scratch/usr/bin/trueconf-bot|" \
        -e "s|^DIR=/etc/trueconf-bot|DIR=$scratch/etc/trueconf-bot|" "$init" > "$scratch/init"
    sh -c '
        procd_open_instance() { echo "open"; }
        procd_set_param() { echo "$*"; }
        procd_close_instance() { echo "close"; }
        . "$1"
        start_service
        echo "rc $?"' sh "$scratch/init" 2>&1
}

said=$(start)
case "$said" in
    *"is missing or not executable"*"rc 1") pass "no binary: refuses to start, says so" ;;
    *) fail "no binary: $said" ;;
esac
mkdir -p "$scratch/usr/bin" "$scratch/etc/trueconf-bot"
printf '#!/bin/sh\n' > "$scratch/usr/bin/trueconf-bot"
chmod 755 "$scratch/usr/bin/trueconf-bot"
said=$(start)
case "$said" in
    *"no $scratch/etc/trueconf-bot/settings.toml"*"rc 1") pass "no settings: refuses to start, says so" ;;
    *) fail "no settings: $said" ;;
esac
cp settings.example.toml "$scratch/etc/trueconf-bot/settings.toml"
said=$(start)
expected="open
command $scratch/usr/bin/trueconf-bot --config $scratch/etc/trueconf-bot/settings.toml
env STATE_DIRECTORY=$scratch/etc/trueconf-bot RUST_LOG=info
respawn 3600 10 5
stdout 1
stderr 1
file $scratch/etc/trueconf-bot/settings.toml
close
rc 0"
if [ "$said" = "$expected" ]; then
    pass "start_service: command, state dir, respawn, logs to logread, restart on settings change"
else
    fail "start_service told procd:
$said
expected:
$expected"
fi

if [ "$failures" -eq 0 ]; then
    echo "openwrt-test: every check passed"
else
    echo "openwrt-test: $failures check(s) FAILED"
    exit 1
fi
