"""Graded tests for chapter 08 (KV cache, GQA decoding, MLA absorbed scores): compare with tinyattn
and dense float64 computations on seeded inputs; every failure message names the seed."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.cache import KVCache
from tinyattn.positional import apply_rope, rope_inv_freq

MOD = "ch08_kv_cache"


@pytest.mark.points(2)
def test_append_kv_matches_kvcache(impl):
    ex = impl(MOD)
    seed = 801
    rng = np.random.default_rng(seed)
    B, hkv, max_len, d = 2, 3, 11, 5
    kc, vc = np.zeros((B, hkv, max_len, d)), np.zeros((B, hkv, max_len, d))
    ref = KVCache(1, B, max_len, {"k": (hkv, d), "v": (hkv, d)}, dtype=np.float64)
    length = 0
    for L in (4, 3, 1, 2):
        k, v = rng.standard_normal((B, hkv, L, d)), rng.standard_normal((B, hkv, L, d))
        length = ex.append_kv(kc, vc, length, k, v)
        ref.update(0, k=k.transpose(0, 2, 1, 3), v=v.transpose(0, 2, 1, 3))
        ref.advance(L)
        assert length == ref.length, f"seed {seed}: returned length {length}, expected {ref.length}"
    np.testing.assert_allclose(kc[:, :, :length], ref.buffers[0]["k"][:, :length].transpose(0, 2, 1, 3),
                               err_msg=f"seed {seed}: cached keys differ (write new tokens at [length, length+L))")
    np.testing.assert_allclose(vc[:, :, :length], ref.buffers[0]["v"][:, :length].transpose(0, 2, 1, 3),
                               err_msg=f"seed {seed}: cached values differ")
    assert not kc[:, :, length:].any(), f"seed {seed}: something was written past position {length}"


@pytest.mark.points(1)
def test_append_kv_overflow_raises_and_writes_nothing(impl):
    ex = impl(MOD)
    seed = 802
    rng = np.random.default_rng(seed)
    kc, vc = rng.standard_normal((1, 2, 6, 3)), rng.standard_normal((1, 2, 6, 3))
    before = kc.copy(), vc.copy()
    with pytest.raises(ValueError):
        ex.append_kv(kc, vc, 4, rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((1, 2, 3, 3)))
    assert np.array_equal(kc, before[0]) and np.array_equal(vc, before[1]), \
        f"seed {seed}: a failed append (4 + 3 > 6) must leave the cache unchanged"
    assert ex.append_kv(kc, vc, 4, np.ones((1, 2, 2, 3)), np.ones((1, 2, 2, 3))) == 6, "exactly full must fit"


@pytest.mark.points(2)
def test_rope_for_decode_continues_positions(impl):
    ex = impl(MOD)
    seed = 803
    rng = np.random.default_rng(seed)
    B, H, hkv, L0, L, d = 2, 4, 2, 5, 3, 8
    inv = rope_inv_freq(d, 500.0)
    q_all, k_all = rng.standard_normal((B, H, L0 + L, d)), rng.standard_normal((B, hkv, L0 + L, d))
    pos = np.arange(L0 + L)
    want_q, want_k = apply_rope(q_all, pos, inv)[:, :, L0:], apply_rope(k_all, pos, inv)[:, :, L0:]
    got_q, got_k = ex.rope_for_decode(q_all[:, :, L0:], k_all[:, :, L0:], L0, inv)
    assert np.shape(got_q) == want_q.shape and np.shape(got_k) == want_k.shape, \
        f"seed {seed}: shapes {np.shape(got_q)}, {np.shape(got_k)}; expected {want_q.shape}, {want_k.shape}"
    np.testing.assert_allclose(got_q, want_q, atol=1e-12,
                               err_msg=f"seed {seed}: queries must be rotated at positions {L0}..{L0 + L - 1}")
    np.testing.assert_allclose(got_k, want_k, atol=1e-12, err_msg=f"seed {seed}: keys rotated at the wrong positions")


def _dense_gqa(q, k, v, scale):
    """Per-head float64 loop: head i uses KV head i // (Hq // Hkv)."""
    B, hq, d = q.shape
    rep = hq // k.shape[1]
    out = np.zeros((B, hq, v.shape[-1]))
    for b in range(B):
        for i in range(hq):
            s = k[b, i // rep] @ q[b, i] * scale
            p = np.exp(s - s.max())
            out[b, i] = (p / p.sum()) @ v[b, i // rep]
    return out


@pytest.mark.points(3)
@pytest.mark.parametrize("seed,hq,hkv,scale", [(804, 6, 2, None), (805, 4, 1, 0.3), (806, 6, 3, None)])
def test_gqa_decode_attention(impl, seed, hq, hkv, scale):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    B, d, max_len, length = 2, 5, 9, 7
    q = rng.standard_normal((B, hq, d))
    kc, vc = rng.standard_normal((B, hkv, max_len, d)), rng.standard_normal((B, hkv, max_len, d))
    kc[:, :, length:], vc[:, :, length:] = 50.0, 1e3              # stale slots past length must be ignored
    got = np.asarray(ex.gqa_decode_attention(q, kc, vc, length, scale=scale))
    want = _dense_gqa(q, kc[:, :, :length], vc[:, :, :length], 1 / np.sqrt(d) if scale is None else scale)
    lib = ta.functional.scaled_dot_product_attention(q[:, :, None], kc[:, :, :length], vc[:, :, :length],
                                                    scale=scale).data[:, :, 0]
    np.testing.assert_allclose(want, lib, atol=1e-12)              # the reference agrees with tinyattn
    assert got.shape == (B, hq, d), f"seed {seed}: shape {got.shape}, expected {(B, hq, d)}"
    bad = np.argwhere(~np.isclose(got, want, atol=1e-9))
    assert not len(bad), (f"seed {seed}, Hq={hq}, Hkv={hkv}: first wrong element (batch, head, feature) "
                          f"{tuple(bad[0])}: got {got[tuple(bad[0])]:.6f}, expected {want[tuple(bad[0])]:.6f}")


@pytest.mark.points(3)
@pytest.mark.parametrize("seed", [807, 808])
def test_mla_absorbed_scores_equal_naive_keys(impl, seed):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    B, H, dn, dr, dc, T = 2, 3, 4, 2, 7, 6
    q_nope, q_rope = rng.standard_normal((B, H, dn)), rng.standard_normal((B, H, dr))
    c_kv, k_rope = rng.standard_normal((B, T, dc)), rng.standard_normal((B, T, dr))
    w_uk = rng.standard_normal((dc, H * dn))
    scale = 1 / np.sqrt(dn + dr)
    want = np.zeros((B, H, T))
    for i in range(H):                                             # naive: build k^C_i = c W^UK_i
        k_c = c_kv @ w_uk[:, i * dn:(i + 1) * dn]                  # (B, T, dn)
        want[:, i] = (np.einsum("bn,btn->bt", q_nope[:, i], k_c) + np.einsum("br,btr->bt", q_rope[:, i], k_rope)) * scale
    got = np.asarray(ex.mla_absorbed_scores(q_nope, q_rope, c_kv, k_rope, w_uk, scale))
    assert got.shape == (B, H, T), f"seed {seed}: shape {got.shape}, expected {(B, H, T)}"
    np.testing.assert_allclose(got, want, atol=1e-10,
                               err_msg=f"seed {seed}: scores differ from q^C_i·(c W^UK_i) + q^R_i·k^R, times scale")
