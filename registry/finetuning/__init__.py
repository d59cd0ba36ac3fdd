"""OpenAI's fine-tuning API (`/v1/files`, `/v1/fine_tuning/...`, `/v1/models`) over loraplex's
datasets, training jobs, versions and checkpoints. Served by the gateway, the tenant-facing host;
errors in OpenAI's shape (errors.py), so the official client raises its usual exception types."""
