#!/usr/bin/env bash
# A short second device run (issue 13), after a full one has said where the step's time goes:
# the prepared run's tests, then what checks the choices taken from the first run's figures, all
# in one run so that the ratios are side by side. From the project root on your own machine:
#   bash ../shared/device/prepare.sh && bash benches/device_plan.sh && bash benches/device_followup.sh
# then one device `run` with  command: bash .device/run.sh  carry: [".gl", ".device"]
# timeout_s: 360 (it ends in about 5 minutes).
#
# Stages after the tests, in order of value:
#   1. the default sweep to B = 65 536 (NVML sampled; throttled windows are timed again) and
#      both precisions in one sweep;
#   2. the default step's profile at every power of two from 1 to 1024 and at 4096;
#   3. `gemm --ceilings` at 8192³ (f32 and f16): the loops' ceilings beside the products;
#   3b. peer_ref.py's GPU rows (PyTorch eager, CUDA graph, AMP) in the same run;
#   3c. the tensor-core kernels with 8- and 16-byte tile loads (LoadWidth,
#      backend/gpu/coop_shape.rs; the 16-byte ones through retyped SPIR-V, backend/gpu/retype.rs):
#      their parity at 16x16 (all nine kernels) and the f16 sweep from B = 2048 with
#      BATCHSCOPE_COOP_LOADS=vec8 and =vec4 beside stage 1's f16 rows (device_plan.sh's `gemm`
#      times every f16 candidate, the _v4 and _v8 ones included);
#   3d. the 32x32 tensor-core kernels with their loop pipelined (BATCHSCOPE_COOP_PREFETCH=1):
#      parity at 16x16, and the f16 sweep from B = 256 beside stage 1's f16 rows;
#   4. the A/B of the matmul rule (GpuBackend::set_auto_rule, backend/gpu/auto_rule.rs): sweeps
#      32..4096 and profiles at 64, 256, 1024 beside the default sweep of stage 1: the output
#      layer's backward on the skinny kernel (its dZ·W, k = 10: SKINNY_MAX_K; its dZᵀ·H,
#      m = 10: SKINNY_TA_MAX_M), each alone and both, the 64x64 tiles for grids short of 128
#      workgroups (B = 256's winner on 2026-12-04), and all three;
#   5. the fused head and backward switched back on (the first run's A/B, again in this run);
#   6. the f16 step's profile at 32 and 4096.
# Every stage is bounded by `timeout`; a stage that would start past 280 s is skipped.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
run=.device/run.sh
[ -f "$run" ] || { echo "error: $run missing: run ../shared/device/prepare.sh first" >&2; exit 2; }
keep=$(grep -n 'grep -hE "test result|panicked|FAILED"' "$run" | cut -d: -f1 | head -1)
[ -n "$keep" ] || { echo "error: $run has no tests stage to keep" >&2; exit 2; }
head -n "$keep" "$run" > "$run.new"
cat >> "$run.new" <<'STAGES'
in_time() { [ $(( $(date +%s) - T0 )) -lt 280 ] || { echo "=== skipped $1: past 280 s"; false; }; }
nvidia-smi --query-gpu=timestamp,utilization.gpu,clocks.sm,memory.used,power.draw --format=csv -lms 200 > $R/smi_all.csv 2>/dev/null &
SMI=$!
t sweep; timeout 60 $B sweep --max-batch 65536 --set data.n_train=65536 --out $R/sweep 2>&1 | tail -26
t precision_sweep; timeout 60 $B sweep --precision f32,f16 --max-batch 65536 --set data.n_train=65536 --out $R/sweep_precision 2>&1 | tail -24
t profile; timeout 60 $B profile --batch 1 --batch 2 --batch 4 --batch 8 --batch 16 --batch 32 --batch 64 --batch 128 --batch 256 --batch 512 --batch 1024 --batch 4096 --out $R/profile 2>&1 | grep -E "^B = |per step" 
t ceilings; timeout 45 $B gemm --sizes 8192 --layouts nn --precision f32,f16 --ceilings --out $R/gemm_ceilings 2>&1 | tail -22
t peers; timeout 90 python3 peer_ref.py --max-batch 65536 --no-cpu --no-jax > $R/peers.csv 2> $R/peers.err; grep -E "mlp_torch_(eager|graph)" $R/peers.csv | tr '\n' ' '; echo; tail -2 $R/peers.err
if in_time loads_vec4; then
  t loads_vec4
  (cd /tmp/proj && timeout 30 /tmp/tests/coop_staged --ignored --nocapture 2>&1 | tail -4)
  (cd /tmp/proj && timeout 30 /tmp/tests/f16_parity matmul_coop_matches_cpu --ignored --nocapture 2>&1 | grep -E "parity ok|panicked|test result")
  for w in vec8 vec4; do
    timeout 30 env BATCHSCOPE_COOP_LOADS=$w $B sweep --precision f16 --min-batch 2048 --max-batch 65536 --set data.n_train=65536 --out $R/sweep_f16_$w 2>&1 | grep -E "^ *[0-9]+ +[0-9.]+ " | head -8
  done
fi
if in_time prefetch; then
  t prefetch
  (cd /tmp/proj && timeout 30 env BATCHSCOPE_COOP_PREFETCH=1 /tmp/tests/f16_parity matmul_coop_matches_cpu --ignored --nocapture 2>&1 | grep -E "parity ok|panicked|test result")
  timeout 30 env BATCHSCOPE_COOP_PREFETCH=1 $B sweep --precision f16 --min-batch 256 --max-batch 65536 --set data.n_train=65536 --out $R/sweep_f16_prefetch 2>&1 | grep -E "^ *[0-9]+ +[0-9.]+ " | head -10
fi
for ab in "SKINNY_MAX_K=16 BATCHSCOPE_SKINNY_TA_MAX_M=16" "SKINNY_MAX_K=16" "SKINNY_TA_MAX_M=16" "SMALL_GRID_TILE=t64x64k8" "SKINNY_MAX_K=16 BATCHSCOPE_SKINNY_TA_MAX_M=16 BATCHSCOPE_SMALL_GRID_TILE=t64x64k8"; do
  name=$(echo "$ab" | tr -c 'A-Za-z0-9\n' '_' | tr -s '_')
  if in_time "ab_$name"; then
    t "ab $ab"
    timeout 30 env BATCHSCOPE_$ab $B sweep --min-batch 32 --max-batch 4096 --set data.n_train=4096 --out $R/sweep_ab_$name 2>&1 | grep -E "^ *[0-9]+ +[0-9.]+ " | head -8
    timeout 30 env BATCHSCOPE_$ab $B profile --batch 64 --batch 256 --batch 1024 --out $R/profile_ab_$name 2>&1 | grep -E "^B = "
  fi
done
if in_time fused_on; then t fused_on; timeout 30 env BATCHSCOPE_FUSED_HEAD=1 BATCHSCOPE_FUSED_BACKWARD=1 $B profile --batch 1 --batch 8 --batch 32 --out $R/profile_fused_on 2>&1 | grep -E "^B = |per step"; fi
if in_time f16_profile; then t f16_profile; timeout 30 $B profile --precision f16 --batch 32 --batch 4096 --out $R/profile_f16 2>&1 | tail -26; fi
kill $SMI 2>/dev/null || true
t done
STAGES
mv "$run.new" "$run"; chmod +x "$run"
size=$(du -sbc .device .gl | tail -1 | cut -f1)
if [ "$size" -gt $((64 << 20)) ]; then
  echo "error: .device and .gl hold $size bytes, over the device carry's 64 MiB" >&2; exit 2
fi
echo "ready: $run runs the tests, sweeps, profiles at every B, peers and the auto-rule A/B"
