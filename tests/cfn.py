"""The template as CloudFormation sees it: translated by the SAM translator that ``sam`` uses.

Tests that reason about what the stack grants or wires read this, not the SAM source: the
roles SAM would add (``AWSLambdaBasicExecutionRole``, a schedule's role, policy templates
such as ``S3ReadPolicy``) exist only after the transform.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


def source() -> dict[str, Any]:
    """The SAM template with intrinsics in their long form (``{"Fn::Sub": ...}``)."""
    return dict(yaml_parse(TEMPLATE.read_text()))


def translate(template: dict[str, Any]) -> dict[str, Any]:
    """Run the SAM transform on ``template`` (local code paths are replaced by S3 ones first)."""
    template = json.loads(json.dumps(template))
    # Local paths are what `sam package` replaces with S3 locations; the translator wants those.
    for resource in [template.get("Globals", {}).get("Function", {}), *template["Resources"].values()]:
        properties = resource.get("Properties", resource)
        if "CodeUri" in properties:
            properties["CodeUri"] = "s3://bucket/functions.zip"
        if "DefinitionUri" in properties:
            properties["DefinitionUri"] = {"Bucket": "bucket", "Key": "definition.json"}
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name="us-east-1"))
    return dict(translator.translate(template, parameter_values={}, get_managed_policy_map=lambda: {}))


@cache
def _translated() -> str:
    return json.dumps(translate(source()))


def translated() -> dict[str, Any]:
    """The CloudFormation template ``sam deploy`` would create from ``template.yaml`` (a fresh copy)."""
    return dict(json.loads(_translated()))


def render(value: Any) -> str:
    """An intrinsic as readable text: ``!GetAtt A.Arn`` -> ``${A.Arn}``, ``!Sub`` -> its string.

    >>> render({"Fn::Sub": "${Bucket.Arn}/runs/*"})
    '${Bucket.Arn}/runs/*'
    """
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(render(v) for v in value)
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return "${" + arg + "}"
        if key == "Fn::GetAtt":
            return "${" + (arg if isinstance(arg, str) else ".".join(arg)) + "}"
        if key == "Fn::Sub":
            if isinstance(arg, str):
                return arg
            text, names = arg
            for name, sub in names.items():
                text = text.replace("${" + name + "}", render(sub))
            return str(text)
        if key == "Fn::Join":
            return str(arg[0]).join(render(v) for v in arg[1])
        if key == "Fn::If":
            return f"(if {arg[0]}: {render(arg[1])} else {render(arg[2])})"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
