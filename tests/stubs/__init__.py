"""Test-only import scaffolding for reference packages (never imported by project code)."""
