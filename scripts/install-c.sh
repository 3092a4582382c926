#!/usr/bin/env bash
# Builds the shmbus C library (crate shmbus-ffi) and installs it under a
# prefix, like `make install`:
#
#   PREFIX/lib/libshmbus.so.VERSION, libshmbus.so.MAJOR, libshmbus.so
#   PREFIX/lib/libshmbus.a
#   PREFIX/lib/pkgconfig/shmbus.pc
#   PREFIX/include/shmbus.h, PREFIX/include/shmbus.hpp
#
# Cargo builds the library as libshmbus_ffi.{so,a} (the Rust crate `shmbus`
# already owns libshmbus.rlib in the target directory); it is installed
# under its public name, with the SONAME libshmbus.so.MAJOR that build.rs
# gave it. See docs/c-api.md.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/install-c.sh [--prefix DIR] [--libdir DIR] [--debug] [--no-build]

  --prefix DIR   where to install (default: $PREFIX, else /usr/local); absolute
  --libdir DIR   where the libraries go (default: PREFIX/lib)
  --debug        install the debug build instead of the release build
  --no-build     install what target/ holds, without running cargo
  DESTDIR=DIR    (environment) stage the files under DIR, for packaging

Then: cc app.c $(pkg-config --cflags --libs shmbus)
(with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig if PREFIX is not a system prefix)
USAGE
}

cd "$(dirname "$0")/.."

prefix="${PREFIX:-/usr/local}"
libdir=""
profile=release
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --libdir) libdir="${2:?--libdir needs a directory}"; shift 2 ;;
    --libdir=*) libdir="${1#*=}"; shift ;;
    --debug) profile=debug; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-c.sh: unknown argument '$1': see scripts/install-c.sh --help" >&2; exit 2 ;;
  esac
done
libdir="${libdir:-$prefix/lib}"
includedir="$prefix/include"
for dir in "$prefix" "$libdir"; do
  case "$dir" in
    /*) ;;
    *) echo "install-c.sh: '$dir' is not an absolute path: give --prefix/--libdir as absolute paths (shmbus.pc records them)" >&2; exit 2 ;;
  esac
done

build_cmd=(build -p shmbus-ffi --lib)
if [ "$profile" = release ]; then
  build_cmd+=(--release)
fi
if [ "$build" = 1 ]; then
  "${CARGO:-cargo}" "${build_cmd[@]}"
fi

built="${CARGO_TARGET_DIR:-target}/$profile"
for f in libshmbus_ffi.so libshmbus_ffi.a; do
  if [ ! -f "$built/$f" ]; then
    echo "install-c.sh: $built/$f is missing: build it with \`cargo ${build_cmd[*]}\` (or run without --no-build)" >&2
    exit 1
  fi
done

version="$(sed -n 's/^version = "\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)"
major="${version%%.*}"
lib_dest="${DESTDIR:-}$libdir"
inc_dest="${DESTDIR:-}$includedir"

install -d "$lib_dest/pkgconfig" "$inc_dest"
install -m 0755 "$built/libshmbus_ffi.so" "$lib_dest/libshmbus.so.$version"
ln -sfn "libshmbus.so.$version" "$lib_dest/libshmbus.so.$major"
ln -sfn "libshmbus.so.$major" "$lib_dest/libshmbus.so"
install -m 0644 "$built/libshmbus_ffi.a" "$lib_dest/libshmbus.a"
install -m 0644 include/shmbus.h include/shmbus.hpp "$inc_dest/"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" \
    -e "s|@INCLUDEDIR@|$includedir|g" -e "s|@VERSION@|$version|g" \
    libshmbus-ffi/shmbus.pc.in > "$lib_dest/pkgconfig/shmbus.pc"
chmod 0644 "$lib_dest/pkgconfig/shmbus.pc"

echo "installed shmbus $version ($profile build) in ${DESTDIR:-}$prefix"
case "$libdir" in
  /usr/lib|/usr/lib64|/usr/local/lib) ;;
  *) echo "note: add $libdir/pkgconfig to PKG_CONFIG_PATH, and $libdir to LD_LIBRARY_PATH (or link with -Wl,-rpath,$libdir)" ;;
esac
