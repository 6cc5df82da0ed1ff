"""The deployment spec: its cloud-neutral model and the checker every section uses.

Parsing a whole spec needs to know the topology's sections, so `load` and `from_dict` live with the
topology registry (`provision.topologies`); the sections themselves live with their cloud.
"""

from provision.spec.checker import Checker, allocate, parse_cidr
from provision.spec.model import COMMON_KEYS, Section, Spec, TimeoutsSpec, describe, parse_name, parse_timeouts, read_toml

__all__ = [
    "COMMON_KEYS", "Checker", "Section", "Spec", "TimeoutsSpec", "allocate", "describe", "parse_cidr", "parse_name",
    "parse_timeouts", "read_toml",
]
