"""Facts about Databricks on AWS that the tool and its sandbox both rely on."""

# Databricks' own AWS account: the principal a cross-account role must trust, and that the root
# bucket policy grants access to.
DATABRICKS_AWS_ACCOUNT_ID = "414351767826"

# Steps run at once by default (Terraform's default walk is 10 too); most of a run is waiting, not calling.
DEFAULT_PARALLELISM = 10
