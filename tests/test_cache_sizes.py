"""Cache-size formulas against hand-computed numbers for published models (REFERENCE.md section 5)."""
import pytest

from tinyattn.cache import PUBLISHED, cache_table, kv_cache_bytes, mla_cache_bytes


def _cfg(name):
    return next(c for c in PUBLISHED if c.name.startswith(name))


def test_llama2_70b_is_327680_bytes_per_token_fp16():
    assert kv_cache_bytes(80, 8, 128, 1) == 327_680                      # 2·80·8·128·2
    assert _cfg("Llama-2-70B").bytes_per_token() == 327_680


def test_gpt3_2048_tokens_is_9_gib():
    assert kv_cache_bytes(96, 96, 128, 2048) == 9 * 2**30              # 2·96·96·128·2048·2
    assert kv_cache_bytes(96, 96, 128, 2048) // 96 == 96 * 2**20       # 96 MiB per layer


def test_deepseek_v2_mla_576_elements_per_layer():
    ds = _cfg("DeepSeek-V2")
    assert ds.bytes_per_token() == 60 * 576 * 2 == mla_cache_bytes(60, 512, 64, 1)
    row = next(r for r in cache_table() if r["model"] == "DeepSeek-V2")
    assert row["vs_mha"] == pytest.approx(2 * 128 * 128 / 576)          # 56.9x, not 64x
    assert row[4096] == 60 * 576 * 4096 * 2


def test_mistral_sliding_window_caps_the_cache():
    m = _cfg("Mistral")
    assert m.cache_bytes(4096) == m.cache_bytes(131072) == kv_cache_bytes(32, 8, 128, 4096)
    assert m.cache_bytes(1000) == kv_cache_bytes(32, 8, 128, 1000)
    assert kv_cache_bytes(2, 1, 4, 10, sliding_window=3) == 2 * 2 * 1 * 4 * 3 * 2


def test_batch_and_bytes_per_element_scale_linearly_and_every_row_has_a_source():
    assert kv_cache_bytes(3, 2, 5, 7, batch=4, bytes_per_element=4) == 2 * 3 * 2 * 5 * 7 * 4 * 4
    assert mla_cache_bytes(3, 8, 0, 7, batch=2, bytes_per_element=1) == 3 * 8 * 7 * 2
    assert len(PUBLISHED) == 6 and all("arXiv" in c.source for c in PUBLISHED)
    assert kv_cache_bytes(1, 1, 1, 0) == 0


@pytest.mark.parametrize("kw", [{"n_layers": 0}, {"head_dim": 2.5}, {"seq_len": -1}, {"batch": True},
                                {"sliding_window": 0}])
def test_bad_arguments_name_themselves(kw):
    args = {"n_layers": 2, "n_kv_heads": 2, "head_dim": 4, "seq_len": 8}
    args.update(kw)
    with pytest.raises(ValueError, match=next(iter(kw))):
        kv_cache_bytes(**args)
