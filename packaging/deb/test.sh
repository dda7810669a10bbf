#!/usr/bin/env bash
# Checks built packages the way a deployer meets them: each .deb is unpacked
# into a scratch root (dpkg-deb -x and -e) and its tree, modes, owners,
# control data, unit, binary and maintainer scripts are checked; lintian runs
# when it is installed (warnings fail, overrides are in the package).
# Usage: packaging/deb/test.sh dist/trueconf-bot_VERSION_ARCH.deb...
# Exit code 0 when every check of every package passed.
set -uo pipefail

name=trueconf-bot
failures=0
fail() { echo "FAIL  $deb: $*"; failures=$((failures + 1)); }
pass() { echo "ok    $deb: $*"; }

# Runs a maintainer script with its system paths moved into $fake and with
# systemctl and deb-systemd-invoke replaced by stubs that log their
# arguments; prints the log. The real system is never touched.
run_script() {
    local script=$1; shift
    local copy=$fake/$(basename "$script")
    sed -e "s|/run/systemd/system|$fake/run/systemd/system|g" \
        -e "s| /var/lib/| $fake/var/lib/|g" \
        -e "s| /etc/systemd/| $fake/etc/systemd/|g" "$script" > "$copy"
    : > "$fake/calls"
    PATH="$fake/bin:$PATH" sh "$copy" "$@" > "$fake/out" 2>&1 || echo "exit status $?" >> "$fake/calls"
    cat "$fake/calls"
}

for deb in "$@"; do
    [ -f "$deb" ] || { echo "FAIL  $deb: no such file"; failures=$((failures + 1)); continue; }
    base=$(basename "$deb" .deb)
    IFS=_ read -r pkg version arch <<< "$base"
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    root=$scratch/root control=$scratch/control fake=$scratch/fake
    mkdir -p "$root" "$control" "$fake/bin" "$fake/run/systemd/system"
    dpkg-deb -x "$deb" "$root" && dpkg-deb -e "$deb" "$control" || { fail "cannot unpack"; continue; }

    # The file name and the control data agree.
    field() { sed -n "s/^$1: //p" "$control/control"; }
    [ "$pkg" = "$name" ] && [ "$(field Package)" = "$name" ] || fail "package name: $pkg / $(field Package)"
    [ "$(field Version)" = "$version" ] || fail "Version $(field Version), file name says $version"
    [ "$(field Architecture)" = "$arch" ] || fail "Architecture $(field Architecture), file name says $arch"
    for f in Maintainer Description Section Priority; do
        [ -n "$(field $f)" ] || fail "control has no $f"
    done
    [[ "$(field Installed-Size)" =~ ^[0-9]+$ ]] || fail "Installed-Size: '$(field Installed-Size)'"
    [ -z "$(field Depends)" ] || fail "a static binary needs no Depends: $(field Depends)"
    pass "control: $name $version $arch, Installed-Size $(field Installed-Size) KiB"

    # Exactly these files, with these modes, all owned by root.
    expected="-rwxr-xr-x ./usr/bin/$name
-rw-r--r-- ./lib/systemd/system/$name.service
-rw------- ./etc/$name/settings.toml
-rw-r--r-- ./usr/share/doc/$name/README.md
-rw-r--r-- ./usr/share/doc/$name/changelog.gz
-rw-r--r-- ./usr/share/doc/$name/copyright
-rw-r--r-- ./usr/share/man/man1/$name.1.gz
-rw-r--r-- ./usr/share/lintian/overrides/$name"
    listing=$(dpkg-deb -c "$deb")
    actual=$(awk '$1 !~ /^d/ {print $1, $6}' <<< "$listing" | sort)
    if [ "$actual" = "$(sort <<< "$expected")" ]; then
        pass "tree: $(wc -l <<< "$expected") files with the expected modes"
    else
        fail "tree differs (< expected, > found):"$'\n'"$(diff <(sort <<< "$expected") <(echo "$actual") | grep '^[<>]' | sed 's/^/    /')"
    fi
    owners=$(awk '{print $2}' <<< "$listing" | sort -u)
    [ "$owners" = "root/root" ] && pass "owners: root/root" || fail "owners: $owners"
    dirs=$(awk '$1 ~ /^d/ && $1 != "drwxr-xr-x" {print $1, $6}' <<< "$listing")
    [ -z "$dirs" ] && pass "directories: 0755" || fail "directories with other modes: $dirs"

    # Control files.
    for s in postinst prerm postrm; do
        [ "$(stat -c %a "$control/$s" 2>/dev/null)" = 755 ] || fail "DEBIAN/$s missing or not 0755"
        sh -n "$control/$s" || fail "DEBIAN/$s: syntax error"
    done
    [ "$(cat "$control/conffiles")" = "/etc/$name/settings.toml" ] \
        && pass "conffiles: /etc/$name/settings.toml" || fail "conffiles: $(cat "$control/conffiles")"
    (cd "$root" && md5sum --quiet -c "$control/md5sums") && pass "md5sums match" || fail "md5sums do not match"

    # The settings are the annotated example.
    if [ -f settings.example.toml ]; then
        cmp -s settings.example.toml "$root/etc/$name/settings.toml" \
            && pass "settings.toml is settings.example.toml" || fail "settings.toml differs from the example"
    fi

    # The unit runs the packaged binary and points at installed docs.
    unit=$root/lib/systemd/system/$name.service
    grep -qx "ExecStart=/usr/bin/$name --config \${CREDENTIALS_DIRECTORY}/settings.toml" "$unit" \
        && pass "unit: ExecStart=/usr/bin/$name" || fail "unit: $(grep ^ExecStart "$unit")"
    doc=$(sed -n 's|^Documentation=file://||p' "$unit")
    [ -n "$doc" ] && [ -f "$root$doc" ] && pass "unit: Documentation=$doc is in the package" \
        || fail "unit: Documentation '$doc' is not in the package"
    grep -qx "LoadCredential=settings.toml:/etc/$name/settings.toml" "$unit" \
        || fail "unit does not read /etc/$name/settings.toml"
    if grep -q '^DynamicUser=yes' "$unit"; then
        pass "unit: DynamicUser=yes (no system user to create)"
    else
        fail "unit: no DynamicUser, but the package creates no user"
    fi
    if command -v systemd-analyze > /dev/null; then
        mkdir -p "$scratch/unit"
        sed "s|^ExecStart=/usr/bin/|ExecStart=$root/usr/bin/|" "$unit" > "$scratch/unit/$name.service"
        said=$(systemd-analyze verify "$scratch/unit/$name.service" 2>&1)
        [ $? -eq 0 ] && [ -z "$said" ] && pass "unit: systemd-analyze verify is silent" \
            || fail "unit: systemd-analyze verify: $said"
    else
        echo "!!!   $deb: systemd-analyze not installed: the unit check is SKIPPED"
    fi

    # The binary: static, stripped, for this architecture, and it runs.
    bin=$root/usr/bin/$name
    case $arch in
        amd64) machine=x86-64 runner= ;;
        arm64) machine="ARM aarch64" runner=qemu-aarch64-static ;;
        *) machine="?" runner= ;;
    esac
    kind=$(file -b "$bin")
    case "$kind" in
        *"$machine"*static*", stripped"*) pass "binary: $(stat -c %s "$bin") bytes, $kind" ;;
        *) fail "binary: $kind" ;;
    esac
    if [ -z "$runner" ] || command -v "$runner" > /dev/null; then
        said=$($runner "$bin" --version 2>&1)
        [ "$said" = "$name $version" ] && pass "binary: --version says '$said'${runner:+ (under $runner)}" \
            || fail "binary: --version says '$said'"
    else
        echo "!!!   $deb: $runner not installed: running the binary is SKIPPED"
    fi

    # Docs: the changelog names this version; the copyright file the licence.
    zcat "$root/usr/share/doc/$name/changelog.gz" | head -n1 | grep -q "^$name ($version) " \
        && pass "changelog.gz: $version" || fail "changelog.gz does not start with $version"
    crates=$(grep -c '^ [a-z0-9_-]* v[0-9]' "$root/usr/share/doc/$name/copyright")
    grep -q '^License: MIT' "$root/usr/share/doc/$name/copyright" && grep -q '^ rustls v' "$root/usr/share/doc/$name/copyright" \
        && pass "copyright: MIT, and the $crates statically linked crates with their licences" \
        || fail "copyright: no MIT licence or no crate list"

    # Maintainer scripts, run against stubs in a fake root.
    for tool in systemctl deb-systemd-invoke; do
        printf '#!/bin/sh\necho "%s $*" >> "%s/calls"\n' "$tool" "$fake" > "$fake/bin/$tool"
        chmod 755 "$fake/bin/$tool"
    done
    calls=$(run_script "$control/postinst" configure "")
    if [ "$calls" = "systemctl --system daemon-reload" ] && grep -q "systemctl enable --now" "$fake/out"; then
        pass "postinst (first install): daemon-reload only, not started, says what to do"
    else
        fail "postinst (first install) called: [$calls], said: $(cat "$fake/out")"
    fi
    calls=$(run_script "$control/postinst" configure 0.0.1)
    [ "$calls" = "systemctl --system daemon-reload
deb-systemd-invoke try-restart $name.service" ] \
        && pass "postinst (upgrade): daemon-reload, restarts only a running bot" \
        || fail "postinst (upgrade) called: [$calls]"
    calls=$(run_script "$control/prerm" remove)
    [ "$calls" = "deb-systemd-invoke stop $name.service" ] && pass "prerm remove: stops the bot" \
        || fail "prerm remove called: [$calls]"
    calls=$(run_script "$control/prerm" upgrade 0.0.2)
    [ -z "$calls" ] && pass "prerm upgrade: leaves the bot running" || fail "prerm upgrade called: [$calls]"
    calls=$(run_script "$control/postrm" remove)
    [ "$calls" = "systemctl --system daemon-reload" ] && pass "postrm remove: daemon-reload" \
        || fail "postrm remove called: [$calls]"
    mkdir -p "$fake/var/lib/private/$name" "$fake/var/lib/other" "$fake/etc/systemd/system/multi-user.target.wants"
    ln -sfn "private/$name" "$fake/var/lib/$name"
    echo '{}' > "$fake/var/lib/private/$name/state.json"
    ln -sfn /lib/systemd/system/$name.service "$fake/etc/systemd/system/multi-user.target.wants/$name.service"
    grep -q " /var/lib/$name " "$control/postrm" || fail "postrm no longer names /var/lib/$name (update this test)"
    calls=$(run_script "$control/postrm" purge)
    if [ "$calls" = "systemctl --system daemon-reload" ] && [ ! -e "$fake/var/lib/private/$name" ] \
        && [ ! -L "$fake/var/lib/$name" ] && [ -d "$fake/var/lib/other" ] \
        && [ ! -L "$fake/etc/systemd/system/multi-user.target.wants/$name.service" ]; then
        pass "postrm purge: state and enable link removed, nothing else"
    else
        fail "postrm purge called [$calls]; left: $(cd "$fake" && find var etc | tr '\n' ' ')"
    fi
    rm -rf "$fake/run/systemd/system"
    calls=$(run_script "$control/postinst" configure "")$(run_script "$control/prerm" remove)$(run_script "$control/postrm" purge)
    [ -z "$calls" ] && pass "without systemd running (chroot, container): no systemctl call" \
        || fail "without systemd the scripts called: [$calls]"

    # lintian, with the package's own overrides.
    if command -v lintian > /dev/null; then
        said=$(lintian --fail-on error,warning "$deb" 2>&1)
        status=$?
        said=$(grep -v 'running with root privileges' <<< "$said")
        [ $status -eq 0 ] && pass "lintian: no error or warning" \
            || fail "lintian:"$'\n'"$(sed 's/^/    /' <<< "$said")"
    else
        echo "!!!   $deb: lintian not installed: the lintian check is SKIPPED"
    fi
    rm -rf "$scratch"
    trap - EXIT
done

if [ "$failures" -eq 0 ]; then
    echo "deb-test: every check passed ($# package(s))"
else
    echo "deb-test: $failures check(s) FAILED"
    exit 1
fi
