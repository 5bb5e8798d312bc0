"""The wire: Gemini REST routing, auth, request models, errors, streaming and upload protocols."""
