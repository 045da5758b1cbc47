#!/usr/bin/env bash
# Training on a Slurm cluster.
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [args ...]
# Preemption: the runtime bases' xcit_mm.PreemptionHook saves the current
# iteration on SIGTERM / SIGUSR1 and exits with status 75. Ask Slurm for the
# signal ahead of the time limit, and let the job requeue itself (it then
# resumes by itself, see tools/README.md, "Preemption without lost work"):
#   SRUN_ARGS="--signal=USR1@90" bash tools/slurm_train.sh PARTITION JOB \
#       CONFIG work_dirs/JOB --cfg-options default_hooks.preemption.requeue=True
# (requeue needs a batch job: the same srun line in an sbatch script with
# "#SBATCH --requeue --signal=USR1@90").
usage() {
  sed -n '2,/^usage()/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
if [ $# -lt 3 ]; then
  echo "slurm_train.sh: error: expected PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args ...] (got $# argument(s))." >&2
  echo "usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args ...]" >&2
  exit 1
fi
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=${4:-work_dirs/$JOB_NAME}
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PY_ARGS=${@:5}
DIR=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$DIR/..:${PYTHONPATH:-}" \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    python -u "$DIR/train.py" "${CONFIG}" --work-dir="${WORK_DIR}" --launcher="slurm" ${PY_ARGS}
