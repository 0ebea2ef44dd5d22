"""Real-name identity checks (the pluggable face-verification provider) and activation."""
