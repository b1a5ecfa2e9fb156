"""Warnings a reader should see first, derived from a report's figures."""

from __future__ import annotations

RESIDUAL_CORRELATION_LIMIT = 0.15  # |r| above this: the residual holds visible anatomy
WHITENESS_LIMIT = 0.85  # below: a good part of the residual is smooth structure, not noise
RESIDUAL_STD_LIMITS = (0.5, 1.3)  # denoising: residual std / noise sigma outside: suspicious
MISFIT_MARGIN = 1.5  # internal sr: a misfit above this x the level after back-projection
EARLY_STOP_ITERATIONS = 5  # a result from this early is essentially the baseline


def flags(report: dict) -> list[dict]:
    """[{"code", "message"}], most important first; empty when nothing looks wrong."""
    out = _stop_flags(report["fit"])
    out += _residual_flags(report["task"], report["metrics"]["residual"])
    out += _reference_flags(report["metrics"])
    out += [_flag("input_assumption", w) for w in report["input"].get("warnings", [])]
    return out


def _stop_flags(fit: dict) -> list[dict]:
    if fit["rule"]["name"] == "sure":
        return _risk_flags(fit["rule"])
    if fit["rule"]["name"] == "internal":
        return _internal_flags(fit["rule"])
    if fit["stop_reason"] == "max_iters" and fit["rule"]["name"] != "none":
        return [
            _flag(
                "iteration_cap",
                f"the {fit['rule']['name']} rule did not fire within "
                f"{fit['iterations']} iterations; the result may be under-fitted "
                "(raise fit.max_iters)",
            )
        ]
    if fit["best_iteration"] <= EARLY_STOP_ITERATIONS:
        return [
            _flag(
                "early_stop",
                f"the result is from iteration {fit['best_iteration']}: "
                "the baseline already fitted the data to the noise level, so the "
                "network changed little (compare with the baseline row)",
            )
        ]
    if fit["stop_reason"] == "time_limit":
        return [
            _flag(
                "time_limit",
                f"stopped by the time limit after {fit['iterations']} "
                "iterations; the result may be under-fitted",
            )
        ]
    return []


def _internal_flags(rule: dict) -> list[dict]:
    if rule["rms_misfit"] > MISFIT_MARGIN * rule["threshold_rms_misfit"]:
        return [
            _flag(
                "not_consistent",
                f"the result misses the measured slices by {rule['rms_misfit']:.3g} (rms), "
                f"more than {MISFIT_MARGIN} x the level {rule['threshold_rms_misfit']:.3g}; "
                "compare with the baseline (cubic) row",
            )
        ]
    return []


def _risk_flags(rule: dict) -> list[dict]:
    if rule["chosen"] == "input":
        return [
            _flag(
                "no_improvement",
                "the risk estimate found no candidate better than the input, which is "
                "returned unchanged (check the noise level: given or estimated too low?)",
            )
        ]
    return []


def _residual_flags(task: str, residual: dict) -> list[dict]:
    out = []
    r, white = residual.get("correlation_with_restored"), residual.get("whiteness")
    why = []
    if r is not None and abs(r) > RESIDUAL_CORRELATION_LIMIT:
        why.append(f"it correlates with the restored image (r = {r:.2f})")
    if white is not None and white < WHITENESS_LIMIT:
        why.append(f"it is smoother than noise (whiteness {white:.2f})")
    if why:
        message = f"the residual holds structure: {' and '.join(why)}; anatomy may have "
        out.append(_flag("residual_structure", message + "been removed (see the residual views)"))
    ratio = residual.get("std_over_sigma")
    low, high = RESIDUAL_STD_LIMITS
    if task == "denoise" and ratio is not None and not low <= ratio <= high:
        what = "more than the noise was removed" if ratio > high else "much of the noise is kept"
        out.append(
            _flag("residual_level", f"residual std is {ratio:.2f} x the noise sigma: {what}")
        )
    return out


def _reference_flags(metrics: dict) -> list[dict]:
    restored = metrics["restored"].get("psnr")
    if restored is None:
        return []
    out = []
    for name in ("input", "baseline"):
        other = metrics[name].get("psnr")
        if other is not None and restored < other:
            out.append(
                _flag(
                    f"worse_than_{name}",
                    f"restored PSNR {restored:.2f} dB is below the {name}'s {other:.2f} dB",
                )
            )
    return out


def _flag(code: str, message: str) -> dict:
    return {"code": code, "message": message}
