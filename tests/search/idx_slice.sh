# Sourced by the search tests: write_idx_slice DIR writes the first 512
# training and 256 test images of Fashion-MNIST (Debian's
# dataset-fashion-mnist) to DIR as IDX files, so that every trial and the
# final training take a moment.
write_idx_slice() {
    mkdir -p "$1"
    /usr/bin/python3 - "$1" <<'PY'
import gzip, struct, sys
src, dst = "/usr/share/datasets/fashion-mnist", sys.argv[1]
for split, n in (("train", 512), ("t10k", 256)):
    with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz") as f:
        f.read(16)
        img = f.read(n * 784)
    with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz") as f:
        f.read(8)
        lab = f.read(n)
    with open(f"{dst}/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + img)
    with open(f"{dst}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + lab)
PY
}
