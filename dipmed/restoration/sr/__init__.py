"""Internal-learning super-resolution (`internal`): a 2D network trained on the scan's own
in-plane slices, applied across the thick axis; `method` runs it on a Volume and decides
when it is used in place of the 3D DIP fit."""
