"""bncli: paired trainings with and without Batch Normalization that test why BN works."""

__version__ = "0.1.0"
