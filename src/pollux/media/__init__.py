"""Decoding and preparing images, video and audio; token accounting."""
