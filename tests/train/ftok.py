"""The packed token file (.ftok, include/ftdist/data/token_file.h) for the test scripts: read a file's
documents (token ids and loss mask), write one."""
import struct


def read_ftok(path):
    """([(ids, mask), ...] one per document, vocabulary) of a .ftok file."""
    b = open(path, "rb").read()
    _, vocab, docs, ntok, masked, _ = struct.unpack_from("<IIQQII", b, 8)
    off = struct.unpack_from(f"<{docs + 1}Q", b, 40)
    toks = struct.unpack_from(f"<{ntok}I", b, 40 + 8 * (docs + 1))
    mask = b[40 + 8 * (docs + 1) + 4 * ntok:] if masked else bytes([1]) * ntok
    return [(list(toks[off[d]:off[d + 1]]), list(mask[off[d]:off[d + 1]])) for d in range(docs)], vocab


def write_ftok(path, docs, vocab):
    """A .ftok of `docs` [(ids, mask), ...] with a loss mask."""
    toks = [t for ids, _ in docs for t in ids]
    mask = bytes(m for _, ms in docs for m in ms)
    off = [0]
    for ids, _ in docs:
        off.append(off[-1] + len(ids))
    with open(path, "wb") as f:
        f.write(b"FTDTOK01" + struct.pack("<IIQQII", 1, vocab, len(docs), len(toks), 1, 0))
        f.write(struct.pack(f"<{len(off)}Q", *off) + struct.pack(f"<{len(toks)}I", *toks) + mask)
