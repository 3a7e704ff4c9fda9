"""cuBLAS GEMM figures in every layout, beside `batchscope gemm` (its --peers file).

../shared/device/peer_ref.py times sgemm NN and TN and hgemm NN; the GPU-step issue's matmul
goal also names NT, and the f16 goal the tensor-core kernel in each layout. This prints
  what,size_or_batch,value,unit
  sgemm_nn,4096,50.95,TFLOP/s      (fp32, TF32 off: the figure batchscope's fp32 kernels face)
  hgemm_tn,8192,612.3,TFLOP/s      (fp16 operands, what cuBLAS runs for torch.half)
for n in --sizes and layouts nn, nt, tn: C = op(A) op(B) with A stored [k, n] when transposed
(`x.t() @ y`, as peer_ref.py's sgemm_tn) and B stored [n, k] when transposed (`x @ y.t()`).
Median of CUDA-event timed runs after a warm-up, as peer_ref.py.
Usage: python3 benches/peer_gemm.py [--sizes 4096,8192] [--layouts nn,nt,tn]"""
import argparse
import statistics

import torch


def cuda_ms(fn, warmup=5, reps=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); b.synchronize(); ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def operands(n, layout, dtype):
    x = torch.randn(n, n, device="cuda", dtype=dtype)
    y = torch.randn(n, n, device="cuda", dtype=dtype)
    a = x.t() if layout[0] == "t" else x
    b = y.t() if layout[1] == "t" else y
    return a, b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="4096,8192")
    ap.add_argument("--layouts", default="nn,nt,tn")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print("what,size_or_batch,value,unit")
    # One CSV field: a comma in the device's name would split it.
    print(f"device,0,{torch.cuda.get_device_name(0).replace(',', ' ')},name", flush=True)
    for n in [int(s) for s in a.sizes.split(",")]:
        for layout in a.layouts.split(","):
            for name, dtype in (("sgemm", torch.float32), ("hgemm", torch.float16)):
                try:
                    x, y = operands(n, layout, dtype)
                    ms = cuda_ms(lambda: x @ y)
                    print(f"{name}_{layout},{n},{2 * n**3 / ms / 1e9:.2f},TFLOP/s", flush=True)
                except Exception as e:  # one failed size must not lose the others
                    print(f"{name}_{layout},{n},nan,error {type(e).__name__}", flush=True)
                finally:
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
