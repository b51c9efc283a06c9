"""The captcha vendors' protocols (docs/protocols.md), served from the same tasks, billing and keys as v2."""
