#!/usr/bin/env bash
# Stops a make target early, with the reason, when it runs without root: the
# local provider creates network namespaces, taps and qemu guests.
if [ "$(id -u)" -ne 0 ]; then
  echo "$1 needs root: it creates network namespaces, tap devices and qemu guests." >&2
  echo "Run it as root, for example: sudo make $1" >&2
  exit 1
fi
