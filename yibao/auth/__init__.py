"""Authentication of operators, institutions and app users."""
