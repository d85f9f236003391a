"""Key material: a settings field added later keeps every recorded key while it holds its
neutral value, and changes the key when it does not."""

from __future__ import annotations

from typing import Annotated, Literal

from contract.base import KeyNeutral
from contract.methods import RotNetConfig
from orchestrator.keys import content_key, settings_material


class RotNetWithKnob(RotNetConfig):
    """RotNet as if a later version had added a setting (`head_dropout`, 0 before it existed)."""

    name: Literal["rotnet"] = "rotnet"
    head_dropout: Annotated[float, KeyNeutral(0.0)] = 0.0


def key(settings) -> str:
    return content_key("pretrain", {"method": settings_material(settings)})


def test_a_field_added_with_its_neutral_value_keeps_the_key():
    assert key(RotNetWithKnob(epochs=3)) == key(RotNetConfig(epochs=3))


def test_the_added_field_enters_the_key_when_set():
    assert key(RotNetWithKnob(epochs=3, head_dropout=0.5)) != key(RotNetConfig(epochs=3))


def test_an_unmarked_new_field_would_change_the_key():
    """Why the marker exists (and the golden-key test catches a field added without it)."""

    class Unmarked(RotNetConfig):
        name: Literal["rotnet"] = "rotnet"
        head_dropout: float = 0.0

    assert key(Unmarked(epochs=3)) != key(RotNetConfig(epochs=3))


def test_a_preset_name_is_not_key_material():
    from contract.augmentation import AugmentConfig

    assert settings_material(AugmentConfig(preset="full")) == settings_material(AugmentConfig(preset="official_script"))


COMPUTED = """\
name: computed
grid:
  method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]
  images: [astronaut]
  augmentation: [full]
  evaluation: [linear_probe, {name: finetune_frozen, frozen: [2]}]
  layer: [conv1, conv5]
  probe_dataset: [fashion_mnist]
network: {width: 0.25, input_size: 64}
"""


def expanded(write_spec, compute: str = ""):
    from orchestrator.sweep import prepare

    return prepare(write_spec(COMPUTED + compute)).sweep


def every_key(sweep) -> set[str]:
    return {c.key for c in sweep.cells} | set(sweep.pretrain_jobs) | set(sweep.evaluation_jobs)


def test_fp32_eager_written_out_keeps_every_key(write_spec):
    """`compute` at fp32 eager is what every file without it meant (golden_keys.json pins those)."""
    written = "compute: {precision: fp32, channels_last: false, compile: false}\n"
    assert every_key(expanded(write_spec, written)) == every_key(expanded(write_spec))


def test_any_other_compute_setting_moves_every_key_and_reaches_every_job(write_spec):
    """bf16, channels_last alone and compile each change every trunk's key and so every cell's
    and evaluation job's; every job, evaluation jobs of each kind included, carries the setting.
    Mutation tried: the grid leaving `compute` out of the pretrain material: fails here."""
    from contract.compute import ComputeConfig

    plain = every_key(expanded(write_spec))
    seen = [plain]
    for setting in ("{precision: bf16}", "{channels_last: true}", "{compile: true}"):
        sweep = expanded(write_spec, f"compute: {setting}\n")
        keys = every_key(sweep)
        assert all(keys.isdisjoint(other) for other in seen), setting
        seen.append(keys)
        jobs = [*sweep.pretrain_jobs.values(), *sweep.evaluation_jobs.values()]
        assert {j.compute for j in jobs} == {sweep.spec.compute} != {ComputeConfig()}


def test_the_setting_is_recorded_on_every_run(write_spec):
    """As params of the pretrain runs and of every cell's run (the job's dump, flattened)."""
    from orchestrator.jobs import flatten, pretrain_params

    sweep = expanded(write_spec, "compute: {precision: bf16}\n")
    for job in sweep.pretrain_jobs.values():
        params = pretrain_params(job)
        assert (params["compute.precision"], params["compute.channels_last"], params["compute.compile"]) == (
            "bf16", True, False)
    for job in sweep.evaluation_jobs.values():
        assert flatten("", job.model_dump(mode="json"))["compute.precision"] == "bf16"
