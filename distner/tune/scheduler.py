"""The study's scheduler: Ray Tune's ASHA, which on a resume first records the scores the study's
trials already reached at its rungs.

Ray saves a study's searcher but not its scheduler, so a restored ASHA starts with empty rungs:
each trial ended before the stop is forgotten, and a resumed trial's next epochs fill the lower
rungs with later (higher) scores. Trials after the resume are then judged against the wrong bar.
Ray hands every restored trial to `on_trial_add`; this class replays that trial's results
(its `result.json`, read through core/compat.py) through ASHA's own `on_trial_result`, so each rung
holds what it held when the study stopped. A new trial has no results and is added as in Ray.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler

from distner.core import compat


class ResumableASHA(ASHAScheduler):
    """ASHAScheduler whose rungs survive --resume (module docstring). Adds no state of its own, so a
    study pickled with Ray's own ASHAScheduler is resumed as this class (compat.resume_scheduler_as)."""

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        if not trial.has_reported_at_least_once:  # a new trial: nothing to replay
            return
        for result in compat.trial_results(trial):  # the decisions were taken; only the rungs matter
            super().on_trial_result(tune_controller, trial, result)
