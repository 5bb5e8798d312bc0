"""Pollux: the Gemini API for images, video and audio, self-hosted."""

__version__ = "0.1.0"
