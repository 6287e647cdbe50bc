"""Exports of saved or running results to the trackers researchers use (TensorBoard, MLflow).

Each exporter imports its library lazily: `bncli[tensorboard]`, `bncli[mlflow]` (both in `test`).
"""
