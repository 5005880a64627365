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
from collections.abc import Mapping
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
    s3, sns, iam = boto3.client("s3"), boto3.client("sns"), boto3.client("iam")
    lam, codebuild, sfn = boto3.client("lambda"), boto3.client("codebuild"), boto3.client("stepfunctions")

    role_arn = iam.create_role(
        RoleName=f"{STACK}-local",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]

    for logical, resource in resources.items():
        kind = resource["Type"]
        if kind == "AWS::S3::Bucket":
            name = f"{STACK}-{logical.lower()}-{ACCOUNT}"
            s3.create_bucket(Bucket=name)
            versioning = resource.get("Properties", {}).get("VersioningConfiguration", {}).get("Status")
            if versioning:  # overwrites keep their noncurrent versions, as in the deployed bucket
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
            rules = _lifecycle_rules(resolver, resource)
            if rules:  # what the deployed bucket keeps and for how long, as S3 stores it
                s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=cast(Any, {"Rules": rules}))
            resolver.values[logical] = name
            resolver.attributes[f"{logical}.Arn"] = f"arn:aws:s3:::{name}"
        elif kind == "AWS::SNS::Topic":
            arn = sns.create_topic(Name=f"{STACK}-{logical}")["TopicArn"]
            resolver.values[logical] = arn
            resolver.attributes[f"{logical}.TopicName"] = arn.rsplit(":", 1)[1]
        elif kind == "AWS::Logs::LogGroup":
            name = resolver.resolve(resource["Properties"]["LogGroupName"])
            resolver.values[logical] = name
            resolver.attributes[f"{logical}.Arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"
        elif (
            kind == "AWS::KMS::Key" and resolver.condition(resource["Condition"])
            if "Condition" in resource
            else kind == "AWS::KMS::Key"
        ):
            key = boto3.client("kms").create_key(Description=f"{STACK} {logical}")["KeyMetadata"]
            resolver.values[logical] = key["KeyId"]
            resolver.attributes[f"{logical}.Arn"] = key["Arn"]
        elif kind == "AWS::IAM::Role":
            resolver.values[logical] = role_arn.rsplit("/", 1)[1]
            resolver.attributes[f"{logical}.Arn"] = role_arn

    deployment = Deployment(bucket="", topic_arn="", state_machine_arn="")

    def role_of(props: dict[str, Any], key: str) -> str:
        value = props[key]
        assert isinstance(value, _Tag), f"{key} must be !GetAtt ROLE.Arn"
        assert value.tag == "GetAtt", f"{key} must be !GetAtt ROLE.Arn"
        name = value.value if isinstance(value.value, str) else ".".join(value.value)
        return str(name).split(".", 1)[0]

    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    for logical, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        env = {
            k: str(v)
            for k, v in resolver.resolve({**globals_env, **props.get("Environment", {}).get("Variables", {})}).items()
        }
        env["HUBMIRROR_TARGET_REGISTRY"] = target_registry
        # Lambda hands a function its role's credentials in these variables
        role = role_of(props, "Role")
        env["AWS_ACCESS_KEY_ID"] = access_key(role)
        env.update(extra_environment or {})
        function_globals = template.get("Globals", {}).get("Function", {})
        created = lam.create_function(
            FunctionName=f"{STACK}-{logical}",
            Runtime=function_globals.get("Runtime", "python3.13"),
            Role=role_arn,
            Handler=props["Handler"],
            Code={"ZipFile": _dummy_code()},
            Timeout=(timeouts or {}).get(logical) or int(props.get("Timeout", function_globals.get("Timeout", 3))),
            MemorySize=int(props.get("MemorySize", function_globals.get("MemorySize", 128))),
            Environment={"Variables": env},
        )
        resolver.values[logical] = created["FunctionName"]
        resolver.attributes[f"{logical}.Arn"] = created["FunctionArn"]
        deployment.functions[logical] = created["FunctionName"]
        deployment.environment[logical] = env

    for logical, resource in resources.items():
        if resource["Type"] != "AWS::CodeBuild::Project":
            continue
        deployment.roles_of[f"{STACK}-{logical}"] = role_of(resource["Properties"], "ServiceRole")
        props = resolver.resolve(resource["Properties"])
        name = f"{STACK}-{logical}"
        environment = props["Environment"]
        created = codebuild.create_project(
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
        resolver.values[logical] = name
        resolver.attributes[f"{logical}.Arn"] = created["arn"]
        deployment.projects[logical] = name

    for logical, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::StateMachine":
            continue
        props = resource["Properties"]
        substitutions = resolver.resolve(props.get("DefinitionSubstitutions", {}))
        definition = render_definition(ROOT / props["DefinitionUri"], substitutions)
        leftover = re.findall(r"\$\{[A-Za-z0-9]+\}", definition)
        if leftover:
            raise ValueError(f"the state machine definition has unsubstituted placeholders: {sorted(set(leftover))}")
        name = resolver.resolve(props.get("Name", f"{STACK}-{logical}"))
        deployment.roles_of[name] = role_of(props, "Role")
        deployment.state_machine_arn = sfn.create_state_machine(
            name=name, definition=definition, roleArn=role_arn, type=props.get("Type", "STANDARD")
        )["stateMachineArn"]
        resolver.values[logical] = deployment.state_machine_arn
        resolver.attributes[f"{logical}.Name"] = name

    for logical, resource in resources.items():
        if resource["Type"] != "AWS::Events::Rule" or not resolver.deployed(resource):
            continue
        props = resolver.resolve(resource["Properties"])
        rules = boto3.client("events")
        name = f"{STACK}-{logical}"
        rules.put_rule(Name=name, EventPattern=json.dumps(props["EventPattern"]), State=props.get("State", "ENABLED"))
        rules.put_targets(
            Rule=name,
            Targets=[
                {k: v for k, v in target.items() if k in ("Id", "Arn", "RoleArn", "Input", "InputTransformer")}
                for target in props["Targets"]
            ],
        )
        resolver.values[logical] = name

    for logical, resource in resources.items():
        configuration = resource.get("Properties", {}).get("NotificationConfiguration", {})
        if resource["Type"] == "AWS::S3::Bucket" and configuration.get("EventBridgeConfiguration", {}).get(
            "EventBridgeEnabled"
        ):
            s3.put_bucket_notification_configuration(
                Bucket=resolver.values[logical], NotificationConfiguration={"EventBridgeConfiguration": {}}
            )

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
    for logical, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            statements = []
            for policy in resolver.resolve(resource["Properties"].get("Policies", [])):  # !If, AWS::NoValue
                for statement in policy["PolicyDocument"]["Statement"]:
                    if (logical, statement.get("Sid", "")) not in without:  # a test takes one away
                        statements.append(statement)
            deployment.role_statements[logical] = statements
        elif resource["Type"] == "AWS::S3::BucketPolicy":
            deployment.resource_statements.extend(
                resolver.resolve(resource["Properties"]["PolicyDocument"]["Statement"])
            )
        elif resource["Type"] == "AWS::ECR::RepositoryCreationTemplate" and resolver.deployed(resource):
            deployment.repository_templates.append(repository_template(resolver, resource))
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
