#!/usr/bin/env bash
# Installs the Debian packages the local provider needs, when missing:
# qemu (TCG guests), qemu-utils (qcow2 overlays), mmdebstrap (the guest image),
# xorriso (NoCloud seeds, as KubeVirt makes them), containernetworking-plugins
# (the real macvlan, bridge, static and host-local CNI plugins in /usr/lib/cni),
# iproute2 and e2fsprogs (mkfs.ext4 -d).
set -euo pipefail

packages=(
  qemu-system-x86
  qemu-utils
  mmdebstrap
  xorriso
  containernetworking-plugins
  iproute2
  e2fsprogs
  debian-archive-keyring
  python3
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all Debian packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run as root (sudo make ...) or install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
