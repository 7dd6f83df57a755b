"""Plausible wrong answers for solutions/ch09_paged_attention.py; each must lose points."""
WRONG = {
    "slot_offset_from_block_index": '''def slot_of(block_table, t, block_size):
    return block_table[t // block_size], t // block_size
''',
    "gather_without_head_transpose": '''def gather_kv(pool, block_table, seq_len):
    bs = pool.shape[2]
    n = -(-seq_len // bs)
    blocks = pool[np.asarray(block_table[:n], dtype=np.int64)]
    return blocks.reshape(pool.shape[1], n * bs, pool.shape[3])[:, :seq_len]
''',
    "append_never_copies": '''def append_token(state, seq):
    bs = state["block_size"]
    table = state["tables"].get(seq, [])
    length = state["lengths"].get(seq, 0)
    offset = length % bs
    if offset == 0:
        if not state["free"]:
            raise RuntimeError("out of blocks")
        b = state["free"].pop()
        state["ref"][b] = 1
        table = table + [b]
    state["tables"][seq], state["lengths"][seq] = table, length + 1
    return table[-1] * bs + offset, []
''',
    "copy_keeps_old_reference": '''def append_token(state, seq):
    bs = state["block_size"]
    table = state["tables"].get(seq, [])
    length = state["lengths"].get(seq, 0)
    offset = length % bs
    need_new = offset == 0
    cow = not need_new and state["ref"][table[-1]] > 1
    if (need_new or cow) and not state["free"]:
        raise RuntimeError("out of blocks")
    copies = []
    if need_new:
        b = state["free"].pop()
        state["ref"][b] = 1
        table = table + [b]
    elif cow:
        src, dst = table[-1], state["free"].pop()
        state["ref"][dst] = 1
        table = table[:-1] + [dst]
        copies.append((src, dst))
    state["tables"][seq], state["lengths"][seq] = table, length + 1
    return table[-1] * bs + offset, copies
''',
    "fork_without_refcount": '''def fork(state, parent, child):
    if parent not in state["tables"] or child in state["tables"]:
        raise ValueError("bad fork")
    state["tables"][child] = list(state["tables"][parent])
    state["lengths"][child] = state["lengths"][parent]
''',
}
