#!/usr/bin/env bash
# Build real Caffe (pycaffe, CPU only) from Debian's source package and hook it into a venv.
#
# Usage: scripts/install-pycaffe.sh [VENV_PYTHON]      (or: make caffe)
#   VENV_PYTHON  the venv's interpreter (argument, or environment variable; default .venv/bin/python)
#
# Source: Debian's `caffe` source package 1.0.0+git20180821.99bd997-8 from the bullseye suite,
# fetched with apt-get from the Debian mirror that this machine's own apt sources already use,
# through a private apt state folder, so the system's sources and package lists stay untouched.
# The build lives in ${XDG_CACHE_HOME:-~/.cache}/netsurgery-viewer/caffe-1.0.0-nogil-py<XY>/ and a
# second run reuses it. Besides fixes for current protobuf and numpy, pycaffe is patched so that
# Net.forward releases the GIL (scripts/pycaffe-release-gil.patch): without it a GUI thread freezes
# for the whole pass. The venv gets a .pth file that points at it, plus pycaffe's Python dependencies.
set -u

CAFFE_VERSION="1.0.0+git20180821.99bd997-8"
CAFFE_SUITE="bullseye"
BUILD_DEPS="build-essential cmake libboost-system-dev libboost-thread-dev libboost-filesystem-dev
libboost-python-dev libprotobuf-dev protobuf-compiler libgoogle-glog-dev libgflags-dev libhdf5-dev
liblmdb-dev libleveldb-dev libsnappy-dev libopenblas-dev dpkg-dev"
PY_DEPS="numpy six protobuf scipy scikit-image"
PTH_NAME="netsurgery-caffe.pth"
# Bump this name when the patches change: the new build then goes into a new cache folder, and a
# venv still hooked to an older build of ours is moved over to it.
BUILD_NAME="caffe-1.0.0-nogil"
GIL_PATCH="$(cd "$(dirname "$0")" && pwd)/pycaffe-release-gil.patch"
export GLOG_minloglevel=2          # keep Caffe's C++ logging quiet in the checks below

# ---------------------------------------------------------------- helpers
STEP="[0/6] setup"
LOG=""
say() { echo "$*"; [ -n "$LOG" ] && echo "== $*" >>"$LOG"; return 0; }
step() { STEP="[$1/6] $2"; say "$STEP..."; }
die() {
    echo "error: step $STEP failed: $*" >&2
    if [ -n "$LOG" ] && [ -s "$LOG" ]; then
        echo "------ last lines of $LOG ------" >&2
        tail -n 25 "$LOG" >&2
        echo "------ full build log: $LOG" >&2
    fi
    exit 1
}
run() { "$@" >>"$LOG" 2>&1; }        # run a command, its output goes to the build log only
abspath() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }   # keeps the venv symlink

# ---------------------------------------------------------------- inputs
VENV_PYTHON="${1:-${VENV_PYTHON:-.venv/bin/python}}"
[ -x "$VENV_PYTHON" ] || { echo "error: no venv interpreter at $VENV_PYTHON (run make first)" >&2; exit 1; }
VENV_PYTHON="$(abspath "$VENV_PYTHON")"
PY_XY="$("$VENV_PYTHON" -c 'import sys; print("%d%d" % sys.version_info[:2])')"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/netsurgery-viewer"
CACHE="$CACHE_ROOT/$BUILD_NAME-py$PY_XY"
SRC="$CACHE/src"          # unpacked and patched source; python/caffe is the built package
BUILD="$CACHE/build"      # cmake build tree (libcaffe.so, _caffe.so)
SITE="$CACHE/site"        # holds only a `caffe` symlink: what the venv's .pth points at
MODULE="$SRC/python/caffe/_caffe.so"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# ---------------------------------------------------------------- [1/6]
step 1 "checking whether the venv can already import caffe"
if where="$("$VENV_PYTHON" -c 'import caffe, os; print(os.path.realpath(os.path.dirname(caffe.__file__)))' 2>/dev/null)"; then
    case "$where" in
        "$CACHE"/*)
            echo "caffe already imports in $VENV_PYTHON (from $where): nothing to do"
            exit 0 ;;
        "$CACHE_ROOT"/*)
            echo "    the venv imports an older build of ours ($where): building $BUILD_NAME" ;;
        *)
            echo "caffe already imports in $VENV_PYTHON (from $where, not built by this script):" \
                 "nothing to do; its Net.forward may hold the GIL (see scripts/pycaffe-release-gil.patch)"
            exit 0 ;;
    esac
fi
mkdir -p "$CACHE" || die "cannot create the cache folder $CACHE"
LOG="$CACHE/build.log"
echo "== install-pycaffe.sh $(date -u '+%Y-%m-%dT%H:%M:%SZ') python=$VENV_PYTHON" >>"$LOG"
echo "    cache: $CACHE"
echo "    log:   $LOG"

if [ -e "$MODULE" ] && [ -f "$SRC/python/caffe/proto/caffe_pb2.py" ]; then
    echo "[2/6]..[5/6] found a built pycaffe in the cache ($SRC/python): skipping the build"
else
    # ------------------------------------------------------------ [2/6]
    step 2 "installing build dependencies with apt-get"
    missing=""
    for p in $BUILD_DEPS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -z "$missing" ]; then
        echo "    all present"
    else
        echo "    installing:$missing"
        run $SUDO apt-get update || die "apt-get update"
        run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \
            || die "apt-get install$missing"
    fi

    # ------------------------------------------------------------ [3/6]
    if [ -f "$CACHE/.source-ready" ]; then
        echo "[3/6]..[4/6] patched source already in the cache: reusing it"
    else
        step 3 "downloading the caffe source package $CAFFE_VERSION ($CAFFE_SUITE) from Debian"
        rm -rf "$CACHE/download"
        mkdir -p "$CACHE/download"
        # An earlier build of ours (another BUILD_NAME) has the same files: reuse them. Their
        # sums are checked against the .dsc below, as after a download.
        for old in "$CACHE_ROOT"/caffe-*/download; do
            if [ "$old" != "$CACHE/download" ] && [ -f "$old/caffe_${CAFFE_VERSION}.dsc" ] \
                    && ls "$old"/caffe_*.orig.tar.gz "$old"/caffe_*.debian.tar.xz >/dev/null 2>&1; then
                cp "$old"/caffe_* "$CACHE/download/" && echo "    reusing the source files of $old" && break
            fi
        done
        if [ ! -f "$CACHE/download/caffe_${CAFFE_VERSION}.dsc" ]; then
            # The mirror: the first URI of the machine's own apt sources that serves the system's
            # release (its codename as a suite, so not -security/-updates), else the first one whose
            # path ends in /debian. Both one-line (*.list) and deb822 (*.sources) files are read.
            codename="$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")"
            mirror="$(
                for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                    [ -f "$f" ] && sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" \
                        | awk '$1 == "deb" || $1 == "deb-src" { print $2, $3 }'
                done
                for f in /etc/apt/sources.list.d/*.sources; do
                    [ -f "$f" ] && awk '
                        function flush() { if (uris != "" && enabled != "no") { n = split(uris, u, " ");
                            for (i = 1; i <= n; i++) print u[i], suites }; uris = ""; suites = ""; enabled = "" }
                        /^[ \t]*#/ { next }
                        /^[ \t]*$/ { flush(); next }
                        tolower($1) == "uris:"    { $1 = ""; uris = $0 }
                        tolower($1) == "suites:"  { $1 = ""; suites = $0 }
                        tolower($1) == "enabled:" { enabled = tolower($2) }
                        END { flush() }' "$f"
                done | awk -v cn="$codename" '
                    { for (i = 2; i <= NF; i++) if ($i == cn && !byname) byname = $1 }
                    $1 ~ /\/debian\/?$/ && !bypath { bypath = $1 }
                    END { print (byname != "" ? byname : bypath) }'
            )"
            [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/"
            echo "    mirror: $mirror (from this machine's apt sources)"

            # A private apt state: own sources list, own package lists, own cache; the system's
            # /etc/apt and /var/lib/apt/lists are not touched, and no root is needed for this step.
            APT="$CACHE/apt"
            rm -rf "$APT"
            mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/sources.list.d"
            signed=""
            [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] \
                && signed="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            echo "deb-src $signed$mirror $CAFFE_SUITE main" >"$APT/sources.list"
            apt_opts="-o Dir::Etc::SourceList=$APT/sources.list -o Dir::Etc::SourceParts=$APT/sources.list.d
                      -o Dir::State::Lists=$APT/lists -o Dir::Cache=$APT -o Dir::Cache::Archives=$APT/archives
                      -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache="
            # As root apt would try to hand the download to the _apt user, who cannot write here.
            [ "$(id -u)" -eq 0 ] && apt_opts="$apt_opts -o APT::Sandbox::User=root"
            if ! run apt-get $apt_opts update \
                || ! (cd "$CACHE/download" && run apt-get $apt_opts source --download-only "caffe=$CAFFE_VERSION"); then
                echo "error: cannot download the caffe source package from the Debian archive" \
                     "(caffe=$CAFFE_VERSION, suite $CAFFE_SUITE, mirror $mirror)" >&2
                grep -E '^(E|W|Err):' "$LOG" | tail -n 5 >&2
                echo "full log: $LOG" >&2
                exit 2
            fi
            rm -rf "$APT"                   # the bullseye package lists are not needed any more
        fi

        # apt already checks these through the signed Release file; check the .dsc sums ourselves.
        dsc="$CACHE/download/caffe_${CAFFE_VERSION}.dsc"
        [ -f "$dsc" ] || die "no $dsc after download"
        sums="$(awk '/^Checksums-Sha256:/ { on = 1; next } on && /^ / { print $1 "  " $3; next } { on = 0 }' "$dsc")"
        [ -n "$sums" ] || die "no Checksums-Sha256 in $dsc"
        (cd "$CACHE/download" && echo "$sums" | sha256sum -c --strict) >>"$LOG" 2>&1 \
            || die "sha256 mismatch against $dsc (see $LOG)"
        echo "    sha256 verified:" $(echo "$sums" | awk '{ print $2 }')

        # The orig tarball has no top-level folder: unpack it into src/ itself.
        rm -rf "$SRC" "$BUILD" "$SITE"
        mkdir -p "$SRC"
        tar -xzf "$CACHE"/download/caffe_*.orig.tar.gz -C "$SRC" || die "unpacking the orig tarball"
        tar -xJf "$CACHE"/download/caffe_*.debian.tar.xz -C "$SRC" || die "unpacking the debian tarball"
        while read -r name opt; do
            case "$name" in ""|\#*) continue ;; esac
            echo "    debian patch: $name"
            (cd "$SRC" && run patch ${opt:--p1} -i "debian/patches/$name") || die "debian patch $name"
        done <"$SRC/debian/patches/series"

        # -------------------------------------------------------- [4/6]
        step 4 "patching for protobuf 3.21, numpy 2, current scikit-image, and a GIL-free forward"
        # protobuf >= 3.6 dropped the second (warning threshold) argument of SetTotalBytesLimit.
        io_cpp="$SRC/src/caffe/util/io.cpp"
        sed -i 's/SetTotalBytesLimit(kProtoReadBytesLimit, 536870912)/SetTotalBytesLimit(kProtoReadBytesLimit)/' "$io_cpp"
        grep -q 'SetTotalBytesLimit(kProtoReadBytesLimit)' "$io_cpp" || die "protobuf patch did not apply to $io_cpp"
        # caffe/io.py (array_to_datum, datum_to_array, load_image) fails at run time with numpy 2
        # and scikit-image >= 0.19: ndarray.tostring() and the binary mode of np.fromstring are gone
        # in numpy 2 (-> tobytes / frombuffer), imread's as_grey= became as_gray=.
        io_py="$SRC/python/caffe/io.py"
        sed -i -e 's/arr\.tostring()/arr.tobytes()/' \
               -e 's/np\.fromstring(datum\.data/np.frombuffer(datum.data/' \
               -e 's/as_grey=/as_gray=/' "$io_py"
        ! grep -qE 'tostring\(|np\.fromstring|as_grey' "$io_py" || die "numpy 2 patch did not apply to $io_py"
        # Net._forward runs the layers with the GIL released (Python layers and callbacks take it
        # back), so a GUI thread keeps running while another thread waits for a pass.
        (cd "$SRC" && run patch -p1 -i "$GIL_PATCH") || die "GIL patch $GIL_PATCH did not apply"
        grep -q 'Net_ForwardFromTo_NoGIL' "$SRC/python/caffe/_caffe.cpp" || die "GIL patch missing from _caffe.cpp"
        touch "$CACHE/.source-ready"
    fi

    # ------------------------------------------------------------ [5/6]
    step 5 "building caffe (CPU only) with cmake and make -j$(nproc)"
    echo "    this takes several minutes; follow it with: tail -f $LOG"
    py_inc="$("$VENV_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    py_lib="$("$VENV_PYTHON" -c 'import sysconfig, os; c = sysconfig.get_config_var
p = os.path.join(c("LIBDIR") or "", c("LDLIBRARY") or ""); print(p if os.path.isfile(p) else "")')"
    run "$VENV_PYTHON" -m pip install --quiet numpy || die "pip install numpy into the venv"
    np_inc="$("$VENV_PYTHON" -c 'import numpy; print(numpy.get_include())')" || die "numpy include folder"
    [ -f "$py_inc/Python.h" ] || die "no Python.h in $py_inc (the interpreter's development headers are needed)"
    mkdir -p "$BUILD"
    (cd "$BUILD" && run cmake "$SRC" \
        -DCMAKE_BUILD_TYPE=Release -DCPU_ONLY=ON -DUSE_OPENCV=OFF -DBLAS=Open \
        -DBUILD_python=ON -Dpython_version=3 -DBUILD_docs=OFF -DBUILD_matlab=OFF \
        -DPYTHON_EXECUTABLE="$VENV_PYTHON" -DPYTHON_INCLUDE_DIR="$py_inc" \
        ${py_lib:+-DPYTHON_LIBRARY="$py_lib"} -DNUMPY_INCLUDE_DIR="$np_inc") || die "cmake configure"
    grep -q pycaffe "$BUILD/Makefile" \
        || die "cmake left out the Python interface (boost-python, Python or numpy not found)"
    start=$(date +%s)
    (cd "$BUILD" && run make -j"$(nproc)" caffe pycaffe) || die "make"
    echo "    built in $(( $(date +%s) - start )) s"
    [ -e "$MODULE" ] || die "the build finished but $MODULE is missing"
fi

# ---------------------------------------------------------------- [5/6] hook into the venv
say "[5/6] installing pycaffe's Python dependencies and a .pth file into the venv"
run "$VENV_PYTHON" -m pip install --quiet $PY_DEPS || die "pip install $PY_DEPS"
# The .pth points at a folder holding only a `caffe` symlink to the built python/caffe package:
# caffe's python/ folder also has scripts named train.py, classify.py, detect.py, ... that would
# otherwise become importable top-level modules. _caffe.so finds libcaffe.so through the RPATH
# that cmake gives build-tree binaries ($BUILD/lib), so no LD_LIBRARY_PATH is needed.
mkdir -p "$SITE" && ln -sfn "$SRC/python/caffe" "$SITE/caffe" || die "linking $SITE/caffe"
site_packages="$("$VENV_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$SITE" >"$site_packages/$PTH_NAME" || die "writing $site_packages/$PTH_NAME"
echo "    $site_packages/$PTH_NAME -> $SITE"

# ---------------------------------------------------------------- [6/6]
step 6 "self-check: import caffe and run a tiny net"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/tiny.prototxt" <<'EOF'
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "constant" value: 1 } } }
EOF
"$VENV_PYTHON" - "$tmp/tiny.prototxt" <<'EOF' >"$tmp/check.out" 2>&1
import os, sys
import numpy as np
import caffe
from caffe.proto import caffe_pb2
caffe.set_mode_cpu()
print("pycaffe %s imported from %s" % (caffe.__version__, os.path.dirname(caffe.__file__)))
net = caffe.Net(sys.argv[1], caffe.TEST)
net.blobs["data"].data[...] = 1.0
out = net.forward()["conv"]
assert out.shape == (1, 2, 6, 6) and np.allclose(out, 9.0), (out.shape, out.ravel()[:4])
print("tiny net forward: output 'conv' shape %s, value %.1f" % (out.shape, out.flat[0]))
datum = caffe.io.array_to_datum(np.arange(12, dtype=np.uint8).reshape(3, 2, 2), label=7)
back = caffe.io.datum_to_array(caffe_pb2.Datum.FromString(datum.SerializeToString()))
assert back.tolist() == np.arange(12).reshape(3, 2, 2).tolist()
print("caffe.io Datum round trip ok")
assert getattr(caffe._caffe, "forward_releases_gil", False), "Net._forward still holds the GIL"
print("Net.forward releases the GIL")
EOF
status=$?
cat "$tmp/check.out" >>"$LOG"
[ "$status" -eq 0 ] || die "pycaffe self-check"
sed 's/^/    /' "$tmp/check.out"
echo "done: pycaffe is installed in $(dirname "$(dirname "$VENV_PYTHON")") (build cache: $CACHE)"
