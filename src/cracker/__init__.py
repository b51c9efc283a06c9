"""Cracker: a self-hosted captcha-task service."""

__version__ = "0.1.0"
