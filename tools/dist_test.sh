#!/usr/bin/env bash
# Distributed testing with torchrun.
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args ...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
# No usable GPU is an error; XCIT_MM_CPU=1 tests on the CPU (gloo) on purpose.
# The interpreter: $PYTHON, else the `python` on PATH (activate the venv
# that tools/install.sh made, or set PYTHON=.venv/bin/python).
set -euo pipefail
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
if [ $# -lt 3 ]; then
  echo "dist_test.sh: error: expected CONFIG CHECKPOINT GPUS [test.py args ...] (got $# argument(s))." >&2
  echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args ...]" >&2
  exit 1
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
DIR=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "dist_test.sh: error: \"$PYTHON\" cannot import torch (this script runs \$PYTHON, else the python on PATH). Activate the venv of tools/install.sh (source .venv/bin/activate) or set PYTHON=.venv/bin/python." >&2
  exit 1
fi

PYTHONPATH="$DIR/..:${PYTHONPATH:-}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
