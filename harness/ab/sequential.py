"""Always-valid inference for peeking every day.

tea-tasting gives fixed-horizon intervals; looking at them every day inflates the false
positive rate. This module turns the same estimate and standard error into a
*confidence sequence*: an interval valid simultaneously at every look.

It follows the normal-mixture sequential probability ratio test (mSPRT) of

* Johari, Koomen, Pekelis and Walsh (2017, 2022), "Peeking at A/B Tests: Why it matters,
  and what to do about it", KDD 2017 / Operations Research 70(3): for an estimate
  theta_hat with variance V and a N(0, tau^2) mixture over the effect, the likelihood
  ratio against theta0 is

      Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 (theta_hat - theta0)^2 / (2 V (V + tau^2)))

  the always-valid p-value is min(1, 1 / max Lambda so far), and inverting
  ``Lambda < 1/alpha`` gives the interval theta_hat +/- half_width with

      half_width^2 = (2 V (V + tau^2) / tau^2) * (log(1/alpha) + 0.5 log((V + tau^2) / V)).

* Howard, Ramdas, McAuliffe and Sekhon (2021), "Time-uniform, nonparametric,
  nonasymptotic confidence sequences", Annals of Statistics 49(2): the same boundary is
  their two-sided normal-mixture boundary (with rho = sigma^2 / tau^2), and their tuning
  of the mixture makes it tightest at a chosen time m with approximately
  tau^2 / V_m = 2 log(1/alpha) + log(1 + 2 log(1/alpha)).

The estimate and V come from tea-tasting's delta-method analysis of the cumulative data
at each day (normal approximation), so the interval is asymptotically valid (Waudby-Smith
et al. 2021, "Time-uniform central limit theory and asymptotic confidence sequences").
tau^2 is fixed once, from the variance at the first look scaled to the planned horizon,
so it does not depend on later data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def tau2_for_horizon(v_first: float, first_day: int, horizon_days: int, alpha: float) -> float:
    """Mixture variance tightest at the planned horizon, assuming the information grows
    linearly in days (V_horizon ~ V_first * first_day / horizon)."""
    la = math.log(1.0 / alpha)
    ratio = 2 * la + math.log(1 + 2 * la)
    v_h = v_first * max(first_day, 1) / max(horizon_days, 1)
    return ratio * v_h


def likelihood_ratio(theta: float, v: float, tau2: float, theta0: float = 0.0) -> float:
    if not (v > 0 and math.isfinite(v) and math.isfinite(theta)):
        return 1.0
    log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * (theta - theta0) ** 2 / (2 * v * (v + tau2))
    return math.exp(min(log_lr, 700.0))


def half_width(v: float, tau2: float, alpha: float) -> float:
    if not (v > 0 and math.isfinite(v)):
        return math.inf
    return math.sqrt((2 * v * (v + tau2) / tau2) * (math.log(1 / alpha) + 0.5 * math.log((v + tau2) / v)))


@dataclass
class SequentialPoint:
    day: int
    estimate: float
    variance: float
    ci_lower: float
    ci_upper: float
    pvalue: float  # always valid: running minimum of 1 / Lambda

    def to_json(self) -> dict:
        return {
            "day": self.day,
            "effect_size": self.estimate,
            "se": math.sqrt(self.variance) if self.variance >= 0 else None,
            "seq_ci_lower": self.ci_lower,
            "seq_ci_upper": self.ci_upper,
            "seq_pvalue": self.pvalue,
        }


def confidence_sequence(
    days: list[int],
    estimates: list[float],
    variances: list[float],
    *,
    alpha: float = 0.05,
    horizon_days: int = 14,
    tau2: float | None = None,
) -> tuple[list[SequentialPoint], float]:
    """The confidence sequence over the cumulative estimates of successive days, with the
    running intersection (an always-valid interval may be intersected over time)."""
    points: list[SequentialPoint] = []
    lower, upper = -math.inf, math.inf
    p = 1.0
    for day, theta, v in zip(days, estimates, variances, strict=True):
        if tau2 is None:
            if not (v > 0 and math.isfinite(v)):
                points.append(SequentialPoint(day, theta, v, -math.inf, math.inf, 1.0))
                continue
            tau2 = tau2_for_horizon(v, day + 1, horizon_days, alpha)
        hw = half_width(v, tau2, alpha)
        lower = max(lower, theta - hw)
        upper = min(upper, theta + hw)
        if lower > upper:  # can only happen when the model is badly wrong; keep the latest
            lower, upper = theta - hw, theta + hw
        p = min(p, 1.0 / max(likelihood_ratio(theta, v, tau2), 1.0))
        points.append(SequentialPoint(day, theta, v, lower, upper, p))
    return points, (tau2 if tau2 is not None else math.nan)
