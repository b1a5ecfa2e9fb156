"""The methods paragraph: what was done, in words a reader can paste into a paper."""

from __future__ import annotations

TASKS = {
    "denoise": "denoised",
    "sr": "super-resolved",
    "inpaint": "inpainted",
}
ANCHORS = {
    "denoise": {"tv": "total-variation denoising", "gaussian": "Gaussian smoothing"},
    "sr": "trilinear interpolation, back-projected or Gaussian-smoothed so that its misfit "
    "sits just above the noise level",
    "inpaint": "a normalised-convolution fill",
}


def methods(report: dict) -> str:
    if report["fit"]["rule"]["name"] == "sure":
        return _guided(report)
    if report["fit"]["rule"]["name"] == "internal":
        return _internal(report)
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
        f"{_denoised_first(fit['rule'], noise['units'])}"
        f"{_stop(fit)} The output is an exponential moving average of the iterates "
        f"(decay {config['fit']['ema']}); random seed {config['seed']}; "
        f"{fit['seconds']:.1f} s on {fit['device']} (PyTorch {versions['torch']}, "
        f"MONAI {versions['monai']})."
    )


def _guided(report: dict) -> str:
    fit, config, noise = report["fit"], report["provenance"]["config"], report["noise"]
    rule, versions, guided = fit["rule"], report["provenance"]["versions"], config["guided"]
    variant = "smoother variant" if rule.get("guide_variant") == "smooth" else "stage"
    guide = {
        "collaborative": "dipmed's collaborative filter of grouped similar 4x4x4 cubes "
        "(hard thresholding, then a Gaussian model of each group after NL-Bayes"
        + (
            "; of that stage and its smoother variant, the pilot's covariance scaled by "
            f"{rule.get('smooth_scale_guide', 0.5)}, SURE kept the {variant})"
            if rule.get("guide_pair", True)
            else ")"
        ),
        "bm4d": "BM4D (the bm4d package, non-commercial licence)",
    }[rule["guide"]]
    where = {"air": "air at the border of the field of view"}.get(
        noise["method"], "the finest wavelet detail" if noise["estimated"] else "the user"
    )
    stabilise = (
        "a Rician variance-stabilising transform (after Foi 2011) with its exact unbiased inverse"
        if report["input"]["modality"] == "MR"
        else "division by the noise level"
    )
    return (
        f"The volume was denoised with a guided deep image prior using dipmed "
        f"{versions['dipmed']}, with no training data. The noise level, "
        f"{noise['sigma']:.4g} {noise['units']}"
        f"{' (spatially correlated)' if rule['noise_correlated'] else ''}, came from {where}; "
        f"the data were stabilised by {stabilise}. A non-local guide was computed by {guide}. "
        f"{_homogeneous(rule)}{_members(rule, fit, guided)}"
        f"the one with the lowest SURE was returned: {rule['chosen']} (SURE per voxel "
        f"{rule['risk_' + rule['chosen']]:.3f}"
        f"{' over the voxels that are not air' if rule.get('counted_share', 1.0) < 1.0 else ''}"
        f"; the input scores {rule['risk_input']:.3f}, its noise variance). Random seed "
        f"{config['seed']}; {fit['seconds']:.1f} s on {fit['device']} (PyTorch "
        f"{versions['torch']}, MONAI {versions['monai']})."
    )


def _homogeneous(rule: dict) -> str:
    """The Bayes stages' homogeneous-area test, where one ran (BM4D as the guide: the final
    stage's alone, where members pilot one)."""
    band, ours = rule.get("homogeneous"), rule["guide"] == "collaborative"
    if not band or not (ours or rule["members"]):
        return ""
    return (
        f"In {'each' if ours else 'the final'} Bayes stage a group whose noisy values spread "
        f"about their mean by under {band[0]} noise standard deviations was taken as that "
        f"mean (NL-Bayes's homogeneous areas), blended into its Gaussian estimate up to {band[1]}. "
    )


_ECHO = (
    ", less the covariance of the guide's echo of the noise (its response to a noise probe "
    "of its own)"
)


def _members(rule: dict, fit: dict, guided: dict) -> str:
    """The deep-prior part of the guided method, as the quality preset ran it."""
    preset = f"Quality preset {rule.get('quality', 'default')}. "
    if not rule["members"] and rule.get("guide_pilots_final"):
        return preset + (
            "No deep-prior member was fitted; a Bayes stage (a Gaussian model of each group "
            f"of similar cubes, after NL-Bayes, on a {rule['step_guide_bayes']}-voxel grid) "
            f"piloted by the guide gave the final estimate, and from the same groups its "
            f"smoother variant (the pilot's covariance scaled by "
            f"{rule.get('smooth_scale', 0.6)}, every group weighted alike). Of the input, "
            "the guide and the two final estimates, "
        )
    if not rule["members"]:
        return preset + "No deep-prior member was fitted; of the input and the guide, "
    anchor = ""
    if rule.get("member", "sure") == "sure":
        training = (
            f"on Monte-Carlo SURE (Stein's unbiased risk estimate; Jo et al., ICCV 2021), "
            f"averaged (decay {guided['ema']})"
        )
    else:
        anchor = " (its local mean, which that misfit does not see, taken from the guide)"
        training = (
            f"as the pilot of the final stage, on {guided['recorruptions']} recorrupted pairs "
            f"(Recorrupted-to-Recorrupted, Pang et al., CVPR 2021; a = "
            f"{guided['recorruption']}): the misfit to u - z / a of that stage run on "
            f"u + a z, z drawn like the noise"
        )
    return preset + (
        f"{rule['members']} randomly initialised 3D MONAI BasicUNet"
        f"{'' if rule['members'] == 1 else 's (seeds and flips)'} "
        f"corrected the guide from the stabilised data, each trained for "
        f"{fit['iterations'] // max(rule['members'], 1)} Adam steps (learning rate "
        f"{guided['learning_rate']}) {training}; a Bayes stage (a Gaussian model of each "
        f"group of similar cubes, after NL-Bayes) piloted by their mean"
        f"{anchor}{_ECHO if rule.get('final_echo') else ''}, gave the final "
        f"estimate, and from the same groups its smoother variant (the pilot's covariance "
        f"scaled by {rule.get('smooth_scale', 0.6)}, every group weighted alike). Of the "
        f"input, the guide and the two final estimates, "
    )


def _internal(report: dict) -> str:
    fit, config, noise = report["fit"], report["provenance"]["config"], report["noise"]
    rule, versions, internal = fit["rule"], report["provenance"]["versions"], config["internal"]
    return (
        f"The volume was super-resolved across its slices by internal learning with dipmed "
        f"{versions['dipmed']}, with no training data (after ZSSR, Shocher et al., CVPR 2018, "
        f"and SMORE, Zhao et al., 2020): the scan's own slices, resampled to the output's "
        f"slice spacing, were degraded along one in-plane axis by the {config['slice_profile']} "
        f"slice profile and interpolated back (cubic), and a randomly initialised 2D MONAI "
        f"BasicUNet (instance normalisation, residual output) learned to undo that, "
        f"{fit['iterations']} Adam steps (learning rate {internal['learning_rate']}, "
        f"{internal['batch']} patches of {internal['patch']} voxels per step, L1 loss). It "
        f"was applied to the cubic interpolation of the volume on the planes across the "
        f"slices (two orientations, averaged), and the result was back-projected onto the "
        f"measured slices (Irani and Peleg 1991) until its rms misfit reached "
        f"{rule['threshold_rms_misfit']:.4g} {noise['units']} (it ended at "
        f"{rule['rms_misfit']:.4g}). {_denoised_first(rule, noise['units'])}Random seed "
        f"{config['seed']}; {fit['seconds']:.1f} s on {fit['device']} (PyTorch "
        f"{versions['torch']}, MONAI {versions['monai']})."
    )


def _denoised_first(rule: dict, units: str) -> str:
    first = rule.get("denoised_first")
    if not first:
        return ""
    return (
        "The thick slices were first denoised on their own grid by guided denoising "
        f"({first['guide']} guide, SURE-chosen: {first['chosen']}, SURE per voxel "
        f"{first['risk']:.3f}); the fit then matched the denoised slices, down to their "
        f"estimated remaining error of {first['fit_sigma']:.4g} {units}. "
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
