"""The people's side of Pollux: client commands for the `pollux` CLI, talking to a server over HTTP.

Every command that reaches a server goes through the official google-genai SDK, so the CLI uses
exactly the wire protocol that users' own code uses. Exit codes are in `pollux.client.failures`.
"""
