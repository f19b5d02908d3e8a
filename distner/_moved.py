"""The module paths of distner's flat layout (0.1), kept as aliases of their new homes for one
release: Ray pickles a study's searcher by module path (its tuner.pkl names
`distner.searcher.StudySearch`), so a study started before the move still resumes. Nothing is
imported until an old path is asked for. Paths that are now packages (data, model, evaluation,
report, pretrained) cannot be aliases; no pickle distner writes names them."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

MOVED = {
    "errors": "core.errors",
    "fileio": "core.fileio",
    "paths": "core.paths",
    "locks": "core.locks",
    "interrupts": "core.interrupts",
    "manifest": "core.manifest",
    "compat": "core.compat",
    "flags": "core.flags",
    "extras": "core.extras",
    "encoder": "pretrained.encoder",
    "conll": "data.conll",
    "encoded": "data.encoded",
    "crf": "model.crf",
    "runs": "model.runs",
    "metrics": "evaluation.metrics",
    "training": "train.fit",
    "engine": "train.engine",
    "optim": "train.optim",
    "checkpoints": "train.checkpoints",
    "tuning": "tune.driver",
    "study": "tune.study",
    "trial": "tune.trial",
    "packed": "tune.packed",
    "searcher": "tune.searcher",
    "ray_runtime": "tune.ray_runtime",
    "cluster": "tune.cluster",
    "tables": "report.tables",
    "monitoring": "report.monitoring",
    "retrain": "workflow.retrain",
    "pipeline": "workflow.pipeline",
    "cli": "cli.main",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import distner.OLD` gives the module at its new path (the same module object)."""

    def __init__(self) -> None:
        self.specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        pkg, _, name = fullname.partition(".")
        if pkg != "distner" or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(f"distner.{MOVED[spec.name.partition('.')[2]]}")
        self.specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # the new module ran when it was imported; the import system set its __spec__ to the
        # alias's: give it back its own
        module.__spec__ = self.specs[module.__name__]


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
