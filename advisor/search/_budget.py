"""``--trials N`` over any number of workers: exactly N trials, handed out as the workers ask for them.

:class:`TrialBudget` is Optuna's ``MaxTrialsCallback`` counting our way (see
:mod:`advisor.search.trials`): after every trial a worker stops once the trials that count
(:func:`~advisor.search.trials.finished_count`) plus those still RUNNING reach N; on a journal file
it first fails the trials of dead workers on this machine, so their retries are handed out too.

That alone can overshoot: two workers that finish a trial at the same moment both see one slot
left and both start a trial. So the objective also asks :meth:`TrialBudget.admits` first thing:
a trial is admitted when the trials numbered before it (counted, RUNNING or WAITING) leave a slot.
Trial numbers follow creation order in every storage, so of two racing trials exactly the later one
withdraws; it is recorded as failed with user attribute ``surplus`` (no parameters, no MLflow run)
and counts nowhere.
"""

from __future__ import annotations

from optuna.study import MaxTrialsCallback


class TrialBudget(MaxTrialsCallback):
    """Stop ``study.optimize`` once the study holds ``n_trials`` counted or running trials."""

    def __init__(self, n_trials: int) -> None:
        super().__init__(n_trials, states=None)
        self.n_trials = n_trials

    def __call__(self, study, trial) -> None:
        from optuna.trial import TrialState

        from advisor.search.trials import _counts, is_rdb, recover_stale_trials

        if not is_rdb(study):  # RDB: Optuna checks heartbeats before every trial
            recover_stale_trials(study)
        done, pending = _counts(study.get_trials(deepcopy=False))
        if len(done) + sum(t.state == TrialState.RUNNING for t in pending) >= self.n_trials:
            study.stop()

    def admits(self, trial) -> bool:
        """Whether ``trial`` (just started) is within the budget: the trials before it leave a slot."""
        from advisor.search.trials import claimed_count

        return claimed_count(trial.study, below=trial.number) < self.n_trials

    def claim(self, trial) -> bool:
        """:meth:`admits`; a trial it does not admit is marked ``surplus`` (the caller then fails it)."""
        if self.admits(trial):
            return True
        trial.set_user_attr("surplus", True)
        return False
