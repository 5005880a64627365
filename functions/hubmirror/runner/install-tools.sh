#!/usr/bin/env bash
# Install the copy/build job's tools (tools.env) from Debian 12's archive, at least at their
# minimum versions, and register qemu for foreign-platform RUN lines when the kernel lets us.
# Packages already installed at a good version are left alone, so a second run costs nothing.
# HUBMIRROR_TOOLS_ENV names another tools.env (the tests use it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools.env
. "${HUBMIRROR_TOOLS_ENV:-$here/tools.env}"

minimum() {  # the minimum version tools.env gives a package: python3-boto3 -> $PYTHON3_BOTO3_MIN
  local name="${1^^}"
  name="${name//-/_}_MIN"
  echo "${!name:?tools.env gives no minimum for $1 ($name)}"
}
installed() {  # the installed version of a package, or nothing ("config-files 1.2" is a removed one)
  local status
  status="$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null)" || return 0  # unknown to dpkg
  if [[ "$status" == "installed "* ]]; then
    echo "${status#installed }"
  fi
}

read -r -a tools <<<"$TOOLS"
missing=()
for package in "${tools[@]}"; do
  have="$(installed "$package")"
  if [ -z "$have" ] || dpkg --compare-versions "$have" lt "$(minimum "$package")"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
fi
versions=()
for package in "${tools[@]}"; do
  have="$(installed "$package")"
  want="$(minimum "$package")"
  if [ -z "$have" ] || dpkg --compare-versions "$have" lt "$want"; then
    echo "install-tools: $package ${have:-is not installed}; the job needs at least $want" >&2
    exit 1
  fi
  versions+=("$package=$have")
done

# Foreign platforms (linux/arm64 on an amd64 host, ...) run RUN lines under qemu, which
# needs binfmt_misc: available in privileged CodeBuild and on the test machines.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || echo "note: cannot mount binfmt_misc (unprivileged build)"
fi
if [ -w "$binfmt/register" ]; then
  for arch in aarch64 arm s390x ppc64le riscv64; do
    if [ ! -e "$binfmt/qemu-$arch" ]; then
      if [ ! -e "/var/lib/binfmts/qemu-$arch" ]; then  # qemu was configured before binfmt-support
        update-binfmts --import "qemu-$arch"
      fi
      update-binfmts --enable "qemu-$arch"
    fi
  done
else
  echo "note: binfmt_misc is not writable: RUN lines can only run for the host's own platform"
fi
echo "tools: ${versions[*]}"
