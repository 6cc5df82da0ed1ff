"""Back-end PrivateLink in the sandbox: the AWS half (clouds/aws/sandbox/endpoints.py, rule 13) and the Databricks half
(clouds/databricks/sandbox) together, over HTTP, with real boto3 clients and the real databricks-sdk AccountClient.

This is the "apply twice" problem: an endpoint to a Databricks service stays `pendingAcceptance` until
it is registered with Databricks, and private DNS can only be enabled after that; a workspace whose
network lists endpoints that are not `available` with private DNS fails to deploy. The one-run order
(create endpoint -> register -> wait available -> enable private DNS -> workspace) must succeed here.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests
from databricks.sdk import AccountClient
from databricks.sdk.errors import (
    InvalidParameterValue,
    InvalidState,
    ResourceDoesNotExist,
)
from databricks.sdk.service.provisioning import (
    CreateCredentialAwsCredentials,
    CreateCredentialStsRole,
    EndpointUseCase,
    NetworkVpcEndpoints,
    PricingTier,
    PrivateAccessLevel,
    PrivateAccessSettings,
    RootBucketInfo,
    Workspace,
    WorkspaceStatus,
)
from sandbox_helpers import (
    aws_client,
    client_error,
    databricks_role,
    databricks_vpc,
    make_bucket,
    settled,
    wait_until,
)

from provision.clouds.databricks import sandbox as emulator
from provision.regions import PRIVATELINK_SERVICES
from provision.sandbox.settings import (
    DATABRICKS_AWS_ACCOUNT_ID,
    SANDBOX_AWS_ACCOUNT_ID,
    SandboxSettings,
)

REGION = "us-east-1"
WORKSPACE_SERVICE = PRIVATELINK_SERVICES[REGION].workspace
RELAY_SERVICE = PRIVATELINK_SERVICES[REGION].relay
STS_SERVICE = f"com.amazonaws.{REGION}.sts"
PENDING = 0.2  # vpc_endpoint_pending_seconds
PROVISIONING = 0.3  # workspace_provisioning_seconds
NOT_ACCEPTED = "Private DNS can only be enabled after the endpoint connection is accepted by the service owner."


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    # One settings object for both halves, as in the daemon.
    return SandboxSettings(
        vpc_endpoint_pending_seconds=PENDING,
        workspace_provisioning_seconds=PROVISIONING,
        iam_propagation_seconds=0.0,
        eni_release_seconds=0.1,
    )


@pytest.fixture(autouse=True)
def fresh() -> None:
    emulator.reset()  # AWS objects of earlier tests live in VPCs of their own


@pytest.fixture
def vpc(ec2: Any) -> dict[str, Any]:
    """A fresh VPC Databricks accepts: DNS hostnames on, two /24 subnets in two zones, a group."""
    return databricks_vpc(ec2)


# --- helpers ------------------------------------------------------------------------------------------


def make_endpoint(ec2: Any, vpc: dict[str, Any], service: str, **kwargs: Any) -> str:
    made = ec2.create_vpc_endpoint(
        VpcEndpointType="Interface",
        VpcId=vpc["vpc"],
        ServiceName=service,
        SubnetIds=vpc["subnets"],
        SecurityGroupIds=[vpc["sg"]],
        **kwargs,
    )
    return made["VpcEndpoint"]["VpcEndpointId"]


def describe(ec2: Any, vpce_id: str) -> dict[str, Any]:
    return ec2.describe_vpc_endpoints(VpcEndpointIds=[vpce_id])["VpcEndpoints"][0]


def register(acc: AccountClient, vpce_id: str, name: str = "endpoint", region: str = REGION):
    return acc.vpc_endpoints.create(vpc_endpoint_name=name, aws_vpc_endpoint_id=vpce_id, region=region)


def ready_endpoints(ec2: Any, acc: AccountClient, vpc: dict[str, Any], private_dns: bool = True) -> tuple:
    """The one-run order: create both endpoints, register them, wait until available, enable DNS."""
    ids = [make_endpoint(ec2, vpc, service, PrivateDnsEnabled=False) for service in (WORKSPACE_SERVICE, RELAY_SERVICE)]
    registrations = [register(acc, vpce_id, name) for vpce_id, name in zip(ids, ("rest", "relay"))]
    wait_until(lambda: all(describe(ec2, vpce_id)["State"] == "available" for vpce_id in ids))
    for vpce_id in ids if private_dns else ():
        ec2.modify_vpc_endpoint(VpcEndpointId=vpce_id, PrivateDnsEnabled=True)
    return ids, registrations


def create_network(acc: AccountClient, vpc: dict[str, Any], rest_api: list[str], relay: list[str]):
    return acc.networks.create(
        network_name="net",
        vpc_id=vpc["vpc"],
        subnet_ids=vpc["subnets"],
        security_group_ids=[vpc["sg"]],
        vpc_endpoints=NetworkVpcEndpoints(rest_api=rest_api, dataplane_relay=relay),
    )


def create_pas(acc: AccountClient, region: str = REGION, **kwargs: Any):
    return acc.private_access.create(private_access_settings_name="pas", region=region, **kwargs)


def create_workspace(acc: AccountClient, aws_url: str, settings: SandboxSettings, network_id: str, pas_id: str):
    role = databricks_role(aws_client("iam", aws_url), settings.account_id)
    bucket = make_bucket(aws_client("s3", aws_url))
    creds = acc.credentials.create(
        credentials_name="creds",
        aws_credentials=CreateCredentialAwsCredentials(sts_role=CreateCredentialStsRole(role_arn=role)),
    )
    storage = acc.storage.create(storage_configuration_name="root", root_bucket_info=RootBucketInfo(bucket))
    return acc.workspaces.create(
        workspace_name="Private Prod",
        aws_region=REGION,
        credentials_id=creds.credentials_id,
        storage_configuration_id=storage.storage_configuration_id,
        network_id=network_id,
        private_access_settings_id=pas_id,
        pricing_tier=PricingTier.ENTERPRISE,
    ).response


# --- AWS half -------------------------------------------------------------------------------------------


def test_describe_endpoint_services_knows_the_databricks_services(ec2: Any) -> None:
    asked = ec2.describe_vpc_endpoint_services(ServiceNames=[WORKSPACE_SERVICE, RELAY_SERVICE])
    assert asked["ServiceNames"] == sorted([WORKSPACE_SERVICE, RELAY_SERVICE])
    details = {d["ServiceName"]: d for d in asked["ServiceDetails"]}
    workspace = details[WORKSPACE_SERVICE]
    assert workspace["ServiceId"] == WORKSPACE_SERVICE.rsplit(".", 1)[1]
    assert workspace["ServiceType"] == [{"ServiceType": "Interface"}]
    assert workspace["AcceptanceRequired"] is True and workspace["ManagesVpcEndpoints"] is False
    assert workspace["Owner"] == DATABRICKS_AWS_ACCOUNT_ID
    assert workspace["PrivateDnsName"] == f"{REGION}.privatelink.cloud.databricks.com"
    assert {f"{REGION}a", f"{REGION}b"} <= set(workspace["AvailabilityZones"])
    assert details[RELAY_SERVICE]["PrivateDnsName"].startswith("tunnel.privatelink.")

    listed = ec2.describe_vpc_endpoint_services()["ServiceNames"]
    assert {WORKSPACE_SERVICE, RELAY_SERVICE, STS_SERVICE} <= set(listed)
    by_filter = ec2.describe_vpc_endpoint_services(Filters=[{"Name": "service-name", "Values": [RELAY_SERVICE]}])
    assert by_filter["ServiceNames"] == [RELAY_SERVICE]
    # Paging walks moto's services and ours as one sorted list.
    first = ec2.describe_vpc_endpoint_services(MaxResults=5)
    rest = ec2.describe_vpc_endpoint_services(NextToken=first["NextToken"])
    assert first["ServiceNames"] + rest["ServiceNames"] == listed
    # Another region's Databricks service is unknown here, as on AWS.
    other_region = PRIVATELINK_SERVICES["us-west-2"].workspace
    assert client_error(ec2.describe_vpc_endpoint_services, ServiceNames=[other_region])["Code"] == "InvalidServiceName"


def test_endpoint_to_databricks_service_waits_for_acceptance(ec2: Any, vpc: dict[str, Any]) -> None:
    vpce_id = make_endpoint(ec2, vpc, WORKSPACE_SERVICE)  # PrivateDnsEnabled omitted: false here
    time.sleep(PENDING + 0.1)
    endpoint = describe(ec2, vpce_id)
    assert endpoint["State"] == "pendingAcceptance" and endpoint["PrivateDnsEnabled"] is False
    # An AWS service keeps moto's behaviour: pending -> available, private DNS on by default.
    sts = make_endpoint(ec2, vpc, STS_SERVICE)
    assert describe(ec2, sts)["State"] == "pending" and describe(ec2, sts)["PrivateDnsEnabled"] is True
    wait_until(lambda: describe(ec2, sts)["State"] == "available")
    assert describe(ec2, vpce_id)["State"] == "pendingAcceptance"


def test_private_dns_on_create_is_refused(ec2: Any, vpc: dict[str, Any]) -> None:
    error = client_error(make_endpoint, ec2=ec2, vpc=vpc, service=RELAY_SERVICE, PrivateDnsEnabled=True)
    assert error == {"Code": "InvalidParameter", "Message": NOT_ACCEPTED}
    assert ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc["vpc"]]}])["VpcEndpoints"] == []


def test_unknown_privatelink_service_name_is_refused(ec2: Any, vpc: dict[str, Any]) -> None:
    for name in (PRIVATELINK_SERVICES["eu-west-1"].relay, "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0"):
        error = client_error(make_endpoint, ec2=ec2, vpc=vpc, service=name, PrivateDnsEnabled=False)
        assert error["Code"] == "InvalidServiceName" and name in error["Message"]


def test_private_dns_before_registration_is_refused_then_works_after(
    ec2: Any, acc: AccountClient, vpc: dict[str, Any]
) -> None:
    vpce_id = make_endpoint(ec2, vpc, WORKSPACE_SERVICE, PrivateDnsEnabled=False)
    # The second "apply" of the guides: enabling private DNS before Databricks accepted the endpoint.
    error = client_error(ec2.modify_vpc_endpoint, VpcEndpointId=vpce_id, PrivateDnsEnabled=True)
    assert error == {"Code": "InvalidParameter", "Message": NOT_ACCEPTED}
    assert describe(ec2, vpce_id)["PrivateDnsEnabled"] is False

    registration = register(acc, vpce_id)  # Databricks accepts the endpoint
    assert registration.state == "pending" and describe(ec2, vpce_id)["State"] == "pending"
    wait_until(lambda: describe(ec2, vpce_id)["State"] == "available")
    assert acc.vpc_endpoints.get(registration.vpc_endpoint_id).state == "available"  # mirrored on read
    ec2.modify_vpc_endpoint(VpcEndpointId=vpce_id, PrivateDnsEnabled=True)
    endpoint = describe(ec2, vpce_id)
    assert endpoint["State"] == "available" and endpoint["PrivateDnsEnabled"] is True


# --- Databricks half ------------------------------------------------------------------------------------


def test_registration_shape_list_get_delete(ec2: Any, acc: AccountClient, vpc: dict[str, Any], dbx_url: str) -> None:
    rest_id = make_endpoint(ec2, vpc, WORKSPACE_SERVICE, PrivateDnsEnabled=False)
    relay_id = make_endpoint(ec2, vpc, RELAY_SERVICE, PrivateDnsEnabled=False)
    rest, relay = register(acc, rest_id, "same-name"), register(acc, relay_id, "same-name")  # names may repeat
    assert rest.use_case == EndpointUseCase.WORKSPACE_ACCESS
    assert relay.use_case == EndpointUseCase.DATAPLANE_RELAY_ACCESS
    assert rest.aws_endpoint_service_id == WORKSPACE_SERVICE.rsplit(".", 1)[1]
    assert rest.aws_vpc_endpoint_id == rest_id and rest.region == REGION
    assert rest.aws_account_id == SANDBOX_AWS_ACCOUNT_ID and rest.account_id == acc.config.account_id
    assert str(uuid.UUID(rest.vpc_endpoint_id)) == rest.vpc_endpoint_id

    raw = requests.get(
        f"{dbx_url}/api/2.0/accounts/{acc.config.account_id}/vpc-endpoints",
        headers={"Authorization": f"Bearer {acc.config.token}"},
        timeout=5,
    ).json()
    assert isinstance(raw, list) and {r["vpc_endpoint_id"] for r in raw} == {rest.vpc_endpoint_id, relay.vpc_endpoint_id}
    assert {r["use_case"] for r in raw} == {"WORKSPACE_ACCESS", "DATAPLANE_RELAY_ACCESS"}
    assert acc.vpc_endpoints.get(relay.vpc_endpoint_id).aws_vpc_endpoint_id == relay_id
    assert {e["aws_vpc_endpoint_id"] for e in emulator.inventory()[acc.config.account_id]["vpc_endpoints"]} == {
        rest_id,
        relay_id,
    }

    assert acc.vpc_endpoints.delete(relay.vpc_endpoint_id).vpc_endpoint_id == relay.vpc_endpoint_id
    with pytest.raises(ResourceDoesNotExist):
        acc.vpc_endpoints.get(relay.vpc_endpoint_id)
    assert [e.vpc_endpoint_id for e in acc.vpc_endpoints.list()] == [rest.vpc_endpoint_id]


def test_registration_validation(ec2: Any, acc: AccountClient, vpc: dict[str, Any]) -> None:
    sts = make_endpoint(ec2, vpc, STS_SERVICE)
    rest = make_endpoint(ec2, vpc, WORKSPACE_SERVICE, PrivateDnsEnabled=False)
    cases = [
        ({"vpce_id": "vpce-0123456789abcdef0"}, "does not exist in region us-east-1"),
        ({"vpce_id": sts}, "not a Databricks endpoint service"),
        ({"vpce_id": rest, "region": "eu-west-1"}, "does not exist in region eu-west-1"),
        ({"vpce_id": rest, "region": "mars-1"}, "not a valid AWS region"),
        ({"vpce_id": rest, "region": "af-south-1"}, "not available in region af-south-1"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidParameterValue, match=message):
            register(acc, **kwargs)
    assert acc.vpc_endpoints.list() == []
    assert describe(ec2, rest)["State"] == "pendingAcceptance"  # a refused registration accepts nothing


def test_network_vpc_endpoints_are_checked(ec2: Any, acc: AccountClient, vpc: dict[str, Any]) -> None:
    rest = register(acc, make_endpoint(ec2, vpc, WORKSPACE_SERVICE, PrivateDnsEnabled=False), "rest")
    relay = register(acc, make_endpoint(ec2, vpc, RELAY_SERVICE, PrivateDnsEnabled=False), "relay")
    with pytest.raises(InvalidParameterValue, match="vpc_endpoints.rest_api: .* has use case DATAPLANE_RELAY_ACCESS"):
        create_network(acc, vpc, rest_api=[relay.vpc_endpoint_id], relay=[rest.vpc_endpoint_id])
    with pytest.raises(InvalidParameterValue, match="VPC endpoint configuration .* does not exist"):
        create_network(acc, vpc, rest_api=[str(uuid.uuid4())], relay=[relay.vpc_endpoint_id])
    other = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    other_subnet = ec2.create_subnet(VpcId=other, CidrBlock="10.1.0.0/24", AvailabilityZone=f"{REGION}a")
    elsewhere = {"vpc": other, "subnets": [other_subnet["Subnet"]["SubnetId"]], "sg": None}
    elsewhere["sg"] = ec2.create_security_group(GroupName="sg-other", Description="x", VpcId=other)["GroupId"]
    stray = register(acc, make_endpoint(ec2, elsewhere, RELAY_SERVICE, PrivateDnsEnabled=False), "stray")
    with pytest.raises(InvalidParameterValue, match=f"is in VPC {other}, not in VPC {vpc['vpc']}"):
        create_network(acc, vpc, rest_api=[rest.vpc_endpoint_id], relay=[stray.vpc_endpoint_id])

    network = create_network(acc, vpc, rest_api=[rest.vpc_endpoint_id], relay=[relay.vpc_endpoint_id])
    assert network.vpc_endpoints.rest_api == [rest.vpc_endpoint_id]
    assert acc.networks.get(network.network_id).vpc_endpoints.dataplane_relay == [relay.vpc_endpoint_id]

    # A registration a network lists cannot be deleted until the network is gone.
    with pytest.raises(InvalidState, match=network.network_id):
        acc.vpc_endpoints.delete(rest.vpc_endpoint_id)
    acc.networks.delete(network.network_id)
    acc.vpc_endpoints.delete(rest.vpc_endpoint_id)


def test_private_access_settings_crud_and_validation(
    ec2: Any, acc: AccountClient, vpc: dict[str, Any], dbx_url: str
) -> None:
    rest = register(acc, make_endpoint(ec2, vpc, WORKSPACE_SERVICE, PrivateDnsEnabled=False))
    pas = create_pas(
        acc,
        private_access_level=PrivateAccessLevel.ENDPOINT,
        allowed_vpc_endpoint_ids=[rest.vpc_endpoint_id],
        public_access_enabled=True,
    )
    assert pas.region == REGION and pas.private_access_level == PrivateAccessLevel.ENDPOINT
    assert pas.allowed_vpc_endpoint_ids == [rest.vpc_endpoint_id] and pas.public_access_enabled is True
    assert acc.private_access.get(pas.private_access_settings_id).private_access_settings_name == "pas"
    default = create_pas(acc)
    assert default.private_access_level == PrivateAccessLevel.ACCOUNT and default.public_access_enabled is False
    assert {p.private_access_settings_id for p in acc.private_access.list()} == {
        pas.private_access_settings_id,
        default.private_access_settings_id,
    }

    replaced = acc.private_access.replace(
        pas.private_access_settings_id,
        PrivateAccessSettings(private_access_settings_name="renamed", region=REGION, public_access_enabled=False),
    )
    assert replaced.private_access_settings_id == pas.private_access_settings_id
    assert replaced.private_access_settings_name == "renamed" and replaced.public_access_enabled is False
    assert replaced.private_access_level == PrivateAccessLevel.ACCOUNT and not replaced.allowed_vpc_endpoint_ids

    with pytest.raises(InvalidParameterValue, match="not a valid AWS region"):
        create_pas(acc, region="mars-1")
    with pytest.raises(InvalidParameterValue, match="does not exist in account"):
        create_pas(acc, allowed_vpc_endpoint_ids=[str(uuid.uuid4())])
    with pytest.raises(InvalidParameterValue, match="registered in us-east-1, not eu-west-1"):
        create_pas(acc, region="eu-west-1", allowed_vpc_endpoint_ids=[rest.vpc_endpoint_id])
    bad_level = requests.post(
        f"{dbx_url}/api/2.0/accounts/{acc.config.account_id}/private-access-settings",
        headers={"Authorization": f"Bearer {acc.config.token}"},
        json={"private_access_settings_name": "x", "region": REGION, "private_access_level": "VPC"},
        timeout=5,
    )
    assert bad_level.status_code == 400 and bad_level.json()["error_code"] == "INVALID_PARAMETER_VALUE"

    acc.private_access.delete(default.private_access_settings_id)
    with pytest.raises(ResourceDoesNotExist):
        acc.private_access.get(default.private_access_settings_id)


def test_workspace_runs_after_the_one_run_order(
    ec2: Any, acc: AccountClient, vpc: dict[str, Any], aws_url: str, settings: SandboxSettings
) -> None:
    _ids, (rest, relay) = ready_endpoints(ec2, acc, vpc)
    network = create_network(acc, vpc, rest_api=[rest.vpc_endpoint_id], relay=[relay.vpc_endpoint_id])
    pas = create_pas(acc)
    ws = create_workspace(acc, aws_url, settings, network.network_id, pas.private_access_settings_id)
    assert ws.private_access_settings_id == pas.private_access_settings_id
    running = settled(acc, ws.workspace_id)
    assert running.workspace_status == WorkspaceStatus.RUNNING, running.workspace_status_message

    # Settings and registrations in use cannot go.
    with pytest.raises(InvalidState, match=str(ws.workspace_id)):
        acc.private_access.delete(pas.private_access_settings_id)
    with pytest.raises(InvalidState):
        acc.vpc_endpoints.delete(relay.vpc_endpoint_id)
    acc.workspaces.delete(ws.workspace_id)
    acc.private_access.delete(pas.private_access_settings_id)


def test_workspace_fails_while_endpoints_are_not_ready_then_recovers(
    ec2: Any, acc: AccountClient, vpc: dict[str, Any], aws_url: str, settings: SandboxSettings
) -> None:
    (rest_id, relay_id), (rest, relay) = ready_endpoints(ec2, acc, vpc, private_dns=False)
    ec2.modify_vpc_endpoint(VpcEndpointId=relay_id, PrivateDnsEnabled=True)  # the REST API one stays off
    network = create_network(acc, vpc, rest_api=[rest.vpc_endpoint_id], relay=[relay.vpc_endpoint_id])
    pas = create_pas(acc)
    ws = create_workspace(acc, aws_url, settings, network.network_id, pas.private_access_settings_id)
    failed = settled(acc, ws.workspace_id)
    assert failed.workspace_status == WorkspaceStatus.FAILED
    message = failed.workspace_status_message
    assert "back-end PrivateLink endpoints are not ready" in message
    assert f"rest_api VPC endpoint {rest_id} has private DNS disabled" in message and relay_id not in message

    ec2.modify_vpc_endpoint(VpcEndpointId=rest_id, PrivateDnsEnabled=True)
    acc.workspaces.update(ws.workspace_id, Workspace(workspace_name="Private Prod"), update_mask="workspace_name")
    assert settled(acc, ws.workspace_id).workspace_status == WorkspaceStatus.RUNNING


def test_workspace_fails_when_created_before_endpoints_are_available(
    ec2: Any, acc: AccountClient, vpc: dict[str, Any], aws_url: str, settings: SandboxSettings
) -> None:
    settings.update({"vpc_endpoint_pending_seconds": 30})  # accepted, but still `pending` at deploy time
    try:
        ids = [make_endpoint(ec2, vpc, s, PrivateDnsEnabled=False) for s in (WORKSPACE_SERVICE, RELAY_SERVICE)]
        rest, relay = (register(acc, vpce_id) for vpce_id in ids)
        network = create_network(acc, vpc, rest_api=[rest.vpc_endpoint_id], relay=[relay.vpc_endpoint_id])
        ws = create_workspace(acc, aws_url, settings, network.network_id, create_pas(acc).private_access_settings_id)
        failed = settled(acc, ws.workspace_id)
    finally:
        settings.update({"vpc_endpoint_pending_seconds": PENDING})
    assert failed.workspace_status == WorkspaceStatus.FAILED
    for field, vpce_id in zip(("rest_api", "dataplane_relay"), ids):
        assert f"{field} VPC endpoint {vpce_id} is pending, not available and has private DNS disabled" in (
            failed.workspace_status_message
        )


def test_workspace_fails_when_an_endpoint_is_gone(
    ec2: Any, acc: AccountClient, vpc: dict[str, Any], aws_url: str, settings: SandboxSettings
) -> None:
    _ids, (rest, relay) = ready_endpoints(ec2, acc, vpc)
    network = create_network(acc, vpc, rest_api=[rest.vpc_endpoint_id], relay=[relay.vpc_endpoint_id])
    ec2.delete_vpc_endpoints(VpcEndpointIds=[relay.aws_vpc_endpoint_id])
    wait_until(lambda: acc.vpc_endpoints.get(relay.vpc_endpoint_id).state == "deleted")  # mirrored from AWS
    ws = create_workspace(acc, aws_url, settings, network.network_id, create_pas(acc).private_access_settings_id)
    failed = settled(acc, ws.workspace_id)
    assert failed.workspace_status == WorkspaceStatus.FAILED
    assert f"dataplane_relay VPC endpoint {relay.aws_vpc_endpoint_id} does not exist" in failed.workspace_status_message


def test_workspace_private_access_settings_must_exist_in_its_region(
    ec2: Any, acc: AccountClient, vpc: dict[str, Any], aws_url: str, settings: SandboxSettings
) -> None:
    network = acc.networks.create(
        network_name="plain", vpc_id=vpc["vpc"], subnet_ids=vpc["subnets"], security_group_ids=[vpc["sg"]]
    )
    with pytest.raises(InvalidParameterValue, match="private_access_settings_id .* does not exist"):
        create_workspace(acc, aws_url, settings, network.network_id, str(uuid.uuid4()))
    elsewhere = create_pas(acc, region="eu-west-1")
    with pytest.raises(InvalidParameterValue, match="are for region eu-west-1"):
        create_workspace(acc, aws_url, settings, network.network_id, elsewhere.private_access_settings_id)
