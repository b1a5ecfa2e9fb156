"""Guided denoising's settings, quality presets, and result."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

import numpy as np

Quality = Literal["fast", "default", "best"]
Guide = Literal["collaborative", "bm4d"]
Precision = Literal["fp32", "bf16"]
MemberLoss = Literal["auto", "recorrupted", "sure"]

QUALITY = {  # preset -> (deep-prior members, steps per member); benchmarks/README.md
    "fast": (0, 0),  # no member: the open guide pilots the final stage (on its grid)
    "default": (1, 32),  # one member piloting the final stage
    "best": (3, 40),  # three members (seeds, flips), their mean the pilot: ~3x default's time
}
SURE_STEPS = {"fast": 0, "default": 60, "best": 150}  # member "sure": its steps per preset


@dataclass(frozen=True)
class GuidedSettings:
    quality: Quality = "default"  # the preset (QUALITY): members and steps when unset
    guide: Guide = "collaborative"  # open; bm4d: optional, non-commercial licence
    members: int | None = None  # deep-prior members (a seed and a flip each); None: the preset's
    iterations: int | None = None  # steps per member; None: the preset's
    member: MemberLoss = "auto"  # how members learn: recorrupted pairs through the final
    # stage (`recorrupted`), or SURE on u (`member`, 0.3.0's); auto: recorrupted for white
    # noise, SURE for correlated noise (there as good, 0.02 dB apart, in 2/3 of the time)
    recorruption: float = 1.0  # recorrupted: a, the pair u + a z, u - z / a
    recorruptions: int = 7  # recorrupted: the pairs trained on (a guide pass and a matching
    # each; one more is drawn and held out)
    learning_rate: float = 0.001  # Adam step size
    epsilon: float = 0.1  # finite-difference step for the divergence (noise stds)
    ema: float = 0.99  # moving average of the iterates (of the weights when in patches)
    patch: int = 64  # side of the patches fitted (voxels); a smaller volume is fitted whole
    precision: Precision = "fp32"  # bf16: the members' network under bf16 autocast

    @property
    def fits_members(self) -> bool:
        """Whether members are fitted (resolved settings); False: the guide alone."""
        return bool(self.members) and bool(self.iterations)

    @property
    def pairs(self) -> int:
        """The pairs a recorrupted member draws (its steps set): those trained on, never
        more than its steps (a pair no step takes is waste), and one held out."""
        return min(self.recorruptions, self.iterations) + 1

    def resolved(self, white: bool = True) -> GuidedSettings:
        """The member's loss (auto: by the noise, `white` or not), members and steps
        filled in from the quality preset where they are unset."""
        member = self.member
        if member == "auto":
            member = "recorrupted" if white else "sure"
        members, steps = QUALITY[self.quality]
        if member == "sure":
            steps = SURE_STEPS[self.quality]
        return replace(
            self,
            member=member,
            members=members if self.members is None else self.members,
            iterations=steps if self.iterations is None else self.iterations,
        )


@dataclass(frozen=True)
class GuidedResult:
    """What guided denoising returned and how it chose it."""

    method: ClassVar[str] = "guided"
    estimate: np.ndarray  # image units
    uncertainty: np.ndarray  # image units, per voxel
    guide: np.ndarray  # image units
    chosen: str  # "final" | "smooth" | "guide" | "input"
    settings: GuidedSettings  # resolved: members, steps per member, patch
    noise_source: str  # "air" | "wavelet" | "given" (NoiseModel.source)
    noise_correlated: bool
    risks: dict = field(default_factory=dict)  # SURE per candidate (stabilised units; over
    # the voxels `risk.counted_voxels` keeps, `counted_share` of them)
    # per member, its SURE per step (steps x 2: the trained half's, the held-out half's)
    member_curves: tuple = field(default=(), repr=False)
    seconds: float = 0.0
    candidates: dict = field(default_factory=dict, repr=False)  # name -> image units
    stage_seconds: dict = field(default_factory=dict)  # stage -> wall-clock seconds
    guide_variant: str = "plain"  # the guide's Bayes stage: "plain" or "smooth" (by SURE)
    counted_share: float = 1.0  # the share of the voxels the risks average (MR: not the air)
    final_echo: bool = False  # the final stage took the guide's echo out of its covariance

    @property
    def members(self) -> int:
        return len(self.member_curves)

    @property
    def steps(self) -> int:
        """The members' SURE steps, all members together."""
        return sum(len(c) for c in self.member_curves)
