"""The File service: metadata store, blob store, quotas, expiry, and the PROCESSING→ACTIVE/FAILED machine."""
