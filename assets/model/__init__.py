"""The daily model: the gate-approved training window, the resumable training asset, its
evaluation against production, and the candidate/evaluation records they keep in storage."""
