"""Deploy the project's own ``template.yaml`` into moto, resource by resource.

The tests must run what ``sam deploy`` deploys, so this reads the real template: the
functions (handler, environment from ``Globals`` and the function, resolved intrinsics),
the state machine (the real ``DefinitionUri`` file with the real
``DefinitionSubstitutions``), the CodeBuild projects, the bucket and the topic, the rule that
starts a run for a new allowlist, and a CloudFormation stack holding the template's outputs,
which the ``hubmirror`` command reads as it does on AWS. One value differs locally, passed in by
the caller: the target registry host (the local "ECR" rather than
``ACCOUNT.dkr.ecr.REGION.amazonaws.com``).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import boto3
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "hubmirror"
NO_VALUE = object()  # AWS::NoValue: the key or list item is left out


def render_definition(path: Path, substitutions: Mapping[str, Any]) -> str:
    """The definition file as CloudFormation hands it to Step Functions: read as YAML (JSON is
    YAML too), every ``${Name}`` replaced by its substitution, sent as JSON."""

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, str):
            return re.sub(r"\$\{(\w+)\}", lambda m: str(substitutions.get(m.group(1), m.group(0))), value)
        return value

    return json.dumps(fill(yaml.safe_load(path.read_text())))


def access_key(role: str) -> str:
    """The access key a caller acting under ``role`` (a logical id) signs with (devstack.aws.iam)."""
    return f"role-{role}"


class _Tag:
    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


class _CfnLoader(yaml.SafeLoader):
    pass


def _construct(loader: yaml.Loader, suffix: str, node: yaml.Node) -> _Tag:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return _Tag(suffix, value)


_CfnLoader.add_multi_constructor("!", _construct)


def load_template(path: Path = ROOT / "template.yaml") -> dict[str, Any]:
    """The template with CloudFormation's short-form tags kept as :class:`_Tag` values."""
    return dict(yaml.load(path.read_text(), Loader=_CfnLoader))  # noqa: S506 - a SafeLoader subclass


@dataclass
class Deployment:
    """Physical names and ARNs of what was deployed."""

    bucket: str
    topic_arn: str
    state_machine_arn: str
    chat_topic_arn: str = ""
    functions: dict[str, str] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)
    environment: dict[str, dict[str, str]] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    #: each role's statements as deployed (logical id -> resolved statements), and the
    #: resource policies' (the bucket policy)
    role_statements: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    resource_statements: list[dict[str, Any]] = field(default_factory=list)
    #: which role each caller acts under: function or project name -> role logical id
    roles_of: dict[str, str] = field(default_factory=dict)
    #: the template's outputs, as ``aws cloudformation describe-stacks`` gives them
    outputs: dict[str, str] = field(default_factory=dict)
    #: the repository creation templates, resolved (the ECR stand-in applies them on push)
    repository_templates: list[dict[str, Any]] = field(default_factory=list)


class _Resolver:
    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.template = template
        self.values: dict[str, str] = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::StackName": STACK,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::Partition": "aws",
        }
        for name, spec in template.get("Parameters", {}).items():
            self.values[name] = str(parameters.get(name, spec.get("Default", "")))
        self.attributes: dict[str, str] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, _Tag):
            return self._tag(value)
        if isinstance(value, dict):
            if len(value) == 1:
                key = next(iter(value))
                if key == "Ref" or key.startswith("Fn::"):
                    return self._tag(_Tag(key.removeprefix("Fn::"), value[key]))
            resolved = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not NO_VALUE]
        return value

    def deployed(self, resource: Mapping[str, Any]) -> bool:
        """Whether a resource (or output) is deployed: it has no ``Condition``, or its condition holds."""
        return "Condition" not in resource or self.condition(resource["Condition"])

    def condition(self, name: str) -> bool:
        """A template condition, evaluated with this deployment's parameters."""
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def _tag(self, tag: _Tag) -> Any:
        if tag.tag == "Ref":
            if tag.value == "AWS::NoValue":
                return NO_VALUE
            return self.values[tag.value]
        if tag.tag == "If":
            name, yes, no = tag.value
            return self.resolve(yes if self.condition(name) else no)
        if tag.tag == "Condition":
            return self.condition(tag.value)
        if tag.tag == "Not":
            return not self.resolve(tag.value[0])
        if tag.tag == "Or":
            return any(self.resolve(v) for v in tag.value)
        if tag.tag == "And":
            return all(self.resolve(v) for v in tag.value)
        if tag.tag == "Join":
            separator, parts = tag.value
            return str(separator).join(str(part) for part in self.resolve(parts))
        if tag.tag == "Equals":
            left, right = self.resolve(tag.value)
            return left == right
        if tag.tag == "Select":
            index, items = self.resolve(tag.value)
            return items[int(index)]
        if tag.tag == "Split":
            separator, text = self.resolve(tag.value)
            return str(text).split(separator)
        if tag.tag == "GetAtt":
            name = tag.value if isinstance(tag.value, str) else ".".join(tag.value)
            return self.attributes[name]
        if tag.tag == "Sub":
            text, extra = (tag.value, {}) if isinstance(tag.value, str) else (tag.value[0], self.resolve(tag.value[1]))

            def sub(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in extra:
                    return str(extra[name])
                if name in self.values:
                    return self.values[name]
                return self.attributes[name]

            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        raise ValueError(f"intrinsic function !{tag.tag} is not supported by the local deployer")


def _dummy_code() -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("README", "The local Lambda runtime imports the handler from functions/.")
    return raw.getvalue()


def _outputs_stack(outputs: Mapping[str, str]) -> None:
    """A CloudFormation stack named :data:`STACK` whose outputs are the deployment's: what
    ``hubmirror --stack NAME`` reads (``DescribeStacks``), as from a ``sam deploy``."""
    body = {
        "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    with warnings.catch_warnings():  # moto creates no resource for the placeholder, and says so
        warnings.simplefilter("ignore", UserWarning)
        boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(body))


def bucket_lifecycle(
    template: dict[str, Any], logical: str, parameters: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """A bucket's lifecycle rules with the parameters given (else their defaults), as S3's
    ``GetBucketLifecycleConfiguration`` answers for the deployed bucket."""
    return _lifecycle_rules(_Resolver(template, parameters or {}), template["Resources"][logical])


def _lifecycle_rules(resolver: _Resolver, resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    lifecycle = resolver.resolve(resource.get("Properties", {}).get("LifecycleConfiguration")) or {}
    return [_lifecycle_rule(rule) for rule in lifecycle.get("Rules", [])]


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved ``AWS::S3::Bucket`` lifecycle rule as S3's ``PutBucketLifecycleConfiguration``
    takes it (CloudFormation flattens ``Expiration`` and names ``ID`` ``Id``)."""
    api: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = bool(rule["ExpiredObjectDeleteMarker"])
    if expiration:
        api["Expiration"] = expiration
    if "NoncurrentVersionExpiration" in rule:
        api["NoncurrentVersionExpiration"] = {k: int(v) for k, v in rule["NoncurrentVersionExpiration"].items()}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return api


@dataclass
class _Deploying:
    """What the resource handlers share while a deployment is made."""

    template: dict[str, Any]
    resolver: _Resolver
    deployment: Deployment
    #: the one role moto's resources are created with (each caller's own is judged by devstack.aws.iam)
    role_arn: str
    target_registry: str
    extra_environment: dict[str, str]
    timeouts: dict[str, int]
    without: frozenset[tuple[str, str]]
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(service)  # type: ignore[call-overload]
        return self._clients[service]


#: A resource handler: what the deployment does with one resource of the template (its logical id).
_Handler = Callable[[_Deploying, str, Mapping[str, Any]], None]


def _role_of(props: Mapping[str, Any], key: str) -> str:
    value = props[key]
    assert isinstance(value, _Tag), f"{key} must be !GetAtt ROLE.Arn"
    assert value.tag == "GetAtt", f"{key} must be !GetAtt ROLE.Arn"
    name = value.value if isinstance(value.value, str) else ".".join(value.value)
    return str(name).split(".", 1)[0]


def _bucket(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    s3 = run.client("s3")
    name = f"{STACK}-{logical.lower()}-{ACCOUNT}"
    s3.create_bucket(Bucket=name)
    versioning = resource.get("Properties", {}).get("VersioningConfiguration", {}).get("Status")
    if versioning:  # overwrites keep their noncurrent versions, as in the deployed bucket
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
    rules = _lifecycle_rules(run.resolver, resource)
    if rules:  # what the deployed bucket keeps and for how long, as S3 stores it
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=cast(Any, {"Rules": rules}))
    run.resolver.values[logical] = name
    run.resolver.attributes[f"{logical}.Arn"] = f"arn:aws:s3:::{name}"


def _topic(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    arn = run.client("sns").create_topic(Name=f"{STACK}-{logical}")["TopicArn"]
    run.resolver.values[logical] = arn
    run.resolver.attributes[f"{logical}.TopicName"] = arn.rsplit(":", 1)[1]


def _log_group(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    name = run.resolver.resolve(resource["Properties"]["LogGroupName"])
    run.resolver.values[logical] = name
    run.resolver.attributes[f"{logical}.Arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"


def _key(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    if not run.resolver.deployed(resource):
        return
    key = run.client("kms").create_key(Description=f"{STACK} {logical}")["KeyMetadata"]
    run.resolver.values[logical] = key["KeyId"]
    run.resolver.attributes[f"{logical}.Arn"] = key["Arn"]


def _role(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    run.resolver.values[logical] = run.role_arn.rsplit("/", 1)[1]
    run.resolver.attributes[f"{logical}.Arn"] = run.role_arn


def _function(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    function_globals = run.template.get("Globals", {}).get("Function", {})
    globals_env = function_globals.get("Environment", {}).get("Variables", {})
    props = resource["Properties"]
    env = {
        k: str(v)
        for k, v in run.resolver.resolve({**globals_env, **props.get("Environment", {}).get("Variables", {})}).items()
    }
    env["HUBMIRROR_TARGET_REGISTRY"] = run.target_registry
    # Lambda hands a function its role's credentials in these variables
    role = _role_of(props, "Role")
    env["AWS_ACCESS_KEY_ID"] = access_key(role)
    env.update(run.extra_environment)
    created = run.client("lambda").create_function(
        FunctionName=f"{STACK}-{logical}",
        Runtime=function_globals.get("Runtime", "python3.13"),
        Role=run.role_arn,
        Handler=props["Handler"],
        Code={"ZipFile": _dummy_code()},
        Timeout=run.timeouts.get(logical) or int(props.get("Timeout", function_globals.get("Timeout", 3))),
        MemorySize=int(props.get("MemorySize", function_globals.get("MemorySize", 128))),
        Environment={"Variables": env},
    )
    run.resolver.values[logical] = created["FunctionName"]
    run.resolver.attributes[f"{logical}.Arn"] = created["FunctionArn"]
    run.deployment.functions[logical] = created["FunctionName"]
    run.deployment.environment[logical] = env


def _project(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    run.deployment.roles_of[f"{STACK}-{logical}"] = _role_of(resource["Properties"], "ServiceRole")
    props = run.resolver.resolve(resource["Properties"])
    name = f"{STACK}-{logical}"
    environment = props["Environment"]
    created = run.client("codebuild").create_project(
        name=name,
        source={"type": props["Source"]["Type"], "location": props["Source"]["Location"]},
        artifacts={"type": props["Artifacts"]["Type"]},
        environment={
            "type": environment["Type"],
            "image": environment["Image"],
            "computeType": environment["ComputeType"],
            "privilegedMode": bool(environment.get("PrivilegedMode", False)),
            "environmentVariables": [
                {"name": v["Name"], "value": str(v["Value"]), "type": v.get("Type", "PLAINTEXT")}
                for v in environment.get("EnvironmentVariables", [])
            ],
        },
        serviceRole=props["ServiceRole"],
        timeoutInMinutes=int(props.get("TimeoutInMinutes", 60)),
    )["project"]
    run.resolver.values[logical] = name
    run.resolver.attributes[f"{logical}.Arn"] = created["arn"]
    run.deployment.projects[logical] = name


def _state_machine(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    props = resource["Properties"]
    substitutions = run.resolver.resolve(props.get("DefinitionSubstitutions", {}))
    definition = render_definition(ROOT / props["DefinitionUri"], substitutions)
    leftover = re.findall(r"\$\{[A-Za-z0-9]+\}", definition)
    if leftover:
        raise ValueError(f"the state machine definition has unsubstituted placeholders: {sorted(set(leftover))}")
    name = run.resolver.resolve(props.get("Name", f"{STACK}-{logical}"))
    run.deployment.roles_of[name] = _role_of(props, "Role")
    run.deployment.state_machine_arn = run.client("stepfunctions").create_state_machine(
        name=name, definition=definition, roleArn=run.role_arn, type=props.get("Type", "STANDARD")
    )["stateMachineArn"]
    run.resolver.values[logical] = run.deployment.state_machine_arn
    run.resolver.attributes[f"{logical}.Name"] = name


def _rule(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    if not run.resolver.deployed(resource):
        return
    props = run.resolver.resolve(resource["Properties"])
    rules = run.client("events")
    name = f"{STACK}-{logical}"
    rules.put_rule(Name=name, EventPattern=json.dumps(props["EventPattern"]), State=props.get("State", "ENABLED"))
    rules.put_targets(
        Rule=name,
        Targets=[
            {k: v for k, v in target.items() if k in ("Id", "Arn", "RoleArn", "Input", "InputTransformer")}
            for target in props["Targets"]
        ],
    )
    run.resolver.values[logical] = name


def _bucket_notifications(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    configuration = resource.get("Properties", {}).get("NotificationConfiguration", {})
    if configuration.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        run.client("s3").put_bucket_notification_configuration(
            Bucket=run.resolver.values[logical], NotificationConfiguration={"EventBridgeConfiguration": {}}
        )


def _role_statements(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    statements = []
    for policy in run.resolver.resolve(resource["Properties"].get("Policies", [])):  # !If, AWS::NoValue
        for statement in policy["PolicyDocument"]["Statement"]:
            if (logical, statement.get("Sid", "")) not in run.without:  # a test takes one away
                statements.append(statement)
    run.deployment.role_statements[logical] = statements


def _bucket_policy(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    run.deployment.resource_statements.extend(
        run.resolver.resolve(resource["Properties"]["PolicyDocument"]["Statement"])
    )


def _creation_template(run: _Deploying, logical: str, resource: Mapping[str, Any]) -> None:
    if run.resolver.deployed(resource):
        run.deployment.repository_templates.append(repository_template(run.resolver, resource))


#: What the deployment does with each type of resource, in passes over the template: a pass
#: creates what the next one refers to (a function's environment names the bucket and the
#: topic, the state machine the functions and projects). A type a pass does not name is left
#: out of it; a type no pass names is not deployed (the dashboard and the alarm, the key's
#: alias, the topics' policies and subscription).
_CREATE: tuple[dict[str, _Handler], ...] = (
    {
        "AWS::S3::Bucket": _bucket,
        "AWS::SNS::Topic": _topic,
        "AWS::Logs::LogGroup": _log_group,
        "AWS::KMS::Key": _key,
        "AWS::IAM::Role": _role,
    },
    {"AWS::Serverless::Function": _function},
    {"AWS::CodeBuild::Project": _project},
    {"AWS::Serverless::StateMachine": _state_machine},
    {"AWS::Events::Rule": _rule},
    {"AWS::S3::Bucket": _bucket_notifications},
)
#: What the deployment records for devstack.aws.iam and the ECR front, once the stack exists.
_RECORD: dict[str, _Handler] = {
    "AWS::IAM::Role": _role_statements,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::ECR::RepositoryCreationTemplate": _creation_template,
}


def _each(run: _Deploying, handlers: Mapping[str, _Handler]) -> None:
    for logical, resource in run.template["Resources"].items():
        handler = handlers.get(resource["Type"])
        if handler is not None:
            handler(run, logical, resource)


def deploy(
    *,
    target_registry: str,
    parameters: dict[str, str] | None = None,
    extra_environment: dict[str, str] | None = None,
    without: frozenset[tuple[str, str]] = frozenset(),
    timeouts: dict[str, int] | None = None,
) -> Deployment:
    """Create the template's resources in moto (the endpoint in ``AWS_ENDPOINT_URL``).

    ``without`` names role statements (role logical id, ``Sid``) the deployment leaves out,
    as if a change had removed them from the template; ``timeouts`` sets functions' timeouts
    (logical id -> seconds) where a test needs one shorter than the template's.
    """
    template = load_template()
    resolver = _Resolver(template, parameters or {})
    resources: dict[str, Any] = template["Resources"]
    role_arn = boto3.client("iam").create_role(
        RoleName=f"{STACK}-local",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    deployment = Deployment(bucket="", topic_arn="", state_machine_arn="")
    run = _Deploying(
        template, resolver, deployment, role_arn, target_registry, extra_environment or {}, timeouts or {}, without
    )
    for handlers in _CREATE:
        _each(run, handlers)

    deployment.bucket = next(
        v for k, v in resolver.values.items() if resources.get(k, {}).get("Type") == "AWS::S3::Bucket"
    )
    deployment.topic_arn = resolver.values["ReportTopic"]
    deployment.chat_topic_arn = resolver.values["ChatTopic"]
    deployment.parameters = {k: resolver.values[k] for k in template.get("Parameters", {})}
    for name, output in template.get("Outputs", {}).items():
        if resolver.deployed(output):
            with contextlib.suppress(KeyError):  # what the local stack does not create (dashboard, alarm)
                deployment.outputs[name] = str(resolver.resolve(output["Value"]))
    # the local target registry, where AWS has ACCOUNT.dkr.ecr.REGION.amazonaws.com
    deployment.outputs["TargetRepositoryPrefix"] = f"{target_registry}/{resolver.values['TargetPrefix']}"
    _outputs_stack(deployment.outputs)
    _each(run, _RECORD)
    return deployment


def repository_template(resolver: _Resolver, resource: Mapping[str, Any]) -> dict[str, Any]:
    """A creation template's properties, resolved (a role's ARN is named as AWS would)."""
    properties = dict(resource["Properties"])
    role = properties.pop("CustomRoleArn", None)
    resolved: dict[str, Any] = resolver.resolve(properties)
    if isinstance(role, _Tag):  # !GetAtt ROLE.Arn: the role is created after the template resource
        resolved["CustomRoleArn"] = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-{str(role.value).split('.')[0]}"
    return resolved


def creation_template(
    template: dict[str, Any], logical: str, parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """A creation template's properties with the parameters given (else their defaults)."""
    return repository_template(_Resolver(template, parameters or {}), template["Resources"][logical])
