#!/usr/bin/env bash
# Set up the tested xcit_mm stack in a virtual environment.
#
#   bash tools/install.sh [--light] [--dry-run] [VENV_DIR]
#       (options in any order; default VENV_DIR: .venv in the repo root;
#       --dry-run prints the plan -- venv, light or full, torch and where
#       it comes from -- and installs nothing)
#
# Full (the default): torch 2.14.1 + torchvision 0.29.1, mmcv 2.1.0 *with
# its compiled ops*, the pins of requirements/tested.txt and xcit_mm itself
# (editable). Needed for the tests, detection and segmentation.
#
# --light: the same, but mmcv-lite 2.1.0 (pure Python, no compiler) in
# place of the compiled mmcv. Enough for classification, the digits demo
# (tools/demo.py) and the analysis tools on classifiers: mmpretrain and
# xcit_mm never import mmcv.ops. mmdet and mmseg are installed but cannot
# import (they need mmcv.ops); tools/train.py and tools/test.py say so for
# a detection or segmentation config. Running the script again without
# --light upgrades the same environment: it uninstalls mmcv-lite first
# (mmcv and mmcv-lite both install the `mmcv` package: installed side by
# side, removing one would delete files of the other).
#
# mmcv 2.1.0 is published on PyPI only as a source distribution. The full
# install
#   1. uses a prebuilt wheel when one is found in ../shared/wheels (the team's
#      cache), $XCIT_MM_WHEELS or ~/.cache/xcit_mm/wheels/<torch-CUDA-python>
#      and it passes tools/misc/mmcv_wheel.py check (CUDA ops on a GPU), else
#   2. builds it from source (about 20 minutes on 2 cores) and keeps the wheel
#      in ~/.cache/xcit_mm/wheels/<torch-CUDA-python>, so the next install
#      with the same torch, CUDA and Python is quick.
# The source build needs --no-build-isolation (torch must be installed), a
# setuptools that still has pkg_resources (<81), ninja, and one patch:
# torch >= 2.14's headers require C++20 but mmcv 2.1.0's setup.py forces
# -std=c++17, so the flag is changed to -std=c++20.
#
# torch on a machine without an NVIDIA GPU (no nvidia-smi): PyPI's Linux
# torch is the CUDA build, which pulls ~4 GB of CUDA libraries (a 6 GB
# venv). Without nvidia-smi the script takes torch from PyTorch's CPU wheel
# index ($CPU_INDEX below) when that index answers, else from the default
# index, and says which and why. XCIT_TORCH_INDEX=URL picks the index
# yourself (XCIT_TORCH_INDEX= , empty: the default index, no probe). The
# index is added to pip's (--extra-index-url): torch==2.14.1+cpu ranks above
# 2.14.1, and torch's dependencies still come from the default index.
#
# Environment: PYTHON (interpreter for the venv, default python3),
# XCIT_TORCH (pip spec for torch, default the tested pins),
# XCIT_TORCH_INDEX (see above), XCIT_TORCH_CPU_INDEX (a mirror of the CPU
# wheel index, probed in its place), MAX_JOBS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USAGE="usage: bash tools/install.sh [--light] [--dry-run] [VENV_DIR]"
LIGHT=0
DRY_RUN=0
VENV=
for arg in "$@"; do
  case "$arg" in
    --light) LIGHT=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,40p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "install.sh: unknown option $arg ($USAGE)" >&2; exit 2 ;;
    *)
      if [ -n "$VENV" ]; then
        echo "install.sh: one VENV_DIR only, got $VENV and $arg ($USAGE)" >&2
        exit 2
      fi
      VENV=$arg ;;
  esac
done
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${XCIT_TORCH:-"torch==2.14.1 torchvision==0.29.1"}
MMCV_VERSION=2.1.0
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/xcit_mm/wheels
CPU_INDEX=${XCIT_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

log() { echo "[install] $*"; }

# Where torch comes from: TORCH_INDEX (empty: pip's default index) and why.
if [ -n "${XCIT_TORCH_INDEX+set}" ]; then
  TORCH_INDEX=$XCIT_TORCH_INDEX
  WHY="XCIT_TORCH_INDEX"
elif command -v nvidia-smi >/dev/null 2>&1; then
  TORCH_INDEX=
  WHY="nvidia-smi found: the CUDA build"
elif "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=10)" \
    "$CPU_INDEX" >/dev/null 2>&1; then
  TORCH_INDEX=$CPU_INDEX
  WHY="no nvidia-smi: the CPU build"
else
  TORCH_INDEX=
  WHY="no nvidia-smi, but $CPU_INDEX cannot be reached: the default index's torch (on Linux the CUDA build, ~6 GB)"
fi
TORCH_FROM=${TORCH_INDEX:-the default index}
log "plan: $([ "$LIGHT" = 1 ] && echo light || echo full) install into $VENV; $TORCH_SPEC from $TORCH_FROM ($WHY)"
if [ "$DRY_RUN" = 1 ]; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

# mmcv's setup.py needs pkg_resources, which setuptools 81 removed; torch
# 2.14 requires setuptools >= 77.0.3. Name the range in every install that
# could otherwise pull the newest setuptools.
SETUPTOOLS="setuptools>=77.0.3,<81"
log "build tools"
if [ "$LIGHT" = 1 ]; then
  "${PIP[@]}" install "$SETUPTOOLS" wheel
else
  "${PIP[@]}" install "$SETUPTOOLS" wheel ninja
fi
log "torch: $TORCH_SPEC from $TORCH_FROM"
TORCH_ARGS=()
# an extra index: its torch==X+cpu ranks above the default index's X (a
# local version label), and the rest still comes from the default index
[ -n "$TORCH_INDEX" ] && TORCH_ARGS=(--extra-index-url "$TORCH_INDEX")
# shellcheck disable=SC2086
"${PIP[@]}" install "${TORCH_ARGS[@]}" "$SETUPTOOLS" $TORCH_SPEC

# mmcv wheel cache: one folder per torch + CUDA + Python (a shared home
# must not hand a wheel built for another torch, or without CUDA ops on a
# login node, to a GPU node); tools/misc/mmcv_wheel.py knows the key and
# checks the CUDA ops when a GPU is visible.
CACHE="$CACHE_ROOT/$("$PY" "$ROOT/tools/misc/mmcv_wheel.py" key)"
WHEEL_DIRS=("$CACHE")
[ -d "$ROOT/../shared/wheels" ] && WHEEL_DIRS+=("$(cd "$ROOT/../shared/wheels" && pwd)")
[ -n "${XCIT_MM_WHEELS:-}" ] && WHEEL_DIRS+=("$XCIT_MM_WHEELS")
# A source build gets CUDA ops where torch sees a GPU. On a node without
# one (a cluster's login node) set FORCE_CUDA=1 and TORCH_CUDA_ARCH_LIST
# (e.g. "8.0;9.0") yourself; otherwise the build makes the CPU ops only,
# which is what a CPU machine with PyPI's CUDA build of torch needs.
if [ -z "${FORCE_CUDA:-}" ] && "$PY" -c \
    "import torch, sys; sys.exit(0 if torch.version.cuda and torch.cuda.is_available() else 1)"; then
  export FORCE_CUDA=1
fi
# mmcv's own requirements first (at the tested pins), so that the check of
# a prebuilt wheel can import it (pip installs that wheel with --no-deps)
# shellcheck disable=SC2046
"${PIP[@]}" install "$SETUPTOOLS" packaging pillow \
  $(grep -E '^(numpy|opencv-python|mmengine)==' "$ROOT/requirements/tested.txt")

have_mmcv_ops() {
  "$PY" "$ROOT/tools/misc/mmcv_wheel.py" check "$MMCV_VERSION"
}

have_mmcv_lite() {
  "$PY" -m pip --disable-pip-version-check show -q mmcv-lite >/dev/null 2>&1
}

if [ "$LIGHT" = 1 ]; then
  if have_mmcv_ops; then
    log "mmcv $MMCV_VERSION with ops already installed (kept: it is a superset of mmcv-lite)"
  else
    log "mmcv-lite $MMCV_VERSION (no compiled ops)"
    "${PIP[@]}" install "mmcv-lite==$MMCV_VERSION"
  fi
else
  if have_mmcv_lite; then
    # mmcv-lite and mmcv share the `mmcv` package folder: pip would install
    # mmcv over it and keep both records, and a later removal of mmcv-lite
    # would delete files that mmcv needs.
    log "replacing mmcv-lite by mmcv $MMCV_VERSION with its compiled ops"
    "${PIP[@]}" uninstall -y mmcv-lite
  fi
  if have_mmcv_ops; then
    log "mmcv $MMCV_VERSION with ops already installed"
  else
    links=()
    for d in "${WHEEL_DIRS[@]}"; do links+=(--find-links "$d"); done
    # --force-reinstall: a broken mmcv 2.1.0 already installed (no ops, or
    # ops built for another torch) would otherwise "already satisfy" the
    # pin, and a good cached wheel would be skipped for a source build
    if "${PIP[@]}" install --no-index --no-deps --force-reinstall "${links[@]}" "mmcv==$MMCV_VERSION" 2>/dev/null \
        && have_mmcv_ops; then
      log "mmcv $MMCV_VERSION installed from a prebuilt wheel (${WHEEL_DIRS[*]})"
    else
      log "no compatible prebuilt mmcv wheel: building mmcv $MMCV_VERSION from source (~20 min on 2 cores)"
      tmp=$(mktemp -d)
      # --no-build-isolation: pip reads the sdist's metadata with setup.py,
      # which imports torch
      "${PIP[@]}" download --no-deps --no-build-isolation --no-binary :all: \
        "mmcv==$MMCV_VERSION" -d "$tmp"
      tar -xzf "$tmp/mmcv-$MMCV_VERSION.tar.gz" -C "$tmp"
      src="$tmp/mmcv-$MMCV_VERSION"
      if "$PY" -c "import torch, sys; v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(0 if v >= (2, 14) else 1)"; then
        log "torch >= 2.14: patching mmcv's -std=c++17 to -std=c++20"
        sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
        grep -q -- '-std=c++20' "$src/setup.py" || { echo "mmcv setup.py patch failed" >&2; exit 1; }
      fi
      mkdir -p "$CACHE"
      MAX_JOBS=${MAX_JOBS:-2} MMCV_WITH_OPS=1 "${PIP[@]}" wheel --no-build-isolation --no-deps "$src" -w "$CACHE"
      "${PIP[@]}" install --no-index --no-deps --force-reinstall --find-links "$CACHE" "mmcv==$MMCV_VERSION"
      rm -rf "$tmp"
    fi
  fi
fi

log "OpenMMLab stack and test tools (requirements/tested.txt)"
"${PIP[@]}" install "$SETUPTOOLS" -r "$ROOT/requirements/tested.txt" packaging pillow
# ONNX export and the onnxruntime backend (optional at run time: the
# export tool names this file when they are missing); both modes.
log "deployment tools (requirements/deploy.txt: onnx, onnxruntime, onnxscript)"
"${PIP[@]}" install -r "$ROOT/requirements/deploy.txt"
# mim without its opendatalab dependency (which pins setuptools 60); what
# mim imports is pinned in requirements/tested.txt
"${PIP[@]}" install --no-deps openmim==0.3.9
log "xcit_mm (editable)"
"${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT"
if [ "$LIGHT" = 1 ] && ! have_mmcv_ops; then
  "$PY" -c "import xcit_mm, mmpretrain, timm; print('[install] ok (light: classification and tools/demo.py): xcit_mm', xcit_mm.__version__, 'in', '$VENV')"
  log "for the tests, detection and segmentation run: bash tools/install.sh $VENV"
else
  have_mmcv_ops || { echo "mmcv.ops does not import after install" >&2; exit 1; }
  "$PY" -c "import xcit_mm, mmpretrain, mmdet, mmseg, timm; print('[install] ok: xcit_mm', xcit_mm.__version__, 'in', '$VENV')"
fi
