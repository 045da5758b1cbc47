#!/usr/bin/env bash
# Distributed training with torchrun + torch.distributed DDP (mmengine).
#   [MAX_RESTARTS=N] bash tools/dist_train.sh CONFIG GPUS [train.py args ...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT (or MASTER_PORT)
# on every node; GPUS is the number of processes of each node.
# MAX_RESTARTS (default 0) is torchrun's --max-restarts: when a process
# dies, torchrun stops the others and starts all of them again, up to N
# times; tools/train.py then resumes from the newest complete checkpoint of
# the work dir by itself (see tools/README.md, "Elastic restart").
# No usable GPU is an error; XCIT_MM_CPU=1 runs the processes on the CPU
# (gloo backend) on purpose, and so does a torch built without CUDA.
# The interpreter: $PYTHON, else the `python` on PATH (activate the venv
# that tools/install.sh made, or set PYTHON=.venv/bin/python).
set -euo pipefail
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
if [ $# -lt 2 ]; then
  echo "dist_train.sh: error: expected CONFIG GPUS [train.py args ...] (got $# argument(s))." >&2
  echo "usage: bash tools/dist_train.sh CONFIG GPUS [train.py args ...]" >&2
  exit 1
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-${MASTER_PORT:-29500}}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MAX_RESTARTS=${MAX_RESTARTS:-0}
DIR=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "dist_train.sh: error: \"$PYTHON\" cannot import torch (this script runs \$PYTHON, else the python on PATH). Activate the venv of tools/install.sh (source .venv/bin/activate) or set PYTHON=.venv/bin/python." >&2
  exit 1
fi

PYTHONPATH="$DIR/..:${PYTHONPATH:-}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    --max-restarts="$MAX_RESTARTS" \
    "$DIR/train.py" "$CONFIG" --launcher pytorch "${@:3}"
