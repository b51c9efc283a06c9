"""Background jobs: the reaper, retention and webhook dispatch."""
