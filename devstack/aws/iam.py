"""Every AWS call of the local stack made under the role ``template.yaml`` gives its caller.

AWS evaluates each call against the caller's role, resources and conditions included
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
moto can enforce IAM, but its evaluator ignores resources and conditions, so the local stack
does it here, in front of moto's server:

* each caller signs with the access key of its role: a function with its ``Role``'s, a
  CodeBuild build with its project's ``ServiceRole``'s, and the state machine's service
  integrations (moto signs them with the key ``ak``) with the ``StateMachineRole``'s;
* each request is read as AWS reads it (service, action, resource ARN, condition keys such
  as ``s3:prefix``) and evaluated against the role's statements from the template, the
  bucket policy's denials included; a call no statement allows, or one this module cannot
  read, is refused as AWS refuses it (``AccessDenied``), naming the action and resource;
* S3 answers ``HeadObject``/``GetObject`` of a missing key with ``403``, not ``404``, to a
  principal without ``s3:ListBucket`` on the bucket
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, "Permissions");
* every call is recorded (:attr:`Enforcer.calls`): principal, action, resource, verdict;
* each caller carries the global condition keys AWS gives a role session (``aws:PrincipalArn``,
  ``aws:userid``, ``aws:PrincipalTag/...``), a PutObject its ``s3:RequestObjectTag/...``, and
  condition values may name them as policy variables (``${aws:userid}``)
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html);
  principals other than the stack's roles (a team's CI role, a stranger of the account) are
  added with :meth:`Enforcer.add_principal`, and ``sts:GetCallerIdentity`` answers for each.

The test harness's own key (``testing``) is not a role: its calls pass unevaluated.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from devstack.aws.deploy import ACCOUNT, REGION, Deployment, access_key
from devstack.faults import Faults

#: moto signs the state machine's service integrations with this key.
STATE_MACHINE_KEY = "ak"


def principals_of(deployment: Deployment) -> dict[str, str]:
    """Access key -> role: every role's own key, and moto's key for the state machine's calls."""
    principals = {access_key(role): role for role in deployment.role_statements}
    state_machine = deployment.state_machine_arn.rsplit(":", 1)[1]
    principals[STATE_MACHINE_KEY] = deployment.roles_of[state_machine]
    return principals


def role_arn(role: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{role}"


def user_id(role: str) -> str:
    """``aws:userid`` of a session of ``role``: the role's unique id, a colon, the session's name."""
    return f"AROA{hashlib.sha256(role.encode()).hexdigest()[:17].upper()}:local"


@dataclass(frozen=True)
class Request:
    """A call as IAM sees it."""

    service: str
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)
    #: S3 object reads: (bucket, key), for the missing-key rule
    s3_object: tuple[str, str] | None = None


@dataclass(frozen=True)
class Call:
    principal: str
    action: str
    resource: str
    allowed: bool
    why: str = ""


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _variables(value: str, context: Mapping[str, str]) -> str:
    """Policy variables (``${aws:userid}``) filled in from the request's context."""
    return re.sub(r"\$\{([^}]+)\}", lambda m: context.get(m.group(1), m.group(0)), value)


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]) -> bool:
    for qualified, tests in condition.items():
        qualifier, _, operator = qualified.rpartition(":")
        for key, wanted in tests.items():
            if qualifier == "ForAnyValue":  # a multivalued key: any of its values passes the test
                many = _listed(context.get(key, []))
                if not any(_condition_holds({operator: {key: wanted}}, {**context, key: one}) for one in many):
                    return False
                continue
            if qualifier:
                raise ValueError(f"condition qualifier {qualifier} is not modelled by devstack.aws.iam")
            have = context.get(key)
            values = [_variables(str(v), context) for v in _listed(wanted)]
            if operator in ("StringEquals", "ArnEquals"):
                ok = have is not None and have in values
            elif operator in ("StringLike", "ArnLike"):
                ok = have is not None and any(fnmatch.fnmatchcase(have, v) for v in values)
            elif operator == "Bool":
                ok = have is not None and have.lower() in [v.lower() for v in values]
            elif operator == "StringNotEquals":  # a key the request lacks matches (AWS's negated operators)
                ok = have is None or have not in values
            elif operator in ("StringNotLike", "ArnNotLike"):
                ok = have is None or not any(fnmatch.fnmatchcase(have, v) for v in values)
            else:
                raise ValueError(f"condition operator {operator} is not modelled by devstack.aws.iam")
            if not ok:
                return False
    return True


def _matches(statement: Mapping[str, Any], request: Request) -> bool:
    actions = _listed(statement.get("Action", []))
    if not any(fnmatch.fnmatchcase(request.action.lower(), a.lower()) for a in actions):
        return False
    resources = _listed(statement.get("Resource", "*"))
    if not any(fnmatch.fnmatchcase(request.resource, r) for r in resources):
        return False
    return _condition_holds(statement.get("Condition", {}), request.context)


def repository_policy_allows(policy: str | None, caller: Mapping[str, Any], action: str) -> bool:
    """Whether a repository policy lets a caller of another account do ``action``: a statement
    allows it for that principal and none denies it. ``caller`` holds the caller's global
    condition keys (``aws:PrincipalArn``, ``aws:PrincipalAccount``, ``aws:PrincipalOrgPaths``).
    A statement names the caller as ``*``, its account (id or root ARN) or its own ARN.
    """
    if not policy:
        return False
    account = str(caller["aws:PrincipalAccount"])
    names = {"*", account, f"arn:aws:iam::{account}:root", str(caller["aws:PrincipalArn"])}

    def applies(statement: Mapping[str, Any]) -> bool:
        principal = statement.get("Principal")
        named = principal if isinstance(principal, str) else _listed((principal or {}).get("AWS", []))
        if not names & set(_listed(named)):
            return False
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement.get("Action", []))):
            return False
        return _condition_holds(statement.get("Condition", {}), caller)

    statements = _listed(json.loads(policy).get("Statement", []))
    if any(s.get("Effect") == "Deny" and applies(s) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and applies(s) for s in statements)


class Policies:
    """The resolved statements of each role, and the resource policies' statements."""

    def __init__(self, roles: Mapping[str, list[dict[str, Any]]], resource_policies: Iterable[dict[str, Any]]) -> None:
        self.roles = {name: list(statements) for name, statements in roles.items()}
        self.resource_policies = list(resource_policies)
        #: each principal's tags (aws:PrincipalTag/...)
        self.tags: dict[str, dict[str, str]] = {}

    def principal_context(self, role: str) -> dict[str, str]:
        """The global condition keys of a session of ``role`` (its ARN, user id and tags)."""
        return {
            "aws:PrincipalArn": role_arn(role),
            "aws:userid": user_id(role),
            **{f"aws:PrincipalTag/{k}": v for k, v in self.tags.get(role, {}).items()},
        }

    def evaluate(self, role: str, request: Request) -> tuple[bool, str]:
        """Explicit deny wins, then an allow, else the implicit deny (AWS's order)."""
        request = dataclasses.replace(request, context={**request.context, **self.principal_context(role)})
        identity = self.roles.get(role, [])
        for statement in [*identity, *self.resource_policies]:
            if statement.get("Effect") == "Deny" and _matches(statement, request):
                return False, "with an explicit deny"
        if any(s.get("Effect") == "Allow" and _matches(s, request) for s in identity):
            return True, ""
        return False, f"because no identity-based policy allows the {request.action} action"


def _json_resource(service: str, action: str, body: Mapping[str, Any]) -> str:
    arn = f"arn:aws:{service}:{REGION}:{ACCOUNT}"
    if service == "ecr":
        if "resourceArn" in body:
            return str(body["resourceArn"])
        if "repositoryName" in body:
            return f"{arn}:repository/{body['repositoryName']}"
        names = body.get("repositoryNames") or []
        return f"{arn}:repository/{names[0]}" if len(names) == 1 else "*"
    if service == "codebuild":
        project = body.get("projectName") or str((body.get("ids") or [""])[0]).split(":", 1)[0] or body.get("id", "")
        return f"{arn}:project/{str(project).split(':', 1)[0]}"
    if service == "secretsmanager":
        secret = str(body.get("SecretId", ""))
        if secret.startswith("arn:"):
            return secret
        from moto.secretsmanager.models import secretsmanager_backends

        found = secretsmanager_backends[ACCOUNT][REGION].secrets.get(secret)
        return str(found.arn) if found is not None else f"{arn}:secret:{secret}"
    if service == "kms":
        key = str(body.get("KeyId", "*"))
        return key if key.startswith("arn:") else f"{arn}:key/{key}"
    if service == "ssm" and "Name" in body:
        return f"{arn}:parameter/{str(body['Name']).lstrip('/')}"
    if service == "logs":
        return f"{arn}:log-group:{body.get('logGroupName', '*')}:log-stream:{body.get('logStreamName', '*')}"
    if service == "events" and action == "PutEvents":  # the bus each entry names (the default bus if none)
        buses = {str(e.get("EventBusName") or "default") for e in body.get("Entries") or []}
        (bus,) = buses if len(buses) == 1 else ("*",)
        return bus if bus.startswith("arn:") else f"{arn}:event-bus/{bus}"
    if service == "states" and "stateMachineArn" in body:  # StartExecution, ListExecutions: the state machine
        return str(body["stateMachineArn"])
    if service == "states" and "executionArn" in body:  # DescribeExecution: the execution
        return str(body["executionArn"])
    return "*"


def describe(service: str, method: str, *, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Request:
    """Read one HTTP request as IAM reads it; ValueError for a call not modelled here."""
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if service == "s3":
        bucket, _, key = unquote(path).lstrip("/").partition("/")
        if key:
            resource = f"arn:aws:s3:::{bucket}/{key}"
            version = "Version" if "versionId" in params else ""
            if "tagging" in params:
                verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, "Get")
                return Request(service, f"s3:{verb}Object{version}Tagging", resource)
            if method in ("GET", "HEAD"):
                action = "s3:GetObjectVersion" if "versionId" in params else "s3:GetObject"
                return Request(service, action, resource, s3_object=(bucket, key))
            if method == "PUT":
                tagging = {k: v[0] for k, v in parse_qs(headers.get("X-Amz-Tagging", "")).items()}
                return Request(
                    service, "s3:PutObject", resource, {f"s3:RequestObjectTag/{k}": v for k, v in tagging.items()}
                )
            if method == "DELETE":
                return Request(service, f"s3:DeleteObject{version}", resource)
        else:
            resource = f"arn:aws:s3:::{bucket}"
            if "acl" in params:
                return Request(service, "s3:GetBucketAcl", resource)
            if "location" in params:
                return Request(service, "s3:GetBucketLocation", resource)
            if method in ("GET", "HEAD"):
                return Request(service, "s3:ListBucket", resource, {"s3:prefix": params.get("prefix", "")})
        raise ValueError(f"S3 {method} {path}?{query}")
    target = headers.get("X-Amz-Target") or headers.get("x-amz-target")
    if target:
        action = target.rsplit(".", 1)[1]
        document = json.loads(body or b"{}")
        return Request(service, f"{service}:{action}", _json_resource(service, action, document))
    if service == "lambda":
        parts = path.split("/")
        if len(parts) >= 5 and parts[2] == "functions" and parts[4] == "invocations":
            name = unquote(parts[3])
            arn = name if name.startswith("arn:") else f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            return Request(service, "lambda:InvokeFunction", arn)
        raise ValueError(f"Lambda {method} {path}")
    form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()} if body else params
    if "Action" in form:
        action = form["Action"]
        if service == "sns":
            return Request(service, f"sns:{action}", form.get("TopicArn") or form.get("TargetArn") or "*")
        return Request(service, f"{service}:{action}", "*")
    raise ValueError(f"{service} {method} {path}")


def _denied(service: str, method: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    if service == "s3":
        body = (
            b""
            if method == "HEAD"
            else (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                f"<Message>{message}</Message></Error>"
            ).encode()
        )
        return "403 Forbidden", [("Content-Type", "application/xml")], body
    if service in ("sns", "sqs", "sts", "iam"):
        body = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>AuthorizationError</Code>"
            f"<Message>{message}</Message></Error></ErrorResponse>"
        ).encode()
        return "403 Forbidden", [("Content-Type", "text/xml")], body
    body = json.dumps({"__type": "AccessDeniedException", "message": message, "Message": message}).encode()
    headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "AccessDeniedException")]
    return "400 Bad Request" if service != "lambda" else "403 Forbidden", headers, body


def _credential(environ: Mapping[str, Any]) -> tuple[str, str] | None:
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        return scope[0], scope[3] if len(scope) > 3 else ""
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    if "X-Amz-Credential" in query:  # a pre-signed URL
        scope = query["X-Amz-Credential"][0].split("/")
        return scope[0], scope[3] if len(scope) > 3 else ""
    return None


@dataclass
class ServiceFault:
    """An AWS error the next ``times`` calls of ``action`` on a resource matching ``resource``
    (a glob) get, such as S3's ``503 SlowDown`` or ``500 InternalError``
    (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html). The SDK retries
    these: a fault meant to outlast its retries needs ``times`` above the SDK's attempts."""

    action: str
    resource: str
    status: int = 503
    code: str = "SlowDown"
    message: str = "Please reduce your request rate."
    times: int = 1


def _s3_error_body(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>devstack</RequestId></Error>"
    ).encode()


class Enforcer:
    """WSGI middleware in front of moto's server: evaluate, record, refuse."""

    def __init__(
        self,
        app: Callable[..., Any],
        policies: Policies,
        principals: Mapping[str, str],
        *,
        object_exists: Callable[[str, str], bool],
    ) -> None:
        self.app = app
        self.policies = policies
        self.principals = dict(principals)
        self.object_exists = object_exists
        self.calls: list[Call] = []
        #: service errors injected by the tests: the next calls matching one get its answer
        self.faults: Faults[ServiceFault] = Faults()
        self._lock = threading.Lock()

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        credential = _credential(environ)
        role = self.principals.get(credential[0]) if credential else None
        if credential is None or role is None:
            return self.app(environ, start_response)
        service = credential[1]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        method = str(environ["REQUEST_METHOD"])
        headers = {k[5:].replace("_", "-").title(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
        if service == "sts" and b"Action=GetCallerIdentity" in body:  # needs no permission, answers the session
            return self._caller_identity(role, start_response)
        try:
            request = describe(
                service,
                method,
                path=str(environ.get("PATH_INFO", "")),
                query=str(environ.get("QUERY_STRING", "")),
                headers=headers,
                body=body,
            )
        except ValueError as exc:
            self._record(Call(role, f"{service}:?", str(exc), False, "not modelled by devstack.aws.iam"))
            return self._refuse(
                start_response,
                service=service,
                method=method,
                role=role,
                action=f"{service}:(unmodelled {exc})",
                resource="*",
                why="",
            )
        fault = self.faults.take(
            lambda f: f.action == request.action and fnmatch.fnmatchcase(request.resource, f.resource)
        )
        if fault is not None:
            self._record(Call(role, request.action, request.resource, True, f"injected {fault.status} {fault.code}"))
            body = _s3_error_body(fault.code, fault.message)
            answer = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
            start_response(f"{fault.status} {fault.code}", answer)
            return [body]
        allowed, why = self.policies.evaluate(role, request)
        if allowed and request.s3_object is not None and not self.object_exists(*request.s3_object):
            bucket, key = request.s3_object
            listing = Request("s3", "s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": key})
            if not self.policies.evaluate(role, listing)[0]:
                # S3 hides whether the key exists from a principal that may not list the bucket
                allowed, why = False, "missing key, no s3:ListBucket"
        self._record(Call(role, request.action, request.resource, allowed, why))
        if not allowed:
            return self._refuse(
                start_response,
                service=service,
                method=method,
                role=role,
                action=request.action,
                resource=request.resource,
                why=why,
            )
        return self.app(environ, start_response)

    def _caller_identity(self, role: str, start_response: Callable[..., Any]) -> list[bytes]:
        body = (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
            f"<Arn>arn:aws:sts::{ACCOUNT}:assumed-role/{role}/local</Arn><UserId>{user_id(role)}</UserId>"
            f"<Account>{ACCOUNT}</Account></GetCallerIdentityResult>"
            "<ResponseMetadata><RequestId>devstack</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        ).encode()
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        self._record(Call(role, "sts:GetCallerIdentity", "*", True))
        return [body]

    def _refuse(
        self,
        start_response: Callable[..., Any],
        *,
        service: str,
        method: str,
        role: str,
        action: str,
        resource: str,
        why: str,
    ) -> list[bytes]:
        message = (
            f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/local is not authorized to perform: {action} "
            f"on resource: {resource} {why}".strip()
        )
        status, headers, body = _denied(service, method, message)
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def inject(self, fault: ServiceFault) -> None:
        self.faults.add(fault)

    def add_principal(self, role: str, statements: list[dict[str, Any]], tags: Mapping[str, str] | None = None) -> str:
        """A role of the account that is not the stack's (a team's CI role, a stranger), with its
        identity statements and tags; returns the access key its callers sign with."""
        self.policies.roles[role] = list(statements)
        self.policies.tags[role] = dict(tags or {})
        self.principals[access_key(role)] = role
        return access_key(role)

    def enforce(self, deployment: Deployment) -> None:
        """From now on, evaluate the calls of the deployment's roles."""
        self.policies = Policies(deployment.role_statements, deployment.resource_statements)
        self.principals = principals_of(deployment)

    def refused(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if not c.allowed]


def _s3_object_exists(bucket: str, key: str) -> bool:
    from moto.s3.models import s3_backends

    found = s3_backends[ACCOUNT]["global"].buckets.get(bucket)
    return found is not None and key in found.keys


def dispatcher() -> Any:
    """moto's request dispatcher, with the service a host name stands for resolved once per name.

    moto resolves it again on every request, under the dispatcher's lock: it lists its package
    directory (an ``isdir`` per service) and tries every service's URL patterns, about 1 ms of
    CPU a call, over a third of what an S3 call costs the stand-in. The answer depends on the
    host name alone, so it is kept."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self.services: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if host not in self.services:
                self.services[host] = super().get_backend_for_host(host)
            return self.services[host]

    return Dispatcher()


def server(ip_address: str, port: int) -> Any:
    """moto's threaded server with an :class:`Enforcer` in front (it passes everything until
    :meth:`Enforcer.enforce` gives it the deployment's roles)."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    class EnforcedMotoServer(ThreadedMotoServer):
        enforcer: Enforcer

        def _server_entry(self) -> None:
            self.enforcer = Enforcer(dispatcher(), Policies({}, []), {}, object_exists=_s3_object_exists)
            self._server = make_server(
                self._ip_address, self._port, self.enforcer, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return EnforcedMotoServer(ip_address=ip_address, port=port, verbose=False)
