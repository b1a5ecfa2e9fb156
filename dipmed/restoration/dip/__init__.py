"""The Deep Image Prior fit: an anchored network (`prior`, on `..networks`) fitted to the
measurement through the task's operator (`fit`, `losses`), stopped without ground truth
(`stopping`); `anchor` gives the classical estimate it starts from; `method` runs it on a
Volume (denoise, sr, inpaint)."""
