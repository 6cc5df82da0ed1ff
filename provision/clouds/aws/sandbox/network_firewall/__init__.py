"""AWS Network Firewall in the sandbox: the operations provision calls, over boto3's real wire protocol
(JSON 1.0, X-Amz-Target "NetworkFirewall_20201112.<Operation>"), answered here instead of by moto 5.2.5,
which implements five of the service's operations (no rule groups, no policies, no deletion, no endpoints).

Requests that come through an app made by `make_aws_app` never reach moto's networkfirewall backend:
`NetworkFirewallResponse.call_action` is patched (through patching.py, so moto used any other way
stays stock; service.py dispatches each operation through its `OPERATIONS` registry). moto still parses each request with botocore's model and serializes each answer
and each error, so shapes and error bodies are the service's own. The state lives on the EC2 backend of
the request's account and region, so POST /_sandbox/reset forgets it with the VPCs it refers to.

Fidelity rules:

1. Rule groups: CreateRuleGroup takes Type STATEFUL or STATELESS, a Capacity of 1..30000 and exactly one
   of RuleGroup or Rules (a Suricata string, stored as RulesSource.RulesString); the RulesSource holds
   exactly one kind of source; StatelessRulesAndCustomActions only in a STATELESS group and nothing else
   in one; each stateful rule carries a unique sid (RuleOption "sid" with one setting, or "sid:<n>");
   RuleVariables IP set definitions are CIDRs. DescribeRuleGroup finds a group by ARN, or by name with
   Type (required then, as the API reference says). UpdateRuleGroup replaces the body (Capacity and
   Type cannot change). ListRuleGroups filters on Type (Scope MANAGED lists nothing) and pages.
   Anything invalid is InvalidRequestException; a name already taken (per type) is too.
2. Update tokens: every create, describe and update answers an UpdateToken, a new one after each change.
   UpdateRuleGroup and UpdateFirewallPolicy require the current one, else InvalidTokenException;
   UpdateFirewallDeleteProtection checks it only when given (it is optional there).
3. Firewall policies: StatelessDefaultActions and StatelessFragmentDefaultActions each hold exactly one
   of aws:pass, aws:drop, aws:forward_to_sfe (other entries must be StatelessCustomActions); every
   StatefulRuleGroupReference must name an existing STATEFUL group, every stateless reference an existing
   STATELESS group, no group twice; a stateful group's StatefulRuleOptions.RuleOrder must equal the
   policy's StatefulEngineOptions.RuleOrder (both default DEFAULT_ACTION_ORDER); Priority is required on
   stateful references under STRICT_ORDER (1..65535, unique within the policy) and refused under
   DEFAULT_ACTION_ORDER, and so are StatefulDefaultActions (the API reference's values, one drop action at
   most). A rule order is fixed at creation: UpdateRuleGroup and UpdateFirewallPolicy refuse a new one
   ("parameter is invalid, parameter: [<order>]"). All of it InvalidRequestException, on create and on update.
4. In use: DeleteRuleGroup while a policy references the group, and DeleteFirewallPolicy while a firewall
   (also one still DELETING) uses the policy, fail with InvalidOperationException "Unable to delete the
   object because it is still in use" (the message Terraform's provider retries on). A deleted group or
   policy is answered with status DELETING and is gone at once.
5. Firewalls: CreateFirewall needs an existing policy, an existing VPC and one or more of its subnets, at
   most one per Availability Zone (InvalidRequestException otherwise; firewalls attached to a transit
   gateway are not modelled). DeleteProtection, SubnetChangeProtection and FirewallPolicyChangeProtection
   are TRUE when omitted (the API reference: "When you create a firewall, the operation initializes this
   flag to TRUE"), so a tool has to pass DeleteProtection=False or clear it before deleting. The firewall is
   PROVISIONING (ConfigurationSyncStateSummary PENDING, SyncStates {}) for
   `firewall_provisioning_seconds`, then READY / IN_SYNC with SyncStates {<zone>: {Attachment: {SubnetId,
   EndpointId, Status READY}, Config: {<policy and stateful group ARNs>: IN_SYNC}}}.
   UpdateFirewallDeleteProtection and UpdateFirewallPolicyChangeProtection change their flags. ListFirewalls filters on VpcIds and pages;
   Describe/UpdateLoggingConfiguration store the configuration as given.
6. Endpoints are real EC2 resources: at CreateFirewall each subnet gets a GatewayLoadBalancer-type VPC
   endpoint (service com.amazonaws.vpce.<region>.vpce-svc-..., RequesterManaged, state pending, then
   available when the firewall is READY) with a requester-managed network interface
   (gateway_load_balancer_endpoint) in the subnet. So DescribeVpcEndpoints lists them, CreateRoute/ReplaceRoute accept them as VpcEndpointId route
   targets, and DeleteSubnet / DeleteVpc fail with DependencyViolation while they exist (dependencies.py
   rules 5 and 6). endpoints.py's lifecycle (rule 9) leaves them alone: the firewall drives them.
7. DeleteFirewall fails with InvalidOperationException while DeleteProtection is TRUE, and while any route
   of any route table targets one of its endpoints: AWS documents removing those routes as a
   prerequisite of deleting a firewall; that the API itself refuses is this sandbox's choice (stricter: a
   teardown that works here also works on AWS, where a firewall deleted under live routes leaves them as
   blackholes). Otherwise it is DELETING (attachments DELETING, endpoints `deleting`) for
   `firewall_deleting_seconds`, then gone: DescribeFirewall fails with ResourceNotFoundException, its
   endpoints are gone from EC2 and their network interfaces are released, lingering like every released
   interface for `eni_release_seconds` (lifecycle.py, rule 12). DeleteFirewall on a DELETING firewall answers it
   again.
8. Tags: Tags on create, TagResource, UntagResource and ListTagsForResource on the ARN of any rule group,
   policy or firewall, shown in the describe answers too.
9. Errors are the service's: HTTP 400 with a JSON body whose __type is ResourceNotFoundException (an
   unknown name or ARN), InvalidRequestException, InvalidOperationException or InvalidTokenException, so
   botocore raises ClientError with that Code. An operation not listed here fails with
   UnsupportedOperationException rather than silently doing nothing.

10. AssociateFirewallPolicy moves a firewall to another existing policy (ResourceNotFoundException if it is
   not) in place: same ARN, same endpoints. It fails with InvalidOperationException while the firewall's
   FirewallPolicyChangeProtection is TRUE (as it is unless turned off) or while it is DELETING; an
   UpdateToken, optional there, must be current.

`evaluate.py` is no operation: a test helper that says what a policy does to a given flow (strict order or
action order, the default actions, domain lists by SNI and Host, 5-tuple rules), so a test can prove what
passes the firewall, not only what its documents say.

Time-based states advance lazily at the start of every Network Firewall and every EC2 request of the
same account and region (lifecycle.advance runs the firewalls' hook), under patching.STATE_LOCK.

Modules: service.py (errors, state, dispatch), policies.py (rule groups and firewall policies: rules
1 to 4), firewalls.py (firewalls, their endpoints, tags and policy associations: rules 5 to 8 and 10),
evaluate.py (what a policy does to a flow; imported by tests only).
"""

# Each registers its operations with service.OPERATIONS.
import provision.clouds.aws.sandbox.network_firewall.firewalls
import provision.clouds.aws.sandbox.network_firewall.policies  # noqa: F401
