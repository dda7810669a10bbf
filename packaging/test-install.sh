#!/usr/bin/env bash
# Checks `make install` into scratch roots (DESTDIR) as a deployer runs it:
# with sudo's PATH, where neither cargo nor rustup is found; with PREFIX=/usr;
# a second time over edited settings; `make uninstall`; and in a checkout
# where nothing was built. Run from the repository root after `make static`.
# Usage: packaging/test-install.sh [TARGET]
set -uo pipefail

target=${1:-x86_64-unknown-linux-musl}
name=trueconf-bot
bin=target/$target/release/$name
failures=0
fail() { echo "FAIL  install: $*"; failures=$((failures + 1)); }
pass() { echo "ok    install: $*"; }
[ -f "$bin" ] || { echo "FAIL  install: $bin is not built; run make static TARGET=$target first"; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# sudo's secure_path on Debian: no ~/.cargo/bin.
sudo_make() { env -i HOME="$scratch" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin make --no-print-directory "$@"; }

if make -n install TARGET="$target" DESTDIR="$scratch/n" | grep -Eq '(^|[ /])(cargo|rustup)( |$)'; then
    fail "make install would run cargo or rustup"
else
    pass "make install runs neither cargo nor rustup"
fi

# Checks an installed tree: $1 DESTDIR, $2 PREFIX.
check_tree() {
    local d=$1 prefix=$2
    cmp -s "$bin" "$d$prefix/bin/$name" && [ "$(stat -c %a "$d$prefix/bin/$name")" = 755 ] \
        && pass "PREFIX=$prefix: $prefix/bin/$name (0755) is the built binary" \
        || fail "PREFIX=$prefix: $prefix/bin/$name missing, different or not 0755"
    local unit=$d/etc/systemd/system/$name.service
    [ "$(stat -c %a "$unit" 2>/dev/null)" = 644 ] || fail "PREFIX=$prefix: unit missing or not 0644"
    grep -qx "ExecStart=$prefix/bin/$name --config \${CREDENTIALS_DIRECTORY}/settings.toml" "$unit" \
        && pass "PREFIX=$prefix: unit ExecStart=$prefix/bin/$name" \
        || fail "PREFIX=$prefix: unit says $(grep '^ExecStart' "$unit")"
    local doc
    doc=$(sed -n 's|^Documentation=file://||p' "$unit")
    [ "$doc" = "$prefix/share/doc/$name/README.md" ] && cmp -s README.md "$d$doc" \
        && pass "PREFIX=$prefix: unit Documentation=$doc is installed" \
        || fail "PREFIX=$prefix: unit Documentation '$doc' is not the installed README"
    diff <(grep -v '^ExecStart=\|^Documentation=' $name.service) <(grep -v '^ExecStart=\|^Documentation=' "$unit") > /dev/null \
        && pass "PREFIX=$prefix: the rest of the unit is unchanged" || fail "PREFIX=$prefix: the unit changed beyond ExecStart/Documentation"
    [ "$(stat -c %a "$d/etc/$name/settings.toml" 2>/dev/null)" = 600 ] \
        && pass "PREFIX=$prefix: /etc/$name/settings.toml is 0600" || fail "PREFIX=$prefix: settings.toml missing or not 0600"
}

d=$scratch/default
out=$(sudo_make install TARGET="$target" DESTDIR="$d" 2>&1)
if [ $? -eq 0 ]; then
    pass "sudo's PATH: make install succeeds"
    check_tree "$d" /usr/local
    cmp -s settings.example.toml "$d/etc/$name/settings.toml" || fail "settings.toml is not the example"
    grep -qF '${EDITOR:-vi} /etc/trueconf-bot/settings.toml' <<< "$out" \
        && pass "the hint names \${EDITOR:-vi}" || fail "hint: $out"
else
    fail "make install with sudo's PATH failed: $out"
fi

# Installing again keeps edited settings.
echo '# edited' >> "$d/etc/$name/settings.toml"
out=$(sudo_make install TARGET="$target" DESTDIR="$d" 2>&1)
tail -n1 "$d/etc/$name/settings.toml" | grep -qx '# edited' && grep -q 'Kept the existing' <<< "$out" \
    && pass "a second install keeps edited settings" || fail "a second install replaced the settings: $out"

sudo_make uninstall TARGET="$target" DESTDIR="$d" > /dev/null 2>&1
[ ! -e "$d/usr/local/bin/$name" ] && [ ! -e "$d/etc/systemd/system/$name.service" ] \
    && [ ! -e "$d/usr/local/share/doc/$name" ] && [ -f "$d/etc/$name/settings.toml" ] \
    && pass "make uninstall removes binary, unit and docs, keeps the settings" \
    || fail "make uninstall left: $(cd "$d" && find . -type f | tr '\n' ' ')"

d=$scratch/usr
if sudo_make install TARGET="$target" PREFIX=/usr DESTDIR="$d" > /dev/null 2>&1; then
    check_tree "$d" /usr
else
    fail "make install PREFIX=/usr failed"
fi

# A checkout where nothing was built: a clear refusal, exit 2, nothing written.
fresh=$scratch/fresh
mkdir -p "$fresh"
cp Makefile Cargo.toml README.md settings.example.toml $name.service "$fresh/"
out=$(cd "$fresh" && sudo_make install DESTDIR="$scratch/none" 2>&1)
status=$?
if [ $status -eq 2 ] && grep -q 'Nothing to install' <<< "$out" && grep -q 'make static' <<< "$out" \
    && [ ! -e "$scratch/none" ]; then
    pass "nothing built: exit 2, says to run make static first, installs nothing"
else
    fail "nothing built: exit $status, said: $out"
fi

if [ "$failures" -eq 0 ]; then
    echo "install-test: every check passed"
else
    echo "install-test: $failures check(s) FAILED"
    exit 1
fi
