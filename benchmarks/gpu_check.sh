#!/usr/bin/env bash
# The GPU check, one command: benchmarks/gpu_check.sh [--cpu] (benchmarks/gpu_check.py says what it runs and writes).
# Everything goes to $OUT (a new temporary folder when unset). On a lent GPU, prepare here first (bash
# benchmarks/gpu_prepare.sh), then through the device tool, carrying .gpu:  bash benchmarks/gpu_check.sh
# The interpreter: $PYTHON, else ./.venv/bin/python, else python3 (the GPU image's own torch). What that Python lacks
# of fvcore and its pure-Python needs is installed from the carried wheels (.gpu/wheels) into a folder of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d -t gpu-check-out.XXXXXX)}
mkdir -p "$OUT"
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import fvcore" 2>/dev/null; then
  if ! compgen -G ".gpu/wheels/*.whl" >/dev/null; then
    echo "gpu_check: $PYTHON has no fvcore and .gpu/wheels holds no wheels: run bash benchmarks/gpu_prepare.sh first" >&2
    exit 1
  fi
  site=$(mktemp -d -t gpu-check-site.XXXXXX)
  "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$site" .gpu/wheels/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# The carried CIFAR-10 subset and NAS-Bench-Macro table, where gpu_prepare.sh put them.
if [[ -z ${EDGENAS_SHARED_DATA:-} && -d .gpu/data/cifar10 ]]; then
  export EDGENAS_SHARED_DATA="$PWD/.gpu/data"
fi
exec "$PYTHON" benchmarks/gpu_check.py --out "$OUT" "$@"
