"""Offline training, evaluation and synthetic data for the image-to-text model.

Needs the ``ocr-train`` extra (torch, captcha generators); the service itself never imports this package.
"""
