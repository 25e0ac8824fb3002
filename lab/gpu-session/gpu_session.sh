#!/usr/bin/env bash
# One prepared call for a drawn GPU session (device tool `run`, about 10 minutes of a 15-minute
# budget): GPU tests, GPU bench rows, then the zoo models that CPU cannot train, all at once.
#
# Before the call, here:   python benchmarks/pack_training_data.py T91 BSD200 Train400 -o .carry/train
# The call:                run(command="bash lab/gpu-session/gpu_session.sh 420", carry=[".carry"], timeout_s=600)
# After it:                the files come back under files_at: *.safetensors (continue training
#                          from them with --init, or evaluate them with scn eval before shipping),
#                          bench-gpu-*.json, gpu-tests.log, train-*.log.
#
# $1 = seconds of training (all runs share the GPU at once). Runs as root in the repo root; uses
# the machine's own python3 (torch with CUDA) and this checkout through PYTHONPATH (no install:
# nothing can be fetched there). Every run is stopped with SIGTERM, which makes `scn train`
# write its state and last.safetensors before it exits.
set -uo pipefail
SECONDS_TRAIN=${1:-420}
OUT=${OUT:-/tmp/scn-gpu-out}
DATA=${DATA:-.carry/train}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
scn() { python3 -m scn_deploy.cli "$@"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"

# 1. training first (it is what the GPU is for), in the background
runs=()
# fresh batches (--seed 7), the shipped models' own held-out images (--val-seed 0)
train() {  # name, then scn train arguments
    local name=$1; shift
    scn train --device cuda --out "/tmp/runs/$name" --steps 1000000 --val-every 500 \
        --ckpt-every 500 --seed 7 --val-seed 0 "$@" > "$OUT/train-$name.log" 2>&1 &
    runs+=("$!:$name")
}
T91=$DATA/T91 B200=$DATA/BSD200 T400=$DATA/Train400
# every run continues from the shipped model of its kind (the CPU-trained zoo)
train sr-x2 --task sr --scale 2 --data "$T91" --data "$B200" --init models/sr-x2.safetensors \
    --batch 32 --lr-halve-start 1000000
train sr-x3 --task sr --scale 3 --data "$T91" --data "$B200" --init models/sr-x3.safetensors \
    --batch 32 --lr-halve-start 1000000
train sr-x4 --task sr --scale 4 --data "$T91" --data "$B200" --init models/sr-x4.safetensors \
    --batch 32 --lr-halve-start 1000000
train denoise --task denoise --sigma-range 0 75 --data "$T91" --data "$B200" --batch 32 \
    --init models/denoise.safetensors \
    --lr-halve-start 1000000
train deblock --task deblock --quality-range 10 90 --data "$T91" --data "$B200" --batch 32 \
    --init models/deblock.safetensors \
    --lr-halve-start 1000000

# 2. meanwhile: GPU tests and bench rows (they share the GPU with training: bench figures
#    from this call are marked as measured under load in the JSON file name)
python3 -m pytest -q -p no:cacheprovider -m gpu tests/ > "$OUT/gpu-tests.log" 2>&1  # docs/gpu.md
for p in fp32 fp16; do
    scn bench --model sr-x2 --engine torch --device cuda --precision "$p" --tile 256 --batch 4 \
        --json-file "$OUT/bench-gpu-torch-$p-under-load.json" >> "$OUT/gpu-tests.log" 2>&1
done

sleep "$SECONDS_TRAIN"
for r in "${runs[@]}"; do kill -TERM "${r%%:*}" 2>/dev/null; done
wait
for r in "${runs[@]}"; do
    name=${r#*:}
    # the best validation checkpoint, else the last one
    cp "/tmp/runs/$name/best.safetensors" "$OUT/$name.safetensors" 2>/dev/null \
        || cp "/tmp/runs/$name/last.safetensors" "$OUT/$name.safetensors" 2>/dev/null \
        || echo "no model from $name" >&2
    tail -n 3 "/tmp/runs/$name/log.csv" 2>/dev/null
done
ls -la "$OUT"
