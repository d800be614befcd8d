"""Signal-detection theory: sensitivity and criterion from hits and false alarms.

Pure numbers (numpy and scipy only), shared by the training loop's validation of the cued task
and by `gattanet_sim.analysis.detection`, which reads recordings.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def sdt(hits, n_signal, false_alarms, n_noise) -> tuple[np.ndarray, np.ndarray]:
    """Equal-variance Gaussian SDT: d' = z(H) - z(F), c = -(z(H) + z(F)) / 2 (Macmillan &
    Creelman 2005, Detection Theory), with the log-linear correction of Hautus (1995): H =
    (hits + 0.5) / (n + 1), likewise F, so rates of 0 or 1 stay finite and every cell is treated
    alike. Vectorised; NaN where there are no signal or no noise trials."""
    hits, n_signal, fas, n_noise = (np.asarray(a, dtype=float) for a in
                                    (hits, n_signal, false_alarms, n_noise))
    defined = (n_signal > 0) & (n_noise > 0)
    z_hit = stats.norm.ppf((hits + 0.5) / (n_signal + 1))
    z_fa = stats.norm.ppf((fas + 0.5) / (n_noise + 1))
    return np.where(defined, z_hit - z_fa, np.nan), np.where(defined, -(z_hit + z_fa) / 2, np.nan)
