"""`bncli batch`: many comparisons from one YAML file, as one plan, with expectations for CI."""
