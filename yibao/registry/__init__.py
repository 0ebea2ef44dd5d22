"""Registry of insured persons and designated institutions (operator-managed)."""
