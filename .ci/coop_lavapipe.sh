#!/usr/bin/env bash
# The tests on a second Mesa, Debian sid's (26.x), whose lavapipe offers VK_KHR_cooperative_matrix
# in 8x8x8 f16 tiles on subgroups of 8: there the tensor-core kernels run in 8x8 tiles
# (src/backend/gpu/coop_shape.rs), the same code the H200 runs in 16x16 ones. Debian 12's Mesa
# (the CI machine's) has no cooperative matrices, so the test binaries built here run inside a
# minimal sid chroot (debootstrap, about 30 s and 600 MB: the loader and Mesa's Vulkan drivers);
# binaries linked against Debian 12's glibc run on sid's. In order:
#   1. the ignored tensor-core parity tests: tests/coop_staged.rs (the staged kernel, three
#      load widths), f16_parity's matmul_coop_matches_cpu (the nine kernels, every transpose
#      pair, clamped blocks; again with BATCHSCOPE_COOP_PREFETCH=1, the 32x32 kernels' loop
#      pipelined) and f16_epilogue's coop_fused_f16_epilogues_match_the_cpu_twin;
#   2. every test binary, as `cargo test --release` runs them (about 7 minutes on 2 cores): the
#      f16 step takes the tensor-core kernels there by the rule, and every kernel meets another
#      LLVM (this found ReLU' folded differently in fused and unfused stores).
#
#   .ci/coop_lavapipe.sh              build the tests, the chroot if missing, run 1 and 2 there
#   .ci/coop_lavapipe.sh --coop-only  run 1 only
#   BATCHSCOPE_SID_ROOT=<dir>         where the chroot lives (default /tmp/batchscope-sid)
#
# Outcomes:
# - the chroot cannot be made (no network, no debootstrap, not root): one line says the tests
#   did not run, and the script exits 0: this is the environment, not the code;
# - sid's lavapipe offers no 8x8 f16 configuration (a Mesa change): said the same way, exit 0;
# - otherwise any failing test fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${BATCHSCOPE_SID_ROOT:-/tmp/batchscope-sid}"
coop_only=false
[ "${1:-}" = "--coop-only" ] && coop_only=true

not_run() {
  echo "ci: *** TESTS ON MESA 26 (TENSOR-CORE PARITY AT 8x8) NOT RUN: $1 (it is not a pass) ***"
  exit 0
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo > /dev/null || not_run "not root and no sudo for debootstrap and chroot"
  SUDO="sudo"
fi

# Every test binary (the library's and the CLI's unit tests, each file of tests/), and the
# parity tests' by name.
built=$(cargo test --release --locked --no-run 2>&1) || { echo "$built" >&2; exit 1; }
mapfile -t all < <(grep -o '(target/release/deps/[^)]*)' <<< "$built" | tr -d '()')
declare -A exe
for t in coop_staged f16_parity f16_epilogue; do
  exe[$t]=$(printf '%s\n' "${all[@]}" | grep "/$t-[0-9a-f]*$" | head -1)
  [ -n "${exe[$t]}" ] || { echo "ci: no test binary for tests/$t.rs" >&2; exit 1; }
done

if [ ! -e "$root/usr/share/vulkan/icd.d/lvp_icd.json" ]; then
  if ! command -v debootstrap > /dev/null; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap > /dev/null 2>&1 \
      || not_run "debootstrap could not be installed"
  fi
  echo "ci: making a Debian sid chroot with Mesa's Vulkan drivers in $root"
  # A half-made chroot of an earlier run may still have mounts: unmount them, and never let rm
  # cross into another file system.
  $SUDO umount "$root/proc" "$root/dev" 2> /dev/null || true
  $SUDO rm -rf --one-file-system "$root"
  $SUDO debootstrap --variant=minbase --include=mesa-vulkan-drivers sid "$root" \
    http://deb.debian.org/debian > /tmp/batchscope-debootstrap.log 2>&1 \
    || not_run "debootstrap of sid failed (see /tmp/batchscope-debootstrap.log)"
fi
mesa=$($SUDO chroot "$root" dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo "?")

# The checkout at its own path inside the chroot (read-only): the tests find configs/ and the
# CLI binary by the absolute paths they were built with.
repo=$(pwd)
cleanup() {
  $SUDO umount "$root$repo" 2> /dev/null || true
  $SUDO umount "$root/proc" 2> /dev/null || true
  $SUDO umount "$root/dev" 2> /dev/null || true
}
trap cleanup EXIT
mountpoint -q "$root/proc" || $SUDO mount -t proc proc "$root/proc"
mountpoint -q "$root/dev" || $SUDO mount --bind /dev "$root/dev"
$SUDO mkdir -p "$root$repo" "$root/tmp/xdg"
$SUDO chmod 700 "$root/tmp/xdg"
if ! mountpoint -q "$root$repo"; then
  $SUDO mount --bind "$repo" "$root$repo"
  $SUDO mount -o remount,bind,ro "$root$repo"
fi

# Run the test binary at `path` (relative to the checkout) with arguments, in the chroot, in a
# clean environment (the host's paths, such as BATCHSCOPE_SPIRV_VAL's, do not exist there) plus
# the NAME=VALUE words of EXTRA_ENV.
in_chroot() {
  local path=$1; shift
  # shellcheck disable=SC2086 # EXTRA_ENV is a list of words
  $SUDO chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp \
    XDG_RUNTIME_DIR=/tmp/xdg RUST_BACKTRACE=1 ${EXTRA_ENV:-} \
    sh -c 'cd "$0" && exec "$@"' "$repo" "$repo/$path" "$@"
}
where=$(in_chroot "${exe[coop_staged]}" staged_kernels_say_where_they_run --exact --nocapture 2>&1) \
  || { echo "$where"; echo "ci: the cooperative kernels' availability test failed in the chroot" >&2; exit 1; }
if ! grep -q "staged cooperative kernels run on" <<< "$where"; then
  not_run "sid's lavapipe (mesa-vulkan-drivers $mesa) offers no 8x8 f16 configuration"
fi
echo "ci: tensor-core parity at 8x8 on sid's lavapipe (mesa-vulkan-drivers $mesa)"
for t in coop_staged f16_parity f16_epilogue; do
  in_chroot "${exe[$t]}" --ignored --nocapture
done
echo "ci: the 32x32 tensor-core kernels with their loop pipelined (BATCHSCOPE_COOP_PREFETCH=1)"
EXTRA_ENV=BATCHSCOPE_COOP_PREFETCH=1 in_chroot "${exe[f16_parity]}" matmul_coop_matches_cpu --ignored --exact --nocapture
$coop_only && exit 0

echo "ci: every test binary on sid's lavapipe (mesa-vulkan-drivers $mesa)"
failed=()
for path in "${all[@]}"; do
  name=$(basename "$path")
  out=$(in_chroot "$path" 2>&1) || failed+=("$name")
  echo "ci: $name: $(grep -E "^test result" <<< "$out" || echo "no result")"
  grep -E "FAILED|panicked" -A 3 <<< "$out" || true
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "ci: failed on sid's lavapipe: ${failed[*]}" >&2
  exit 1
fi
