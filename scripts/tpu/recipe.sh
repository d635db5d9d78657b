#!/usr/bin/env bash
# The paper's whole recipe (`landmark-jax recipe`) on a Cloud TPU VM pod slice, started from
# your workstation with gcloud: the same command on every worker (--worker=all), joined by
# the explicit --coordinator-address/--num-processes/--process-id flags. Resumable: run this
# script again after a preemption (recreate the TPU first) and every finished step is
# skipped, training resuming from its last checkpoint.
#
# What to edit: the settings block below (or set them in the environment). Each worker needs
# the checkout at CHECKOUT with its virtual environment in CHECKOUT/.venv
# (`pip install -e ".[tpu]"`-style: jax[tpu]), and DATA and WORKDIR on storage every worker
# sees (a Filestore NFS share or a gcsfuse mount, at the same path on each).
#
#   MODE=dry-run  bash scripts/tpu/recipe.sh   every step, its command line, what lacks
#   MODE=estimate bash scripts/tpu/recipe.sh   hours and chip-hours (DEVICE_CHECK on worker 0)
#   MODE=run      bash scripts/tpu/recipe.sh   start it (in the background on each worker)
#   MODE=logs     bash scripts/tpu/recipe.sh   follow worker 0's log
#
# MODE=dry-run asks worker 0, so it needs the TPU; before creating one, the same plan:
#   landmark-jax recipe --data DATA --workdir WORKDIR --dry-run --plan-processes <workers>
#
# Unverified on a real pod (no TPU has been lent to this project): the one-process steps
# (clean, index, calibrate, evaluate, export) run on worker 0 with JAX_PLATFORMS=cpu
# (--single-steps-platform cpu), since a single worker cannot use the slice's chips alone.
# docs/recipe.md has the whole story.
set -euo pipefail

# ---- settings ------------------------------------------------------------------------
TPU_NAME="${TPU_NAME:-my-tpu}"                    # the TPU VM (pod slice)
ZONE="${ZONE:-us-central2-b}"
PROJECT="${PROJECT:-}"                            # empty: gcloud's default project
CHECKOUT="${CHECKOUT:-~/landmark_jax}"            # on every worker, with .venv/ inside
DATA="${DATA:-/mnt/shared/gldv2}"                 # GLDv2 layout, seen by every worker
WORKDIR="${WORKDIR:-/mnt/shared/runs/gldv2-recipe}"
CONFIG="${CONFIG:-default}"
PRETRAINED="${PRETRAINED-torchvision}"            # empty: the config's own
OVERRIDES="${OVERRIDES:-}"                        # key=value … for every step
RECIPE_ARGS="${RECIPE_ARGS:-}"                    # more `landmark-jax recipe` flags
DEVICE_CHECK="${DEVICE_CHECK:-}"                  # benchmark device's JSON, on worker 0
PORT="${PORT:-8476}"                              # step k's coordinator: PORT + k on worker 0
MODE="${MODE:-run}"                               # run | dry-run | estimate | logs
# ---------------------------------------------------------------------------------------

case "$MODE" in
  run|dry-run|estimate|logs) ;;
  *) echo "recipe.sh: MODE must be run, dry-run, estimate or logs, not $MODE" >&2; exit 2;;
esac
if ! command -v gcloud > /dev/null; then
  echo "recipe.sh: gcloud is not installed (https://cloud.google.com/sdk); without a TPU," \
    "\`landmark-jax recipe ... --dry-run --plan-processes N\` shows the same plan here" >&2
  exit 2
fi

gcloud_tpu=(gcloud compute tpus tpu-vm)
where=(--zone "$ZONE")
if [[ -n "$PROJECT" ]]; then where+=(--project "$PROJECT"); fi

# The workers' internal addresses, worker 0 first: the coordinator and the process count
# (gcloud lists them separated by ";").
read -r -a ips <<< "$("${gcloud_tpu[@]}" describe "$TPU_NAME" "${where[@]}" \
  --format='value(networkEndpoints[].ipAddress)' | tr ';,' '  ')"
workers=${#ips[@]}
if (( workers == 0 )); then
  echo "recipe.sh: no workers found for TPU $TPU_NAME in $ZONE (gcloud's message above;" \
    "TPU_NAME, ZONE and PROJECT in the settings)" >&2
  exit 2
fi
attempt="$(date -u +%Y%m%dT%H%M%SZ)"  # new at each start, the same on every worker

recipe=(python -m landmark_jax recipe --data "$DATA" --workdir "$WORKDIR" --config "$CONFIG")
if [[ -n "$PRETRAINED" ]]; then recipe+=(--pretrained "$PRETRAINED"); fi
read -r -a extra <<< "$RECIPE_ARGS"
read -r -a overrides <<< "$OVERRIDES"
recipe+=("${extra[@]}" "${overrides[@]}")
quoted="$(printf '%q ' "${recipe[@]}")"

# Worker i's index, from the TPU VM's metadata (the key JAX's own TPU detection reads);
# expanded on the worker, not here.
# shellcheck disable=SC2016
worker_id='id=$(curl -s -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number)'
prologue="cd $CHECKOUT && source .venv/bin/activate"
case "$MODE" in
  dry-run)
    command="$prologue && $quoted --dry-run --plan-processes $workers"
    target=(--worker=0);;
  estimate)
    command="$prologue && $quoted --estimate-only --plan-processes $workers --device-check $(printf %q "$DEVICE_CHECK")"
    target=(--worker=0);;
  logs)
    command="tail -n 200 -f $(printf %q "$WORKDIR")/logs/worker-0.log"
    target=(--worker=0);;
  run)
    flags="--coordinator-address ${ips[0]}:$PORT --num-processes $workers --attempt $attempt"
    if (( workers > 1 )); then flags+=" --single-steps-platform cpu"; fi
    if [[ -n "$DEVICE_CHECK" ]]; then flags+=" --device-check $(printf %q "$DEVICE_CHECK")"; fi
    logs="$(printf %q "$WORKDIR")/logs"
    # setsid nohup: the run outlives this ssh session; each worker logs to its own file.
    command="$prologue && $worker_id && mkdir -p $logs && setsid nohup $quoted $flags --process-id \$id > $logs/worker-\$id.log 2>&1 < /dev/null &"
    target=(--worker=all);;
  *)
    echo "recipe.sh: MODE must be run, dry-run, estimate or logs, not $MODE" >&2
    exit 2;;
esac
echo "recipe.sh: $MODE on $TPU_NAME ($workers workers, coordinator ${ips[0]}:$PORT, attempt $attempt)"
exec "${gcloud_tpu[@]}" ssh "$TPU_NAME" "${where[@]}" "${target[@]}" --command "$command"
