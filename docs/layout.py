#!/usr/bin/env python3
"""Print the README's Layout section from the tree: every folder of src/ with each file's first
`//!` doc line, then shaders/, configs/, tests/ and benches/ by name.

    python3 docs/layout.py            # print the section
    python3 docs/layout.py --write    # replace the section between the markers in README.md
"""
import os, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- layout:begin (docs/layout.py) -->", "<!-- layout:end -->"


def first_doc(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("//!"):
                text = line[3:].strip()
                if text:
                    return re.sub(r"\s+", " ", text)
            elif line.strip():
                break
    return ""


def names(folder, ext):
    d = os.path.join(ROOT, folder)
    return sorted(f[: -len(ext)] for f in os.listdir(d) if f.endswith(ext))


def src_lines():
    out = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "src")):
        dirnames.sort()
        rel = os.path.relpath(dirpath, ROOT)
        for f in sorted(filenames):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            shown = os.path.join(rel, f)
            doc = first_doc(path)
            if len(doc) > 96:
                doc = doc[:93].rstrip() + "…"
            out.append(f"{shown:<40} {doc}".rstrip())
    return out


def section():
    lines = ["```"]
    lines.append("Cargo.toml  README.md  rustfmt.toml  .ci/run  docs/ARCHITECTURE.md")
    lines.append("shaders/    " + " ".join(n + ".wgsl" for n in names("shaders", ".wgsl")))
    lines.append("shaders/include/  " + " ".join(n + ".wgsl" for n in names("shaders/include", ".wgsl"))
                 + "  (added to the source of the shaders that use them by src/backend/gpu/kernels.rs)")
    lines.append("configs/    " + " ".join(n + ".toml" for n in names("configs", ".toml")))
    lines.append("tests/      " + " ".join(n + ".rs" for n in names("tests", ".rs")))
    lines.append("benches/    " + " ".join(sorted(os.listdir(os.path.join(ROOT, "benches")))))
    lines.extend(src_lines())
    lines.append("```")
    return "\n".join(lines)


def main():
    text = section()
    if "--write" not in sys.argv:
        print(text)
        return 0
    readme = os.path.join(ROOT, "README.md")
    with open(readme, encoding="utf-8") as f:
        s = f.read()
    if BEGIN not in s or END not in s:
        print(f"README.md lacks the markers {BEGIN} … {END}", file=sys.stderr)
        return 2
    head, rest = s.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(readme, "w", encoding="utf-8") as f:
        f.write(head + BEGIN + "\n" + text + "\n" + END + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
