"""Experiments as a product: the registry, reproducibility cards (JSON + self-contained HTML), re-runs that
compare every number, the downloads, the queued job's settings check and the CLI — on the tiny planted set
of tests/test_experiments_generalization.py (its backbone replaced by per-channel means)."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from detectlab.experiments import card as cards
from detectlab.experiments import core
from detectlab.experiments.registry import EXPERIMENTS, ExperimentError, experiment, run_experiment
from test_experiments_generalization import extracted, make_planted_set  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return make_planted_set(tmp_path_factory.mktemp("card") / "set")


@pytest.fixture
def cache(tmp_path):
    return core.ProbeCache(folder=tmp_path / "probes")


def test_every_experiment_names_its_defaults_and_refuses_unknown_settings():
    for name, exp in EXPERIMENTS.items():
        params = exp.defaults()
        assert isinstance(params, dict) and params, name
        json.dumps(params)  # a card can hold them
    with pytest.raises(ExperimentError, match="unknown setting colour; it takes"):
        experiment("cross-generator").params({"colour": 1})
    with pytest.raises(ExperimentError, match="no experiment 'nope'; known: cross-generator"):
        experiment("nope")


def test_card_holds_what_a_rerun_needs_and_the_rerun_reproduces_every_number(planted, extracted, cache, tmp_path):
    result = run_experiment("cross-generator", {"data": str(planted)}, cache=cache)
    json_path, html_path = cards.write_card(result, tmp_path / "out")
    card = json.loads(json_path.read_text())
    assert card["format"] == cards.FORMAT and card["experiment"] == "cross-generator"
    assert card["params"]["data"] == str(planted) and card["seeds"]["seed"] == result.params["seed"]
    assert card["data"]["fingerprint"] == result.data_fingerprint and len(result.data_fingerprint) == 16
    assert {"detectlab", "torch", "numpy", "scikit-learn"} <= set(card["versions"])
    assert card["tables"] == json.loads(json.dumps(result.tables))
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "plotly" in page and "detectlab experiment rerun" in page
    assert "<script src=" not in page  # self-contained: plotly.js inline, nothing fetched
    fitted = cache.fits
    again = cards.rerun_card(json_path, cache=cache)
    assert again.reproduced and again.compared >= 27 and again.same_data, again.differences[:3]
    assert cache.fits == fitted, "the re-run fitted models the card's run had fitted already"


def test_a_changed_number_is_reported_and_foreign_cards_are_refused_in_one_line(planted, extracted, cache, tmp_path):
    result = run_experiment("leave-one-out", {"data": str(planted)}, cache=cache)
    json_path, _ = cards.write_card(result, tmp_path)
    card = json.loads(json_path.read_text())
    first = card["tables"][next(iter(card["tables"]))][0]
    key = next(k for k, v in first.items() if isinstance(v, float))
    first[key] = first[key] + 0.5
    json_path.write_text(json.dumps(card))
    again = cards.rerun_card(json_path, cache=cache)
    assert not again.reproduced and len(again.differences) == 1 and key in again.differences[0]
    card["format"] = "detectlab-experiment-card/0"
    json_path.write_text(json.dumps(card))
    with pytest.raises(ExperimentError) as err:
        cards.read_card(json_path)
    assert "card format 'detectlab-experiment-card/0'" in str(err.value) and "\n" not in str(err.value)
    json_path.write_text("[1, 2]")
    with pytest.raises(ExperimentError, match="not an experiment card"):
        cards.read_card(json_path)


def test_downloads_are_a_csv_per_table_and_html_and_png_per_figure(planted, extracted, cache, tmp_path):
    from detectlab.experiments.export import export_result

    result = run_experiment("cross-generator", {"data": str(planted)}, cache=cache)
    files = export_result(result, tmp_path / "dl")
    names = [p.name for p in files]
    assert names[:2] == ["cross-generator-card.json", "cross-generator-card.html"]
    assert sum(n.endswith(".csv") for n in names) == sum(1 for rows in result.tables.values() if rows)
    pngs = [p for p in files if p.suffix == ".png"]
    assert len(pngs) == len(result.figures) >= 1
    for p in pngs:
        with Image.open(p) as im:
            assert im.size[0] > 300 and im.size[1] > 200


def test_the_queued_job_refuses_bad_data_before_anything_is_queued(tmp_path, planted):
    from detectlab.experiments.job import parse_settings, run_config

    one = make_planted_set(tmp_path / "one", gens=("a",), n=8)
    with pytest.raises(Exception) as err:
        run_config("cross-generator", {"data": str(one)})
    assert "\n" not in str(err.value) and "generator" in str(err.value), str(err.value)
    cfg = run_config("cross-generator", {"data": str(planted)})
    assert cfg["kind"] == "experiment" and cfg["params"]["data"] == str(planted)
    with pytest.raises(ExperimentError, match="not valid JSON"):
        parse_settings("{runs: 3")
    with pytest.raises(ExperimentError, match="a JSON object"):
        parse_settings("[3]")


def test_cli_runs_writes_the_card_and_reruns_it(planted, extracted, tmp_path, capsys):
    from detectlab.cli import main

    out = tmp_path / "cli"
    assert main(["experiment", "run", "cross-generator", "--data", str(planted), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "card:" in printed and (out / "cross-generator.json").exists()
    assert main(["experiment", "rerun", str(out / "cross-generator.json"), "--quiet"]) == 0
    assert "reproduced:" in capsys.readouterr().out


@pytest.mark.slow  # a worker process extracts real MobileNetV2 features of the tiny set
def test_a_queued_experiment_runs_in_a_worker_and_a_rerun_reuses_every_model(planted, tmp_path):
    from detectlab.experiments.job import RUNNER, load_figures, run_config
    from detectlab.runs import RunManager

    m = RunManager(tmp_path / "home", poll_seconds=0.2)
    try:
        first = m.submit(run_config("cross-generator", {"data": str(planted)}))
        assert first.kind == "experiment" and first.config["runner"] == RUNNER
        done = m.store.wait_for(first.id, lambda r: r.status not in ("queued", "running"), timeout=300)
        assert done.status == "finished", done.error
        res = done.result
        assert res["models"]["fitted"] == 3 and len(res["tables"]["cross_generator"]) == 9
        names = {os.path.basename(f) for f in res["files"]}
        assert {"cross-generator-card.json", "cross-generator-card.html"} <= names
        assert load_figures(m.runs_dir / first.id), "the app reads the run's figures back"
        assert m.store.checkpoints() == {}, "an experiment is not a detector for the pickers"
        again = m.submit(run_config("cross-generator", {"data": str(planted)}))
        done = m.store.wait_for(again.id, lambda r: r.status not in ("queued", "running"), timeout=300)
        assert done.status == "finished" and done.result["models"] == {"fitted": 0, "reused": 3}
        assert done.result["tables"] == res["tables"]
    finally:
        m.close()


def test_the_queue_refuses_a_job_runner_outside_detectlab(tmp_path):
    from detectlab.runs import RunManager
    from detectlab.train.config import TrainConfigError

    m = RunManager(tmp_path / "home", poll_seconds=0.2)
    try:
        for runner in ("os", "subprocess", "detectlab.nope", "detectlab.errors"):
            with pytest.raises(TrainConfigError):
                m.submit({"kind": "experiment", "runner": runner})
        assert m.store.list() == []
    finally:
        m.close()
