#!/usr/bin/env bash
# Installs what a fresh machine lacks for building, running and testing Drover.
# A fresh machine has the Rust toolchain, Debian's package manager and kubectl.
set -euo pipefail

need=()
command -v kubectl >/dev/null 2>&1 || need+=(kubectl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
