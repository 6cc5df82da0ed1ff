"""provision: build Databricks workspaces on AWS, resumably, without Terraform."""

__version__ = "0.1.0"
