#!/usr/bin/env bash
# Builds a release directory: self-contained single-file `keyway` binaries for linux-x64 and
# linux-arm64, a tarball and a Debian package of each, and SHA256SUMS.
#
#   scripts/release.sh [output directory]          # default: dist/
#
# Version: the tag vX.Y.Z on HEAD, else VersionPrefix (Directory.Build.props) plus -dev.<commits>;
# the commit is appended by the build (`keyway --version` prints 1.2.0+<commit>). RIDS="linux-x64"
# builds one platform. Needs the .NET SDK and, for the packages, dpkg-deb.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-dist}"
rids="${RIDS:-linux-x64 linux-arm64}"
if tag="$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null)"; then
    version="${tag#v}"
else
    prefix="$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Directory.Build.props)"
    version="${prefix}-dev.$(git rev-list --count HEAD)"
fi
release="$out/keyway-$version"
rm -rf "$release"
mkdir -p "$release"
echo ">> Keyway $version into $release"

for rid in $rids; do
    case "$rid" in linux-x64) arch=amd64 ;; linux-arm64) arch=arm64 ;; *) echo "RID $rid: linux-x64 or linux-arm64" >&2; exit 2 ;; esac
    echo ">> publishing $rid (self-contained, single file)"
    publish="$(mktemp -d)"
    dotnet publish src/Keyway/Keyway.csproj -c Release -p:PublishProfile="$rid" -p:Version="$version" -o "$publish" --nologo -v quiet
    binary="$publish/keyway"
    [ -x "$binary" ] || { echo "the publish left no $binary" >&2; exit 1; }
    stage="$(mktemp -d)"
    mkdir -p "$stage/keyway-$version"
    cp "$binary" README.md "$stage/keyway-$version/"
    cp packaging/systemd/keyway.service "$stage/keyway-$version/"
    tar -C "$stage" -czf "$release/keyway-$version-$rid.tar.gz" "keyway-$version"
    if command -v dpkg-deb >/dev/null; then
        packaging/deb/build.sh "$binary" "$version" "$arch" "$release" >/dev/null
    else
        echo ">> dpkg-deb is missing: no .deb for $rid (apt-get install dpkg)" >&2
    fi
    printf '%s %s MB\n' "$rid" "$(( $(stat -c %s "$binary") / 1024 / 1024 ))" >> "$release/SIZES"
    rm -rf "$publish" "$stage"
done

(cd "$release" && sha256sum -- *.tar.gz *.deb 2>/dev/null > SHA256SUMS)
echo ">> done:"
(cd "$release" && ls -l && cat SIZES)
