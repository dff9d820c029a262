"""The daily model: the gate-approved training window and the resumable training asset."""
