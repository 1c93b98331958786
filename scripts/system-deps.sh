#!/bin/sh
# Install the Debian/Ubuntu packages that a bare machine lacks for a Qt window and for the
# fonts that the synthetic plate generator draws with. Does nothing when all are present.
set -e
PKGS="python3-venv libgl1 libegl1 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0
libxcb-xkb1 libxcb-shape0 libxcb-cursor0
fonts-opendin fonts-roboto-unhinted fonts-bebas-neue fonts-b612 fonts-liberation fonts-dejavu-core
fonts-dejavu-extra"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
command -v apt-get >/dev/null || { echo "error: missing system packages:$missing (install them with your package manager)" >&2; exit 1; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
