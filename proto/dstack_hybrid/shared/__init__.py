"""What the agent and the controller both need and neither owns: token formats, certificate reading
and CA pinning, safe key files, sd_notify. Imports neither program (tests/unit/test_import_boundary.py)."""
