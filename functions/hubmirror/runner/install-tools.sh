#!/usr/bin/env bash
# Install the pinned tools of the copy/build job (tools.env) from Debian 12's archive,
# and register qemu for foreign-platform RUN lines when the kernel lets us.
# Already-installed pinned versions are left alone, so a second run costs nothing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools.env
. "$here/tools.env"

wanted=(
  "buildah=$BUILDAH_VERSION"
  "python3-boto3=$PYTHON3_BOTO3_VERSION"
  "qemu-user-static=$QEMU_USER_STATIC_VERSION"
  "binfmt-support=$BINFMT_SUPPORT_VERSION"
)
missing=()
for spec in "${wanted[@]}"; do
  package="${spec%%=*}" version="${spec#*=}"
  have="$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$package" 2>/dev/null || echo none)"
  if [ "$have" != "installed $version" ]; then  # "config-files 1.2" is a removed package
    missing+=("$spec")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
fi

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
echo "tools: buildah $(buildah --version | awk '{print $3}'), $(python3 -c 'import boto3; print("boto3", boto3.__version__)')"
