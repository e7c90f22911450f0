"""Figures of every room: what each draws (panels, lines, markers, titles) and how it is written or embedded."""

from __future__ import annotations

import base64

import pytest
import torch

from tl_traits.core.figures import figure_to_data_uri, img_tag, save_figure
from tl_traits.core.vectors import METRICS, TraitVector, TraitVectors
from tl_traits.extraction.figures import layer_metrics
from tl_traits.monitoring.figures import group_histogram
from tl_traits.monitoring.monitor import GroupComparison
from tl_traits.steering.results import Candidate, JudgedSet, Outcome, Run, SteeringResult
from tl_traits.steering.figures import strength_curves

PNG = b"\x89PNG\r\n\x1a\n"


def make_vectors(methods=("mean_diff", "probe", "random_baseline"), layers=(2, 3, 5, 7)):
    gen = torch.Generator().manual_seed(0)
    vecs = {}
    for name in methods:
        metrics = {m: torch.rand(len(layers), generator=gen) for m in METRICS}
        dirs = torch.nn.functional.normalize(torch.randn(len(layers), 4, generator=gen), dim=-1)
        vecs[name] = TraitVector(name, dirs, list(layers), torch.ones(len(layers)), metrics, {"method": name})
    return TraitVectors(vecs, {"dataset": {"name": "joy"}, "model": {"name": "tiny"}})


def answers(trait, coherence, score=50.0):
    return JudgedSet(["q"], ["a"], {"trait": [trait], "coherence": [coherence], "relevance": [80.0], "score": [score]})


def make_result(direction=1):
    three, five = Candidate((3,), "mean_diff"), Candidate((5,), "mean_diff")
    runs = [
        Run("dev", answers(60.0, 72.0, 55.0), three, 1.5),
        Run("dev", answers(40.0, 90.0, 60.0), three, 0.5),
        Run("dev", answers(None, 80.0, None), three, 1.0),  # the trait judge gave nothing: skipped on those panels only
        Run("dev", answers(50.0, 85.0, 62.0), five, 0.7),
        Run("dev", answers(30.0, None, None), five, 0.35),
    ]
    base = answers(20.0, 95.0, 30.0)
    result = SteeringResult("joy", direction, ("trait", "coherence", "relevance"), {"dev": base, "test": base}, runs)
    result.outcomes["mean_diff"] = Outcome(
        "mean_diff", runs[3], Run("test", answers(45.0, 80.0, 58.0), five, 0.7), base
    )
    return result


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_layer_metrics_one_panel_per_metric_one_line_per_method():
    vectors = make_vectors()
    fig = layer_metrics(vectors, metrics=("auroc", "cohens_d", "accuracy"))
    auroc_ax, d_ax, acc_ax = fig.axes
    assert len(fig.axes) == 3
    assert len(auroc_ax.get_lines()) == len(vectors.methods) + 1  # + chance
    assert len(d_ax.get_lines()) == len(vectors.methods)
    assert len(acc_ax.get_lines()) == len(vectors.methods) + 1
    chance = lines_by_label(auroc_ax)["chance"]
    assert list(chance.get_ydata()) == [0.5, 0.5]
    assert auroc_ax.get_ylim()[0] <= 0 and auroc_ax.get_ylim()[1] >= 1
    assert fig._suptitle.get_text().startswith("joy")
    assert fig.legends and "random_baseline" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_layer_metrics_marks_each_methods_best_auroc_layer_on_every_panel():
    vectors = make_vectors()
    vectors["probe"].metrics["auroc"] = torch.tensor([0.6, 0.7, 0.95, 0.8])  # best at layer 5
    fig = layer_metrics(vectors)
    for ax in fig.axes:
        probe = lines_by_label(ax)["probe"]
        assert list(probe.get_xdata()) == [2, 3, 5, 7]
        assert [probe.get_xdata()[i] for i in probe.get_markevery()] == [5]
        mean_diff = lines_by_label(ax)["mean_diff"]
        assert [mean_diff.get_xdata()[i] for i in mean_diff.get_markevery()] == [
            vectors["mean_diff"].best_layer("auroc")
        ]
        random = lines_by_label(ax)["random_baseline"]
        assert random.get_linestyle() == "--" and random.get_marker() in (None, "None", "")
    assert lines_by_label(fig.axes[1])["probe"].get_ydata()[2] == pytest.approx(
        float(vectors["probe"].metrics["cohens_d"][2])
    )


def test_layer_metrics_title_can_be_given():
    fig = layer_metrics(make_vectors(methods=("mean_diff",)), metrics=("auroc",), title="mine")
    assert fig._suptitle.get_text() == "mine" and len(fig.axes) == 1


def test_strength_curves_lines_sorted_by_strength_and_skip_missing_scores():
    fig = strength_curves(make_result())
    score_ax, trait_ax, coh_ax = fig.axes
    trait, coh = lines_by_label(trait_ax), lines_by_label(coh_ax)
    assert list(trait["mean_diff, layer 3"].get_xdata()) == [0.5, 1.5]  # the None trait score at 1.0 is left out
    assert list(trait["mean_diff, layer 3"].get_ydata()) == [40.0, 60.0]
    assert list(coh["mean_diff, layer 3"].get_xdata()) == [0.5, 1.0, 1.5]
    assert list(trait["mean_diff, layer 5"].get_xdata()) == [0.35, 0.7]
    assert list(coh["mean_diff, layer 5"].get_xdata()) == [0.7]  # the None coherence is left out
    assert list(trait["unsteered"].get_ydata()) == [20.0, 20.0]
    threshold = coh["threshold 70"]
    assert list(threshold.get_ydata()) == [70.0, 70.0] and threshold.get_linestyle() == "--"
    assert "toward" in trait_ax.get_title()


def test_strength_curves_one_row_per_labelled_result_with_candidate_colours_kept():
    fig = strength_curves({"toward joy": make_result(1), "away from joy": make_result(-1)}, title="joy")
    assert len(fig.axes) == 6  # score, trait, coherence per result
    assert [ax.get_title() for ax in fig.axes[1::3]] == ["toward joy: trait score", "away from joy: trait score"]
    colours = [lines_by_label(ax)["mean_diff, layer 5"].get_color() for ax in fig.axes]
    assert len(set(colours)) == 1
    assert fig._suptitle.get_text() == "joy"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend.count("mean_diff, layer 3") == 1 and "chosen on dev" in legend  # one entry per label
    score_ax = fig.axes[0]
    stars = [line for line in score_ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [0.7]  # the setting chosen on dev
    assert score_ax.get_xscale() == "log"


def test_strength_curves_without_runs_still_draws_baseline_and_threshold():
    base = answers(20.0, 90.0, 30.0)
    fig = strength_curves(SteeringResult("joy", 1, ("trait", "coherence"), {"dev": base}, []))
    score_ax, trait_ax, coh_ax = fig.axes
    assert len(trait_ax.get_lines()) == 1 and len(coh_ax.get_lines()) == 2  # unsteered; unsteered and threshold


def test_group_histogram_uses_the_given_comparison():
    comparison = GroupComparison(3, 3, 1.0, 0.0, 1.23456, 0.875, (0.5, 2.0), 0.0123)
    fig = group_histogram([1.0, 2.0, 0.5], [0.0, -1.0, 0.2], comparison=comparison, title="refusal at layer 4")
    ax = fig.axes[0]
    assert ax.get_title().startswith("refusal at layer 4")
    assert "d = 1.23" in ax.get_title() and "AUROC = 0.88" in ax.get_title() and "p = 0.012" in ax.get_title()
    means = sorted(line.get_xdata()[0] for line in ax.get_lines())
    assert means == pytest.approx([-0.8 / 3, 3.5 / 3])
    # both groups on the same bins
    refused, answered = ax.containers
    assert [p.get_x() for p in refused] == [p.get_x() for p in answered]


def test_group_histogram_computes_the_comparison_when_not_given():
    from tl_traits.monitoring.monitor import compare_groups

    first, second = [1.0, 2.0, 3.0, float("nan")], [0.0, 0.5, 1.5]
    fig = group_histogram(first, second)
    expected = compare_groups(first, second)
    assert f"d = {expected.cohens_d:.2f}" in fig.axes[0].get_title()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "refused (n=3)" in legend  # NaN dropped


def test_group_histogram_with_an_empty_group():
    fig = group_histogram([0.1, 0.4, 0.3], [], labels=("refused", "answered"))
    ax = fig.axes[0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "answered (n=0)" in legend and "refused (n=3)" in legend
    assert len(ax.get_lines()) == 1  # a mean only for the group that has values
    assert "too few values" in ax.get_title()
    assert group_histogram([], []).axes[0].get_title()  # nothing at all still draws


@pytest.mark.parametrize("suffix, magic", [(".png", PNG), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_save_figure_writes_the_format_of_the_suffix_and_no_temp_file(tmp_path, suffix, magic):
    path = save_figure(layer_metrics(make_vectors()), tmp_path / "out" / f"metrics{suffix}")
    assert path.read_bytes().startswith(magic)
    assert [p.name for p in path.parent.iterdir()] == [f"metrics{suffix}"]


def test_save_figure_failures_leave_nothing_behind(tmp_path):
    fig = layer_metrics(make_vectors())
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(OSError):
        save_figure(fig, blocker / "fig.png")
    with pytest.raises(ValueError, match=r"\.png"):
        save_figure(fig, tmp_path / "fig.gif")
    old = tmp_path / "fig.png"
    old.write_bytes(b"old")

    def broken(*args, **kwargs):
        raise RuntimeError("renderer failed")

    fig.savefig = broken
    with pytest.raises(RuntimeError):
        save_figure(fig, old)
    assert old.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "not_a_folder"]


def test_data_uri_and_img_tag():
    fig = group_histogram([1.0, 2.0], [0.0, 0.5])
    uri = figure_to_data_uri(fig)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    assert base64.b64decode(uri[len(prefix) :], validate=True).startswith(PNG)
    assert figure_to_data_uri(fig, "svg").startswith("data:image/svg+xml;base64,")
    with pytest.raises(ValueError):
        figure_to_data_uri(fig, "bmp")
    tag = img_tag(fig, 'd > 1 & "refused" <b>')
    assert tag.startswith('<img src="data:image/png;base64,') and tag.endswith('style="max-width:100%">')
    assert 'alt="d &gt; 1 &amp; &quot;refused&quot; &lt;b&gt;"' in tag
    assert "<b>" not in tag
