#!/usr/bin/env bash
# Issue 24, goal 3 on one GPU, in one call (prepared on a machine without a GPU; NOT RUN yet):
#   1. benchmarks/bench_flow.py --device cuda: batch --format npy clips/s of r3d_18 (local
#      with decoders; Ray's two stages where Ray is installed) against the model's own
#      forward throughput at the same batch size (target >= 0.8x), -> RESULTS_flow_cuda.md;
#   2. benchmarks/gpu_tubes.py: the tubes of --device cuda equal those of --device cpu
#      (tiny-actions asserted, r3d_18 reported), -> RESULTS_gpu_tubes.md.
# Both results files are also copied to $OUT when it is set (the device tool's output folder).
#
# The device machines here have python3 with CUDA torch and torchvision but not PyAV (av)
# nor Ray, and no ../shared. Prepare once, in the checkout that travels (its root):
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu/whl .gpu/clips
#   cp ../shared/videos/* .gpu/clips/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     -d .gpu/whl av==18.1.0
# (Ray 2.60 is 240 MB installed here: its wheel and needs are likely over the 64 MiB a call
# carries; without Ray the Ray lines are left out, and the run says so.) Then run, carrying .gpu, with a 600 s limit:
#   bash benchmarks/gpu_check.sh
# Its parts take about: forward + local lines 2-4 min on an H100 (estimate, not measured).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
cd "$root"
export PYTHONUNBUFFERED=1
if compgen -G "$root/.gpu/whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$root"/.gpu/whl/*.whl
  export PYTHONPATH="/tmp/site:$root/src"
else
  export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -d "$root/.gpu/clips" ]; then
  export SALIENCY_TUBES_CLIPS="$root/.gpu/clips"
fi
nvidia-smi -L
"$py" -c "import torch, av; assert torch.cuda.is_available(), 'no CUDA'; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'av', av.__version__)"
engines=local
if "$py" -c "import ray.data" 2>/dev/null; then engines=local,ray; else echo "ray is not installed: the Ray lines are left out"; fi
cores=$(nproc)
cd benchmarks
# r3d_18, batch 16: one local worker with cores-2 decoding threads; Ray: decode actors on
# the CPUs the GPU actor leaves. 16 and 64 copies of arm_wrestling.mp4, 2 rounds.
"$py" bench_flow.py --device cuda --model r3d_18 --batch-size 16 --decoders $((cores - 2)) \
  --threads 2 --rounds 2 --small 16 --large 64 --repeats 20 --engines "$engines"
"$py" gpu_tubes.py --device cuda --models tiny-actions,r3d_18 || status=$?
if [ -n "${OUT:-}" ]; then cp RESULTS_flow_cuda.md RESULTS_gpu_tubes.md "$OUT"/; fi
exit "${status:-0}"
