"""Engine API documents (Docker 20.10 / API 1.41) rebuilt from a snapshot."""
