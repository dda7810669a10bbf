#!/bin/sh
# Builds what a static armv7-unknown-linux-musleabihf link needs but cannot
# be downloaded here (rustup has no prebuilt std for that target):
#   DIR/sysroot/usr/lib/arm-linux-musleabihf  musl's libc.a and crt*.o, from
#                                             Debian's musl-dev:armhf
#   DIR/lib/crtbegin*.o, crtend*.o            stand-ins: Debian's musl has none
#   DIR/lib/libunwind.a                       LLVM's libunwind from rust-src
# Usage: packaging/armv7-sysroot.sh DIR   (needs clang, llvm-ar, apt-get and the
# nightly toolchain with rust-src). Does nothing when DIR is complete. Touches
# no system configuration: the armhf package index lives in DIR/apt.
set -eu
dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ -f "$dir/.complete" ] && exit 0

target=--target=armv7-unknown-linux-musleabihf
musl_include=$dir/sysroot/usr/include/arm-linux-musleabihf

# 1. musl for armhf. A private index (lists, cache, no dpkg status) so that
# the machine's dpkg architectures and apt lists stay as they are.
rm -rf "$dir/apt" "$dir/sysroot" "$dir/lib" "$dir/unwind"
mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/apt/debs" \
         "$dir/sysroot" "$dir/lib" "$dir/unwind"
set -- -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache" \
       -o Dir::State::status=/dev/null -o APT::Architecture=armhf \
       -o APT::Architectures::=armhf -o APT::Sandbox::User=root
apt-get "$@" -qq update
(cd "$dir/apt/debs" && apt-get "$@" -qq download musl-dev:armhf musl:armhf)
for deb in "$dir"/apt/debs/*.deb; do dpkg-deb -x "$deb" "$dir/sysroot"; done
[ -f "$dir/sysroot/usr/lib/arm-linux-musleabihf/libc.a" ] || {
  echo "armv7-sysroot: musl-dev:armhf has no libc.a where expected" >&2; exit 1; }

# 2. crtbegin/crtend. musl runs .init_array itself; all that the linker
# still wants from these files is __dso_handle.
echo 'void *__dso_handle __attribute__((visibility("hidden"))) = &__dso_handle;' > "$dir/lib/crtbegin.c"
: > "$dir/lib/crtend.c"
for o in crtbegin crtbeginS; do clang $target -O2 -c "$dir/lib/crtbegin.c" -o "$dir/lib/$o.o"; done
for o in crtend crtendS; do clang $target -O2 -c "$dir/lib/crtend.c" -o "$dir/lib/$o.o"; done

# 3. libunwind.a: std links -lunwind on musl targets, and build-std does
# not build it. The sources ship with rust-src.
src=$(rustc +nightly --print sysroot)/lib/rustlib/src/rust/src/llvm-project/libunwind
[ -d "$src/src" ] || { echo "armv7-sysroot: no libunwind sources at $src (rust-src for nightly?)" >&2; exit 1; }
flags="$target -O2 -fstrict-aliasing -funwind-tables -fvisibility=hidden \
  -D_LIBUNWIND_DISABLE_VISIBILITY_ANNOTATIONS -DNDEBUG -I $src/include \
  -nostdlibinc -isystem $musl_include -isystem $(clang -print-resource-dir)/include"
cd "$dir/unwind"
for f in Unwind-sjlj.c UnwindLevel1-gcc-ext.c UnwindLevel1.c; do
  clang $flags -std=c99 -c "$src/src/$f" -o "${f%.*}.o"
done
for f in UnwindRegistersRestore.S UnwindRegistersSave.S; do
  clang $flags -c "$src/src/$f" -o "${f%.*}.o"
done
for f in Unwind-EHABI.cpp Unwind-seh.cpp libunwind.cpp; do
  clang++ $flags -std=c++11 -nostdinc++ -fno-exceptions -fno-rtti -c "$src/src/$f" -o "${f%.*}.o"
done
rm -f "$dir/lib/libunwind.a"
llvm-ar rcs "$dir/lib/libunwind.a" ./*.o
touch "$dir/.complete"
echo "armv7-sysroot: ready in $dir"
