"""detectlab.eval: every metric against a small example worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detectlab.eval import BinaryMetrics, best_threshold, binary_metrics, mean_std

# The hand example: 3 real, 3 fake; an image is decided fake when score > 0.5.
#   label  0    0    0    1    1    1
#   score  0.1  0.4  0.6  0.3  0.7  0.9
#   pred   0    0    1    0    1    1
#   group  real real real ganA ganB ganB
LABELS = [0, 0, 0, 1, 1, 1]
SCORES = [0.1, 0.4, 0.6, 0.3, 0.7, 0.9]
GROUPS = ["real", "real", "real", "ganA", "ganB", "ganB"]


def test_metrics_match_the_hand_computed_example():
    m = binary_metrics(LABELS, SCORES)
    # TN = 2 (0.1, 0.4), FP = 1 (0.6), FN = 1 (0.3), TP = 2 (0.7, 0.9)
    assert m.confusion == [[2, 1], [1, 2]]
    assert (m.n, m.n_real, m.n_fake) == (6, 3, 3)
    assert m.accuracy == pytest.approx(4 / 6)          # (TN + TP) / n
    assert m.real_accuracy == pytest.approx(2 / 3)     # TN / (TN + FP)
    assert m.fake_accuracy == pytest.approx(2 / 3)     # TP / (TP + FN)
    assert m.balanced_accuracy == pytest.approx(2 / 3)  # (2/3 + 2/3) / 2
    # ROC AUC = P(fake score > real score) over the 9 (fake, real) pairs:
    # 0.3 beats 0.1 only (1), 0.7 beats all 3, 0.9 beats all 3 -> 7/9
    assert m.roc_auc == pytest.approx(7 / 9)
    # AP: ranked 0.9 F, 0.7 F, 0.6 R, 0.4 R, 0.3 F, 0.1 R; precision at each fake:
    # 1/1, 2/2, 3/5; each fake adds 1/3 recall -> (1 + 1 + 3/5) / 3 = 13/15
    assert m.ap == pytest.approx(13 / 15)
    assert m.threshold == 0.5
    assert m.per_group == {}


def test_best_threshold_maximizes_accuracy():
    # candidate thresholds (fake iff score > t) and their accuracy:
    #   t = 0 -> 3/6, 0.2 -> 4/6, 0.35 -> 3/6, 0.5 -> 4/6, 0.65 -> 5/6, 0.8 -> 4/6, 1 -> 3/6
    m = binary_metrics(LABELS, SCORES)
    assert m.best_threshold == pytest.approx(0.65)
    assert m.accuracy_at_best == pytest.approx(5 / 6)
    assert best_threshold(LABELS, SCORES) == (pytest.approx(0.65), pytest.approx(5 / 6))


def test_best_threshold_prefers_the_given_one_on_ties():
    # perfectly separable: every t in [0.3, 0.7) gives accuracy 1; 0.5 is among them
    t, acc = best_threshold([0, 0, 1, 1], [0.1, 0.3, 0.7, 0.9], prefer=0.5)
    assert acc == 1.0 and t == pytest.approx(0.5)


def test_per_group_is_each_generator_against_all_reals():
    m = binary_metrics(LABELS, SCORES, groups=GROUPS)
    assert list(m.per_group) == ["real", "ganA", "ganB"]
    # real alone: 2 of 3 reals are below 0.5
    assert m.per_group["real"] == {"n": 3, "accuracy": pytest.approx(2 / 3)}
    # ganA: fake 0.3 (missed) vs reals 0.1, 0.4, 0.6 -> correct: 0.1, 0.4 -> 2/4
    a = m.per_group["ganA"]
    assert (a["n"], a["n_real"], a["n_fake"]) == (4, 3, 1)
    assert a["accuracy"] == pytest.approx(2 / 4)
    assert a["fake_accuracy"] == 0.0
    assert a["roc_auc"] == pytest.approx(1 / 3)     # 0.3 beats only 0.1
    assert a["ap"] == pytest.approx(1 / 3)          # the fake is ranked 3rd: precision 1/3
    # ganB: fakes 0.7, 0.9 (both caught) vs the reals -> correct 2 + 2 of 5
    b = m.per_group["ganB"]
    assert b["accuracy"] == pytest.approx(4 / 5)
    assert b["ap"] == pytest.approx(1.0) and b["roc_auc"] == pytest.approx(1.0)
    assert b["confusion"] == [[2, 1], [0, 2]]


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_none_for_undefined_metrics(label):
    m = binary_metrics([label] * 3, [0.2, 0.6, 0.8])
    assert m.ap is None and m.roc_auc is None and m.balanced_accuracy is None
    if label == 1:  # 0.6 and 0.8 are caught
        assert m.real_accuracy is None and m.fake_accuracy == pytest.approx(2 / 3)
    else:           # 0.2 is correct
        assert m.fake_accuracy is None and m.real_accuracy == pytest.approx(1 / 3)
    assert m.accuracy == pytest.approx(2 / 3 if label else 1 / 3)
    assert m.accuracy_at_best == 1.0  # t = 0 (all fake) or t = 1 (all real)
    json.dumps(m.to_dict())


def test_to_dict_is_json_serialisable_with_plain_types():
    d = binary_metrics(np.array(LABELS), np.array(SCORES, dtype=np.float32), groups=GROUPS).to_dict()
    assert json.loads(json.dumps(d))["per_group"]["ganB"]["accuracy"] == pytest.approx(0.8)
    assert type(d["accuracy"]) is float and type(d["n"]) is int


@pytest.mark.parametrize("labels,scores,kw,match", [
    ([], [], {}, "at least one"),
    ([0, 1], [0.5], {}, "as long as labels"),
    ([0, 2], [0.1, 0.2], {}, "0 \\(real\\) or 1"),
    ([0, 1], [0.1, 1.5], {}, "\\[0, 1\\]"),
    ([0, 1], [0.1, 0.2], {"threshold": 2.0}, "threshold"),
    ([0, 1], [0.1, 0.2], {"groups": ["real"]}, "generator of each image"),
    ([0, 1], [0.1, 0.2], {"groups": ["real", "real"]}, 'fake image .* "real"'),
])
def test_bad_input_raises_a_clear_error(labels, scores, kw, match):
    with pytest.raises(ValueError, match=match):
        binary_metrics(labels, scores, **kw)


def test_mean_std_over_runs():
    runs = [binary_metrics(LABELS, SCORES, groups=GROUPS), binary_metrics(LABELS, [0.1, 0.4, 0.4, 0.6, 0.7, 0.9])]
    # accuracies 4/6 and 6/6 -> mean 5/6, population std 1/6
    out = mean_std([runs[0], runs[1].to_dict()])
    assert out["runs"] == 2
    assert out["mean"]["accuracy"] == pytest.approx(5 / 6)
    assert out["std"]["accuracy"] == pytest.approx(1 / 6)
    assert out["mean"]["n"] == 6.0 and out["std"]["n"] == 0.0
    assert "confusion" not in out["mean"]
    # per_group exists in one run only: averaged over that run
    assert out["mean"]["per_group"]["ganB"]["accuracy"] == pytest.approx(0.8)
    # a metric None in one run is averaged over the others; None everywhere stays None
    single = [binary_metrics([1, 1], [0.9, 0.2]), binary_metrics([1, 1], [0.9, 0.8])]
    assert mean_std(single)["mean"]["ap"] is None
    assert mean_std(single)["mean"]["fake_accuracy"] == pytest.approx(0.75)
    json.dumps(out)
    with pytest.raises(ValueError):
        mean_std([])
    assert isinstance(runs[0], BinaryMetrics)
