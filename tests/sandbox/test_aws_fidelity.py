"""The sandbox's AWS fidelity rules, exercised over HTTP with real boto3 clients.

Every test fails on plain moto 5.2.5 except five kinds, which pin behaviour moto already gets right
or that must stay stock: BucketNotEmpty, a bucket policy Deny that AWS applies over https too, the
tag filters on every describe call but DescribeNatGateways, moto used outside a sandbox request,
and the settings' own validation. Network interfaces of deleted NAT gateways and endpoints linger
for RELEASE (rule 12), so teardown steps after them retry as a real teardown has to.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.ec2.models import EC2Backend, ec2_backends
from sandbox_helpers import aws_client, delays, error_code, once_released, wait_until

from provision.clouds.aws import sandbox as aws
from provision.clouds.aws.sandbox import make_aws_app
from provision.sandbox.settings import SandboxSettings

DELAY = 0.25
RELEASE = 0.1  # eni_release_seconds: short, since most tests here are about something else
S3_SERVICE = "com.amazonaws.us-east-1.s3"
STS_SERVICE = "com.amazonaws.us-east-1.sts"


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    return SandboxSettings(
        nat_gateway_pending_seconds=DELAY,
        nat_gateway_deleting_seconds=DELAY,
        vpc_endpoint_pending_seconds=DELAY,
        eni_release_seconds=RELEASE,
        nat_gateway_failed_seconds=DELAY,
    )


@pytest.fixture(scope="module")
def s3(aws_url: str) -> Any:
    return aws_client("s3", aws_url)


@pytest.fixture
def net(ec2: Any) -> dict[str, str]:
    """A fresh VPC with one subnet, so tests never see each other's resources."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    return {"vpc": vpc, "subnet": subnet}


def nat_state(ec2: Any, nat_id: str) -> str:
    return ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"][0]["State"]


def make_nat(ec2: Any, subnet: str) -> tuple[str, str]:
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    return ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]["NatGatewayId"], allocation


def delete_nat_and_wait(ec2: Any, nat_id: str) -> None:
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    wait_until(lambda: nat_state(ec2, nat_id) == "deleted")


def enis_in(ec2: Any, subnet: str) -> list[str]:
    found = ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [subnet]}])
    return [eni["NetworkInterfaceId"] for eni in found["NetworkInterfaces"]]


def endpoint_ids(ec2: Any, vpc: str) -> list[str]:
    found = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["VpcEndpoints"]
    return [e["VpcEndpointId"] for e in found]


def endpoint_state(ec2: Any, vpce_id: str) -> str:
    return ec2.describe_vpc_endpoints(VpcEndpointIds=[vpce_id])["VpcEndpoints"][0]["State"]


def delete_endpoint_and_wait(ec2: Any, vpc: str, vpce_id: str) -> None:
    ec2.delete_vpc_endpoints(VpcEndpointIds=[vpce_id])
    wait_until(lambda: vpce_id not in endpoint_ids(ec2, vpc))


# --- rule 1: ClientToken idempotency ------------------------------------------------------------


def test_nat_gateway_client_token_returns_same_gateway(ec2: Any, net: dict[str, str]) -> None:
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    args = {"SubnetId": net["subnet"], "AllocationId": allocation, "ClientToken": "nat-token-1"}
    first = ec2.create_nat_gateway(**args)
    again = ec2.create_nat_gateway(**args)  # plain moto: Resource.AlreadyAssociated
    assert again["NatGateway"]["NatGatewayId"] == first["NatGateway"]["NatGatewayId"]
    assert again["ClientToken"] == "nat-token-1"
    listed = ec2.describe_nat_gateways(Filters=[{"Name": "subnet-id", "Values": [net["subnet"]]}])["NatGateways"]
    assert len(listed) == 1
    assert len(enis_in(ec2, net["subnet"])) == 1
    other = ec2.allocate_address(Domain="vpc")["AllocationId"]
    code = error_code(ec2.create_nat_gateway, **{**args, "AllocationId": other})
    assert code == "IdempotentParameterMismatch"


def test_route_table_client_token_returns_same_table(ec2: Any, net: dict[str, str]) -> None:
    first = ec2.create_route_table(VpcId=net["vpc"], ClientToken="rt-token-1")["RouteTable"]["RouteTableId"]
    again = ec2.create_route_table(VpcId=net["vpc"], ClientToken="rt-token-1")["RouteTable"]["RouteTableId"]
    assert again == first
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]}])["RouteTables"]
    assert len(tables) == 2  # main + ours


def test_vpc_endpoint_client_token_returns_same_endpoint(ec2: Any, net: dict[str, str]) -> None:
    args = {
        "VpcId": net["vpc"],
        "ServiceName": STS_SERVICE,
        "VpcEndpointType": "Interface",
        "SubnetIds": [net["subnet"]],
        "ClientToken": "vpce-token-1",
    }
    first = ec2.create_vpc_endpoint(**args)["VpcEndpoint"]["VpcEndpointId"]
    assert ec2.create_vpc_endpoint(**args)["VpcEndpoint"]["VpcEndpointId"] == first
    assert endpoint_ids(ec2, net["vpc"]) == [first]
    assert len(enis_in(ec2, net["subnet"])) == 1


def test_nat_gateway_client_token_after_deletion_returns_the_deleted_gateway(ec2: Any, net: dict[str, str]) -> None:
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    args = {"SubnetId": net["subnet"], "AllocationId": allocation, "ClientToken": "nat-token-gone"}
    nat_id = ec2.create_nat_gateway(**args)["NatGateway"]["NatGatewayId"]
    delete_nat_and_wait(ec2, nat_id)
    again = ec2.create_nat_gateway(**args)["NatGateway"]  # plain moto makes a new gateway here
    assert again["NatGatewayId"] == nat_id and again["State"] == "deleted"
    listed = ec2.describe_nat_gateways(Filters=[{"Name": "subnet-id", "Values": [net["subnet"]]}])["NatGateways"]
    assert [n["NatGatewayId"] for n in listed] == [nat_id]
    other = ec2.allocate_address(Domain="vpc")["AllocationId"]
    assert error_code(ec2.create_nat_gateway, **{**args, "AllocationId": other}) == "IdempotentParameterMismatch"


def test_route_table_client_token_after_deletion_returns_the_original_table(ec2: Any, net: dict[str, str]) -> None:
    tags = [{"ResourceType": "route-table", "Tags": [{"Key": "Name", "Value": "private"}]}]
    args = {"VpcId": net["vpc"], "ClientToken": "rt-token-gone", "TagSpecifications": tags}
    first = ec2.create_route_table(**args)
    table = first["RouteTable"]["RouteTableId"]
    ec2.delete_route_table(RouteTableId=table)
    again = ec2.create_route_table(**args)
    assert again["RouteTable"] == first["RouteTable"] and again["ClientToken"] == "rt-token-gone"
    assert error_code(ec2.describe_route_tables, RouteTableIds=[table]) == "InvalidRouteTableID.NotFound"
    assert len(ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [net["vpc"]]}])["RouteTables"]) == 1
    other_vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    code = error_code(ec2.create_route_table, **{**args, "VpcId": other_vpc})
    assert code == "IdempotentParameterMismatch"


def test_vpc_endpoint_client_token_after_deletion_returns_the_original_endpoint(ec2: Any, net: dict[str, str]) -> None:
    args = {
        "VpcId": net["vpc"],
        "ServiceName": STS_SERVICE,
        "VpcEndpointType": "Interface",
        "SubnetIds": [net["subnet"]],
        "ClientToken": "vpce-token-gone",
    }
    first = ec2.create_vpc_endpoint(**args)["VpcEndpoint"]
    delete_endpoint_and_wait(ec2, net["vpc"], first["VpcEndpointId"])
    again = ec2.create_vpc_endpoint(**args)["VpcEndpoint"]
    assert again == first  # the original response, nothing new created
    assert endpoint_ids(ec2, net["vpc"]) == []
    assert len(enis_in(ec2, net["subnet"])) <= 1  # at most the old one, still lingering
    code = error_code(ec2.create_vpc_endpoint, **{**args, "ServiceName": S3_SERVICE, "VpcEndpointType": "Gateway"})
    assert code == "IdempotentParameterMismatch"


def test_client_token_is_safe_under_concurrent_retries(ec2: Any, net: dict[str, str]) -> None:
    def create(_: int) -> str:
        made = ec2.create_route_table(VpcId=net["vpc"], ClientToken="rt-race")
        return made["RouteTable"]["RouteTableId"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(create, range(16)))
    assert len(ids) == 1


# --- rule 2: NAT gateway lifecycle ---------------------------------------------------------------


def test_nat_gateway_goes_pending_available_deleting_deleted(ec2: Any, net: dict[str, str]) -> None:
    nat_id, allocation = make_nat(ec2, net["subnet"])
    assert nat_state(ec2, nat_id) == "pending"
    wait_until(lambda: nat_state(ec2, nat_id) == "available")

    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    assert nat_state(ec2, nat_id) == "deleting"
    # Until the NAT is deleted it keeps its address and its interface.
    assert ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0].get("AssociationId")
    assert len(enis_in(ec2, net["subnet"])) == 1

    wait_until(lambda: nat_state(ec2, nat_id) == "deleted")
    by_state = ec2.describe_nat_gateways(Filters=[{"Name": "state", "Values": ["deleted"]}])["NatGateways"]
    assert nat_id in [n["NatGatewayId"] for n in by_state]
    assert "AssociationId" not in ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
    wait_until(lambda: enis_in(ec2, net["subnet"]) == [])  # after the release lag (rule 12)


def test_nat_gateway_delays_are_read_at_request_time(ec2: Any, settings: SandboxSettings, net: dict[str, str]) -> None:
    with delays(settings, nat_gateway_pending_seconds=60):
        nat_id, _ = make_nat(ec2, net["subnet"])
        time.sleep(DELAY + 0.1)
        assert nat_state(ec2, nat_id) == "pending"
    wait_until(lambda: nat_state(ec2, nat_id) == "available")


def test_nat_gateway_fail_next_makes_creations_fail(ec2: Any, settings: SandboxSettings, net: dict[str, str]) -> None:
    with_igw = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    subnet_with_igw = ec2.create_subnet(VpcId=with_igw, CidrBlock="10.2.1.0/24")["Subnet"]["SubnetId"]
    _attach_igw(ec2, with_igw)
    with delays(settings, nat_gateway_fail_next=2):
        no_igw_nat, no_igw_eip = make_nat(ec2, net["subnet"])
        igw_nat, igw_eip = make_nat(ec2, subnet_with_igw)
        assert settings.nat_gateway_fail_next == 0  # each creation took one failure
        healthy, _ = make_nat(ec2, subnet_with_igw)
        assert nat_state(ec2, no_igw_nat) == "pending"
        wait_until(lambda: nat_state(ec2, no_igw_nat) == "failed")
        # Created a moment later, it fails a moment later: on a loaded machine it may still be pending here.
        wait_until(lambda: nat_state(ec2, igw_nat) == "failed")

        [failed] = ec2.describe_nat_gateways(NatGatewayIds=[no_igw_nat])["NatGateways"]
        assert failed["FailureCode"] == "Gateway.NotAttached"
        assert failed["FailureMessage"] == f"Network {net['vpc']} has no Internet gateway attached"
        [other] = ec2.describe_nat_gateways(NatGatewayIds=[igw_nat])["NatGateways"]
        assert other["State"] == "failed" and other["FailureCode"] == "InternalError"
        assert "created and used internally by this NAT gateway" in other["FailureMessage"]
        for allocation in (no_igw_eip, igw_eip):
            assert "AssociationId" not in ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
        wait_until(lambda: nat_state(ec2, healthy) == "available")  # created last: its pending time may not be over
        assert "FailureCode" not in ec2.describe_nat_gateways(NatGatewayIds=[healthy])["NatGateways"][0]

        # A failed NAT gateway becomes deleted by itself; its address can then be released.
        wait_until(lambda: nat_state(ec2, no_igw_nat) == "deleted")
        ec2.release_address(AllocationId=no_igw_eip)
        once_released(ec2.delete_subnet, SubnetId=net["subnet"])


def test_fail_next_setting_keeps_numeric_validation(settings: SandboxSettings) -> None:
    with delays(settings, nat_gateway_fail_next=0):
        assert settings.update({"nat_gateway_fail_next": 3})["nat_gateway_fail_next"] == 3.0
        for bad in (-1, "1", True):
            with pytest.raises(ValueError, match="nat_gateway_fail_next"):
                settings.update({"nat_gateway_fail_next": bad})
        with pytest.raises(ValueError, match="eni_release_seconds"):
            settings.update({"eni_release_seconds": -0.1})


def test_delete_unknown_nat_gateway_is_not_found(ec2: Any) -> None:
    assert error_code(ec2.delete_nat_gateway, NatGatewayId="nat-0123456789abcdef0") == "NatGatewayNotFound"


# --- rules 3 and 4: addresses still mapped -------------------------------------------------------


def test_release_address_in_use_is_refused_until_nat_deleted(ec2: Any, net: dict[str, str]) -> None:
    nat_id, allocation = make_nat(ec2, net["subnet"])
    assert error_code(ec2.release_address, AllocationId=allocation) == "InvalidIPAddress.InUse"
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    assert error_code(ec2.release_address, AllocationId=allocation) == "InvalidIPAddress.InUse"
    wait_until(lambda: nat_state(ec2, nat_id) == "deleted")
    ec2.release_address(AllocationId=allocation)


def test_detach_internet_gateway_refused_while_public_addresses_mapped(ec2: Any, net: dict[str, str]) -> None:
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    nat_id, _ = make_nat(ec2, net["subnet"])
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    with pytest.raises(ClientError) as info:
        ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    assert info.value.response["Error"]["Code"] == "DependencyViolation"
    assert f"Network {net['vpc']} has some mapped public address(es)" in info.value.response["Error"]["Message"]
    wait_until(lambda: nat_state(ec2, nat_id) == "deleted")
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])


# --- rule 5: delete_vpc dependencies -------------------------------------------------------------


def _attach_igw(ec2: Any, vpc: str) -> Callable[[], None]:
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    return lambda: ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)


def _security_group(ec2: Any, vpc: str) -> Callable[[], None]:
    group = ec2.create_security_group(GroupName=f"sg-{uuid.uuid4().hex[:8]}", Description="d", VpcId=vpc)["GroupId"]
    return lambda: ec2.delete_security_group(GroupId=group)


def _gateway_endpoint(ec2: Any, vpc: str) -> Callable[[], None]:
    made = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=S3_SERVICE, VpcEndpointType="Gateway")
    return lambda: delete_endpoint_and_wait(ec2, vpc, made["VpcEndpoint"]["VpcEndpointId"])


@pytest.mark.parametrize("dependency", [_attach_igw, _security_group, _gateway_endpoint])
def test_delete_vpc_refused_while_dependency_exists(ec2: Any, dependency: Callable[..., Callable[[], None]]) -> None:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    remove = dependency(ec2, vpc)
    with pytest.raises(ClientError) as info:
        ec2.delete_vpc(VpcId=vpc)
    assert info.value.response["Error"]["Code"] == "DependencyViolation"
    assert info.value.response["Error"]["Message"] == f"The vpc '{vpc}' has dependencies and cannot be deleted."
    remove()
    ec2.delete_vpc(VpcId=vpc)


# --- rule 6: delete_subnet dependencies ----------------------------------------------------------


def test_delete_subnet_refused_while_nat_gateway_not_deleted(ec2: Any, net: dict[str, str]) -> None:
    nat_id, _ = make_nat(ec2, net["subnet"])
    assert error_code(ec2.delete_subnet, SubnetId=net["subnet"]) == "DependencyViolation"
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    assert error_code(ec2.delete_subnet, SubnetId=net["subnet"]) == "DependencyViolation"
    wait_until(lambda: nat_state(ec2, nat_id) == "deleted")
    once_released(ec2.delete_subnet, SubnetId=net["subnet"])


def test_delete_subnet_refused_while_interface_endpoint_holds_an_interface(ec2: Any, net: dict[str, str]) -> None:
    made = ec2.create_vpc_endpoint(
        VpcId=net["vpc"], ServiceName=STS_SERVICE, VpcEndpointType="Interface", SubnetIds=[net["subnet"]]
    )
    vpce_id = made["VpcEndpoint"]["VpcEndpointId"]
    assert error_code(ec2.delete_subnet, SubnetId=net["subnet"]) == "DependencyViolation"
    ec2.delete_vpc_endpoints(VpcEndpointIds=[vpce_id])
    assert error_code(ec2.delete_subnet, SubnetId=net["subnet"]) == "DependencyViolation"  # still deleting
    wait_until(lambda: vpce_id not in endpoint_ids(ec2, net["vpc"]))
    once_released(ec2.delete_subnet, SubnetId=net["subnet"])


# --- rule 7: delete_security_group dependencies --------------------------------------------------


def test_delete_security_group_refused_while_referenced_by_another_group(ec2: Any, net: dict[str, str]) -> None:
    target = ec2.create_security_group(GroupName="target", Description="d", VpcId=net["vpc"])["GroupId"]
    other = ec2.create_security_group(GroupName="other", Description="d", VpcId=net["vpc"])["GroupId"]
    rule = [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": target}]}]
    ec2.authorize_security_group_ingress(GroupId=other, IpPermissions=rule)
    assert error_code(ec2.delete_security_group, GroupId=target) == "DependencyViolation"
    ec2.revoke_security_group_ingress(GroupId=other, IpPermissions=rule)
    ec2.delete_security_group(GroupId=target)


def test_delete_security_group_refused_while_used_by_endpoint_or_interface(ec2: Any, net: dict[str, str]) -> None:
    group = ec2.create_security_group(GroupName="used", Description="d", VpcId=net["vpc"])["GroupId"]
    made = ec2.create_vpc_endpoint(
        VpcId=net["vpc"],
        ServiceName=STS_SERVICE,
        VpcEndpointType="Interface",
        SubnetIds=[net["subnet"]],
        SecurityGroupIds=[group],
    )
    assert error_code(ec2.delete_security_group, GroupId=group) == "DependencyViolation"
    delete_endpoint_and_wait(ec2, net["vpc"], made["VpcEndpoint"]["VpcEndpointId"])

    eni = ec2.create_network_interface(SubnetId=net["subnet"], Groups=[group])["NetworkInterface"]
    assert error_code(ec2.delete_security_group, GroupId=group) == "DependencyViolation"
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    once_released(ec2.delete_security_group, GroupId=group)


# --- rule 8: S3 (moto is already right) ----------------------------------------------------------


def test_delete_non_empty_bucket_is_refused(s3: Any) -> None:
    bucket = f"fidelity-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert error_code(s3.delete_bucket, Bucket=bucket) == "BucketNotEmpty"
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)


# --- rule 11: S3 requests count as https --------------------------------------------------------


def tls_policy(bucket: str, secure: str) -> str:
    """The tool's root bucket statement: Deny s3:* when aws:SecureTransport is `secure`."""
    statement = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}/*", f"arn:aws:s3:::{bucket}"],
        "Condition": {"Bool": {"aws:SecureTransport": secure}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_tls_deny_policy_does_not_deny_requests_to_the_sandbox(s3: Any) -> None:
    bucket = f"fidelity-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_policy(Bucket=bucket, Policy=tls_policy(bucket, "false"))
    s3.put_object(Bucket=bucket, Key="a", Body=b"1")  # plain moto: 403, the Deny applied to every request
    s3.put_object(Bucket=bucket, Key="a", Body=b"2")
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"2"
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    assert deleted.get("Errors", []) == []  # plain moto: AccessDenied for each key
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)


def test_deny_that_applies_over_https_still_denies(s3: Any) -> None:
    bucket = f"fidelity-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=tls_policy(bucket, "true"))
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="a", Body=b"1")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    s3.delete_bucket_policy(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)


# --- rule 9: VPC endpoint lifecycle --------------------------------------------------------------


def test_gateway_endpoint_pending_available_deleting_gone(ec2: Any, net: dict[str, str]) -> None:
    table = ec2.create_route_table(VpcId=net["vpc"])["RouteTable"]["RouteTableId"]
    made = ec2.create_vpc_endpoint(
        VpcId=net["vpc"], ServiceName=S3_SERVICE, VpcEndpointType="Gateway", RouteTableIds=[table]
    )
    vpce_id = made["VpcEndpoint"]["VpcEndpointId"]
    assert made["VpcEndpoint"]["State"] == "pending"
    wait_until(lambda: endpoint_state(ec2, vpce_id) == "available")

    ec2.delete_vpc_endpoints(VpcEndpointIds=[vpce_id])
    assert endpoint_state(ec2, vpce_id) == "deleting"
    wait_until(lambda: vpce_id not in endpoint_ids(ec2, net["vpc"]))
    assert error_code(ec2.describe_vpc_endpoints, VpcEndpointIds=[vpce_id]) == "InvalidVpcEndpointId.NotFound"
    routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    assert all(route.get("GatewayId") != vpce_id for route in routes)


def test_interface_endpoint_pending_then_available(ec2: Any, net: dict[str, str]) -> None:
    made = ec2.create_vpc_endpoint(
        VpcId=net["vpc"], ServiceName=STS_SERVICE, VpcEndpointType="Interface", SubnetIds=[net["subnet"]]
    )
    vpce_id = made["VpcEndpoint"]["VpcEndpointId"]
    assert endpoint_state(ec2, vpce_id) == "pending"
    wait_until(lambda: endpoint_state(ec2, vpce_id) == "available")


def test_endpoint_acceptance_hook_holds_endpoint_until_accepted(ec2: Any, net: dict[str, str]) -> None:
    aws.set_endpoint_acceptance_policy(lambda endpoint: endpoint.service_name == STS_SERVICE)
    try:
        made = ec2.create_vpc_endpoint(
            VpcId=net["vpc"], ServiceName=STS_SERVICE, VpcEndpointType="Interface", SubnetIds=[net["subnet"]]
        )
    finally:
        aws.set_endpoint_acceptance_policy(None)
    vpce_id = made["VpcEndpoint"]["VpcEndpointId"]
    time.sleep(DELAY + 0.1)
    assert endpoint_state(ec2, vpce_id) == "pendingAcceptance"
    aws.accept_vpc_endpoint(vpce_id)
    wait_until(lambda: endpoint_state(ec2, vpce_id) == "available")


# --- rule 12: network interfaces linger after deletion ---------------------------------------------


def test_interfaces_linger_after_endpoint_and_nat_are_gone(ec2: Any, settings: SandboxSettings) -> None:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    endpoint_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    nat_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="ep", Description="d", VpcId=vpc)["GroupId"]
    vpce_id = ec2.create_vpc_endpoint(
        VpcId=vpc, ServiceName=STS_SERVICE, VpcEndpointType="Interface", SubnetIds=[endpoint_subnet],
        SecurityGroupIds=[group],
    )["VpcEndpoint"]["VpcEndpointId"]
    nat_id, allocation = make_nat(ec2, nat_subnet)

    lag = 0.6  # != the fixture's RELEASE, so this also shows the setting is read at request time
    with delays(settings, eni_release_seconds=lag):
        ec2.delete_vpc_endpoints(VpcEndpointIds=[vpce_id])
        ec2.delete_nat_gateway(NatGatewayId=nat_id)
        wait_until(lambda: vpce_id not in endpoint_ids(ec2, vpc) and nat_state(ec2, nat_id) == "deleted")
        gone_at = time.monotonic()
        # Gone, yet their interfaces are still there and still block.
        assert len(enis_in(ec2, endpoint_subnet)) == 1 and len(enis_in(ec2, nat_subnet)) == 1
        ec2.release_address(AllocationId=allocation)  # the address itself is free already
        for call, kwargs in (
            (ec2.delete_subnet, {"SubnetId": endpoint_subnet}),
            (ec2.delete_subnet, {"SubnetId": nat_subnet}),
            (ec2.delete_security_group, {"GroupId": group}),
            (ec2.delete_vpc, {"VpcId": vpc}),
        ):
            assert error_code(call, **kwargs) == "DependencyViolation"

        once_released(ec2.delete_subnet, SubnetId=endpoint_subnet)
        assert time.monotonic() - gone_at >= lag - 0.1  # the lag counts from when they were gone
        once_released(ec2.delete_subnet, SubnetId=nat_subnet)
        ec2.delete_security_group(GroupId=group)
        ec2.delete_vpc(VpcId=vpc)


# --- rule 10: tag filters and TagSpecifications --------------------------------------------------


@pytest.fixture(scope="module")
def tagged(ec2: Any) -> dict[str, Any]:
    """One tagged and one untagged resource of every kind we look up by tag."""
    deployment = f"dep-{uuid.uuid4().hex[:8]}"

    def spec(kind: str) -> list[dict[str, Any]]:
        tags = [{"Key": "provision:deployment", "Value": deployment}, {"Key": "provision:step", "Value": kind}]
        return [{"ResourceType": kind, "Tags": tags}]

    def build(tag: bool) -> dict[str, str]:
        def kw(kind: str) -> dict[str, Any]:
            return {"TagSpecifications": spec(kind)} if tag else {}

        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", **kw("vpc"))["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", **kw("subnet"))["Subnet"]["SubnetId"]
        eip = ec2.allocate_address(Domain="vpc", **kw("elastic-ip"))["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip, **kw("natgateway"))["NatGateway"]
        group = ec2.create_security_group(GroupName="tagged", Description="d", VpcId=vpc, **kw("security-group"))
        endpoint = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=S3_SERVICE, **kw("vpc-endpoint"))["VpcEndpoint"]
        return {
            "vpc": vpc,
            "subnet": subnet,
            "internet-gateway": ec2.create_internet_gateway(**kw("internet-gateway"))["InternetGateway"][
                "InternetGatewayId"
            ],
            "elastic-ip": eip,
            "natgateway": nat["NatGatewayId"],
            "route-table": ec2.create_route_table(VpcId=vpc, **kw("route-table"))["RouteTable"]["RouteTableId"],
            "security-group": group["GroupId"],
            "vpc-endpoint": endpoint["VpcEndpointId"],
        }

    return {"deployment": deployment, "tagged": build(True), "untagged": build(False)}


DESCRIBES = [
    ("vpc", "describe_vpcs", "Vpcs", "VpcId"),
    ("subnet", "describe_subnets", "Subnets", "SubnetId"),
    ("internet-gateway", "describe_internet_gateways", "InternetGateways", "InternetGatewayId"),
    ("natgateway", "describe_nat_gateways", "NatGateways", "NatGatewayId"),
    ("elastic-ip", "describe_addresses", "Addresses", "AllocationId"),
    ("route-table", "describe_route_tables", "RouteTables", "RouteTableId"),
    ("security-group", "describe_security_groups", "SecurityGroups", "GroupId"),
    ("vpc-endpoint", "describe_vpc_endpoints", "VpcEndpoints", "VpcEndpointId"),
]


@pytest.mark.parametrize(("kind", "method", "key", "id_field"), DESCRIBES)
def test_tag_filters_with_colon_keys_find_exactly_the_tagged_resource(
    ec2: Any, tagged: dict[str, Any], kind: str, method: str, key: str, id_field: str
) -> None:
    filters = [
        {"Name": "tag:provision:deployment", "Values": [tagged["deployment"]]},
        {"Name": "tag:provision:step", "Values": [kind]},
    ]
    found = getattr(ec2, method)(Filters=filters)[key]
    assert [item[id_field] for item in found] == [tagged["tagged"][kind]]
    # TagSpecifications given at creation were honoured.
    assert {"Key": "provision:step", "Value": kind} in found[0]["Tags"]
    # An untagged sibling exists, so a filter that is ignored would show up here.
    assert tagged["untagged"][kind] not in [item[id_field] for item in found]
    assert getattr(ec2, method)(Filters=[{"Name": "tag:provision:deployment", "Values": ["no-such"]}])[key] == []


# --- end to end: a correct teardown order still succeeds -----------------------------------------


def test_correct_teardown_order_succeeds(ec2: Any, net: dict[str, str]) -> None:
    vpc, subnet = net["vpc"], net["subnet"]
    detach_igw = _attach_igw(ec2, vpc)
    nat_id, allocation = make_nat(ec2, subnet)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    association = ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)["AssociationId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id)
    group = ec2.create_security_group(GroupName="ws", Description="d", VpcId=vpc)["GroupId"]
    interface = ec2.create_vpc_endpoint(
        VpcId=vpc, ServiceName=STS_SERVICE, VpcEndpointType="Interface", SubnetIds=[subnet], SecurityGroupIds=[group]
    )["VpcEndpoint"]["VpcEndpointId"]
    gateway = ec2.create_vpc_endpoint(
        VpcId=vpc, ServiceName=S3_SERVICE, VpcEndpointType="Gateway", RouteTableIds=[table]
    )["VpcEndpoint"]["VpcEndpointId"]

    ec2.delete_vpc_endpoints(VpcEndpointIds=[interface, gateway])
    wait_until(lambda: endpoint_ids(ec2, vpc) == [])
    once_released(ec2.delete_security_group, GroupId=group)
    delete_nat_and_wait(ec2, nat_id)
    ec2.release_address(AllocationId=allocation)
    detach_igw()
    ec2.disassociate_route_table(AssociationId=association)
    ec2.delete_route_table(RouteTableId=table)
    once_released(ec2.delete_subnet, SubnetId=subnet)
    ec2.delete_vpc(VpcId=vpc)


# --- patching hygiene ----------------------------------------------------------------------------


def test_make_aws_app_twice_does_not_double_wrap(settings: SandboxSettings) -> None:
    make_aws_app(settings)
    make_aws_app(settings)
    wrapper = EC2Backend.__dict__["delete_subnet"]
    assert getattr(wrapper, "__sandbox_patched__", False)
    assert not getattr(wrapper.__wrapped__, "__sandbox_patched__", False)


def test_moto_outside_sandbox_requests_is_untouched(settings: SandboxSettings) -> None:
    make_aws_app(settings)
    backend = ec2_backends["123456789012"]["ap-southeast-2"]
    vpc = backend.create_vpc("10.9.0.0/16")
    subnet = backend.create_subnet(vpc.id, "10.9.1.0/24", availability_zone="ap-southeast-2a")
    eip = backend.allocate_address(domain="vpc")
    nat = backend.create_nat_gateway(subnet.id, eip.allocation_id)
    assert nat.state == "available"  # stock moto: no pending state
    backend.delete_subnet(subnet.id)  # stock moto: no dependency check
