"""`provision import --terraform-state`: parse a Terraform state (tfstate.py), map it onto the spec's steps
(mapper.py), tag what maps (aws_tags.py) and write our state from each step's own `find` (importer.py)."""
