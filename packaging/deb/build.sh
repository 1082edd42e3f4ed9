#!/usr/bin/env bash
# Builds the Debian package from a release binary:
#
#   packaging/deb/build.sh <keyway binary> <version> <amd64|arm64> <output directory>
#
# The package installs /usr/bin/keyway, the hardened unit /lib/systemd/system/keyway.service,
# /etc/keyway/keyway.env (a conffile, mode 0640 root:keyway) and, on first install, a generated
# /etc/keyway/master.key (0600 root, handed to the service with LoadCredential=). Its postinst
# creates the system user keyway and /var/lib/keyway (0700). It neither enables nor starts the
# service: docs/deploy.md says what to set first. Needs dpkg-deb (Debian's dpkg).
set -euo pipefail

if [ $# -ne 4 ]; then
    echo "usage: $0 <keyway binary> <version> <amd64|arm64> <output directory>" >&2
    exit 2
fi
binary="$1"; version="$2"; arch="$3"; out="$4"
here="$(cd "$(dirname "$0")" && pwd)"
[ -x "$binary" ] || { echo "$binary is not an executable keyway binary (build one with scripts/release.sh)" >&2; exit 2; }
case "$arch" in amd64|arm64) ;; *) echo "architecture '$arch': amd64 or arm64" >&2; exit 2 ;; esac
# Debian orders 1.2.0~dev.5 before 1.2.0; a semver pre-release's '-' becomes '~', build metadata is dropped.
deb_version="$(printf '%s' "${version%%+*}" | tr '-' '~')"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/keyway" "$root/usr/share/doc/keyway"
install -m 0755 "$binary" "$root/usr/bin/keyway"
install -m 0644 "$here/../systemd/keyway.service" "$root/lib/systemd/system/keyway.service"
install -m 0640 "$here/keyway.env" "$root/etc/keyway/keyway.env"
install -m 0644 "$here/copyright" "$root/usr/share/doc/keyway/copyright"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done
printf '/etc/keyway/keyway.env\n' > "$root/DEBIAN/conffiles"
size_kb="$(du -sk "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: keyway
Version: $deb_version
Architecture: $arch
Maintainer: Keyway maintainers <keyway@localhost>
Installed-Size: $size_kb
Depends: adduser, libc6, libssl3 | libssl3t64, ca-certificates
Recommends: systemd
Section: net
Priority: optional
Homepage: https://github.com/keyway-dev/keyway
Description: credentials for internal tools, attached server-side
 Keyway holds the credentials of the APIs internal tools call, keeps OAuth
 tokens fresh exactly once across a cluster, rotates secrets on schedule and
 attaches them server-side, so no credential reaches a browser or a log.
CONTROL

mkdir -p "$out"
file="$out/keyway_${deb_version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$file" >/dev/null
echo "$file"
