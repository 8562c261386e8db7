"""AWS: the one profile-guarded session factory every AWS call goes through (`session`), and the SageMaker
model package group operations built on it (`model_packages`).

boto3 and botocore load inside functions only, so importing this package costs nothing at CLI start-up.
"""
