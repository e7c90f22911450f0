"""Trained vectors (bipo, reps) against the fitted ones and prompting, under the steering protocol; their training
cost and their detection in distribution and out of it."""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pytest
from test_detection_ood import TASKS
from test_steering import ALIASES, BENCH_PROTOCOL, comparison_rows, log_path, steering_layers_for

import tl_traits as tt
from tl_traits.core.files import safe_name
from tl_traits.extraction.transfer import directions_on
from tl_traits.steering.method_comparison import PROMPTING, compare_steering
from tl_traits.steering.protocol import SteeringProtocol
from tl_traits.training.vector_training import VectorTraining

TRAINED = ("bipo", "reps")
FITTED = ("mean_diff", "pca_diff", "probe")
READ_DEPTH = 0.5  # the out-of-distribution reading's layer (14 of 30), the deeper steering layer
DEFAULT_EPOCHS = VectorTraining().epochs  # the library's budget: its files are named by layers only


def trained_layers_for(model, request) -> list[int]:
    """--trained-layers, or the layers the fitted methods choose among (so dev offers both kinds the same)."""
    given = request.config.getoption("--trained-layers")
    if given:
        return [int(layer) for layer in given.split(",")]
    return steering_layers_for(model)


def trained_epochs_for(request) -> list[int]:
    """--trained-epochs: the training budgets to train and choose among on dev (default: the library's)."""
    given = request.config.getoption("--trained-epochs")
    return [int(e) for e in given.split(",")] if given else [DEFAULT_EPOCHS]


def trained_band_for(model, request) -> list[int] | None:
    """--trained-band FIRST-LAST: layers also trained together as one band, beside --trained-layers (an odd run,
    so the protocol's band of that width around the middle layer is exactly them); None when not given."""
    given = request.config.getoption("--trained-band")
    if not given:
        return None
    first, _, last = given.partition("-")
    layers = list(range(int(first), int(last or first) + 1))
    if len(layers) % 2 == 0 or not 0 <= layers[0] <= layers[-1] < model.cfg.n_layers:
        raise pytest.UsageError(f"--trained-band needs an odd run of the model's layers, like 10-14; not {given!r}")
    return layers


@dataclass(frozen=True)
class _Setting:
    """One way the trained vectors are trained and steered: at its layers each alone, or together as a band."""

    layers: tuple[int, ...]
    epochs: int
    band: bool = False
    direction: str = "both"  # trained both ways, or for "toward" or "away" alone (VectorTraining.direction)

    @property
    def name(self) -> str:
        """Names its files (`_run_name`)."""
        return _run_name(list(self.layers), self.epochs, self.band, self.direction)

    def one_side(self) -> dict:
        """Its rows' 'trained for' column: set only for a vector trained for one direction alone."""
        return {} if self.direction == "both" else {"trained for": self.direction}

    def steers(self, way: str) -> bool:
        """Whether this setting's vectors are offered when steering `way` ("toward" or "away")."""
        return self.direction in ("both", way)

    @property
    def at(self) -> str:
        return f"band {self.layers[0]}-{self.layers[-1]}" if self.band else ", ".join(map(str, self.layers))

    def steered_at(self) -> tuple[list[int], SteeringProtocol]:
        """The layers the protocol searches, and the protocol (a band: `_band_steering`)."""
        return _band_steering(list(self.layers)) if self.band else (list(self.layers), BENCH_PROTOCOL)


def _band_steering(band: list[int]) -> tuple[list[int], SteeringProtocol]:
    """A band as one candidate: the protocol's band of its width around its middle layer, the strength spread over
    the layers (so a strength equal to the width adds each layer's vector at its trained scale)."""
    return [band[len(band) // 2]], BENCH_PROTOCOL.with_(bands=(len(band),))


def _run_name(layers: list[int], epochs: int, band: bool = False, direction: str = "both") -> str:
    """What names a training setting in file names: its layers ("band" when trained as one), its epochs when not
    the library's default, and its direction when trained for one alone."""
    return (
        "-".join(map(str, layers))
        + ("-band" if band else "")
        + (f"-e{epochs}" if epochs != DEFAULT_EPOCHS else "")
        + (f"-{direction}" if direction != "both" else "")
    )


def training_settings_for(model, request) -> list[_Setting]:
    """Every training setting dev chooses among: each budget at --trained-layers, with --trained-band the band, and
    with --trained-one-sided each of those trained for each direction alone."""
    layers, band = trained_layers_for(model, request), trained_band_for(model, request)
    runs = [_Setting(tuple(layers), epochs) for epochs in trained_epochs_for(request)]
    runs += [_Setting(tuple(band), epochs, True) for epochs in trained_epochs_for(request)] if band else []
    if request.config.getoption("--trained-one-sided"):
        runs += [replace(run, direction=way) for run in list(runs) for way in ("toward", "away")]
    return runs


def _trained(model, trait: str, setting: _Setting, request):
    """bipo and reps for `trait`, trained once: kept under --runs-dir (when given) so a rerun resumes."""
    root = request.config.getoption("--runs-dir")
    path = Path(root) / "trained" / f"{safe_name(trait)}-{setting.name}.safetensors" if root else None
    if path is not None and path.is_file():
        return tt.TraitVectors.load(path), None
    changed = {
        k: getattr(setting, k)
        for k in ("epochs", "band", "direction")
        if getattr(setting, k) != getattr(VectorTraining(), k)
    }
    options = {m: changed for m in TRAINED} if changed else None
    layers = list(setting.layers)
    started = time.perf_counter()
    vecs = tt.extract(model, trait, list(TRAINED), layers=layers, seed=0, method_options=options, progress=False)
    seconds = time.perf_counter() - started
    if path is not None:
        vecs.save(path)
    return vecs, seconds


def _out_of_distribution(model, trait: str, vectors: dict, layer: int) -> list[dict]:
    """Each vector's AUROC and Cohen's d on the trait's out-of-distribution task, at `layer`."""
    if trait not in TASKS:
        return []
    build, position = TASKS[trait]
    dataset = build()
    acts = tt.capture(model, dataset, layers=[layer], position=position, progress=False)
    rows = []
    for method, vec in vectors.items():
        found = directions_on(vec.direction(layer)[None], [layer], acts)
        rows.append(
            {
                "trait": trait,
                "task": dataset.name,
                "method": method,
                "layer": layer,
                "OOD AUROC": float(found["auroc"][0]),
                "Cohen's d": float(found["cohens_d"][0]),
            }
        )
    return rows


def _defaults() -> str:
    return ", ".join(f"{k} {v}" for k, v in asdict(VectorTraining()).items() if k not in ("objective", "seed"))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


VERDICT_COLUMNS = (
    "trait",
    "direction",
    "method",
    "trained at",
    "epochs",
    "trained for",
    "setting (dev)",
    "gain",
    "gain 95% low",
    "gain 95% high",
    "best fitted (dev)",
    "best fitted gain",
    "vs best fitted",
    "vs best fitted 95% low",
    "vs best fitted 95% high",
    "vs prompting",
    "vs prompting 95% low",
    "vs prompting 95% high",
    "trait change",
    "coherence change",
)


def _cost_rows(trait: str, trained) -> list[dict]:
    """Each trained vector's training record: time, pairs, norm, final loss and the training pairs it wins."""
    rows = []
    for method in TRAINED:
        for layer in trained[method].layers:
            record = trained[method].metadata["training"][str(layer)]
            rows.append(
                {
                    "trait": trait,
                    "method": method,
                    "layer": layer,
                    "seconds": record["seconds"],
                    "pairs": record["pairs"],
                    "epochs": record["epochs"],
                    "norm": record["norm"],
                    "final loss": record["loss_by_epoch"][-1],
                    "train pairs won at +v": record["accuracy"]["toward"],
                    "won at -v": record["accuracy"]["away"],
                    "won unsteered": record["accuracy"]["unsteered"],
                }
            )
    return rows


def _detection_rows(trait: str, trained, epochs: int) -> list[dict]:
    return [
        {
            "trait": trait,
            "method": method,
            "epochs": epochs,
            "layer": layer,
            "AUROC": float(trained[method].metrics["auroc"][i]),
            "accuracy": float(trained[method].metrics["accuracy"][i]),
        }
        for method in TRAINED
        for i, layer in enumerate(trained[method].layers)
    ]


def _gaps(outcome, prompting, fitted) -> dict:
    """A trained outcome against prompting and the best fitted outcome, paired on the same test questions, with
    the fitted one's dev-chosen setting and gain."""
    row: dict = {}
    for label, other in (("vs prompting", prompting), ("vs best fitted", fitted)):
        gap = outcome.gap_to(other) if other is not None else None
        row |= {
            label: gap[0] if gap else None,
            f"{label} 95% low": gap[1] if gap else None,
            f"{label} 95% high": gap[2] if gap else None,
        }
    row["best fitted (dev)"] = fitted.chosen.label if fitted else None  # names the method
    row["best fitted gain"] = (fitted.gain() or [None])[0] if fitted else None
    return row


def _best_fitted(results) -> object | None:
    """Among the fitted methods' outcomes of `results` (method comparison runs), the one with the best dev score
    (a group with no coherent dev run has no outcome: on a tiny random model, none has)."""
    found = [r.outcomes[m] for r in results for m in FITTED if m in r.outcomes]
    return max(found, key=lambda o: o.chosen.answers.score or -1.0) if found else None


@pytest.mark.full
def test_trained_vectors(bench_model, bench_traits, trait_vectors, results, results_dir, request):
    """bipo and reps at the steering layers: training cost, held-out detection, and steering toward and away, each
    with its setting chosen on dev, paired on the test half against unsteered, prompting and the best fitted
    method (chosen on dev among mean_diff, PCA and probe, from the same protocol's run)."""
    layers = steering_layers_for(bench_model)
    settings = training_settings_for(bench_model, request)
    band = next((list(s.layers) for s in settings if s.band), None)
    cost, detection, steering, verdicts = [], [], [], []
    for trait in bench_traits:
        trained = {}
        for setting in settings:
            before = _peak_mb()
            trained[setting], seconds = _trained(bench_model, trait, setting, request)
            one_side = setting.one_side()  # the 'trained for' column of every row this setting adds
            cost += [row | one_side for row in _cost_rows(trait, trained[setting])]
            cost.append(
                {
                    "trait": trait,
                    "method": "both, all layers" if not setting.band else f"both, {setting.at}",
                    "epochs": setting.epochs,
                    "seconds": round(seconds, 1) if seconds is not None else "(trained in an earlier run)",
                    "peak memory MB (process)": round(_peak_mb(), 0),
                    "memory added MB": round(_peak_mb() - before, 0),
                }
                | one_side
            )
            detection += [row | one_side for row in _detection_rows(trait, trained[setting], setting.epochs)]
        fitted = trait_vectors(trait)
        for direction in (1, -1):
            way = "toward" if direction > 0 else "away"
            base = compare_steering(  # the method comparison's own run: its log resumes when --runs-dir has it
                bench_model,
                {m: fitted[m] for m in fitted.methods if m not in ALIASES},
                trait,
                layers,
                direction=direction,
                protocol=BENCH_PROTOCOL,
                log=log_path(request, f"{safe_name(trait)}-{way}"),
            )
            fitted_runs = [base]
            if band is not None:  # the fitted methods get the same band, so a band's win is not the band's alone
                centre, band_protocol = _band_steering(band)
                fitted_runs.append(
                    compare_steering(
                        bench_model,
                        {m: fitted[m] for m in FITTED if m in fitted.methods},
                        trait,
                        centre,
                        direction=direction,
                        protocol=band_protocol,
                        prompting=False,
                        log=log_path(request, f"{safe_name(trait)}-{way}-band{band[0]}-{band[-1]}"),
                    )
                )
            best_fitted = _best_fitted(fitted_runs)
            rows = []
            for setting in filter(lambda s: s.steers(way), settings):
                steer_at, protocol = setting.steered_at()
                mine = compare_steering(
                    bench_model,
                    {m: trained[setting][m] for m in TRAINED},
                    trait,
                    steer_at,
                    direction=direction,
                    protocol=protocol,
                    prompting=False,
                    log=log_path(request, f"trained-{safe_name(trait)}-{way}-l{setting.name}"),
                )
                rows += [
                    {**row, "trained at": setting.at, "epochs": setting.epochs, **setting.one_side()}
                    | _gaps(mine.outcomes[row["method"]], base.outcomes.get(PROMPTING), best_fitted)
                    for row in comparison_rows(trait, mine)
                ]
            if not rows:
                continue
            steering += rows
            best = max(rows, key=lambda r: r["dev score"] or -1.0)  # method and budget, chosen on dev
            verdicts.append(
                {k: best[k] for k in VERDICT_COLUMNS if k in best or k != "trained for"}  # set for one side only
                | {
                    "beats unsteered": (best["gain 95% low"] or -1) > 0,
                    "beats best fitted": (best["vs best fitted 95% low"] or -1) > 0,
                    "beats prompting": (best["vs prompting 95% low"] or -1) > 0,
                }
            )
    assert all(r["seconds"] < 1200 for r in cost if "layer" in r)
    sections = {
        "training cost": (
            cost,
            f"bipo and reps (the library's defaults: {_defaults()}; 'epochs' where a row names another budget) trained "
            "on each trait set's train split (80% of pairs) at each row's layer (by default the "
            f"steering layers {layers}, as the fitted methods), 2 CPU cores; seconds per trait per layer. 'pairs "
            "won': the share of training pairs whose wanted side (positive at +v, negative at -v) has the higher "
            "likelihood per token. 'trained for': a vector trained for that direction alone (--trained-one-sided; "
            "blank: both ways, the sign drawn at each step as the papers do). Memory: the benchmark process's peak "
            "resident set.",
        ),
        "detection (held-out split)": (
            detection,
            "The trained directions read as detectors on the held-out 20% of each trait set.",
        ),
        "steering (test half)": (
            steering,
            "The protocol of 'Steering by method' (strength chosen on 16 dev questions, 64 tokens, greedy, the test "
            "half scored), for bipo and reps at each training budget ('epochs'; blank: the library's default, the "
            "only one trained before budgets were compared), each choosing among the layers it was trained at "
            "('trained at'; 'band A-B': trained together and steered together, its strength spread over the band, "
            "so a strength equal to the band's width adds each layer's vector as trained; blank: "
            f"the layer at {READ_DEPTH:.0%} depth only, the default before 2026-12-07; the fitted methods chose among "
            f"{layers}). "
            "'vs best fitted' is paired on the same test questions against the fitted method (mean_diff, PCA, probe) "
            "with the best dev score in the method comparison's run (and, where a band was trained, among the fitted "
            "methods at the same band); 'vs prompting' against that run's prompting "
            "answers. 'trained for': a vector trained for this direction alone (blank: both ways).",
        ),
        "verdict per trait (chosen on dev)": (
            verdicts,
            "Per trait and direction, the trained method (bipo or reps), training budget ('epochs', where several "
            "were trained), layer or band ('trained at') and training direction ('trained for': one alone; blank: both "
            "ways) with the best dev score; 'beats' = the paired test-half "
            "difference's 95% interval lies above 0.",
        ),
    }
    for name, (rows, note) in sections.items():  # a run over some --traits keeps the newest earlier rows of the others
        section = f"Trained vectors: {name}"
        results.add(section, results.carry_earlier(results_dir, section, rows), note=note)


@pytest.mark.full
def test_trained_vectors_out_of_distribution(bench_model, bench_traits, trait_vectors, results, results_dir, request):
    """bipo and reps as detectors on the four out-of-distribution tasks, beside the fitted methods at the same layer
    (the trained vectors come from --runs-dir when test_trained_vectors trained them there), read at the layer at
    READ_DEPTH (or the deepest trained layer when --trained-layers leaves it out)."""
    trained_at = trained_layers_for(bench_model, request)
    layer = round(READ_DEPTH * (bench_model.cfg.n_layers - 1))
    layer = layer if layer in trained_at else max(trained_at)
    rows = []
    for trait in bench_traits:
        trained, _ = _trained(bench_model, trait, _Setting(tuple(trained_at), DEFAULT_EPOCHS), request)
        fitted = trait_vectors(trait)
        vectors = {m: trained[m] for m in TRAINED} | {m: fitted[m] for m in FITTED if m in fitted.methods}
        rows += _out_of_distribution(bench_model, trait, vectors, layer)
    trained_auroc = [r["OOD AUROC"] for r in rows if r["method"] in TRAINED]
    assert not trained_auroc or sum(trained_auroc) / len(trained_auroc) > 0.5, "trained vectors read tasks backwards"
    section = "Trained vectors: detection out of distribution"
    rows = results.carry_earlier(results_dir, section, rows)
    results.add(
        section,
        rows,
        note=f"The out-of-distribution tasks of 'Detection out of distribution' (labelled behaviour no system "
        f"prompt asked for), read at layer {layer} for the trained and the fitted vectors alike (that "
        "benchmark reads each fitted method at its own best in-distribution layer instead).",
    )
