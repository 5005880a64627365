#!/usr/bin/env bash
# Install what the local stack needs on Debian 12 (idempotent; run as root, as CI does):
#   - docker-registry (the "hub" and the "ECR"), busybox-static (seed images), skopeo
#     (the benchmark's point of comparison);
#   - the copy/build job's tools (functions/hubmirror/runner/install-tools.sh: buildah,
#     python3-boto3, python3-yaml, qemu-user-static, binfmt-support), the same script
#     CodeBuild runs (here for qemu's binfmt_misc handlers, which the kernel shares);
#   - mmdebstrap, and with it the local CodeBuild's build image (devstack/aws/buildimage.py:
#     Debian 12 minbase, then install-tools.sh inside it), cached under .cache/;
#   - busybox-static for arm64, unpacked under .cache/, for two-platform seed images.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system.sh installs Debian packages: run it as root (or with sudo)" >&2
  exit 1
fi

updated=0
apt_update() { if [ "$updated" -eq 0 ]; then apt-get update -qq; updated=1; fi; }

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  updated=0
fi
missing=()
for package in docker-registry busybox-static skopeo make mmdebstrap; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
command -v npm >/dev/null 2>&1 || missing+=(npm)  # asl-validator, the definition's second validator
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# docker-registry's package starts a system registry on :5000 where systemd runs; the
# local stack starts its own registries, so make sure that one is not in the way.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry
fi

bash "$root/functions/hubmirror/runner/install-tools.sh"

arm64="$root/.cache/busybox-arm64/bin/busybox"
if [ ! -x "$arm64" ]; then
  apt_update
  work="$(mktemp -d)"
  chmod 755 "$work"  # apt downloads as the _apt user
  (cd "$work" && apt-get download -qq busybox-static:arm64)
  mkdir -p "$root/.cache/busybox-arm64"
  dpkg-deb -x "$work"/busybox-static_*_arm64.deb "$root/.cache/busybox-arm64"
  rm -rf "$work"
fi
(cd "$root" && python3 -m devstack.aws.buildimage)
echo "system ready: $(docker-registry --version 2>/dev/null | head -1), $(buildah --version | cut -d' ' -f1-3)"
