"""The outside world: registries, S3, ECR, Secrets Manager, boto3 clients, the runner bundle."""
