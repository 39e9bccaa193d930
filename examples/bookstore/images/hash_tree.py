#!/usr/bin/env python3
"""Print one sha256 over the files under each DIR given (relative path, mode,
content, or a link's target), in a stable order: the source hash `build`
compares with an image's label. Directories named target or .git (build
output, not sources) are skipped."""

import hashlib
import os
import stat
import sys


def hash_into(total, root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("target", ".git"))
        # os.walk lists symlinks to directories among dirnames and does not
        # follow them: hash those as links, like file symlinks.
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(filenames + links):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                total.update(f"L {rel} {os.readlink(path)}\n".encode())
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                total.update(f"F {rel} {stat.S_IMODE(st.st_mode):o} {h.hexdigest()}\n".encode())


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: hash_tree.py DIR...")
    total = hashlib.sha256()
    for i, root in enumerate(sys.argv[1:]):
        if not os.path.isdir(root):
            sys.exit(f"hash_tree: {root}: not a directory")
        total.update(f"D {i}\n".encode())
        hash_into(total, root)
    print(total.hexdigest())


if __name__ == "__main__":
    main()
