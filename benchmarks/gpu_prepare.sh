#!/usr/bin/env bash
# Prepare, on this machine, what benchmarks/gpu_check.sh needs on a lent GPU machine, which reaches nothing outside:
#   .gpu/wheels  fvcore and its pure-Python needs that the GPU image lacks (iopath, yacs, termcolor), as wheels; the
#                rest of what they require (numpy, pyyaml, tqdm, pillow, tabulate, portalocker, typing-extensions)
#                is in the image (.library/device/KINDS.md)
#   .gpu/data    the first TRAIN_PER_CLASS training and TEST_PER_CLASS test JPEGs of each CIFAR-10 class (default
#                2,500 and 500), the same files as the shared data's, and the NAS-Bench-Macro table
# .gpu is ignored by git; carry it: the device call's carry is [".gpu"]. Prints what travels and its size, which must
# stay within the device tool's 64 MiB (this working tree's tracked and untracked-not-ignored files count too).
# Usage: bash benchmarks/gpu_prepare.sh   (PYTHON, TRAIN_PER_CLASS, TEST_PER_CLASS and SHARED_DATA may be set)
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN_PER_CLASS=${TRAIN_PER_CLASS:-2500}
TEST_PER_CLASS=${TEST_PER_CLASS:-500}
LIMIT=$((64 * 1024 * 1024))
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if [[ -z ${SHARED_DATA:-} ]]; then
  for folder in /work/shared/data ../shared/data; do
    if [[ -d $folder/cifar10/train && -f $folder/nas-bench-macro/nas-bench-macro_cifar10.json ]]; then
      SHARED_DATA=$folder
      break
    fi
  done
fi
if [[ -z ${SHARED_DATA:-} ]]; then
  echo "gpu_prepare: no shared data (cifar10/ and nas-bench-macro/) in /work/shared/data or ../shared/data; set SHARED_DATA" >&2
  exit 1
fi

# Built beside, then swapped in: an interrupted run never leaves a half-filled .gpu.
next=.gpu.next
rm -rf "$next"
mkdir -p "$next/wheels" "$next/data/cifar10" "$next/data/nas-bench-macro"
# fvcore and iopath are published as source only: built into (pure-Python) wheels here. Versions as pinned here.
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$next/wheels" fvcore==0.1.5.post20221221 iopath==0.1.10
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
  --platform any --dest "$next/wheels" yacs==0.1.8 termcolor==3.3.0
for split in train test; do
  count=$TRAIN_PER_CLASS
  [[ $split == test ]] && count=$TEST_PER_CLASS
  for class_dir in "$SHARED_DATA/cifar10/$split"/*/; do
    class=$(basename "$class_dir")
    mkdir -p "$next/data/cifar10/$split/$class"
    # sed reads every name (head would stop early and break the pipe under pipefail).
    find "$class_dir" -maxdepth 1 -type f -name '*.jpg' -printf '%f\n' | sort | sed -n "1,${count}p" \
      | sed "s|^|$class_dir|" | xargs -d '\n' cp -t "$next/data/cifar10/$split/$class"
  done
done
cp "$SHARED_DATA"/nas-bench-macro/{nas-bench-macro_cifar10.json,README.md,LICENSE} "$next/data/nas-bench-macro/"
rm -rf .gpu
mv "$next" .gpu

# Bytes, as the device tool counts them (xargs may split the list: every "total" line is summed).
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null \
  | awk '$2 == "total" {s += $1} END {print s + 0}')
carried=$(du -sb .gpu | cut -f 1)
total=$((tree + carried))
echo "carried: .gpu ($(ls .gpu/wheels | tr '\n' ' '); $(find .gpu/data/cifar10/train -type f | wc -l) training and $(find .gpu/data/cifar10/test -type f | wc -l) test images of CIFAR-10; the NAS-Bench-Macro table)"
echo "carry: [\".gpu\"]"
awk -v c="$carried" -v t="$tree" 'BEGIN {m = 1048576; printf "size: %.1f MiB carried + %.1f MiB working tree = \
%.1f MiB of the 64 MiB that may travel (bytes, du -b)\n", c / m, t / m, (c + t) / m}'
if ((total > LIMIT)); then
  echo "gpu_prepare: $total bytes would travel, over the 64 MiB limit: lower TRAIN_PER_CLASS or TEST_PER_CLASS" >&2
  exit 1
fi
