#!/usr/bin/env bash
# Print the path of a spirv-val that knows SPV_KHR_cooperative_matrix, for
# tests/shaders_validate.rs (BATCHSCOPE_SPIRV_VAL). Debian 12's spirv-tools (2023.1) predates the
# extension, so this fetches Debian 13's (2025.1) with the C and C++ runtimes it needs into DIR
# and runs it through that libc's own loader; nothing is installed system-wide. Prints nothing
# and exits 0 when that cannot be done (no network, no dpkg-deb): the tests then translate every
# shader to SPIR-V without validating it, and say so.
#   .ci/spirv_val.sh [DIR]     (default /tmp/batchscope-spirv-val)
set -uo pipefail
dir=${1:-/tmp/batchscope-spirv-val}
wrapper="$dir/spirv-val"
if [ -x "$wrapper" ] && "$wrapper" --version >/dev/null 2>&1; then
  echo "$wrapper"; exit 0
fi
command -v python3 >/dev/null && command -v dpkg-deb >/dev/null || exit 0
mkdir -p "$dir" || exit 0
python3 - "$dir" <<'PY' >&2 || exit 0
import lzma, os, sys, urllib.request
dir = sys.argv[1]
mirror = "http://deb.debian.org/debian/"
want = ["spirv-tools", "libc6", "libstdc++6", "libgcc-s1"]
def get(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()
index = lzma.decompress(get(mirror + "dists/trixie/main/binary-amd64/Packages.xz")).decode()
files = {}
for stanza in index.split("\n\n"):
    fields = dict(l.split(": ", 1) for l in stanza.splitlines() if ": " in l and not l.startswith(" "))
    if fields.get("Package") in want and fields.get("Package") not in files:
        files[fields["Package"]] = fields["Filename"]
missing = [p for p in want if p not in files]
if missing:
    sys.exit(f"spirv_val.sh: not in Debian 13's index: {missing}")
for p, f in files.items():
    with open(os.path.join(dir, p + ".deb"), "wb") as out:
        out.write(get(mirror + f))
PY
root="$dir/root"
for deb in "$dir"/*.deb; do dpkg-deb -x "$deb" "$root" || exit 0; done
loader="$root/usr/lib64/ld-linux-x86-64.so.2"
[ -x "$loader" ] || loader="$root/lib64/ld-linux-x86-64.so.2"
libs="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
cat > "$wrapper" <<EOF
#!/bin/sh
exec "$loader" --library-path "$libs" "$root/usr/bin/spirv-val" "\$@"
EOF
chmod +x "$wrapper"
"$wrapper" --version >/dev/null 2>&1 && echo "$wrapper"
exit 0
