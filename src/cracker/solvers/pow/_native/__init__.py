"""Optional C fast path (``_sha256pow``), built by the repository's setup.py; absent means pure Python."""
