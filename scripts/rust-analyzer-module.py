#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Add ikos_kalloc's crate to a kernel-generated rust-project.json.

The kernel's scripts/generate_rust_analyzer.py only finds external crate
roots whose own directory has a Makefile/Kbuild naming them; ours,
src/ikos_kalloc.rs, is named by the top-level Kbuild. This appends it with
the dependencies and cfgs the generator gives external modules.

    scripts/rust-analyzer-module.py rust-project.json src/ikos_kalloc.rs
"""
import json
import pathlib
import sys


def main(project, root):
    d = json.loads(pathlib.Path(project).read_text())
    crates = d["crates"]

    def index(suffix):
        for i, c in enumerate(crates):
            if c["root_module"].endswith(suffix):
                return i
        sys.exit(f"rust-analyzer-module: no crate ending in {suffix} in {project}")

    kernel = index("rust/kernel/lib.rs")
    deps = [index("library/core/src/lib.rs"), kernel, index("rust/pin-init/src/lib.rs"),
            index("rust/zerocopy/src/lib.rs"), index("rust/zerocopy-derive/lib.rs")]
    names = {i: crates[i].get("display_name") or pathlib.Path(crates[i]["root_module"]).parent.name
             for i in deps}
    root = str(pathlib.Path(root).resolve())
    crates[:] = [c for c in crates if c["root_module"] != root]
    crates.append({
        "display_name": "ikos_kalloc",
        "root_module": root,
        "is_workspace_member": True,
        "deps": [{"crate": i, "name": crates[i].get("display_name", names[i])} for i in deps],
        "cfg": crates[kernel].get("cfg", []),
        "edition": crates[kernel].get("edition", "2021"),
        "env": crates[kernel].get("env", {}),
    })
    pathlib.Path(project).write_text(json.dumps(d, sort_keys=True, indent=4) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
