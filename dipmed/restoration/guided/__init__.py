"""Guided denoising, the default denoiser: a non-local guide (`collaborative`), deep-prior
members trained on a risk estimate (`member`, fitted in `tiles` on large volumes), a final
Bayes stage piloted by them, the candidate with the lowest risk (`risk`), the significant
residual returned (`residual`). `pipeline` runs these steps in order; `method` runs it
on a Volume."""
