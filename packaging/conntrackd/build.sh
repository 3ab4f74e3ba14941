#!/usr/bin/env bash
# Builds envrouter's conntrackd package: the upstream release 1.4.8 (Debian's own orig tarball,
# checked against its pinned SHA-256) with packaging/conntrackd/debian (its patches: why in
# docs/ha.md "At scale"). Usage: build.sh OUTDIR — writes OUTDIR/conntrackd_<version>_<arch>.deb.
# The build dependencies are debian/control's Build-Depends (`make conntrackd-deb` installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "$1" && cd "$1" && pwd)"
version=1.4.8
tarball="conntrack-tools_${version}.orig.tar.xz"
url="http://deb.debian.org/debian/pool/main/c/conntrack-tools/${tarball}"
sha256=067677f4c5f6564819e78ed3a9d4a8980935ea9273f3abb22a420ea30ab5ded6

if ! echo "${sha256}  ${out}/${tarball}" | sha256sum --check --status 2>/dev/null; then
  echo "downloading ${url}"
  curl --fail --silent --show-error --location --retry 3 -o "${out}/${tarball}.part" "${url}"
  mv "${out}/${tarball}.part" "${out}/${tarball}"
  if ! echo "${sha256}  ${out}/${tarball}" | sha256sum --check --status; then
    echo "error: ${tarball}: SHA-256 is not ${sha256}" >&2
    exit 1
  fi
fi
src="${out}/conntrack-tools-${version}"
rm -rf "${src}"
tar -C "${out}" -xf "${out}/${tarball}"
cp -a "${here}/debian" "${src}/debian"
cd "${src}"
dpkg-buildpackage -b -us -uc --no-sign
lintian --fail-on error --info "${out}"/conntrack-tools_*.changes
