#!/usr/bin/env bash
# Build the wheel and use it as a new user would: a fresh venv, `pip install` of the wheel
# alone, then from another folder read the bundled sample, open the viewer offscreen and ask
# for the version. Usage: scripts/check-wheel.sh [PYTHON] (default python3).
set -euo pipefail
python=${1:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
"$work/venv/bin/pip" wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
wheel=$(ls "$work"/dist/netsurgery_viewer-*.whl)
echo "wheel: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KiB:"
"$python" -m zipfile -l "$wheel" | grep -E "viewer/(models|resources)/" | sed 's/^/  /'
"$work/venv/bin/pip" install --quiet "$wheel"

mkdir "$work/elsewhere"
cd "$work/elsewhere"                       # nothing of the repository on sys.path
bin="$work/venv/bin"
sample=$("$bin/python" -c "from viewer.files import paths; print(paths.SAMPLE_PLATE)")
case "$sample" in "$work/venv/"*) ;; *) echo "sample plate not in the venv: $sample" >&2; exit 1;; esac
"$bin/netsurgery-viewer" --version
"$bin/python" -m viewer --version
text=$("$bin/netsurgery-viewer" read "$sample")
echo "read: $text"
[[ $text == RK857AI* ]] || { echo "the sample plate should read RK857AI" >&2; exit 1; }
text=$("$bin/netsurgery-viewer" read --model lenet "$sample")
echo "read --model lenet: $text"
[[ $text == RK857AI* ]] || { echo "LeNet should read the sample plate as RK857AI" >&2; exit 1; }
QT_QPA_PLATFORM=offscreen "$bin/netsurgery-viewer" --screenshot shot.png 2>/dev/null
[ -s shot.png ] || { echo "the viewer wrote no screenshot" >&2; exit 1; }
echo "viewer: $(stat -c %s shot.png)-byte screenshot"
echo "wheel check ok"
