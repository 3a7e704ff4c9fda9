#!/usr/bin/env bash
# The GPU-step and mixed-precision stages of a device run (issues 13 and 16), added to the run
# that ../shared/device/prepare.sh writes. From the project root on your own machine:
#   bash ../shared/device/prepare.sh && bash benches/device_plan.sh
# then one device `run` with  command: bash .device/run.sh  carry: [".gl", ".device"]  timeout_s: 480.
#
# It replaces the prepared run's `compare` and `stream` stages (lavapipe-era checks that issue 13
# does not need) with, in order of value:
#   1. the matmul goals: `batchscope gemm` at 4096³ and 8192³ in NN, NT and TN, f32 and f16
#      (every candidate timed; the cooperative-matrix kernel where offered), with the ratios to
#      cuBLAS SGEMM (TF32 off) and HGEMM from benches/peer_gemm.py in the same run; then
#      `gemm --ceilings` at 8192³: what the tiled kernels' inner loop, the fp32 FMA and the
#      tensor-core loops (from registers and from workgroup memory) reach with no memory
#      traffic, each product held against its loop's ceiling (the staged loop in all three tile-load
#      widths); then the f16 `gemm` again with BATCHSCOPE_COOP_PREFETCH=1 (the 32x32 kernels'
#      loop pipelined in registers) beside the first's f16 rows;
#   2. mixed precision: the tensor-core parity tests of the nine cooperative kernels (32x32,
#      64x64 and staged blocks, each with f16, vec4<f16> and 16-byte tile loads), plain and with the
#      fused epilogues (ignored on lavapipe), and of the staged kernel at 16x16
#      (tests/coop_staged.rs), and a sweep of both precisions in one table (PyTorch AMP is in
#      the peers stage's mlp_torch_amp rows), by the default rule and with gpu.autotune = "on"
#      (each product's fastest kernel, the f16 ones among packed and the nine cooperative ones);
#   3. the wide model 784-4096-4096-10 (the B = 2048 cliff): a sweep 256..16384 and a profile
#      at 1024, 2048 and 4096 (every dispatch named and timed: which one doubles);
#   4. `tune` of the default model's step shapes (cache in results), then the same sweep and
#      profile with gpu.autotune = "cached", so one run has the off/cached pair side by side;
#   5. the f16 step's profile at B = 32 and 4096 beside the same with BATCHSCOPE_FUSED_UNSCALE=0
#      (the gradients unscaled by 3 dispatches after the backward pass: 18 instead of 15), what
#      unscaling in the weight-gradient products is worth;
#   6. what each fusion is worth: a profile at B = 1 and 32 with BATCHSCOPE_FUSED_UPDATE=0 (each
#      layer's dgrad, wgrad product, then its paired update: 11 dispatches) beside the prepared
#      profile (6: the output layer with the loss, each hidden-input layer's dgrad, wgrad and
#      step in one dispatch); the same with BATCHSCOPE_FUSED_HEAD=0 (7: the output layer's
#      product, then the loss with its sums) and BATCHSCOPE_FUSED_BACKWARD=0 (8: the dgrads on
#      their own); B = 64, 128, 256 with the fusion extended to k = 256
#      (BATCHSCOPE_FUSED_UPDATE=256: 12 -> 9 dispatches) beside the default there: whether
#      WGRAD_UPDATE_MAX_K should grow; and B = 64, 256 with BATCHSCOPE_STAGED_BIAS_GRAD=0 (the
#      bias gradients as 3 col_sum dispatches: 15 instead of 12), what summing them in the
#      products is worth;
#   7. what wgpu's shader runtime checks cost (batchscope compiles trusted modules without
#      them): the f32 GEMMs and a profile at B = 1, 32, 4096 with BATCHSCOPE_SHADER_CHECKS=1,
#      beside the same profile without.
# The prepared peers stage runs peer_ref.py without its PyTorch-CPU and JAX rows (the CPU issue
# is closed; JAX compiles every batch size): the GPU rows, sooner.
# It also repacks the test binaries into one long-window xz stream (71 MB as the prepared
# tests.tgz, 14 MB so; the carry holds 64 MiB in all) and refuses a carry over the limit.
# Every stage is bounded by `timeout`, and an added stage that would start past 430 s is skipped
# (typically these take about 220 s after the prepared part's 2-3 minutes), so the run ends
# inside the 480 s limit with its results.tgz.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
run=.device/run.sh
[ -f "$run" ] || { echo "error: $run missing: run ../shared/device/prepare.sh first" >&2; exit 2; }
grep -q '^t done' "$run" || { echo "error: $run has no 't done' line to insert before" >&2; exit 2; }
extra=$(mktemp)
cat > "$extra" <<'EXTRA'
t gemm_peers; timeout 60 python3 $D/peer_gemm.py --sizes 4096,8192 > $R/peers_gemm.csv 2> $R/peers_gemm.err; cat $R/peers_gemm.csv; tail -3 $R/peers_gemm.err
t gemm; timeout 140 $B gemm --sizes 4096,8192 --layouts nn,nt,tn --precision f32,f16 --peers $R/peers_gemm.csv --out $R/gemm 2>&1 | tail -24
t ceilings; timeout 45 $B gemm --sizes 8192 --layouts nn --precision f32,f16 --ceilings --out $R/gemm_ceilings 2>&1 | tail -22
t gemm_f16_prefetch; timeout 60 env BATCHSCOPE_COOP_PREFETCH=1 $B gemm --sizes 4096,8192 --layouts nn,nt,tn --precision f16 --peers $R/peers_gemm.csv --out $R/gemm_f16_prefetch 2>&1 | tail -14
t coop_parity; (cd $W && timeout 40 /tmp/tests/f16_parity --ignored --nocapture 2>&1 | tail -20; timeout 40 /tmp/tests/f16_epilogue --ignored --nocapture 2>&1 | tail -12; timeout 30 /tmp/tests/coop_staged --ignored --nocapture 2>&1 | tail -6)
t precision_sweep; timeout 60 $B sweep --precision f32,f16 --max-batch 65536 --set data.n_train=65536 --out $R/sweep_precision 2>&1 | tail -40
t precision_sweep_tuned; timeout 90 env BATCHSCOPE_AUTOTUNE_CACHE=$R/autotune_precision.json $B sweep --precision f32,f16 --set 'gpu.autotune="on"' --max-batch 65536 --set data.n_train=65536 --out $R/sweep_precision_tuned 2>&1 | tail -40
t wide_sweep; timeout 45 $B sweep --set 'model.hidden=[4096, 4096]' --min-batch 256 --max-batch 16384 --set data.n_train=16384 --out $R/sweep_wide 2>&1 | tail -16
t wide_profile; timeout 40 $B profile --set 'model.hidden=[4096, 4096]' --batch 1024 --batch 2048 --batch 4096 --out $R/profile_wide 2>&1 | tail -60
export BATCHSCOPE_AUTOTUNE_CACHE=$R/autotune.json
t tune; timeout 60 $B tune --batch-sizes 1,32,512,4096,65536 --out $R/tune 2>&1 | tail -30
t sweep_tuned; timeout 45 $B sweep --max-batch 65536 --set data.n_train=65536 --set 'gpu.autotune="cached"' --out $R/sweep_tuned 2>&1 | tail -24
t profile_tuned; timeout 40 $B profile --set 'gpu.autotune="cached"' --batch 1 --batch 32 --batch 4096 --out $R/profile_tuned 2>&1 | tail -40
t f16_profile; timeout 30 $B profile --precision f16 --batch 32 --batch 4096 --out $R/profile_f16 2>&1 | tail -30
t f16_unfused_unscale_profile; timeout 30 env BATCHSCOPE_FUSED_UNSCALE=0 $B profile --precision f16 --batch 32 --batch 4096 --out $R/profile_f16_unfused_unscale 2>&1 | tail -30
t unfused_update_profile; timeout 30 env BATCHSCOPE_FUSED_UPDATE=0 $B profile --batch 1 --batch 32 --out $R/profile_unfused_update 2>&1 | tail -30
t unfused_head_profile; timeout 25 env BATCHSCOPE_FUSED_HEAD=0 $B profile --batch 1 --batch 32 --out $R/profile_unfused_head 2>&1 | tail -30
t unfused_backward_profile; timeout 25 env BATCHSCOPE_FUSED_BACKWARD=0 $B profile --batch 1 --batch 32 --out $R/profile_unfused_backward 2>&1 | tail -30
t fused_depth_profile; timeout 40 env BATCHSCOPE_FUSED_UPDATE=256 $B profile --batch 64 --batch 128 --batch 256 --out $R/profile_fused256 2>&1 | tail -30
t default_depth_profile; timeout 40 $B profile --batch 64 --batch 128 --batch 256 --out $R/profile_fused32 2>&1 | tail -30
t unstaged_bias_profile; timeout 30 env BATCHSCOPE_STAGED_BIAS_GRAD=0 $B profile --batch 64 --batch 256 --out $R/profile_unstaged_bias 2>&1 | tail -20
t gemm_checked; timeout 45 env BATCHSCOPE_SHADER_CHECKS=1 $B gemm --sizes 4096,8192 --layouts nn,nt,tn --precision f32 --out $R/gemm_checked 2>&1 | tail -12
t profile_checked; timeout 30 env BATCHSCOPE_SHADER_CHECKS=1 $B profile --batch 1 --batch 32 --batch 4096 --out $R/profile_checked 2>&1 | tail -30
t profile_trusted; timeout 30 $B profile --batch 1 --batch 32 --batch 4096 --out $R/profile_trusted 2>&1 | tail -30
EXTRA
cp benches/peer_gemm.py .device/
python3 - "$run" "$extra" <<'PY'
import sys
run, extra = sys.argv[1], open(sys.argv[2]).read()
lines = open(run).read().splitlines(keepends=True)
out = []
for line in lines:
    if line.startswith("t compare;") or line.startswith("t stream;"):
        continue
    if line.startswith("t peers;"):
        old = "python3 peer_ref.py --max-batch 65536"
        if old not in line:
            sys.exit(f"error: {run}'s peers stage does not run {old!r}")
        line = line.replace(old, old + " --no-cpu --no-jax")
    if line.startswith("t done"):
        # Stages in order of value; one that would start past 430 s is skipped (said in the
        # log), so the run ends inside the device's 480 s and results.tgz comes back.
        out.append("in_time() { [ $(( $(date +%s) - T0 )) -lt 430 ] || { echo \"=== skipped $1: past 430 s\"; false; }; }\n")
        for e in extra.splitlines(keepends=True):
            if e.startswith("t "):
                name = e[2:].split(";")[0]
                e = f"if in_time {name}; then {e.rstrip()}; fi\n"
            out.append(e)
    out.append(line)
open(run, "w").writelines(out)
PY
rm -f "$extra"
# The carry is limited to 64 MiB in all: the prepared tests.tgz holds 32 stripped test
# binaries (170 MB) in 71 MB, gzip's 32 KiB window seeing one binary at a time. One xz stream
# with a window over all of them shares what they have in common (std, wgpu, naga): 14 MB. The device unpacks it with Python's
# tarfile (xz-utils may be missing there; python3 is not, the peers need it).
if [ -f .device/tests.tgz ]; then
  tmp=$(mktemp -d)
  tar xzf .device/tests.tgz -C "$tmp"
  tar -C "$tmp" -cf - tests | xz -6 --lzma2=preset=6,dict=384MiB > .device/tests.tar.xz
  rm -rf "$tmp" .device/tests.tgz
  python3 - "$run" <<'PY'
import sys
run = sys.argv[1]
text = open(run).read()
old = "tar xzf tests.tgz -C /tmp"
new = "python3 -c 'import tarfile; tarfile.open(\"tests.tar.xz\").extractall(\"/tmp\")'"
if old not in text:
    sys.exit(f"error: {run} does not unpack tests.tgz as expected ({old!r})")
open(run, "w").write(text.replace(old, new))
PY
fi
size=$(du -sbc .device .gl | tail -1 | cut -f1)
if [ "$size" -gt $((64 << 20)) ]; then
  echo "error: .device and .gl hold $size bytes, over the device carry's 64 MiB" >&2; exit 2
fi
echo "ready: $run runs the prepared stages plus tune, the wide model and mixed precision"
