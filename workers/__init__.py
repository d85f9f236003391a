"""The compute side: mono dataset, AlexNet, SSL methods, linear probes, task entry points.

The compute core imports torch, torchvision, numpy and pydantic only (no ray, no mlflow).
"""
