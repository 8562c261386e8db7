"""AWS: the one profile-guarded session factory every AWS call goes through (`session`), the SageMaker
model package group operations built on it (`model_packages`), and an environment's SageMaker endpoint
(`endpoint_deploy`, with its requests in `endpoint_requests` and its reads in `endpoint_state`), and an
environment's CloudFormation stacks (`infra*`: `skyops infra`, docs/infrastructure.md).

boto3 and botocore load inside functions only, so importing this package costs nothing at CLI start-up.
"""
