"""Fix actions: each one a pure module with plan / apply / verify / rollback.

A fix action never changes anything in :func:`plan`; it returns what would
change (for files: old bytes, new bytes and a unified diff) so a person can
read it first. Applying goes through :mod:`engine.fsutil`: backup, atomic
write, verification, and a rollback from the backup when verification fails.
"""
