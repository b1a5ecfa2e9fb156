"""The noise without ground truth: its level (`estimate`), its model with the spatial
correlation read from the air (`model`), the Rician variance-stabilising transform
(`vst`), and the test for voxels with no signal (`background`)."""
