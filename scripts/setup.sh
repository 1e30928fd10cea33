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
# The node agent: runc under conmon, CNI plugins, iproute2 and iptables (hostPort);
# the tests' registry and image tools: Debian's docker-registry, skopeo, busybox-static.
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v conmon >/dev/null 2>&1 || need+=(conmon)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true)" = "install ok installed" ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
