"""The evaluation table refuses what would otherwise go wrong quietly: a kind whose coordinate is
a shared axis or another kind's with another type, a kind whose cells have coordinates it did not
declare, a kind whose job names another kind (the worker would run that one). Pure."""

from __future__ import annotations

from typing import Any, Literal

import pytest
import yaml

from orchestrator.evaluations import EVALUATIONS, register
from orchestrator.evaluations.base import EvaluationSettings
from orchestrator.evaluations.linear_probe import LinearProbe
from orchestrator.grid import expand
from orchestrator.spec import Spec
from tests.conftest import TINY


class TwinSettings(EvaluationSettings):
    name: Literal["twin"] = "twin"


class Twin(LinearProbe):
    settings = TwinSettings


@pytest.mark.parametrize(("coordinates", "words"), [
    ({"seed": int}, "'seed' is a shared axis"),
    ({"layer": int}, "'layer' is another kind's"),
])
def test_a_coordinate_that_would_be_read_two_ways_is_refused(coordinates, words):
    kind = Twin()
    kind.coordinates = coordinates
    with pytest.raises(ValueError, match=words):
        register(kind)
    assert "twin" not in EVALUATIONS


def sweep_of(kind: Any, monkeypatch, tmp_path):
    monkeypatch.setitem(EVALUATIONS._entries, "twin", kind)  # registered for this test only
    data = yaml.safe_load(TINY)
    data["grid"]["evaluation"] = ["twin"]
    return expand(Spec.model_validate(data, context={"base_dir": tmp_path}), tmp_path)


def test_a_kind_s_cells_have_exactly_its_declared_coordinates(monkeypatch, tmp_path):
    class Undeclared(Twin):
        def points(self, item, spec, uses_labels):
            for point in super().points(item, spec, uses_labels):
                yield {**point, "crop": "centre"}

    with pytest.raises(TypeError, match=r"'twin' made a cell with coordinates \['crop', 'layer', 'probe_dataset'\]"):
        sweep_of(Undeclared(), monkeypatch, tmp_path)
    assert {job.evaluation for job in sweep_of(Twin(), monkeypatch, tmp_path).evaluation_jobs.values()} == {"twin"}


def test_a_kind_whose_job_names_another_kind_is_refused(monkeypatch, tmp_path):
    class Impostor(Twin):
        def job(self, item, spec, base_dir, key, trunk, cells, context):
            return LinearProbe().job(item, spec, base_dir, key, trunk, cells, context)

    with pytest.raises(TypeError, match="'twin' made a job for evaluation 'linear_probe'"):
        sweep_of(Impostor(), monkeypatch, tmp_path)
