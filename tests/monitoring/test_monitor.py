"""monitor: per-token projections (raw, cosine, centred, smoothing, velocity) and group statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

import tl_traits as tt
from tl_traits.core.hook_names import hook_name
from tl_traits.monitoring.monitor import compare_groups, moving_average, project


@pytest.fixture(scope="module")
def joy(bridge_model):
    trait = tt.load_trait("emotion/joy").limit(24)
    return tt.extract(bridge_model, trait, ["mean_diff", "probe"], layers=[8, 12], progress=False)


def test_projections_match_a_direct_cache(bridge_model, joy):
    vec = joy["mean_diff"]
    proj = project(bridge_model, {"joy": vec}, ["How was your day?"], layers=[12], responses=["Wonderful, thanks!"])
    item = proj.items[0]
    batch = tt.prepare_inputs(bridge_model, "How was your day?", "Wonderful, thanks!")
    with torch.no_grad():
        _, cache = bridge_model.run_with_cache(batch.input_ids, names_filter=hook_name(12))
    h = cache[hook_name(12)][0]
    raw = h @ vec.direction(12)
    torch.testing.assert_close(item.raw[("joy", 12)], raw, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(item.cosine[("joy", 12)], raw / h.norm(dim=-1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(item.centered[("joy", 12)], raw - vec.baseline(12), rtol=1e-4, atol=1e-3)
    assert item.segments.count("response") == batch.spans[0].response[1] - batch.spans[0].response[0]
    assert item.tokens[0] == "<|im_start|>" and item.segments[-1] == "end"
    df = proj.to_dataframe()
    assert set(df.columns) >= {"prompt_id", "token", "segment", "trait", "layer", "raw", "cosine", "centered"}
    assert len(df) == len(item.tokens)


def test_joyful_responses_project_higher_and_generation_works(bridge_model, joy):
    vecs = {"joy": joy["mean_diff"]}
    happy = project(
        bridge_model,
        vecs,
        ["How was your day?"] * 2,
        layers=[12],
        responses=[
            "Oh, it was absolutely wonderful, I loved every moment!",
            "Fantastic! I'm so happy and grateful today.",
        ],
    )
    sad = project(
        bridge_model,
        vecs,
        ["How was your day?"] * 2,
        layers=[12],
        responses=["Sadly it was awful, I felt miserable and alone.", "Terrible. Everything went wrong and I cried."],
    )
    assert min(happy.response_means("joy", 12)) > max(sad.response_means("joy", 12))
    generated = project(bridge_model, vecs, ["Say hello."], layers=[8, 12], max_new_tokens=8)
    assert generated.items[0].response and "response" in generated.items[0].segments
    assert generated.layers == [8, 12]


def test_smoothing_and_velocity():
    x = torch.tensor([0.0, 3.0, 6.0, 9.0])
    torch.testing.assert_close(moving_average(x, 3), torch.tensor([1.5, 3.0, 6.0, 7.5]))
    from tl_traits.monitoring.monitor import _shape

    torch.testing.assert_close(_shape(x, None, True), torch.tensor([0.0, 3.0, 3.0, 3.0]))


def test_compare_groups_against_scipy_and_sklearn():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.0, 2.0, 30)
    res = compare_groups(a, b, n_boot=500)
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    assert res.cohens_d == pytest.approx((a.mean() - b.mean()) / pooled, rel=1e-6)
    assert res.auroc == pytest.approx(roc_auc_score([1] * 40 + [0] * 30, np.r_[a, b]), rel=1e-6)
    assert res.p_value == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-6)
    assert res.d_ci[0] < res.cohens_d < res.d_ci[1]
    assert (res.n_a, res.n_b) == (40, 30)
    with pytest.raises(ValueError, match="at least 2 scores per group"):
        compare_groups([1.0], [1.0, 2.0])


def test_token_projection_page_is_self_contained(bridge_model, joy, tmp_path):
    page = tt.viz.token_projections(
        bridge_model,
        {"joy": joy["mean_diff"], "joy-probe": joy["probe"]},
        ["How was your day?"],
        layer=12,
        responses=["Wonderful, thanks!"],
    )
    path = page.save(tmp_path / "dynamics.html")
    text = path.read_text()
    assert "Wonderful" in text and "CircuitsVis" in text
    assert "<script src=" not in text and "unpkg.com" not in text  # works offline
    single = tt.viz.token_projections(bridge_model, joy["mean_diff"], ["Hi"], layer=8, responses=["Hello!"])
    assert "Hello" in single._repr_html_()
    with pytest.raises(ValueError, match="metric must be"):
        tt.viz.token_projections(bridge_model, joy["mean_diff"], ["Hi"], metric="zscore")


def test_bundled_request_set_and_group_analysis(bridge_model, joy):
    from tl_traits.monitoring.monitor import analyze_prompt_set, load_prompt_set

    requests = load_prompt_set("requests")
    assert 55 <= len(requests.prompts) <= 65
    assert {p["note"].split(":")[0] for p in requests.prompts} == {"harmful", "borderline", "benign"}
    long_answer = lambda q, r: [100.0 if len(x.split()) >= 8 else 0.0 for x in r]  # noqa: E731  a stand-in judge
    res = analyze_prompt_set(
        bridge_model, joy["mean_diff"], requests, judge=long_answer, layer=12, limit=6, max_new_tokens=12
    )
    assert len(res.rows) == 6 and {r["group"] for r in res.rows} <= {"refused", "answered"}
    assert all(r["group"] == ("refused" if r["judge_score"] >= 50 else "answered") for r in res.rows)
    if res.comparison is not None:
        assert res.comparison.n_a + res.comparison.n_b == 6
    assert list(res.to_dataframe().columns)[:3] == ["id", "note", "prompt"]


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"prompts": [}', r"prompt set .*set.json is not valid JSON"),
        ('[{"text": "hi"}]', "must hold a JSON object"),
    ],
)
def test_a_broken_prompt_set_names_the_file(tmp_path, text, message):
    from tl_traits.monitoring.monitor import MonitorError, load_prompt_set

    (tmp_path / "set.json").write_text(text, encoding="utf-8")
    with pytest.raises(MonitorError, match=message):
        load_prompt_set(tmp_path / "set.json")
