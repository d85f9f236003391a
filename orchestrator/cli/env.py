"""Print versions, devices and the installed plugins, for bug reports."""

from __future__ import annotations

import argparse


def register(p: argparse.ArgumentParser) -> None:
    del p  # no options


def main(args: argparse.Namespace) -> int:
    import torch

    from contract import plugins
    from orchestrator.record.runs import environment

    for key, value in sorted(environment().items()):
        print(f"{key.removeprefix('monosweep.')}: {value}")
    print(f"cuda: {torch.version.cuda} (available: {torch.cuda.is_available()})")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name()}")
    for p in plugins.load():
        print(f"plugin: {p.distribution} {p.version} ({p.group}: {p.name} = {p.module})")
    return 0
