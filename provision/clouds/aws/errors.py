"""How AWS says what went wrong: botocore's ClientError carries `response["Error"]["Code"]`.

Duck-typed, so this module does not import botocore. Steps use the module functions below for their own
"NotFound is None" and "already exists is a re-read" idioms; the engine asks the run's ErrorRules.
"""

from __future__ import annotations

from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.orchestrator.retry import (
    IAM_PROPAGATION,
    CloudErrors,
    ErrorInfo,
    ErrorRules,
)

_THROTTLING = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "RequestThrottled",
    "RequestThrottledException", "TooManyRequestsException", "SlowDown", "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException", "EC2ThrottledException",
}
_SERVER = {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "InternalServerError"}
# S3 refuses to re-create a bucket name while its recent deletion is still settling.
_CONFLICTING = {"OperationAborted", "IncorrectState", "ConcurrentModification", "ConcurrentModificationException"}
# AWS refuses a just-created IAM principal until it has propagated; these (code, message fragment) pairs
# are what that looks like from the services we call.
_PROPAGATION = (
    ("MalformedPolicy", "Invalid principal"),
    ("MalformedPolicyDocument", "Invalid principal"),
    ("InvalidParameterValue", "Invalid IAM Instance Profile"),
    ("InvalidParameterValueException", "cannot be assumed"),
    ("AccessDenied", "is not authorized to perform: sts:AssumeRole"),
    # KMS refuses a key policy naming a role IAM has not propagated yet.
    ("MalformedPolicyDocumentException", "invalid principals"),
    # EC2 cannot yet assume a new flow-log delivery role.
    ("InvalidParameter", "Unable to assume given IAM role"),
    # AWS Config cannot yet use a new delivery role, bucket or bucket policy.
    ("InsufficientDeliveryPolicyException", ""),
    ("NoSuchBucketException", ""),
)
_NOT_FOUND = {"NoSuchBucket", "NoSuchEntity", "NotFound", "ResourceNotFoundException", "NoSuchBucketPolicy"}
_ALREADY_EXISTS = {"EntityAlreadyExists", "BucketAlreadyOwnedByYou", "InvalidPermission.Duplicate", "RouteAlreadyExists", "Resource.AlreadyAssociated"}
# A delete refused while a dependency (often its network interfaces) is still being released.
_IN_USE = {"DependencyViolation"}

PROPAGATION_HINT = (
    "IAM did not let Databricks assume the cross-account role. Check the role's trust policy: principal "
    f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root with condition sts:ExternalId = your Databricks account id; and that the "
    "role's inline policy is attached."
)


def parse(exc: BaseException) -> ErrorInfo | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return None
    error = response.get("Error") or {}
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    return ErrorInfo(str(error.get("Code", "")), str(error.get("Message", "")), status)


def _transient(e: ErrorInfo) -> str | None:
    if e.code in _THROTTLING:
        return f"throttled ({e.code})"
    if e.code in _SERVER or e.status >= 500:
        return f"server error ({e.code or e.status})"
    if e.code in _CONFLICTING:
        return f"conflicting operation in progress ({e.code})"
    for code, fragment in _PROPAGATION:
        if e.code == code and fragment in e.message:
            return IAM_PROPAGATION
    return None


def _not_found(e: ErrorInfo) -> bool:
    # EC2 says InvalidVpcID.NotFound, most newer services <Thing>NotFoundException (KMS: NotFoundException).
    return e.code in _NOT_FOUND or e.code.endswith(("NotFound", "NotFoundException")) or e.status == 404


def _already_exists(e: ErrorInfo) -> bool:
    # The name is taken. S3's BucketAlreadyExists means by another account: never a re-read of ours.
    return e.code != "BucketAlreadyExists" and (e.code in _ALREADY_EXISTS or e.code.endswith("AlreadyExists"))


ERRORS = CloudErrors(
    cloud="aws", parse=parse, transient=_transient, not_found=_not_found, already_exists=_already_exists,
    in_use=lambda e: e.code in _IN_USE, hints={IAM_PROPAGATION: PROPAGATION_HINT},
)
_ALONE = ErrorRules((ERRORS,))


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of `exc`, if it is an AWS error."""
    return _ALONE.error_code(exc)


def is_not_found(exc: BaseException) -> bool:
    return _ALONE.is_not_found(exc)
