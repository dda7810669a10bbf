#!/bin/sh
# Builds OUTDIR/trueconf-bot_VERSION_ARCH.deb from a static binary with plain
# dpkg-deb (no debhelper): the binary in /usr/bin, the unit in
# /lib/systemd/system running /usr/bin/trueconf-bot, the annotated example as
# the conffile /etc/trueconf-bot/settings.toml (mode 600: it will hold the
# secrets), and the docs in /usr/share/doc/trueconf-bot/.
# Usage: packaging/deb/build.sh ARCH BINARY VERSION OUTDIR  (from the repository root)
# DEB_MAINTAINER overrides the Maintainer field; SOURCE_DATE_EPOCH the dates.
set -eu
arch=${1:?usage: $0 ARCH BINARY VERSION OUTDIR}
bin=${2:?binary}
version=${3:?version}
out=${4:?output directory}
here=packaging/deb
name=trueconf-bot
maintainer=${DEB_MAINTAINER:-trueconf-bot maintainers <maintainers@users.noreply.b-seed-f60c2070.example>}
epoch=${SOURCE_DATE_EPOCH:-$(date +%s)}
[ -f "$bin" ] || { echo "$0: no binary at $bin" >&2; exit 2; }

root=target/deb/$arch
rm -rf "$root"
umask 022
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
         "$root/etc/$name" "$root/usr/share/doc/$name" \
         "$root/usr/share/man/man1" "$root/usr/share/lintian/overrides"
doc=$root/usr/share/doc/$name

install -m755 "$bin" "$root/usr/bin/$name"
sed -e "s|^ExecStart=/usr/local/|ExecStart=/usr/|" \
    -e "s|^Documentation=file:///usr/local/|Documentation=file:///usr/|" \
    $name.service > "$root/lib/systemd/system/$name.service"
install -m600 settings.example.toml "$root/etc/$name/settings.toml"
install -m644 README.md "$doc/README.md"
gzip -9n < $here/$name.1 > "$root/usr/share/man/man1/$name.1.gz"
install -m644 $here/lintian-overrides "$root/usr/share/lintian/overrides/$name"

# copyright (machine-readable). The binary links the crates below statically;
# each keeps its own licence.
case $arch in
    amd64) triple=x86_64-unknown-linux-musl ;;
    arm64) triple=aarch64-unknown-linux-musl ;;
    *) echo "$0: no Rust target known for $arch" >&2; exit 2 ;;
esac
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: $name"
    echo "Comment: The binary is statically linked. Besides musl libc (MIT) and"
    echo " the Rust standard library (MIT OR Apache-2.0) it contains these Rust"
    echo " crates, each under the licence named:"
    cargo tree --locked --quiet -e normal,no-proc-macro --target "$triple" --prefix none \
        --format '{p} ({l})' | sed 's/ (\*)$//' | grep -v "^$name v" | LC_ALL=C sort -u | sed 's/^/ /'

    echo
    echo "Files: *"
    echo "Copyright: 2026 The trueconf-bot authors"
    echo "License: MIT"
    sed -e '1,/^SOFTWARE\.$/!d' -e '1,4d' -e 's/^$/./' -e 's/^/ /' LICENSE
} > "$doc/copyright"
grep -q 'WITHOUT WARRANTY' "$doc/copyright" || { echo "$0: licence text missing" >&2; exit 1; }
grep -q '^ rustls v' "$doc/copyright" || { echo "$0: cargo tree listed no crates" >&2; exit 1; }

# A native package: its changelog is /usr/share/doc/PACKAGE/changelog.gz.
{
    echo "$name ($version) unstable; urgency=medium"
    echo
    echo "  * Release $version: static musl build, systemd unit, annotated settings."
    echo
    echo " -- $maintainer  $(LC_ALL=C date -u -R -d "@$epoch")"
} | gzip -9n > "$doc/changelog.gz"

size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
    -e "s|@MAINTAINER@|$maintainer|" $here/control.in > "$root/DEBIAN/control"
echo "/etc/$name/settings.toml" > "$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do install -m755 "$here/$script" "$root/DEBIAN/$script"; done
(cd "$root" && find . -type f ! -path './DEBIAN/*' | sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$epoch" {} +

mkdir -p "$out"
deb=$out/${name}_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb: $(stat -c %s "$deb") bytes"
