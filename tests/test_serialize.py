import json

from advisor.serialize import to_dict
from advisor.advise import advise
from advisor.api import Analysis
from tests.advise.test_rules import PEAKED, make_profile


def test_analysis_json_round_trip(tmp_path):
    prof = make_profile(10, PEAKED)
    a = Analysis(profile=prof, advice=advise(prof))
    path = tmp_path / "a.json"
    a.save(path)
    data = json.loads(path.read_text())
    assert data["advice"]["strategy"] == "svm_early"
    back = Analysis.load(path)
    assert back == a
    assert back.profile.blocks[3].knn_accuracy["label"] == PEAKED[3]
    assert back.advice.search_space.n_blocks == 8


def test_non_finite_becomes_null():
    assert to_dict({"x": float("nan")}) == {"x": None}
