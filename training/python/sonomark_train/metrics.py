"""AUC and group-bootstrap confidence intervals for out-of-fold predictions."""
import numpy as np


def auc(y, s):
    """ROC AUC by the rank statistic (ties count half); None when one class is missing."""
    y = np.asarray(y, dtype=float)
    s = np.asarray(s, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def group_bootstrap_ci(y, s, groups, stat=auc, reps=2000, seed=7):
    """95% percentile CI, resampling whole groups (patients/series) with replacement.

    Clips of one group are correlated, so resampling clips would give
    intervals that are too narrow.
    """
    rng = np.random.default_rng(seed)
    y, s, groups = np.asarray(y), np.asarray(s), np.asarray(groups)
    uniq = np.unique(groups)
    if len(uniq) == 0:
        return None
    members = [np.flatnonzero(groups == g) for g in uniq]
    vals = []
    for _ in range(reps):
        take = np.concatenate([members[j] for j in rng.integers(0, len(uniq), len(uniq))])
        v = stat(y[take], s[take])
        if v is not None:
            vals.append(v)
    if not vals:
        return None
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]
