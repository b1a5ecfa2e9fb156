"""The methods paragraph: what was done, in words a reader can paste into a paper."""

from __future__ import annotations

TASKS = {
    "denoise": "denoised",
    "sr": "super-resolved",
    "inpaint": "inpainted",
}
ANCHORS = {
    "denoise": {"tv": "total-variation denoising", "gaussian": "Gaussian smoothing"},
    "sr": "trilinear interpolation, Gaussian-smoothed until it no longer fits the noise",
    "inpaint": "a normalised-convolution fill",
}


def methods(report: dict) -> str:
    fit, config = report["fit"], report["provenance"]["config"]
    net = config["network"]
    versions = report["provenance"]["versions"]
    anchor = _anchor(report["task"], config["anchor"])
    noise = report["noise"]
    sigma = (
        f"estimated from the data ({noise['method']}) as {noise['sigma']:.4g} {noise['units']}"
        if noise["estimated"]
        else f"given as {noise['sigma']:.4g} {noise['units']}"
    )
    return (
        f"The volume was {TASKS[report['task']]} with a deep image prior (Ulyanov et al., "
        f"CVPR 2018) using dipmed {versions['dipmed']}: a randomly initialised "
        f"{fit['mode'].upper()} MONAI BasicUNet (features {tuple(net['features'])}, "
        f"{net['norm']} normalisation) mapping a fixed random input to the image was fitted "
        f"to this scan alone, with no training data, by Adam (learning rate "
        f"{config['fit']['learning_rate']}) on a {fit['loss'].upper()} loss in measurement "
        f"space. {anchor} The noise standard deviation was {sigma}. "
        f"{_stop(fit)} The output is an exponential moving average of the iterates "
        f"(decay {config['fit']['ema']}); random seed {config['seed']}; "
        f"{fit['seconds']:.1f} s on {fit['device']} (PyTorch {versions['torch']}, "
        f"MONAI {versions['monai']})."
    )


def _anchor(task: str, style: str) -> str:
    if style == "none":
        return "The network output was the image itself (plain DIP)."
    name = ANCHORS[task][style] if task == "denoise" else ANCHORS[task]
    return (
        f"The network's output was added to a fixed baseline estimate ({name}), "
        "whose correction it learned."
    )


def _stop(fit: dict) -> str:
    rule = fit["rule"]
    if rule["name"] == "discrepancy":
        how = f"the misfit fell to {rule['tau']} times the noise variance (discrepancy principle)"
    elif rule["name"] == "variance":
        how = (
            "the running variance of the output had not decreased for "
            f"{rule['patience']} iterations"
        )
    else:
        how = "the iteration cap was reached"
    if fit["stop_iteration"]:
        return f"Fitting stopped at iteration {fit['stop_iteration']}, when {how}."
    return (
        f"Fitting ran for {fit['iterations']} iterations ({fit['stop_reason'].replace('_', ' ')}); "
        f"the rule was to stop when {how}."
    )
