#!/usr/bin/env bash
# Runs the linux-arm64 prebuilt addon on an arm64 Node.js, under qemu-user (no arm64 machine is
# needed): Debian's arm64 nodejs and its libraries are unpacked into a folder that qemu uses as
# the target's root (nothing is installed for arm64 system-wide), then scripts/check-addon.cjs
# checks the addon against the authors' goldens on cpu and cuda-emu.
#   usage: scripts/test-arm64.sh [path/to/arm64/secvit.node]   (default: prebuilds/linux-arm64)
# Needs: qemu-user, and Debian's arm64 packages (dpkg --add-architecture arm64): the script
# installs what is missing when it runs as root with apt (as CI does). The package names are
# Debian 12's (bookworm: nodejs 18, libnode108, libicu72); another release needs its own list.
# SECVIT_ARM64_ROOT keeps the unpacked root between runs (default build-arm64/sysroot).
set -euo pipefail
cd "$(dirname "$0")/.."
addon=$(readlink -f "${1:-prebuilds/linux-arm64/secvit.node}")
[[ -f $addon ]] || { echo "test-arm64: no addon at $addon (npm pack makes it, or scripts/prebuild.mjs)"; exit 1; }
sysroot=${SECVIT_ARM64_ROOT:-$PWD/build-arm64/sysroot}

if ! command -v qemu-aarch64 >/dev/null; then
  command -v apt-get >/dev/null && [[ $(id -u) == 0 ]] || { echo "test-arm64: qemu-aarch64 not found (install qemu-user)"; exit 1; }
  apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
fi
# Debian's arm64 Node.js (18, N-API 9: the addon asks for 8) and what it links.
pkgs=(nodejs libnode108 libc6 libstdc++6 libgcc-s1 libuv1 libssl3 libicu72 zlib1g libbrotli1 libc-ares2 libnghttp2-14)
if [[ ! -x $sysroot/usr/bin/node ]]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    [[ $(id -u) == 0 ]] || { echo "test-arm64: run as root, or add arm64 to dpkg's architectures yourself"; exit 1; }
    dpkg --add-architecture arm64
    apt-get update -qq
  fi
  debs=$(mktemp -d)
  (cd "$debs" && apt-get download -q=2 "${pkgs[@]/%/:arm64}" node-acorn node-cjs-module-lexer node-undici)
  # Unpacked beside the final folder and renamed into place: an interrupted run leaves no
  # half-filled root behind that the check above would take for a complete one.
  rm -rf "$sysroot.partial"
  mkdir -p "$sysroot.partial"
  for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$sysroot.partial"; done
  rm -rf "$debs" "$sysroot"
  mv "$sysroot.partial" "$sysroot"
fi
echo "test-arm64: ${addon#$PWD/} ($(du -h "$addon" | cut -f1)) on $(QEMU_LD_PREFIX=$sysroot qemu-aarch64 "$sysroot/usr/bin/node" -p '`arm64 Node ${process.version} (${process.arch}) under qemu-user`')"
t0=$SECONDS
QEMU_LD_PREFIX=$sysroot SECVIT_ADDON_PATH=$addon qemu-aarch64 "$sysroot/usr/bin/node" scripts/check-addon.cjs
echo "test-arm64: OK ($((SECONDS - t0)) s under emulation)"
