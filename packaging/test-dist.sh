#!/usr/bin/env bash
# Checks the release archives in dist/ as a deployer meets them: SHA256SUMS
# verifies, each archive holds exactly the expected files with sane modes,
# and the unpacked binary passes the smoke steps (examples/smoke.rs, built
# before: target/debug/examples/smoke), under qemu-user for ARM.
# Usage: packaging/test-dist.sh VERSION TRIPLE:RUNNER...  (RUNNER "native" for none)
set -uo pipefail
version=${1:?usage: $0 VERSION TRIPLE:RUNNER...}; shift
smoke=target/debug/examples/smoke
failures=0
fail() { echo "FAIL  dist: $*"; failures=$((failures + 1)); }
pass() { echo "ok    dist: $*"; }

(cd dist && sha256sum --quiet -c SHA256SUMS) && pass "SHA256SUMS verifies" || fail "SHA256SUMS does not verify"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for pair in "$@"; do
    triple=${pair%%:*} runner=${pair#*:}
    [ "$runner" = native ] && runner=
    dir=trueconf-bot-$version-$triple
    archive=dist/$dir.tar.gz
    [ -f "$archive" ] || { fail "$archive is missing"; continue; }
    grep -q " $dir.tar.gz\$" dist/SHA256SUMS || fail "$archive is not in SHA256SUMS"
    listing=$(tar -tvzf "$archive" | awk '{print $1, $2, $6}' | sort -k3)
    expected="drwxr-xr-x 0/0 $dir/
-rw-r--r-- 0/0 $dir/LICENSE
-rw-r--r-- 0/0 $dir/README.md
-rw-r--r-- 0/0 $dir/settings.example.toml
-rwxr-xr-x 0/0 $dir/trueconf-bot
-rw-r--r-- 0/0 $dir/trueconf-bot.service
-rwxr-xr-x 0/0 $dir/trueconf-bot.init"
    [ "$listing" = "$(sort -k3 <<< "$expected")" ] && pass "$archive: the 6 expected files, modes, owner 0/0" \
        || fail "$archive holds:"$'\n'"$listing"
    tar -xzf "$archive" -C "$scratch" || { fail "$archive does not unpack"; continue; }
    bin=$scratch/$dir/trueconf-bot
    if [ -n "$runner" ] && ! command -v "$runner" > /dev/null; then
        echo "!!!   dist: $runner is not installed: the smoke run of $archive is SKIPPED"
        continue
    fi
    if $smoke "$bin" $runner > "$scratch/smoke.log" 2>&1; then
        pass "$archive: smoke passed${runner:+ under $runner}"
    else
        fail "$archive: smoke failed:"$'\n'"$(cat "$scratch/smoke.log")"
    fi
done
if [ "$failures" -eq 0 ]; then
    echo "dist-test: every check passed"
else
    echo "dist-test: $failures check(s) FAILED"
    exit 1
fi
